"""ResNet-50 item features: image decoding, problem report, weights, precision and cache."""

import keras
import numpy as np
import pandas as pd
import pytest
from keras.applications import resnet50 as keras_resnet50
from PIL import Image

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.vision import quantization, resnet
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import TooManyPixelsError, load_image
from amr_pipeline.vision.network import ResNet50Features, build_resnet50

SIZE = 32
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40), (40, 40, 40)]
REAL_EXTRACTOR = ResNet50Features
_BUILT = {}


def _draw(index: int, size: int = 40) -> Image.Image:
    """A coloured disc, with stripes on odd indices, on a light background."""
    yy, xx = np.mgrid[:size, :size + 10]
    picture = np.full((size, size + 10, 3), 235, np.uint8)
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    colour = np.array(COLOURS[index % len(COLOURS)], np.uint8)
    if index % 2:
        disc &= (xx // 3) % 2 == 0
    picture[disc] = colour
    return Image.fromarray(picture)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for index in range(6):
        _draw(index).save(root / f"item{index}.png")
    return root


def _shared(weights="imagenet", seed=0, image_size=224, precision="float32"):
    """Build each distinct network once per test module (building dominates test time)."""
    key = (weights, seed, image_size, precision)
    if key not in _BUILT:
        _BUILT[key] = REAL_EXTRACTOR(*key)
    return _BUILT[key]


@pytest.fixture(autouse=True)
def shared_networks(monkeypatch):
    monkeypatch.setattr(resnet, "ResNet50Features", _shared)


def _items(count: int = 6, extra=()) -> pd.DataFrame:
    names = [f"item{i}.png" for i in range(count)] + list(extra)
    return pd.DataFrame({"item_id": np.arange(len(names)), "image": names})


def _extract(items, folder, cache=None, **kwargs):
    settings = {"weights": "random", "seed": 3, "image_size": SIZE, "batch_size": 4,
                "precision": "float32", "engine": "tensorflow"}
    return resnet.extract_item_features(items, folder, cache, **{**settings, **kwargs})


@pytest.mark.parametrize(
    "mode", ["P", "L", "1", "RGBA", "LA", "CMYK", "I;16", "I", "F", "RGB"]
)
@pytest.mark.parametrize("shape", [(3, 2), (50, 20), (20, 50), (32, 32)])
def test_load_image_any_mode_and_size_gives_rgb_square(tmp_path, mode, shape):
    image = Image.new("RGB", shape, (200, 120, 40))
    if mode.startswith("I") or mode == "F":
        image = Image.fromarray(np.full(shape[::-1], 40000, np.uint16)).convert(mode)
    elif mode in ("P", "1"):
        image = image.convert(mode, dither=Image.Dither.NONE, palette=Image.Palette.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    path = tmp_path / ("img.tiff" if mode in ("CMYK", "I;16", "I", "F") else "img.png")
    image.save(path)
    array = load_image(path, SIZE)
    assert array.shape == (SIZE, SIZE, 3) and array.dtype == np.uint8
    assert array.std(axis=(0, 1)).max() < 1.0, "a flat image stays flat"


def test_load_image_converts_values():
    sixteen_bit = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert sixteen_bit.mode.startswith("I")
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    palette = Image.new("RGB", (8, 8), (0, 0, 255)).convert("P")
    for image, expected in [(sixteen_bit, 255), (transparent, 255)]:
        path = f"/tmp/amr-load-{id(image)}.png"
        image.save(path)
        assert (load_image(path, SIZE) == expected).all()
    palette.save("/tmp/amr-load-palette.png")
    assert load_image("/tmp/amr-load-palette.png", SIZE)[0, 0].tolist() == [0, 0, 255]


def test_centre_crop_keeps_the_middle(tmp_path):
    picture = np.zeros((40, 120, 3), np.uint8)
    picture[:, 38:82] = 255
    Image.fromarray(picture).save(tmp_path / "wide.png")
    array = load_image(tmp_path / "wide.png", SIZE)
    assert array.min() == 255, "the centre 40 x 40 square, resized to 32 x 32"


def test_features_are_finite_2048_float32_and_equal_keras_predict(folder):
    features, problems, _ = _extract(_items(), folder)
    assert problems.empty
    assert features.item_ids.tolist() == list(range(6))
    assert features.features.shape == (6, 2048) and features.features.dtype == np.float32
    assert np.isfinite(features.features).all()
    model = _shared("random", 3, SIZE).model
    pixels = np.stack([load_image(folder / f"item{i}.png", SIZE) for i in range(6)])
    expected = model.predict(keras_resnet50.preprocess_input(pixels.astype("float32")),
                             verbose=0)
    np.testing.assert_allclose(features.features, expected, rtol=1e-4, atol=1e-4)


def test_random_weights_keep_visual_information(tmp_path):
    for index, colour in enumerate(COLOURS):
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"solid{index}.png")
        _draw(2 * index + 1, 64).save(tmp_path / f"striped{index}.png")
    names = [f"solid{i}.png" for i in range(5)] + [f"striped{i}.png" for i in range(5)]
    items = pd.DataFrame({"item_id": np.arange(10), "image": names})
    features = _extract(items, tmp_path)[0].features
    assert np.isfinite(features).all()
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = np.linalg.norm(unit[:, None] - unit[None], axis=-1)
    assert distance[~np.eye(10, dtype=bool)].min() > 0.05, "different images, different features"


def test_random_weights_let_a_linear_model_tell_colour_and_texture(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    labels = []
    for index in range(48):
        colour, striped = index % 3, (index // 3) % 2
        centre = rng.uniform(16, 24, 2)
        picture = np.full((40, 40, 3), 235.0) + rng.normal(0, 6, (40, 40, 3))
        disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < 13**2
        picture[disc & ((xx // 3) % 2 == 0) if striped else disc] = COLOURS[colour]
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(tmp_path / f"{index}.png")
        labels.append((colour, striped))
    items = pd.DataFrame({"item_id": np.arange(48), "image": [f"{i}.png" for i in range(48)]})
    features = _extract(items, tmp_path)[0].features
    train, labels = np.arange(48) < 24, np.array(labels)
    scaled = (features - features[train].mean(0)) / (features[train].std(0) + 1e-6)
    for column, classes in [(0, 3), (1, 2)]:
        targets = np.eye(classes)[labels[train, column]]
        weights = scaled[train].T @ np.linalg.solve(
            scaled[train] @ scaled[train].T + np.eye(24), targets
        )
        predicted = np.argmax(scaled[~train] @ weights, axis=1)
        assert (predicted == labels[~train, column]).mean() >= 0.9


def test_same_seed_same_weights_other_seed_differs():
    first = _shared("random", 3, SIZE).model.get_weights()
    again = build_resnet50("random", 3, SIZE).get_weights()
    other = build_resnet50("random", 4, SIZE).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_local_weights_file_reproduces_its_model(folder, tmp_path):
    path = tmp_path / "resnet.weights.h5"
    _shared("random", 3, SIZE).model.save_weights(path)
    from_file = _extract(_items(3), folder, weights=str(path))[0].features
    from_seed = _extract(_items(3), folder)[0].features
    np.testing.assert_array_equal(from_file, from_seed)


def test_trained_batch_norm_statistics_are_folded_exactly(folder, tmp_path):
    model = build_resnet50("random", 12, SIZE)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, size))
            layer.beta.assign(rng.normal(0, 0.2, size))
            layer.moving_mean.assign(rng.normal(0, 0.2, size))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size))
    model.save_weights(tmp_path / "trained.weights.h5")
    features = _extract(_items(3), folder, weights=str(tmp_path / "trained.weights.h5"))[0]
    pixels = np.stack([load_image(folder / f"item{i}.png", SIZE) for i in range(3)])
    expected = model.predict(keras_resnet50.preprocess_input(pixels.astype("float32")),
                             verbose=0)
    np.testing.assert_allclose(features.features, expected, rtol=1e-4, atol=1e-4)


def test_bad_weights_raise_configuration_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="does not exist"):
        build_resnet50(str(tmp_path / "absent.h5"))
    (tmp_path / "junk.weights.h5").write_bytes(b"junk")
    with pytest.raises(ConfigurationError, match="weights file"):
        build_resnet50(str(tmp_path / "junk.weights.h5"), image_size=SIZE)

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras_resnet50, "ResNet50", offline)
    with pytest.raises(ConfigurationError, match="local file"):
        build_resnet50("imagenet", image_size=SIZE)


