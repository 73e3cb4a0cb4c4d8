"""ResNet-50 item features on Ray Data: one network per actor, one Parquet part per id range.

Three steps, each a plain function (the features pipeline runs them as three nodes):

1. :func:`prepare_network` (driver, once): builds the OpenVINO network the way
   :func:`amr_pipeline.vision.resnet.extract_item_features` does (int8: calibrated and checked
   against float32 on seeded item images) and stores it in the feature cache, with the float32
   network an int8 run is audited against. Returns a small description (paths, tag, check).
2. :func:`extract_parts`: a Ray dataset of the item image paths still to compute, decoded by
   ``map_batches`` tasks and run through the stored network in an actor pool
   (``ActorPoolStrategy``; each actor loads the network once, with as many OpenVINO threads
   as it has CPUs). Items are grouped into parts by item-id range (``part_size``); a part's
   name carries a fingerprint of its items' files and of the network, so a resumed run skips
   every part already written and recomputes a part whose images or network changed. Parts
   come back as lazy tables, written one by one as Ray delivers them, so a killed run keeps
   every finished part.
3. :func:`compact_parts`: the parts of the current plan, read back in item order, as chunks
   of the feature matrix, plus the run's figures (counts, images/s, the int8 check and the
   int8 audit, whose cosines come back as a column of every part).

OpenVINO's CPU output for an image does not depend on the batch it runs in, the number of
threads or whether the network was read back from disk, so these features equal the local
path's bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from amr_pipeline.errors import ConfigurationError, RawDataError

logger = logging.getLogger(__name__)

__all__ = ["PART_COLUMNS", "compact_parts", "extract_parts", "part_table", "plan_parts",
           "prepare_network"]

PART_COLUMNS = ("item_id", "features", "problem", "audit_cosine")
"""Columns of a part: ``features`` is ``fixed_size_list<float32>`` (zeros when the image was
left out, ``problem`` then holds the reason, otherwise null: Parquet has no fixed-size lists,
so a null vector would not read back); ``audit_cosine`` is the int8-against-float32 cosine of
audited items (null for the others)."""


# --------------------------------------------------------------------------- 1. the network


def prepare_network(
    items: pd.DataFrame,
    images,
    cache,
    *,
    weights: str = "imagenet",
    seed: int = 0,
    image_size: int = 224,
    precision: str = "int8",
    engine: str = "openvino",
    calibration_images: int = 128,
    validation_images: int = 32,
    min_cosine: float = 0.999,
    int8_overflow_fix: str = "auto",
    max_image_pixels: int | None = None,
) -> dict:
    """Build, check and store the network the actors run; returns its description.

    Same network as the local path: the calibration and validation images are drawn with
    ``seed`` from the items whose image file exists. The description (JSON-ready) holds
    ``tag`` (the precision part of the cache key), ``network`` and ``reference`` (stored
    OpenVINO models; ``reference`` only for int8), ``weights_id``, ``image_size``,
    ``dimension``, ``description`` and ``check`` (the int8 check's figures). Images over
    ``max_image_pixels`` are never decoded, here or by :func:`extract_parts`.
    """
    from amr_pipeline.vision import quantization, resnet
    from amr_pipeline.vision.images import ImageFolder, check_max_image_pixels
    from amr_pipeline.vision.network import weights_identity

    resnet.check_mode(precision, engine)
    if engine != "openvino":
        raise ConfigurationError(
            "features.executor: ray runs the stored OpenVINO network: set features.engine: "
            "openvino (precision int8 or float32), or features.executor: local for "
            f"engine {engine!r}."
        )
    if cache is None:
        raise ConfigurationError("features.executor: ray keeps its network in the feature cache: "
                                 "give the node a feature_cache dataset.")
    overflow_fix = quantization.resolve_overflow_fix(int8_overflow_fix)
    folder = images if isinstance(images, ImageFolder) else ImageFolder(images)
    weights_id = weights_identity(weights, seed)
    size = int(image_size)
    int8_path = cache.model_path(f"resnet50-int8-{weights_id}-{size}px-overflow-fix-{overflow_fix}")
    float32_path = cache.model_path(f"resnet50-float32-{weights_id}-{size}px")
    sample = {}
    if precision == "int8":
        names = [str(name) for name in items["image"] if not pd.isna(name)
                 and folder.stat(str(name)) is not None]
        stored = int8_path.is_file()
        count = int(validation_images) + (0 if stored else int(calibration_images))
        decoded = resnet._decode_sample(folder, names, count, size, seed,
                                        check_max_image_pixels(max_image_pixels))
        split = 0 if stored else min(int(calibration_images), len(decoded))
        sample = {"calibration": decoded[:split], "validation": decoded[split:],
                  "model_path": int8_path, "min_cosine": float(min_cosine),
                  "overflow_fix": overflow_fix}
    extractor = resnet.build_extractor(weights, seed, size, precision, engine, **sample)
    full = extractor.reference if extractor.reference is not None else extractor.forward
    if not float32_path.is_file():
        quantization.save_model(full.model, float32_path)
    int8 = extractor.tag.startswith("int8")
    dimension = full.model.outputs[0].get_partial_shape()[1].get_length()
    description = {
        "tag": extractor.tag,
        "network": str(int8_path if int8 else float32_path),
        "reference": str(float32_path) if int8 else None,
        "weights_id": weights_id,
        "image_size": size,
        "dimension": int(dimension),
        "description": extractor.description,
        "check": {**extractor.check, "int8": float(int8)},
    }
    logger.info("Feature network for Ray: %s (%s)", extractor.description, description["network"])
    return description


# --------------------------------------------------------------------------- 2. the parts


@dataclass(frozen=True)
class Part:
    """Items ``start <= item_id < stop``: their table ``positions`` and the part's ``name``."""

    name: str
    start: int
    stop: int
    positions: np.ndarray


def plan_parts(items: pd.DataFrame, images, network: dict, part_size: int,
               max_image_pixels: int | None = None
               ) -> tuple[list[Part], list[str | None], dict[int, str]]:
    """Parts of ``part_size`` item ids, named ``<tag>-<px>px/items-<start>-<stop>-<hash>``.

    The hash covers the network and each item's id, file name, size and modification time,
    and a ``max_image_pixels`` other than Pillow's default, so a part is reused only for the
    same images, network and pixel limit. Returns the parts, each item's file name (None when
    absent) and ``{position: reason}`` for items without an image file.
    """
    from amr_pipeline.vision.images import PILLOW_MAX_IMAGE_PIXELS, ImageFolder

    if int(part_size) < 1:
        raise ConfigurationError(f"features.ray.part_size must be a positive integer, got "
                                 f"{part_size!r}.")
    missing_columns = {"item_id", "image"} - set(items.columns)
    if missing_columns:
        raise ConfigurationError(f"items table lacks column(s) {sorted(missing_columns)}.")
    folder = images if isinstance(images, ImageFolder) else ImageFolder(images)
    item_ids = items["item_id"].to_numpy(np.int64)
    names = [None if pd.isna(name) else str(name) for name in items["image"]]
    problems: dict[int, str] = {}
    stamps = []
    for position, name in enumerate(names):
        status = folder.stat(name) if name else None
        if status is None:
            problems[position] = "missing file" if name else "no image file name"
            stamps.append(f"{item_ids[position]}\0{name}\0-")
        else:
            stamps.append(f"{item_ids[position]}\0{name}\0{status.st_size}\0{status.st_mtime_ns}")
    size = int(part_size)
    ranges = item_ids // size
    order = np.argsort(ranges, kind="stable")
    boundaries = np.flatnonzero(np.diff(ranges[order])) + 1
    described = {key: network[key] for key in ("tag", "weights_id", "image_size")}
    if max_image_pixels is not None and int(max_image_pixels) != PILLOW_MAX_IMAGE_PIXELS:
        described["max_image_pixels"] = int(max_image_pixels)
    header = json.dumps(described, sort_keys=True)
    folder_name = f"{network['tag']}-{network['image_size']}px"
    parts = []
    for positions in np.split(order, boundaries):
        if not len(positions):
            continue
        start = int(ranges[positions[0]]) * size
        digest = hashlib.sha1(header.encode())
        for position in positions:
            digest.update(b"\n" + stamps[position].encode("utf-8", "surrogateescape"))
        name = f"{folder_name}/items-{start:010d}-{start + size:010d}-{digest.hexdigest()[:12]}"
        parts.append(Part(name, start, start + size, positions))
    return parts, names, problems


def part_table(item_ids, features, problems, audit_cosine, dimension: int,
               seconds: float = 0.0) -> pa.Table:
    """One part as an Arrow table (:data:`PART_COLUMNS`); ``seconds`` (the time spent
    computing it, 0 when nothing was) goes to the schema metadata."""
    problems = np.asarray(problems, dtype=object)
    ok = problems == ""
    features = np.ascontiguousarray(features, np.float32).reshape(-1)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(features, pa.float32()), int(dimension))
    table = pa.table({
        "item_id": pa.array(np.asarray(item_ids, np.int64)),
        "features": vectors,
        "problem": pa.array([None if good else str(reason) for good, reason in zip(ok, problems)],
                            pa.string()),
        "audit_cosine": pa.array(np.asarray(audit_cosine, np.float64),
                                 mask=np.isnan(np.asarray(audit_cosine, np.float64))),
    })
    return table.replace_schema_metadata({"amr_pipeline.part": json.dumps({"seconds": seconds})})


