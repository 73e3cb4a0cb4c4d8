import hashlib

from amr_pipeline.demo.synthesize import DemoSettings, synthesize
from amr_pipeline.readers.pinterest import read_pinterest


def _digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def test_same_seed_regenerates_the_same_bytes(tmp_path):
    settings = DemoSettings(n_boards=20, n_shared_images=30, image_size=16, seed=1)
    synthesize(tmp_path / "a", settings)
    synthesize(tmp_path / "b", settings)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_demo_reads_as_a_pinterest_dump_with_an_image_per_item(tiny_demo):
    interactions, items = read_pinterest(tiny_demo)
    assert interactions["user_raw_id"].nunique() == 500
    assert items["item_raw_id"].is_unique
    assert all((tiny_demo / "images" / name).is_file() for name in items["image"])
    assert items["category"].notna().all()


def test_committed_demo_matches_the_generator():
    """data/01_raw/demo is what `python -m amr_pipeline.demo.synthesize` writes."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "demo"
    interactions, items = read_pinterest(committed)
    assert len(items) > 3000 and interactions["user_raw_id"].nunique() == DemoSettings().n_boards