def test_bfloat16_agrees_with_float32(folder):
    full = _extract(_items(), folder)[0].features
    half = _extract(_items(), folder, precision="bfloat16")[0].features
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cosine.min() >= 0.999


def test_missing_and_corrupt_images_are_reported_together(folder, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "ok.png").write_bytes((folder / "item0.png").read_bytes())
    truncated = (folder / "item1.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    items = pd.DataFrame({"item_id": [0, 1, 2, 3, 4],
                          "image": ["ok.png", "broken.jpg", "gone.jpg", "cut.png", None]})
    with pytest.raises(RawDataError) as raised:
        _extract(items, tmp_path)
    message = str(raised.value)
    for text in ["4 of 5", "item 1: broken.jpg", "item 2: gone.jpg (missing file)",
                 "item 3: cut.png", "on_missing_image: drop"]:
        assert text in message
    features, problems, _ = _extract(items, tmp_path, on_missing_image="drop")
    assert features.item_ids.tolist() == [0] and features.features.shape == (1, 2048)
    assert problems["item_id"].tolist() == [1, 2, 3, 4]
    assert problems["reason"].str.startswith("unreadable").tolist() == [True, False, True, False]


def test_invalid_parameters_raise_configuration_error(folder):
    for bad in [{"on_missing_image": "skip"}, {"precision": "float16"}, {"image_size": 16},
                {"engine": "onnx"}, {"precision": "int8", "engine": "tensorflow"},
                {"precision": "bfloat16", "engine": "openvino"}, {"min_cosine": 0},
                {"min_cosine": 1.5}, {"calibration_images": 0}, {"validation_images": 0},
                {"audit_every": -1}]:
        with pytest.raises(ConfigurationError):
            _extract(_items(1), folder, **bad)


