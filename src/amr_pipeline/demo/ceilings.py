"""Ceilings of the embedded demo: the test candidates ranked by what generated the pins.

The demo generator (:mod:`amr_pipeline.demo.synthesize`) drew every pin with probability
proportional to ``exp(logit_ui)``, the sum of a collaborative, a visual and a popularity term,
and wrote what it needs to recompute them to ``generator.npz``. Ranking the pipeline's test
candidates by

- ``oracle``: the full true logit (no recommender can expect to do better on average);
- ``collaborative``: its collaborative term alone (community pool and latent factors);
- ``visual``: its visual term alone (what a perfect image-only model could reach);
- ``popularity``: training popularity (the final training pairs, as POP counts them),

with ties counting against the test item (:func:`amr_pipeline.recsys.metrics.rank_candidates`),
gives the HR@10 and NDCG@10 ceilings of all, warm and cold test items (cold: never in the final
training pairs). Every term is a dot product of a board row and an image row, so each ranker
is a :class:`~amr_pipeline.recsys.models.FactorModel` and is ranked like any model. On real
data there is no generator: only the popularity rows are computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amr_pipeline.demo.synthesize import visual_attributes
from amr_pipeline.errors import RawDataError
from amr_pipeline.recsys.metrics import grouped_candidates, rank_candidates, summarise
from amr_pipeline.recsys.models import FactorModel, popularity_model

RANKERS = ("oracle", "collaborative", "visual", "popularity")
SUBSETS = ("all", "warm", "cold")
COLUMNS = ["ranker", "subset", "hr_at_10", "ndcg_at_10"]


def load_generator(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of a ``generator.npz``, or None where there is no such file (real data)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def term_models(
    generator: dict[str, np.ndarray], users: pd.DataFrame, items: pd.DataFrame
) -> dict[str, FactorModel]:
    """``oracle``, ``collaborative`` and ``visual`` as factor models over the pipeline's ids:
    row ``user_id`` of ``users`` (``user_raw_id`` = the dump's board id) and row ``item_id`` of
    ``items`` (``item_raw_id`` = the image name) score the generator's true terms.

    collaborative = [β e(c_u), w θ_u] · [e(c_i), φ_i] (e: one-hot community, none for fresh
    images); visual = [v_u, o_u] · [a_i, 1]; the oracle adds the popularity column [1] · [b_i].
    """
    users = users.sort_values("user_id")
    items = items.sort_values("item_id")
    board = _generator_rows(generator["board_id"], users["user_raw_id"], "board", "users")
    image = _generator_rows(generator["image_name"], items["item_raw_id"], "image", "items")
    board_community = generator["board_community"][board]
    image_community = generator["image_community"][image]
    n_communities = int(max(generator["board_community"].max(),
                            generator["image_community"].max())) + 1

    user_membership = np.zeros((len(board), n_communities))
    user_membership[np.arange(len(board)), board_community] = float(generator["community_weight"])
    item_membership = np.zeros((len(image), n_communities))
    pooled = image_community >= 0
    item_membership[np.flatnonzero(pooled), image_community[pooled]] = 1.0
    user_collaborative = np.hstack([
        user_membership, float(generator["factor_weight"]) * generator["board_factors"][board]
    ])
    item_collaborative = np.hstack([item_membership, generator["image_factors"][image]])

    attributes = visual_attributes(*(generator[f"image_{name}"][image] for name in (
        "colour", "accent", "shape", "pattern", "size", "brightness")))
    user_visual = np.hstack([generator["board_visual"][board],
                             generator["board_visual_offset"][board, None]])
    item_visual = np.hstack([attributes, np.ones((len(image), 1))])

    user_popularity = np.ones((len(board), 1))
    item_popularity = generator["image_popularity"][image, None]
    return {
        "oracle": FactorModel(np.hstack([user_collaborative, user_visual, user_popularity]),
                              np.hstack([item_collaborative, item_visual, item_popularity])),
        "collaborative": FactorModel(user_collaborative, item_collaborative),
        "visual": FactorModel(user_visual, item_visual),
    }


def ceilings(
    test_candidates: pd.DataFrame,
    final_train: pd.DataFrame,
    final_items: pd.DataFrame,
    users: pd.DataFrame,
    generator: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """HR@10 and NDCG@10 of each ranker (:data:`RANKERS`; only ``popularity`` without a
    generator) on all, warm and cold test items: columns :data:`COLUMNS`, one row per
    ranker and subset. ``final_items`` (``item_id``, ``item_raw_id``, ``cold``) and
    ``users`` (``user_id``, ``user_raw_id``) cover every id of the candidates."""
    items = final_items.sort_values("item_id")
    n_items, n_users = len(items), len(users)
    cold = np.zeros(n_items, bool)
    cold[items["item_id"].to_numpy(np.int64)] = items["cold"].to_numpy(bool)
    models = {"popularity": popularity_model(final_train, n_users, n_items)}
    if generator is not None:
        models.update(term_models(generator, users, items))
    grouped = grouped_candidates(test_candidates)
    rows = []
    for ranker in RANKERS:
        if ranker not in models:
            continue
        ranks = rank_candidates(models[ranker], None, grouped, cold_items=cold)
        for subset in SUBSETS:
            chosen = ranks if subset == "all" else ranks[ranks["cold"] == (subset == "cold")]
            values = summarise(chosen, cutoffs=(10,))
            rows.append({"ranker": ranker, "subset": subset,
                         "hr_at_10": values["hr_at_10"], "ndcg_at_10": values["ndcg_at_10"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def format_ceilings(table: pd.DataFrame) -> str:
    """A Markdown table: one row per ranker, HR@10 / NDCG@10 per subset."""
    lines = ["| ranker | " + " | ".join(f"{subset} HR@10 / NDCG@10" for subset in SUBSETS) + " |",
             "|---" * (len(SUBSETS) + 1) + "|"]
    for ranker, rows in table.groupby("ranker", sort=False):
        cells = []
        for subset in SUBSETS:
            row = rows[rows["subset"] == subset]
            cells.append("" if row.empty else
                         f"{row['hr_at_10'].iloc[0]:.3f} / {row['ndcg_at_10'].iloc[0]:.3f}")
        lines.append(f"| {ranker} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _generator_rows(generator_ids: np.ndarray, raw_ids: pd.Series, kind: str,
                    table: str) -> np.ndarray:
    rows = pd.Index(generator_ids.astype(str)).get_indexer(raw_ids.astype(str))
    if (rows < 0).any():
        missing = raw_ids[rows < 0]
        raise RawDataError(
            f"{len(missing)} of {len(raw_ids)} {table} have no {kind} in the demo generator file "
            f"(first: {missing.iloc[0]!r}): generator.npz does not belong to this dump; "
            "regenerate both with `python -m amr_pipeline.demo.synthesize`."
        )
    return rows