def _decode_batch(batch: dict, image_size: int, max_image_pixels: int | None = None) -> dict:
    """Ray task: decode ``path`` into ``image``; an unreadable file (or one over
    ``max_image_pixels``, never decoded) gives a blank image and its reason in ``problem``
    ("" when decoded)."""
    from amr_pipeline.vision.images import TooManyPixelsError, load_image

    count = len(batch["path"])
    images = np.zeros((count, image_size, image_size, 3), np.uint8)
    problems = np.full(count, "", dtype=object)
    for row, path in enumerate(batch["path"]):
        try:
            images[row] = load_image(str(path), image_size, max_image_pixels)
        except TooManyPixelsError as error:
            problems[row] = error.reason
        except Exception as error:  # noqa: BLE001 - every decoding failure is reported
            problems[row] = f"unreadable ({type(error).__name__}: {error})"
    return {"position": batch["position"], "item_id": batch["item_id"], "audit": batch["audit"],
            "image": images, "problem": problems}


class _OpenVinoNetwork:
    """A stored OpenVINO model compiled like :class:`quantization.OpenVinoFeatures` (float
    layers in f32), on ``threads`` inference threads."""

    def __init__(self, path: str, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": int(threads)})
        self._request = compiled.create_infer_request()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.array(self._request.infer([np.ascontiguousarray(images, np.uint8)])[0],
                        np.float32)


class NetworkActor:
    """Ray actor: loads the stored network (and the float32 reference of an int8 run) once;
    each call turns a batch of decoded images into ``features`` and ``audit_cosine``."""

    def __init__(self, network: str, reference: str | None, threads: int, dimension: int):
        self.network = _OpenVinoNetwork(network, threads)
        self.reference = _OpenVinoNetwork(reference, threads) if reference else None
        self.dimension = int(dimension)

    def __call__(self, batch: dict) -> dict:
        from amr_pipeline.vision.quantization import cosine_per_item

        images, problems = batch["image"], batch["problem"]
        ok = problems == ""
        features = np.zeros((len(images), self.dimension), np.float32)
        audit_cosine = np.full(len(images), np.nan)
        if ok.any():
            features[ok] = self.network(images[ok])
            audited = ok & batch["audit"]
            if self.reference is not None and audited.any():
                audit_cosine[audited] = cosine_per_item(features[audited],
                                                        self.reference(images[audited]))
        return {"position": batch["position"], "item_id": batch["item_id"],
                "features": features, "problem": problems, "audit_cosine": audit_cosine}


def extract_parts(
    items: pd.DataFrame,
    images,
    network: dict,
    written: list[str] | set[str],
    *,
    batch_size: int = 8,
    part_size: int = 4096,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    decode_cpus: float = 0.5,
    audit_every: int = 32,
    max_image_pixels: int | None = None,
) -> tuple[dict[str, Callable[[], pa.Table]], pd.DataFrame]:
    """The parts not yet ``written``, computed on Ray, and the plan of every part.

    Returns ``{part name: lazy table}`` in item-id order (each call waits for its part, while
    Ray streams ahead; nothing runs until the first call) and the plan: ``part``, ``start``,
    ``stop``, ``items`` and ``computed`` (False for parts found in ``written``). An image is
    audited (int8 only) when its batch number, counted over the items as the local path
    counts them, is ``audit_every // 2`` modulo ``audit_every``. Images over
    ``max_image_pixels`` (None: Pillow's limit) are left out undecoded, with their reason.
    """
    from amr_pipeline.vision.images import ImageFolder, check_max_image_pixels

    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 1)):
        if int(value) < low:
            raise ConfigurationError(f"features.{'ray.' if name == 'workers' else ''}{name} must "
                                     f"be a positive integer, got {value!r}.")
    for name, value in (("cpus_per_worker", cpus_per_worker), ("decode_cpus", decode_cpus)):
        if not float(value) > 0:
            raise ConfigurationError(f"features.ray.{name} must be > 0, got {value!r}.")
    if int(audit_every) < 0:
        raise ConfigurationError(f"audit_every must be 0 (off) or more, got {audit_every!r}.")
    limit = check_max_image_pixels(max_image_pixels)
    folder = images if isinstance(images, ImageFolder) else ImageFolder(images)
    parts, names, problems = plan_parts(items, folder, network, part_size, limit)
    written = set(written)
    todo = [part for part in parts if part.name not in written]
    plan = pd.DataFrame({
        "part": [part.name for part in parts],
        "start": np.array([part.start for part in parts], np.int64),
        "stop": np.array([part.stop for part in parts], np.int64),
        "items": np.array([len(part.positions) for part in parts], np.int64),
        "computed": np.array([part.name not in written for part in parts], bool),
    })
    logger.info("Item image features on Ray: %d parts of %d item ids, %d already written, "
                "%d to compute (%s)", len(parts), part_size, len(parts) - len(todo), len(todo),
                network["description"])
    if not todo:
        return {}, plan
    item_ids = items["item_id"].to_numpy(np.int64)
    audit = network["reference"] is not None and int(audit_every) > 0
    stream = _PartStream(todo, item_ids, problems, int(network["dimension"]))
    frames = []
    counter = 0
    for part in todo:
        positions = np.array([p for p in part.positions if p not in problems], np.int64)
        numbers = (counter + np.arange(len(positions))) // int(batch_size)
        counter += len(positions)
        frames.append(pd.DataFrame({
            "position": positions,
            "item_id": item_ids[positions],
            "path": [str(folder.path(names[p])) for p in positions],
            "audit": (numbers % int(audit_every) == int(audit_every) // 2) if audit
            else np.zeros(len(positions), bool),
        }))
    frames = [frame for frame in frames if len(frame)]
    if frames:
        stream.batches = _ray_batches(frames, network, int(batch_size), int(workers),
                                      float(cpus_per_worker), float(decode_cpus), limit)
    return {part.name: stream.loader(index) for index, part in enumerate(todo)}, plan


def _ray_batches(frames, network, batch_size, workers, cpus_per_worker, decode_cpus,
                 max_image_pixels=None) -> Iterator[dict]:
    """Feature batches from Ray Data, in input order (decode tasks, then the actor pool)."""
    from amr_pipeline.distributed.executors import require_ray

    ray = require_ray("features.executor")
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    threads = max(1, int(np.ceil(cpus_per_worker)))
    dataset = (
        ray.data.from_pandas(frames)
        .map_batches(_decode_batch, batch_size=batch_size, batch_format="numpy",
                     fn_kwargs={"image_size": int(network["image_size"]),
                                "max_image_pixels": max_image_pixels}, num_cpus=decode_cpus)
        .map_batches(NetworkActor, batch_size=batch_size, batch_format="numpy",
                     compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                     fn_constructor_kwargs={"network": network["network"],
                                            "reference": network["reference"],
                                            "threads": threads,
                                            "dimension": int(network["dimension"])})
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


class _PartStream:
    """Turns the ordered stream of feature batches into one table per part, on demand."""

    def __init__(self, parts: list[Part], item_ids, problems: dict[int, str], dimension: int):
        self.parts, self.item_ids, self.problems = parts, item_ids, problems
        self.dimension = dimension
        self.batches: Iterator[dict] = iter(())
        self.part_of = {int(p): index for index, part in enumerate(parts) for p in part.positions}
        self.rows: dict[int, dict[int, tuple]] = {index: {} for index in range(len(parts))}
        self.expected = [sum(1 for p in part.positions if p not in problems) for part in parts]

    def loader(self, index: int) -> Callable[[], pa.Table]:
        return lambda: self.table(index)

    def table(self, index: int) -> pa.Table:
        started = time.perf_counter()
        while len(self.rows[index]) < self.expected[index]:
            batch = next(self.batches, None)
            if batch is None:
                raise RuntimeError(f"Ray returned too few features for part "
                                   f"{self.parts[index].name}")
            for row, position in enumerate(batch["position"]):
                self.rows[self.part_of[int(position)]][int(position)] = (
                    batch["features"][row], str(batch["problem"][row]),
                    float(batch["audit_cosine"][row]))
        rows = self.rows.pop(index)
        positions = self.parts[index].positions
        features = np.zeros((len(positions), self.dimension), np.float32)
        problems = np.full(len(positions), "", dtype=object)
        audit = np.full(len(positions), np.nan)
        for row, position in enumerate(positions):
            if int(position) in self.problems:
                problems[row] = self.problems[int(position)]
            else:
                features[row], problems[row], audit[row] = rows[int(position)]
        return part_table(self.item_ids[positions], features, problems, audit, self.dimension,
                          time.perf_counter() - started)


# --------------------------------------------------------------------------- 3. compaction


def compact_parts(
    parts: dict[str, Callable],
    plan: pd.DataFrame,
    network: dict,
    *,
    images_root: str = "",
    on_missing_image: str = "fail",
    min_cosine: float = 0.999,
) -> tuple[Iterator, dict[str, float]]:
    """The feature matrix from the parts of ``plan``, as ``ItemFeatures`` chunks in item-id
    order (one per part; left-out items skipped), and the run's figures for MLflow.

    ``parts`` maps part names to loaders of ``pyarrow.parquet.ParquetFile`` (a
    ``PartitionedDataset``); only the light columns are read before the chunks are asked for.
    Items without a readable image raise :class:`RawDataError` (``on_missing_image: fail``)
    or are left out with a warning (``drop``), before anything is written.
    """
    from amr_pipeline.item_features import ItemFeatures
    from amr_pipeline.readers.features import check_on_missing, format_problems

    check_on_missing(on_missing_image, "on_missing_image")
    absent = [name for name in plan["part"] if name not in parts]
    if absent:
        raise ConfigurationError(
            f"{len(absent)} feature parts of this run are not in item_feature_parts (first: "
            f"{absent[0]}): the extraction did not finish; run the features pipeline again "
            "to compute them."
        )
    problem_lines, audit, seconds = [], [], 0.0
    counts = {"rows": 0, "computed": 0, "from_cache": 0}
    for name, computed in zip(plan["part"], plan["computed"]):
        handle = parts[name]()
        light = handle.read(columns=["item_id", "problem", "audit_cosine"])
        problem = light.column("problem").to_numpy(zero_copy_only=False)
        bad = np.array([value is not None for value in problem], bool)
        for item_id, reason in zip(light.column("item_id").to_numpy()[bad], problem[bad]):
            problem_lines.append(f"item {item_id}: ({reason})")
        good = int((~bad).sum())
        counts["computed" if computed else "from_cache"] += good
        counts["rows"] += len(problem)
        cosines = light.column("audit_cosine").to_numpy(zero_copy_only=False)
        audit.append(cosines[~np.isnan(cosines)])
        if computed:
            metadata = (handle.schema_arrow.metadata or {}).get(b"amr_pipeline.part", b"{}")
            seconds += float(json.loads(metadata).get("seconds", 0.0))
    summary = {**network.get("check", {}), "items": float(counts["rows"]),
               "from_cache": float(counts["from_cache"]), "computed": float(counts["computed"]),
               "left_out": float(len(problem_lines))}
    if counts["computed"]:
        summary["images_per_second"] = counts["computed"] / max(seconds, 1e-9)
    audit = np.concatenate(audit) if audit else np.zeros(0)
    if len(audit):
        summary.update(int8_audited_images=float(len(audit)),
                       int8_audit_min_cosine=float(audit.min()),
                       int8_audit_mean_cosine=float(audit.mean()))
        below = int((audit < float(min_cosine)).sum())
        (logger.warning if below else logger.info)(
            "int8 audit: %d of %d audited items below min_cosine=%s (min %.6f, mean %.6f)",
            below, len(audit), min_cosine, audit.min(), audit.mean())
    if problem_lines:
        message = (f"{len(problem_lines)} of {counts['rows']} item images are missing or "
                   f"unreadable under {images_root}:\n{format_problems(problem_lines)}")
        if on_missing_image == "fail":
            pixels = any("too many pixels" in line for line in problem_lines)
            raise RawDataError(message + "\nFix: restore or replace these files"
                               + (", shrink the images over max_image_pixels (or raise that "
                                  "limit)" if pixels else "")
                               + ", or set on_missing_image: drop to leave these items out.")
        logger.warning("%s\nDropping these items.", message)

    def chunks():
        for name in plan["part"]:
            table = parts[name]().read(columns=["item_id", "features", "problem"])
            vectors = table.column("features").combine_chunks()
            keep = np.asarray(table.column("problem").is_null())
            dimension = vectors.type.list_size
            values = vectors.values.slice(vectors.offset * dimension, len(vectors) * dimension)
            matrix = values.to_numpy(zero_copy_only=False).reshape(len(vectors), dimension)
            ids = table.column("item_id").to_numpy()
            yield ItemFeatures(ids[keep].astype(np.int64), matrix[keep].astype(np.float32))

    return chunks(), summary


def check_network(network: dict) -> dict:
    """``network`` when its stored models exist; otherwise a ConfigurationError with the fix."""
    for key in ("network", "reference"):
        if network.get(key) and not Path(network[key]).with_suffix(".xml").is_file():
            raise ConfigurationError(
                f"the stored feature network {network[key]} is gone: run the features pipeline "
                "from prepare_feature_network again."
            )
    return network