class _Counting:
    """Stands in for ResNet50Features: counts builds and images, can simulate an interrupt."""

    builds = 0
    images = 0
    stop_after = None

    def __init__(self, *args):
        type(self).builds += 1
        self._network = _shared(*args)

    def __call__(self, images):
        if type(self).stop_after is not None and type(self).images >= type(self).stop_after:
            raise KeyboardInterrupt
        type(self).images += len(images)
        return self._network(images)


@pytest.fixture
def counting(monkeypatch):
    for name, value in {"builds": 0, "images": 0, "stop_after": None}.items():
        monkeypatch.setattr(_Counting, name, value)
    monkeypatch.setattr(resnet, "ResNet50Features", _Counting)
    return _Counting


def test_cache_makes_a_rerun_compute_nothing_and_resumes_interrupted_runs(
    folder, tmp_path, counting
):
    cache = FeatureCache(tmp_path / "cache")
    counting.stop_after = 4
    with pytest.raises(KeyboardInterrupt):
        _extract(_items(), folder, cache, shard_size=4)
    assert len(cache) == 4
    counting.stop_after, counting.images = None, 0
    first = _extract(_items(), folder, cache)[0]
    assert counting.images == 2, "only the two images the interrupted run did not reach"
    counting.builds = 0
    again = _extract(_items(), folder, cache)[0]
    assert counting.builds == 0 and counting.images == 2
    np.testing.assert_array_equal(first.features, again.features)
    fresh = _extract(_items(), folder)[0]
    np.testing.assert_allclose(first.features, fresh.features, rtol=1e-5, atol=1e-5)


def test_cache_key_follows_file_and_settings(folder, tmp_path, counting):
    cache = FeatureCache(tmp_path / "cache")
    image = tmp_path / "item0.png"
    image.write_bytes((folder / "item0.png").read_bytes())
    _extract(_items(1), tmp_path, cache)
    _extract(_items(1), tmp_path, cache)
    assert counting.builds == 1
    _extract(_items(1), tmp_path, cache, precision="bfloat16")
    _draw(1).save(image)
    _extract(_items(1), tmp_path, cache)
    assert counting.builds == 3 and len(cache) == 3


