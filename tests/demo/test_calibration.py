"""The committed demo against model-free statistics of the real Pinterest pairs (issue 21).

Reference: the official AMR repository's Pinterest training pairs (6,531 distinct board-image
pairs, 3,226 boards: the paper's subset minus one test pin per board). The demo is measured
the same way: minus one random pin per board (so both are "all but the test pin"), then
leave-one-out on those pairs, 999 negatives drawn uniformly from the images a board never
pinned, ties counting against the test item, over three split seeds. Real values:

| statistic | real pairs | band held here (fixed before any model ran) |
|---|---|---|
| image pairs pinned together by 2+ boards | 160 | 0.5x-2x of 160 * pairs / 6,531 |
| test items reachable in two hops | 5.0% | 2.5%-10% |
| ItemKNN (cosine) HR@10 | 0.047 | >= POP HR@10 - 0.01 |
| POP HR@10 | 0.043 | 0.025-0.07 |
| boards with 5+ pins (before removing one) | 12% | >= 8% |
| cold share of test items | 47% | 40%-55% |

Everything is computed here with plain NumPy/SciPy from the BSON files (no project code), so
the calibration does not depend on the readers, the split or any model.
"""

from pathlib import Path

import bson
import numpy as np
import pytest
import scipy.sparse as sp

DEMO = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "demo"
SEEDS = (0, 1, 2)
REAL_PAIRS, REAL_COPINNED_PAIRS = 6531, 160
REAL_BOARD_SIZES = {2: 0.47, 3: 0.26, 4: 0.15, 5: 0.12}  # 5: five or more
N_NEGATIVES, CUTOFF = 999, 10


def _documents(name):
    with open(DEMO / name, "rb") as stream:
        return list(bson.decode_file_iter(stream))


@pytest.fixture(scope="module")
def pairs():
    """Distinct (board, image) index pairs of the committed dump."""
    image_of_pin = {doc["pin_id"]: doc["im_name"] for doc in _documents("subset_iccv_pin_im.bson")}
    boards, images = [], []
    for board, doc in enumerate(_documents("subset_iccv_board_pins.bson")):
        for pin in doc["pins"]:
            boards.append(board)
            images.append(image_of_pin[pin])
    _, image_index = np.unique(np.array(images), return_inverse=True)
    key = np.unique(np.array(boards, np.int64) * (image_index.max() + 1) + image_index)
    return key // (image_index.max() + 1), key % (image_index.max() + 1)


def _one_per_board(rng, board):
    """A mask picking one uniformly random row per board."""
    order = np.lexsort((rng.random(len(board)), board))
    first = np.r_[True, board[order][1:] != board[order][:-1]]
    mask = np.zeros(len(board), bool)
    mask[order[first]] = True
    return mask


def _hit_ratio(scores):
    """HR@10 of (users x candidates) scores, the test item in column 0, ties against it."""
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    return float((rank < CUTOFF).mean())


def measure(board, image, seed):
    """Every statistic of the protocol for one split seed."""
    rng = np.random.default_rng(seed)
    n_boards = int(board.max()) + 1
    kept = ~_one_per_board(rng, board)  # the demo minus one pin per board
    board, (items, image) = board[kept], np.unique(image[kept], return_inverse=True)
    n_items = len(items)
    pinned = sp.csr_matrix((np.ones(len(board)), (board, image)), shape=(n_boards, n_items))

    together = sp.triu(pinned.T @ pinned, k=1).tocsr()
    copinned = int((together.data >= 2).sum())

    test = _one_per_board(rng, board)
    test_board, test_image = board[test], image[test]
    train = sp.csr_matrix(
        (np.ones(int((~test).sum())), (board[~test], image[~test])), shape=(n_boards, n_items)
    )
    degree = np.asarray(train.sum(axis=0)).ravel()
    warm = degree[test_image] > 0
    paths = train @ (train.T @ train)  # board -> its pin -> a board with it -> image
    reachable = np.asarray(paths[test_board, test_image]).ravel() > 0

    negatives = np.empty((len(test_board), N_NEGATIVES), np.int64)
    for row, user in enumerate(test_board):
        never = np.setdiff1d(np.arange(n_items), pinned[user].indices, assume_unique=True)
        negatives[row] = rng.choice(never, N_NEGATIVES, replace=False)
    candidates = np.concatenate([test_image[:, None], negatives], axis=1)

    normalised = train @ sp.diags(1.0 / np.sqrt(np.maximum(degree, 1.0)))
    cosine = (normalised.T @ normalised).tocsr()  # image x image cosine on the binary matrix
    knn = np.empty(candidates.shape)
    for start in range(0, len(test_board), 512):
        rows = slice(start, start + 512)
        scores = (train[test_board[rows]] @ cosine).toarray()  # sum over the board's images
        knn[rows] = np.take_along_axis(scores, candidates[rows], axis=1)

    return {
        "pairs": len(board),
        "copinned_pairs": copinned,
        "reachable": float(reachable.mean()),
        "reachable_warm": float(reachable[warm].mean()),
        "itemknn_hr_at_10": _hit_ratio(knn),
        "pop_hr_at_10": _hit_ratio(degree[candidates]),
        "cold_share": float(1.0 - warm.mean()),
    }


@pytest.fixture(scope="module")
def measured(pairs):
    return {seed: measure(*pairs, seed) for seed in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
def test_copinned_image_pairs_match_real_boards(measured, seed):
    values = measured[seed]
    expected = REAL_COPINNED_PAIRS * values["pairs"] / REAL_PAIRS
    assert 0.5 * expected <= values["copinned_pairs"] <= 2.0 * expected, values


@pytest.mark.parametrize("seed", SEEDS)
def test_test_items_reachable_in_two_hops(measured, seed):
    assert 0.025 <= measured[seed]["reachable"] <= 0.10, measured[seed]


@pytest.mark.parametrize("seed", SEEDS)
def test_itemknn_is_no_worse_than_popularity(measured, seed):
    values = measured[seed]
    assert values["itemknn_hr_at_10"] >= values["pop_hr_at_10"] - 0.01, values


@pytest.mark.parametrize("seed", SEEDS)
def test_popularity_hit_ratio(measured, seed):
    assert 0.025 <= measured[seed]["pop_hr_at_10"] <= 0.07, measured[seed]


@pytest.mark.parametrize("seed", SEEDS)
def test_cold_share_of_test_items(measured, seed):
    assert 0.40 <= measured[seed]["cold_share"] <= 0.55, measured[seed]


def test_board_sizes_are_like_the_real_subset(pairs):
    """At least 8% of boards pin 5 or more images before the test pin is removed, and the
    2 / 3 / 4 / 5+ shares are each within 5 points of the real 47 / 26 / 15 / 12%."""
    sizes = np.bincount(pairs[0])
    assert (sizes >= 5).mean() >= 0.08
    for pins, share in REAL_BOARD_SIZES.items():
        observed = (sizes >= 5).mean() if pins == 5 else (sizes == pins).mean()
        assert observed == pytest.approx(share, abs=0.05), (pins, observed)


def test_scale_is_the_paper_pinterest_subset(pairs):
    """Table 1: 3,226 boards (±5%), 4,998 images (±10%), 3.05 pins per board (±10%)."""
    board, image = pairs
    n_boards = len(np.unique(board))
    assert n_boards == pytest.approx(3226, rel=0.05)
    assert len(np.unique(image)) == pytest.approx(4998, rel=0.10)
    assert len(board) / n_boards == pytest.approx(9844 / 3226, rel=0.10)
