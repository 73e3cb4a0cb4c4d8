"""Top-N against a brute-force NumPy ranking (ties by item id, seen items left out), and the
same arrays, bit for bit, for any number of worker threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys import recommend as recommend_module
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.recommend import SeenItems, placements, recommend, top_n


def brute_force(user_factors, vectors, seen_pairs, top_k):
    scores = user_factors @ vectors.T
    rows = []
    for user in range(len(user_factors)):
        seen = {item for u, item in seen_pairs if u == user}
        ranked = sorted((i for i in range(len(vectors)) if i not in seen),
                        key=lambda i: (-scores[user, i], i))[:top_k]
        rows += [(user, rank + 1, item, scores[user, item]) for rank, item in enumerate(ranked)]
    return rows


@pytest.mark.parametrize("block_scores", [1, 37, 1 << 24])
@pytest.mark.parametrize("top_k", [1, 3, 7, 40])
def test_top_n_equals_brute_force_with_ties(top_k, block_scores):
    rng = np.random.default_rng(0)
    # integer-valued factors: many exact ties, at the partition boundary too
    users = rng.integers(-2, 3, (23, 3)).astype(np.float32)
    vectors = rng.integers(-2, 3, (31, 3)).astype(np.float32)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 23, 90),
                                                      rng.integers(0, 31, 90))})
    seen = SeenItems([u for u, _ in pairs], [i for _, i in pairs])
    got = top_n(users, vectors, top_k, seen, block_scores=block_scores)
    expected = brute_force(users, vectors, pairs, top_k)
    assert list(zip(got.user.tolist(), got.rank.tolist(), got.item.tolist())) == [
        (u, r, i) for u, r, i, _ in expected]
    np.testing.assert_allclose(got.score, [s for *_, s in expected])


def test_recommend_projects_features_once_and_subsets_users():
    rng = np.random.default_rng(1)
    model = FactorModel(rng.normal(size=(9, 4)), rng.normal(size=(12, 4)),
                        rng.normal(size=(5, 4)), feature_scale=2.0)
    features = rng.normal(size=(12, 5)).astype(np.float32)
    vectors = model.item_vectors(features)
    got = recommend(model, 4, features, users=np.array([3, 7]))
    expected = [row for row in brute_force(model.user_factors, vectors, [], 4) if row[0] in (3, 7)]
    assert list(zip(got.user.tolist(), got.item.tolist())) == [(u, i) for u, _, i, _ in expected]


def test_users_with_few_unseen_items_get_fewer_rows():
    users = np.ones((2, 1), np.float32)
    vectors = np.arange(3, dtype=np.float32)[:, None]
    got = top_n(users, vectors, 5, SeenItems([0, 0], [0, 2]))
    assert got.user.tolist() == [0, 1, 1, 1]
    assert got.item.tolist() == [1, 2, 1, 0]


def test_placements_rank_new_items_against_the_top_n():
    top = np.array([[5.0, 3.0, 1.0], [2.0, 2.0, -np.inf]])
    new = np.array([[4.0, 0.0], [2.0, 9.0]])
    users, items, ranks = placements(new, top, 3)
    assert list(zip(users.tolist(), items.tolist(), ranks.tolist())) == [
        (0, 0, 2), (1, 0, 3), (1, 1, 1)]


@pytest.mark.parametrize("top_k", [1, 3, 20])
def test_grouped_thresholds_on_a_larger_catalogue_equal_brute_force(top_k):
    """Over 32 k items the threshold comes from group maxima (groups of several items)."""
    rng = np.random.default_rng(2)
    users = rng.integers(-1, 2, (30, 2)).astype(np.float32)
    vectors = rng.integers(-3, 4, (701, 2)).astype(np.float32)  # ties everywhere
    pairs = [(u, i) for u in range(30) for i in range(0, 701, 3) if u % 4 == 0]
    pairs += [(1, i) for i in range(695)]  # user 1: 6 unseen items
    pairs = sorted(set(pairs))
    seen = SeenItems([u for u, _ in pairs], [i for _, i in pairs])
    got = top_n(users, vectors, top_k, seen, block_scores=701 * 7)
    expected = brute_force(users, vectors, pairs, top_k)
    assert list(zip(got.user.tolist(), got.rank.tolist(), got.item.tolist())) == [
        (u, r, i) for u, r, i, _ in expected]


def lexsort_ranking(user_factors, vectors, seen_pairs, top_k, users):
    """``(user, rank, item, score)`` rows by NumPy: each user's unseen items by score
    (descending) then item id."""
    scores = user_factors[users] @ vectors.T
    seen = np.zeros((len(user_factors), len(vectors)), bool)
    for user, item in seen_pairs:
        seen[user, item] = True
    rows = []
    for user, row in zip(users, scores):
        unseen = np.flatnonzero(~seen[user])
        ranked = unseen[np.lexsort((unseen, -row[unseen]))][:top_k]
        rows += [(user, rank + 1, item, row[item]) for rank, item in enumerate(ranked)]
    return rows


@pytest.mark.parametrize("tile_scores, rows", [(64, 4), (512, 4), (1 << 22, 448)])
@pytest.mark.parametrize("block_scores", [1, 900, 1 << 24])
@pytest.mark.parametrize("top_k", [1, 3, 20])
def test_tiles_with_ties_across_tiles_equal_a_lexsort_ranking(monkeypatch, tile_scores, rows,
                                                              block_scores, top_k):
    """Small tiles: thresholds raised tile by tile (equal scores in later tiles), first
    thresholds from group maxima, seen items, users with fewer unseen items than top_k, a
    subset of users in any order, a last block of one user."""
    monkeypatch.setattr(recommend_module, "TILE_SCORES", tile_scores)
    monkeypatch.setattr(recommend_module, "ROWS", rows)
    rng = np.random.default_rng(4)
    users = rng.integers(-2, 3, (50, 2)).astype(np.float32)
    vectors = rng.integers(-2, 3, (300, 2)).astype(np.float32)  # scores -8 .. 8: ties
    vectors[150:, 0] = np.repeat(np.arange(-2, 3), 30)  # later items: rising first coordinate
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 50, 3000),
                                               rng.integers(0, 300, 3000))}
    pairs |= {(1, i) for i in range(300) if i % 60} | {(2, i) for i in range(300)}
    pairs = sorted(pairs)
    seen = SeenItems([u for u, _ in pairs], [i for _, i in pairs])
    subset = np.concatenate([[1, 2], rng.permutation(np.arange(3, 50))[:35]])
    got = top_n(users, vectors, top_k, seen, users=subset, block_scores=block_scores)
    expected = lexsort_ranking(users, vectors, pairs, top_k, subset)
    assert list(zip(got.user.tolist(), got.rank.tolist(), got.item.tolist())) == [
        (u, r, i) for u, r, i, _ in expected]
    np.testing.assert_array_equal(got.score, np.array([s for *_, s in expected], np.float32))


@pytest.mark.parametrize("top_k", [1, 20])
def test_tiles_of_random_scores_equal_a_lexsort_ranking(monkeypatch, top_k):
    monkeypatch.setattr(recommend_module, "TILE_SCORES", 1000)
    monkeypatch.setattr(recommend_module, "ROWS", 8)
    rng = np.random.default_rng(5)
    users = rng.normal(size=(41, 5)).astype(np.float32)
    vectors = rng.normal(size=(2000, 5)).astype(np.float32)
    vectors[1000:] *= np.linspace(0.5, 3, 1000, dtype=np.float32)[:, None]  # rising scores
    got = top_n(users, vectors, top_k)
    expected = lexsort_ranking(users, vectors, [], top_k, np.arange(41))
    assert list(zip(got.user.tolist(), got.rank.tolist(), got.item.tolist())) == [
        (u, r, i) for u, r, i, _ in expected]
    np.testing.assert_allclose(got.score, [s for *_, s in expected], rtol=1e-5)


def same_arrays(left, right):
    """The four arrays equal in dtype and value, scores bit for bit."""
    for name in ("user", "rank", "item", "score"):
        a, b = getattr(left, name), getattr(right, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=name)


@pytest.mark.parametrize("tile_scores, rows, block_scores", [
    (64, 4, 1 << 24), (512, 4, 900), (1000, 8, 1), (1 << 22, 448, 900)])
@pytest.mark.parametrize("top_k", [1, 3, 20])
def test_workers_give_the_same_arrays_as_one_thread(monkeypatch, tile_scores, rows,
                                                    block_scores, top_k):
    """Many blocks (small tiles and blocks, lone users): 2 and 3 workers give the arrays of 1,
    bit for bit, with seen items, a subset of users in any order, ties and random scores."""
    monkeypatch.setattr(recommend_module, "TILE_SCORES", tile_scores)
    monkeypatch.setattr(recommend_module, "ROWS", rows)
    rng = np.random.default_rng(6)
    for users, vectors in [
            (rng.integers(-2, 3, (61, 2)).astype(np.float32),  # ties
             rng.integers(-2, 3, (300, 2)).astype(np.float32)),
            (rng.standard_normal((61, 16), np.float32),  # rounding
             rng.standard_normal((300, 16), np.float32))]:
        pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 61, 3000),
                                                   rng.integers(0, 300, 3000))}
        pairs |= {(2, i) for i in range(300)}  # no unseen item
        seen = SeenItems([u for u, _ in pairs], [i for _, i in pairs])
        subset = np.concatenate([[2], rng.permutation(np.arange(61))[:45]])
        one = top_n(users, vectors, top_k, seen, users=subset, block_scores=block_scores,
                    workers=1)
        assert len(recommend_module._blocks(len(subset), max(1, min(
            len(subset), block_scores // 300)), 300)) > 3
        for workers in (2, 3):
            same_arrays(top_n(users, vectors, top_k, seen, users=subset,
                              block_scores=block_scores, workers=workers), one)
        same_arrays(top_n(users, vectors, top_k, seen, users=subset,
                          block_scores=block_scores), one)  # default: all cores


def test_a_last_block_of_one_user_keeps_its_blas_rounding():
    """A lone user's product is a matrix-vector one, rounded differently by OpenBLAS with
    fewer threads: with workers it still runs with BLAS as it is, so its whole row of scores
    is that of one worker."""
    rng = np.random.default_rng(7)
    users = rng.standard_normal((5, 64), np.float32)
    vectors = rng.standard_normal((100_003, 64), np.float32)  # 2 BLAS threads: odd tails
    one = top_n(users, vectors, 100_003, block_scores=200_006, workers=1)  # blocks 2, 2, 1
    same_arrays(top_n(users, vectors, 100_003, block_scores=200_006, workers=2), one)


def test_workers_run_blocks_in_threads_with_blas_at_one_thread(monkeypatch):
    """At most ``workers`` blocks at a time, each thread with its own buffers, BLAS at one
    thread while they run and as it was afterwards."""
    from threadpoolctl import threadpool_info

    monkeypatch.setattr(recommend_module, "TILE_SCORES", 512)
    monkeypatch.setattr(recommend_module, "ROWS", 4)
    candidates, lock, seen_buffers = recommend_module._candidates, threading.Lock(), {}
    state = {"running": 0, "most": 0, "blas": set()}

    def counted(factors, vectors_t, k, pairs, buffers):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
            name = threading.current_thread().name
            assert seen_buffers.setdefault(name, id(buffers)) == id(buffers)
            if len(state["blas"]) < 1:
                state["blas"] |= {pool["num_threads"] for pool in threadpool_info()
                                  if pool["user_api"] == "blas"}
        try:
            time.sleep(0.002)
            return candidates(factors, vectors_t, k, pairs, buffers)
        finally:
            with lock:
                state["running"] -= 1

    monkeypatch.setattr(recommend_module, "_candidates", counted)
    before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    rng = np.random.default_rng(8)
    users = rng.standard_normal((60, 8), np.float32)
    vectors = rng.standard_normal((200, 8), np.float32)
    top_n(users, vectors, 5, workers=2)
    assert state["most"] <= 2
    assert all(name.startswith("top-n") for name in seen_buffers), seen_buffers
    assert len(set(seen_buffers.values())) == len(seen_buffers)  # a buffer list per thread
    assert state["blas"] <= {1}
    assert [pool["num_threads"] for pool in threadpool_info()
            if pool["user_api"] == "blas"] == before


def test_one_worker_or_one_block_starts_no_threads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no thread pool expected")

    monkeypatch.setattr(recommend_module, "ThreadPoolExecutor", refuse)
    monkeypatch.setattr(recommend_module, "threadpool_limits", refuse)
    rng = np.random.default_rng(9)
    users = rng.standard_normal((30, 4), np.float32)
    vectors = rng.standard_normal((50, 4), np.float32)
    many = top_n(users, vectors, 3, block_scores=100, workers=1)  # 15 blocks
    same_arrays(top_n(users, vectors, 3, workers=4), many)  # one block
    same_arrays(top_n(users, vectors, 3, block_scores=1, workers=4), many)  # lone users


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ConfigurationError, match="workers"):
        top_n(np.ones((2, 1), np.float32), np.ones((3, 1), np.float32), 1, workers=workers)


def test_top_n_on_an_executor_gives_the_lists_of_one_call_and_checks_its_block_size():
    from amr_pipeline.distributed import LocalExecutor
    from amr_pipeline.recsys.recommend import top_n_on

    rng = np.random.default_rng(11)
    users = rng.standard_normal((90, 8)).astype(np.float32)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    seen = SeenItems(rng.integers(0, 90, 400), rng.integers(0, 500, 400))
    blocked = top_n_on(LocalExecutor(), users, items, 12, seen, users_per_task=7)
    whole = top_n(users, items, 12, seen, workers=1)
    np.testing.assert_array_equal(blocked.user, whole.user)
    np.testing.assert_array_equal(blocked.item, whole.item)
    np.testing.assert_allclose(blocked.score, whole.score, rtol=1e-6)
    with pytest.raises(ConfigurationError, match="users_per_task"):
        top_n_on(LocalExecutor(), users, items, 12, users_per_task=0)