# --------------------------------------------------------------------------- OpenVINO, int8


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """24 varied images: int8 is calibrated on some and validated on others."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(1)
    for index in range(24):
        picture = np.asarray(_draw(index, 48), np.float64) + rng.normal(0, 12, (48, 58, 3))
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(root / f"item{index}.png")
    return root


def _int8(items, folder, cache=None, **kwargs):
    settings = {"precision": "int8", "engine": "openvino", "calibration_images": 12,
                "validation_images": 8}
    return _extract(items, folder, cache, **{**settings, **kwargs})


def test_openvino_float32_equals_tensorflow_float32(folder):
    tensorflow = _extract(_items(), folder)[0].features
    openvino = _extract(_items(), folder, engine="openvino")[0].features
    np.testing.assert_allclose(openvino, tensorflow, rtol=1e-4, atol=1e-4)


def test_int8_agrees_with_float32_and_is_kept_for_resumed_runs(mixed_folder, tmp_path, caplog):
    items = _items(24)
    reference = _extract(items, mixed_folder)[0].features
    cache = FeatureCache(tmp_path / "cache")
    with caplog.at_level("INFO", logger="amr_pipeline.vision.resnet"):
        first = _int8(items.head(16), mixed_folder, cache)[0]
    assert "OpenVINO int8" in caplog.text and "using float32 instead" not in caplog.text
    models = list((tmp_path / "cache" / "models").glob("*.xml"))
    assert len(models) == 1 and models[0].with_suffix(".bin").is_file()
    cosine = quantization.cosine_per_item(first.features, reference[:16])
    assert cosine.min() >= 0.999
    assert np.abs(first.features - reference[:16]).max() > 1e-6, "int8 is not float32"
    # A resumed run with more items reuses the stored network: the first 16 come from the
    # feature cache, the new 8 from the same quantisation.
    resumed = _int8(items, mixed_folder, cache)[0]
    np.testing.assert_array_equal(resumed.features[:16], first.features)
    stored = quantization.OpenVinoFeatures(quantization.load_model(models[0]))
    pixels = np.stack([load_image(mixed_folder / f"item{i}.png", SIZE)
                       for i in range(16, 24)])
    np.testing.assert_allclose(resumed.features[16:], stored(pixels), rtol=1e-5, atol=1e-5)


def test_int8_calibration_is_deterministic(mixed_folder):
    first = _int8(_items(10), mixed_folder)[0].features
    again = _int8(_items(10), mixed_folder)[0].features
    np.testing.assert_array_equal(first, again)


def test_int8_below_the_bound_falls_back_to_float32_with_a_warning(mixed_folder, tmp_path,
                                                                  caplog):
    cache = FeatureCache(tmp_path / "cache")
    with caplog.at_level("WARNING"):
        features = _int8(_items(10), mixed_folder, cache, min_cosine=1.0)[0].features
    assert "below the bound min_cosine=1.0: using float32 instead" in caplog.text
    assert not (tmp_path / "cache" / "models").exists(), "a rejected network is not kept"
    reference = _extract(_items(10), mixed_folder)[0].features
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-4)


def test_int8_with_nothing_readable_left_reports_the_images(mixed_folder, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        (images / f"item{index}.png").write_bytes((mixed_folder / f"item{index}.png").read_bytes())
    cache = FeatureCache(tmp_path / "cache")
    _int8(_items(4), images, cache)
    (images / "item4.png").write_bytes(b"not a png")
    features, problems, _ = _int8(_items(5), images, cache, on_missing_image="drop")
    assert features.item_ids.tolist() == [0, 1, 2, 3]
    assert problems["item_id"].tolist() == [4]
    with pytest.raises(RawDataError, match="item 4: item4.png"):
        _int8(_items(5), images, cache)


def test_damaged_stored_int8_network_names_the_file_and_the_fix(mixed_folder, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    _int8(_items(4), mixed_folder, cache)
    stored = next((tmp_path / "cache" / "models").glob("*.xml"))
    stored.write_text("<net> not a model")
    with pytest.raises(ConfigurationError, match="delete it") as raised:
        _int8(_items(8), mixed_folder, cache)
    assert str(stored) in str(raised.value)


def test_int8_audit_measures_the_whole_run_and_warns_below_the_bound(mixed_folder, monkeypatch,
                                                                    caplog):
    network = _shared("random", 3, SIZE)
    noise = np.random.default_rng(0).normal(0, 1, 2048).astype(np.float32)

    def audited(*args, **kwargs):
        """int8 stand-in whose float32 reference disagrees on every other item."""
        def reference(images):
            rows = network(images)
            rows[::2] += noise * np.linalg.norm(rows[::2], axis=1, keepdims=True) / 10
            return rows
        return resnet.Extractor(network, "int8-test", "int8 stand-in", reference=reference)

    monkeypatch.setattr(resnet, "build_extractor", audited)
    with caplog.at_level("INFO", logger="amr_pipeline.vision.resnet"):
        summary = _int8(_items(24), mixed_folder, audit_every=2)[2]
    assert summary["int8_audited_images"] == 12, "batches 1, 3 and 5 of 6 batches of 4"
    assert summary["int8_audit_min_cosine"] < 0.999
    assert "6 of 12 audited items below min_cosine=0.999" in caplog.text
    assert "precision: float32" in caplog.text
    off = _int8(_items(24), mixed_folder, audit_every=0)[2]
    assert "int8_audited_images" not in off


def test_openvino_float32_is_compiled_and_read_back_as_f32_on_every_cpu(folder):
    """OpenVINO's CPU plugin would run float layers in bf16 on CPUs with native bf16 unless
    the precision is set: the compiled model must say f32, and the features agree with
    TensorFlow float32 (the test above) on AVX2-only and AVX-512 BF16 CPUs alike."""
    features, _, summary = _extract(_items(), folder, engine="openvino")
    assert summary["inference_precision_bits"] == 32
    network = _shared("random", 3, SIZE)
    model = quantization.openvino_model(network._forward)
    assert quantization.OpenVinoFeatures(model).inference_precision == "f32"


def test_a_bf16_request_reads_back_what_the_cpu_runs(folder):
    """Both branches of the ISA-dependent behaviour: where the CPU has native bf16 a bf16
    request runs in bf16 (and differs from float32), elsewhere OpenVINO runs it in f32."""
    network = _shared("random", 3, SIZE)
    model = quantization.openvino_model(network._forward)
    pixels = np.stack([load_image(folder / f"item{i}.png", SIZE) for i in range(6)])
    float32 = quantization.OpenVinoFeatures(model, "f32")
    half = quantization.OpenVinoFeatures(model, "bf16")
    difference = np.abs(half(pixels) - float32(pixels)).max()
    if quantization.native_bf16():
        assert half.inference_precision == "bf16"
        assert difference > 1e-4, "bf16 inference should not equal float32"
    else:
        assert half.inference_precision == "f32"
        assert difference < 1e-5
    with pytest.raises(ConfigurationError, match="inference_precision"):
        quantization.OpenVinoFeatures(model, "f64")


# ------------------------------------------------------------ int8 weights: the overflow fix


def test_vnni_is_read_from_the_cpu_flags(tmp_path):
    """VNNI is detected from any of its flags; no flag, or no readable file, means no VNNI."""
    cpuinfo = tmp_path / "cpuinfo"
    avx2 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16\n"
    cpuinfo.write_text(avx2)
    assert not quantization.has_vnni(cpuinfo)
    for flag in ["avx512_vnni", "avx_vnni", "amx_int8"]:
        cpuinfo.write_text(avx2.replace("fma", f"fma {flag}"))
        assert quantization.has_vnni(cpuinfo)
    assert not quantization.has_vnni(tmp_path / "absent")


@pytest.mark.parametrize("vnni, expected", [(True, "disable"), (False, "enable")])
def test_auto_overflow_fix_follows_the_cpu(monkeypatch, vnni, expected):
    """Both ISA branches: full 8-bit weights with VNNI, 7-bit weights without."""
    monkeypatch.setattr(quantization, "has_vnni", lambda *args: vnni)
    assert quantization.resolve_overflow_fix("auto") == expected
    for setting in ["enable", "disable"]:
        assert quantization.resolve_overflow_fix(setting) == setting
    with pytest.raises(ConfigurationError, match="int8_overflow_fix"):
        quantization.resolve_overflow_fix("first_layer")


def test_auto_overflow_fix_matches_this_cpu():
    """This machine's branch, named: the default follows its /proc/cpuinfo flags."""
    expected = "disable" if quantization.has_vnni() else "enable"
    assert quantization.resolve_overflow_fix() == expected


