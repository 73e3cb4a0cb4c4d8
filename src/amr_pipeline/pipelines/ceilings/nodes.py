"""Thin node over :mod:`amr_pipeline.demo.ceilings`."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from amr_pipeline.demo.ceilings import ceilings, format_ceilings

logger = logging.getLogger(__name__)


def compute_ceilings(
    test_candidates: pd.DataFrame,
    final_train: pd.DataFrame,
    final_items: pd.DataFrame,
    users: pd.DataFrame,
    generator: dict[str, np.ndarray] | None,
) -> pd.DataFrame:
    """HR@10 and NDCG@10 of the test candidates ranked by the generator's true logit
    (``oracle``), its collaborative and visual terms, and by training popularity, on all, warm
    and cold test items. Without a generator file (real data) only the popularity rows."""
    table = ceilings(test_candidates, final_train, final_items, users, generator)
    if generator is None:
        logger.info("No demo generator file: the ceilings table holds popularity only.")
    logger.info("Ceilings (test candidates, ties count against the test item):\n%s",
                format_ceilings(table))
    return table
