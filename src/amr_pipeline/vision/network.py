"""ResNet-50 (paper 4.1.3): the Keras network with its weights, and its compiled form.

:func:`build_resnet50` is ``keras.applications.ResNet50(include_top=False, pooling="avg")``
with ImageNet, seeded random or local-file weights; :class:`ResNet50Features` runs it with
every BatchNormalization folded into the convolution before it (float32 or bfloat16).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.applications import resnet50 as keras_resnet50

from amr_pipeline.errors import ConfigurationError

logger = logging.getLogger(__name__)

PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_WEIGHTS_FILE
)
MIN_IMAGE_SIZE = 32
RANDOM_INIT = "random-glorot-v1"


def weights_identity(weights: str, seed: int) -> str:
    """Stable id of the network weights (part of every feature-cache key)."""
    if weights == "imagenet":
        return "imagenet"
    if weights == "random":
        return f"{RANDOM_INIT}-seed{int(seed)}"
    path = Path(weights)
    if not path.is_file():
        raise ConfigurationError(
            f"weights={weights!r}: expected 'imagenet', 'random' or the path of a local ResNet-50 "
            f"weights file (e.g. {IMAGENET_WEIGHTS_FILE}), but that file does not exist."
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return f"file-{digest.hexdigest()[:20]}"


def _seeded_glorot(model: keras.Model, seed: int) -> None:
    """Keras' default init, drawn from ``seed``: Glorot-uniform kernels, zero biases.

    BatchNorm keeps its fresh statistics (mean 0, variance 1, scale 1), an identity at inference.
    """
    rng = np.random.default_rng(int(seed))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width, channels_in, channels_out = layer.kernel.shape
            limit = np.sqrt(6.0 / ((channels_in + channels_out) * height * width))
            layer.kernel.assign(rng.uniform(-limit, limit, layer.kernel.shape).astype(np.float32))
            if layer.bias is not None:
                layer.bias.assign(np.zeros(layer.bias.shape, np.float32))


def build_resnet50(weights: str = "imagenet", seed: int = 0, image_size: int = 224) -> keras.Model:
    """``keras.applications.ResNet50(include_top=False, pooling="avg")`` with the given weights.

    ``weights``: ``"imagenet"`` (downloaded and cached by Keras in ``~/.keras/models``), the path
    of a local weights file (``.h5`` as published by Keras, or ``.weights.h5``), or ``"random"``
    (Glorot-uniform drawn from ``seed``: the same seed gives the same network). Never falls back.

    Random weights still carry visual information: with fresh statistics every BatchNorm is an
    identity at inference, and Glorot-scaled kernels keep the activations from vanishing or
    exploding through the 16 residual blocks (He-normal kernels grow them thousands-fold), so
    colour, shape and texture stay linearly separable in the 2048-d output.
    """
    if int(image_size) < MIN_IMAGE_SIZE:
        raise ConfigurationError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {image_size}.")
    shape = (int(image_size), int(image_size), 3)
    if weights == "imagenet":
        try:
            model = keras_resnet50.ResNet50(
                weights="imagenet", include_top=False, pooling="avg", input_shape=shape
            )
        except Exception as error:
            raise ConfigurationError(
                f"Could not obtain the ImageNet ResNet-50 weights ({type(error).__name__}: "
                f"{error}). Without internet, download {IMAGENET_WEIGHTS_URL} elsewhere and set "
                "the weights parameter to the local file's path (or copy it into "
                "~/.keras/models/)."
            ) from error
        logger.info("ResNet-50 weights: ImageNet (Keras file %s)", IMAGENET_WEIGHTS_FILE)
        return model
    model = keras_resnet50.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=shape
    )
    if weights == "random":
        _seeded_glorot(model, seed)
        logger.info("ResNet-50 weights: random Glorot-uniform, seed %d (not pretrained)", seed)
        return model
    identity = weights_identity(weights, seed)
    try:
        model.load_weights(str(weights))
    except Exception as error:
        raise ConfigurationError(
            f"{weights}: not a ResNet-50 (include_top=False) weights file ({error}). Use Keras' "
            f"{IMAGENET_WEIGHTS_FILE} or a file saved by model.save_weights."
        ) from error
    logger.info("ResNet-50 weights: local file %s (%s)", weights, identity)
    return model


def _folded_convolutions(model: keras.Model, dtype: tf.DType) -> dict:
    """``{name: (kernel, bias, stride, padding)}`` with each BatchNorm folded into its conv."""
    folded = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        name = layer.name.removesuffix("_conv")
        norm = model.get_layer(f"{name}_bn")
        scale = norm.gamma.numpy() / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
        bias = layer.bias.numpy() if layer.bias is not None else 0.0
        folded[name] = (
            tf.constant(layer.kernel.numpy() * scale, dtype),
            tf.constant((bias - norm.moving_mean.numpy()) * scale + norm.beta.numpy(), dtype),
            layer.strides[0],
            layer.padding.upper(),
        )
    return folded


class ResNet50Features:
    """ResNet-50 as a batched function: uint8 RGB images ``(n, s, s, 3)`` -> float32 ``(n, 2048)``.

    ``precision="bfloat16"`` runs the convolutions in bfloat16 (worth it on CPUs with
    AVX512-BF16/AMX); pooling and the output stay float32.
    """

    def __init__(
        self,
        weights: str = "imagenet",
        seed: int = 0,
        image_size: int = 224,
        precision: str = "float32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigurationError(
                f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}."
            )
        self.image_size = int(image_size)
        self.precision = precision
        self.model = build_resnet50(weights, seed, image_size)
        self.dimension = int(self.model.output_shape[-1])
        self._layers = _folded_convolutions(self.model, PRECISIONS[precision])
        self._forward = tf.function(
            self._graph,
            input_signature=[tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.uint8)],
        )

    def _block(self, x, name, relu=True, shortcut=None):
        kernel, bias, stride, padding = self._layers[name]
        y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, padding), bias)
        if shortcut is not None:
            y = y + shortcut
        return tf.nn.relu(y) if relu else y

    def _graph(self, images):
        x = keras_resnet50.preprocess_input(tf.cast(images, tf.float32))
        x = tf.cast(x, PRECISIONS[self.precision])
        x = self._block(tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]]), "conv1")
        x = tf.nn.max_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")
        for stage in (2, 3, 4, 5):
            block = 1
            while f"conv{stage}_block{block}_1" in self._layers:
                name = f"conv{stage}_block{block}"
                shortcut = (self._block(x, f"{name}_0", relu=False)
                            if f"{name}_0" in self._layers else x)
                y = self._block(self._block(x, f"{name}_1"), f"{name}_2")
                x = self._block(y, f"{name}_3", shortcut=shortcut)
                block += 1
        return tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2])

    def __call__(self, images) -> np.ndarray:
        return self._forward(tf.convert_to_tensor(images, tf.uint8)).numpy()