def test_int8_with_7_and_8_bit_weights_both_keep_the_cosine_bound(mixed_folder, tmp_path):
    """enable (7-bit weights) and disable (8-bit) each pass the float32 check, quantise to
    different networks, and are stored apart: one is never read back for the other."""
    items = _items(16)
    reference = _extract(items, mixed_folder)[0].features
    cache = FeatureCache(tmp_path / "cache")
    results = {}
    for setting, bits in [("enable", 7), ("disable", 8)]:
        features, _, summary = _int8(items, mixed_folder, cache, int8_overflow_fix=setting)
        assert summary["int8"] == 1 and summary["int8_weight_bits"] == bits
        assert quantization.cosine_per_item(features.features, reference).min() >= 0.999
        results[setting] = features.features
    assert np.abs(results["enable"] - results["disable"]).max() > 1e-6, "different networks"
    models = sorted(path.name for path in (tmp_path / "cache" / "models").glob("*.xml"))
    assert len(models) == 2 and "overflow-fix-disable" in models[0]
    assert "overflow-fix-enable" in models[1]
    again, _, summary = _int8(items, mixed_folder, cache, int8_overflow_fix="disable")
    assert summary["computed"] == 0, "each setting finds its own cached rows"
    np.testing.assert_array_equal(again.features, results["disable"])


