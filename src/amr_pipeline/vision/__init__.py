"""Computer vision on item images: ResNet-50 feature extraction (``resnet.py``)."""
