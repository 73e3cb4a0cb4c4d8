"""Computer vision on item images (paper 4.1.3 and the pixel-level attack).

``images`` (image folder, decoding), ``network`` (ResNet-50 and its compiled form),
``feature_cache`` (per-image cache), ``resnet`` (the extraction loop, ``extract_item_features``),
``quantization`` (OpenVINO int8), ``ray_features`` (extraction on Ray Data), ``availability``
(image checks), ``pixel_attack`` (pixel-level FGSM).
"""