def test_invalid_overflow_fix_raises_configuration_error(folder):
    with pytest.raises(ConfigurationError, match="int8_overflow_fix"):
        _int8(_items(1), folder, int8_overflow_fix="on")


def _tiny_openvino_model():
    """A one-convolution network: enough for NNCF to quantise, in a fraction of a second."""
    import tensorflow as tf

    kernel = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 4)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def forward(images):
        return tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "SAME")), [1, 2])

    return quantization.openvino_model(forward)


def test_quantising_twice_keeps_warnings_reaching_handlers_shared_with_nncf():
    """Quiet NNCF by its logger's level alone: a handler attached to both the root logger and
    NNCF's non-propagating logger (as pytest's log capture does) keeps its level, and WARNING
    records from the project still reach it after two quantisations in one process."""
    import logging

    import nncf  # noqa: F401 - importing NNCF sets its logger's level: take it as it is after

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    shared = Keep(level=logging.NOTSET)
    nncf_logger, root = logging.getLogger("nncf"), logging.getLogger()
    level_before = nncf_logger.level
    nncf_logger.addHandler(shared)
    root.addHandler(shared)
    try:
        calibration = np.random.default_rng(1).uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)
        for _ in range(2):
            quantization.quantize(_tiny_openvino_model(), calibration)
        assert shared.level == logging.NOTSET
        assert nncf_logger.level == level_before, "NNCF's level is restored after the block"
        logging.getLogger("amr_pipeline.vision.resnet").warning("still heard")
    finally:
        nncf_logger.removeHandler(shared)
        root.removeHandler(shared)
    assert any(record.getMessage() == "still heard" for record in records)


# --------------------------------------------------------------- images over max_image_pixels


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory, folder):
    """item0.png and two highly compressible 5000 x 5000 images (25 megapixels, a few kB)."""
    root = tmp_path_factory.mktemp("bombs")
    (root / "item0.png").write_bytes((folder / "item0.png").read_bytes())
    Image.new("L", (5000, 5000), 200).save(root / "bomb.png")
    Image.new("L", (5000, 5000), 200).save(root / "bomb.jpg", quality=10)
    return root


def test_load_image_refuses_too_many_pixels_without_decoding_them(bomb_folder, decoded_files):
    with pytest.raises(RawDataError) as raised:
        load_image(bomb_folder / "bomb.jpg", SIZE, max_image_pixels=1_000_000)
    message = str(raised.value)
    assert isinstance(raised.value, TooManyPixelsError)
    assert message.startswith(f"{bomb_folder / 'bomb.jpg'}: unreadable: too many pixels (5000 x "
                              "5000 = 25,000,000 pixels, over max_image_pixels 1,000,000)")
    assert "Fix: shrink or replace the image, or raise max_image_pixels" in message
    assert decoded_files == []
    assert load_image(bomb_folder / "bomb.png", SIZE).shape == (SIZE, SIZE, 3), \
        "under Pillow's default limit 25 megapixels decode"
    assert set(decoded_files) == {"bomb.png"}


def test_extraction_reports_images_over_max_image_pixels_with_the_missing_ones(bomb_folder,
                                                                              decoded_files):
    items = pd.DataFrame({"item_id": [0, 1, 2, 3],
                          "image": ["item0.png", "bomb.png", "gone.jpg", "bomb.jpg"]})
    with pytest.raises(RawDataError) as raised:
        _extract(items, bomb_folder, max_image_pixels=1_000_000)
    message = str(raised.value)
    assert message.startswith("3 of 4 item images are missing or unreadable")
    assert ("item 1: bomb.png (unreadable: too many pixels (5000 x 5000 = 25,000,000 pixels, "
            "over max_image_pixels 1,000,000), never decoded)") in message
    assert "item 3: bomb.jpg (unreadable: too many pixels" in message
    assert "shrink the images over max_image_pixels (or raise that limit)" in message
    assert "on_missing_image: drop" in message
    features, problems, _ = _extract(items, bomb_folder, max_image_pixels=1_000_000,
                                     on_missing_image="drop")
    assert features.item_ids.tolist() == [0]
    assert problems["item_id"].tolist() == [1, 2, 3]
    assert problems["reason"].str.contains("too many pixels").tolist() == [True, False, True]
    assert "item0.png" in decoded_files
    assert not {"bomb.png", "bomb.jpg"} & set(decoded_files)
    with pytest.raises(ConfigurationError, match="max_image_pixels"):
        _extract(items, bomb_folder, max_image_pixels=0)
