"""The demo generator's truth (``generator.npz``), a raw-layer dataset that may be absent.

``load()`` returns the file's arrays (:func:`amr_pipeline.demo.ceilings.load_generator`), or
None where there is no file: real-data environments (conf/pinterest, conf/amazon) have none,
and the ceilings pipeline then reports popularity only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError


class GeneratorDataset(AbstractDataset[None, "dict[str, np.ndarray] | None"]):
    """Read-only ``.npz`` of the demo generator; None where the file does not exist.

    Example catalog entry::

        demo_generator:
          type: amr_pipeline.datasets.generator.GeneratorDataset
          filepath: data/01_raw/${globals:dataset}/generator.npz
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, np.ndarray] | None:
        from amr_pipeline.demo.ceilings import load_generator

        return load_generator(self._filepath)

    def save(self, data: Any) -> None:
        raise DatasetError(
            "The generator file is raw data, written by `python -m amr_pipeline.demo.synthesize`."
        )

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
