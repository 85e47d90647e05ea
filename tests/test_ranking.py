"""Top-k metrics against hand-computed examples, chunk invariance, no leakage of rated items."""

from __future__ import annotations

import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import aerec
from aerec.cli import run_task
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.device_rows import DeviceRows
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.scaling import Scaling
from aerec.rankers import (
    ColumnRanker,
    LearnedFirst,
    _history_scores,
    build_ranker,
    padded_history,
)
from aerec.topk_metrics import evaluate_ranking, ranking_targets, top_hits, user_metrics
from tests.conftest import FAST_DATA


class FixedRanker:
    """Scores given as a matrix: row u holds user u's scores."""

    scores_are_ratings = True

    def __init__(self, scores: np.ndarray):
        self.scores = np.asarray(scores, np.float32)
        self.n_items = self.scores.shape[1]

    def user_scores(self, users: np.ndarray) -> jnp.ndarray:
        return jnp.asarray(self.scores[np.maximum(users, 0)])


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), np.float32)
    for user, items in enumerate(rows):
        dense[user, items] = 1.0
    return sp.csr_matrix(dense)


# User 0: item 0 excluded, items 2 and 5 relevant -> ranking 1, 2, 3, ...: a hit at rank 2.
# User 1: all scores tied -> lower index first: item 0, its only relevant item, at rank 1.
# User 2: nothing relevant -> not evaluated.
SCORES = [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.5] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
EXCLUDE = csr([[0], [], [1]], 6)
RELEVANT = csr([[2, 5], [0], []], 6)
NDCG_USER0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))


@pytest.mark.parametrize("chunk_users", [1, 2, 1024])
def test_metrics_match_hand_computed_values(chunk_users: int) -> None:
    figures = evaluate_ranking(FixedRanker(SCORES), EXCLUDE, RELEVANT, [2, 3], chunk_users)
    assert figures["ranking_users"] == 2
    expected = {
        "precision@2": (1 / 2 + 1 / 2) / 2, "recall@2": (1 / 2 + 1) / 2,
        "ndcg@2": (NDCG_USER0 + 1) / 2, "hit_rate@2": 1.0, "map@2": (1 / 2 / 2 + 1) / 2,
        "mrr@2": (1 / 2 + 1) / 2, "capped_recall@2": (1 / 2 + 1) / 2,
        "coverage@2": 3 / 6,  # {1, 2} and {0, 1}
        "precision@3": (1 / 3 + 1 / 3) / 2, "recall@3": (1 / 2 + 1) / 2,
        "ndcg@3": (NDCG_USER0 + 1) / 2, "hit_rate@3": 1.0, "map@3": (1 / 2 / 2 + 1) / 2,
        "coverage@3": 4 / 6,  # {1, 2, 3} and {0, 1, 2}
    }
    for key, value in expected.items():
        assert figures[key] == pytest.approx(value, rel=1e-6), key


def test_more_relevant_items_than_k_cap_the_ideal_at_k() -> None:
    # Three relevant items, two slots, both hits: a perfect top-2 list. NDCG's ideal list and
    # MAP's denominator hold min(k, |R|) = 2 items, not 3; recall still counts all three.
    hits = np.array([[1.0, 1.0, 0.0, 0.0]])
    precision, recall, ndcg, hit_rate, average_precision, mrr, capped = user_metrics(
        hits, np.array([3]), (2,))[0, 0]
    assert (precision, ndcg, hit_rate, average_precision, mrr, capped) == (1, 1, 1, 1, 1, 1)
    assert recall == pytest.approx(2 / 3)
    # one hit in second place: DCG 1/log2(3) over the ideal 1 + 1/log2(3); AP (1/2) / 2
    _, _, ndcg, _, average_precision, mrr, capped = user_metrics(
        np.array([[0.0, 1.0, 1.0, 0.0]]), np.array([3]), (2,))[0, 0]
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert average_precision == pytest.approx(1 / 4)
    assert mrr == 1 / 2  # the first hit in second place
    assert capped == 1 / 2  # one hit of min(k=2, |R|=3)
    # no hit in the top k: 0, whatever comes after
    assert user_metrics(np.array([[0.0, 0.0, 1.0]]), np.array([1]), (2,))[0, 0, 5] == 0.0


def test_excluded_items_never_ranked_and_short_lists_padded() -> None:
    scores = jnp.asarray([[5.0, 4.0, 3.0, 2.0]])
    exclude = jnp.asarray([[True, False, True, True]])
    relevant = jnp.asarray([[False, True, False, False]])
    top, hits = top_hits(scores, exclude, relevant, 6)
    np.testing.assert_array_equal(np.asarray(top), [[1, -1, -1, -1, -1, -1]])
    figures = user_metrics(np.asarray(hits), np.array([1]), (1, 3, 6))
    # One candidate, and it is relevant: precision counts the empty slots as misses.
    np.testing.assert_allclose(figures[0, :, 0], [1.0, 1 / 3, 1 / 6])
    np.testing.assert_allclose(figures[0, :, 2], [1.0, 1.0, 1.0])


def test_unlearned_items_are_ranked_last_not_dropped() -> None:
    # Item 1 scored highest by the (untrained) network but learned nothing of: it comes
    # after items 0, 2 and 3, and a list long enough to reach it counts it (a hit, covered).
    ranker = LearnedFirst(FixedRanker([[3.0, 9.0, 2.0, 1.0]]),
                          np.array([False, True, False, False]))
    relevant = csr([[1]], 4)
    figures = evaluate_ranking(ranker, csr([[]], 4), relevant, [3, 4])
    assert figures["hit_rate@3"] == 0.0 and figures["coverage@3"] == 3 / 4
    assert figures["hit_rate@4"] == 1.0 and figures["recall@4"] == 1.0
    assert figures["coverage@4"] == 1.0
    assert figures["ndcg@4"] == pytest.approx(1 / math.log2(5))


def test_no_users_with_relevant_items_gives_nan() -> None:
    figures = evaluate_ranking(FixedRanker(SCORES), EXCLUDE, csr([[], [], []], 6), [2])
    assert figures["ranking_users"] == 0 and math.isnan(figures["ndcg@2"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small trained models (synthetic data), one per (model, orientation)."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONFIGS

    runs = {}
    root = tmp_path_factory.mktemp("ranking")
    for model, orientation, variant in [
            ("autoencoder", "item", []), ("autoencoder", "user", []), ("svd", "item", []),
            ("svd", "user", []), ("svd", "user", ["model.center=false"]),
            ("popularity", "user", [])]:
        extra = {"autoencoder": ["model.hidden=16", "model.latent=8", "model.ensemble=2"],
                 "svd": ["model.rank=4"], "popularity": []}[model]
        name = f"{model}-{orientation}" + ("-plain" if variant else "")
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                *FAST_DATA, f"model={model}", f"model.orientation={orientation}", *extra,
                *variant, f"checkpoint.dir={root / 'checkpoints' / name}"])
        run_task(cfg, root / name)
        runs[name] = root / name
    return runs


@pytest.mark.parametrize("name", ["autoencoder-item", "autoencoder-user", "svd-item",
                                  "svd-user"])
def test_ranking_is_the_same_for_any_chunk_size(trained, compose_config, name: str) -> None:
    model = aerec.load(trained[name] / "model")
    cfg = compose_config()  # the same data and split as the trained models
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths))
    exclude, relevant = ranking_targets(dataset, 4.0)
    figures = [evaluate_ranking(model.ranker, exclude, relevant, [5, 10, 100], chunk)
               for chunk in (1, 7, 1024)]
    assert figures[0]["ranking_users"] > 10
    assert figures[0] == figures[1] == figures[2]


def test_training_items_are_never_ranked(trained, compose_config) -> None:
    cfg = compose_config("model.orientation=item")
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths))
    exclude, relevant = ranking_targets(dataset, 1.0)
    model = aerec.load(trained["autoencoder-item"] / "model")
    users = np.arange(dataset.n_users, dtype=np.int32)
    top, _ = top_hits(model.ranker.user_scores(users), jnp.asarray(exclude.toarray() > 0),
                      jnp.asarray(relevant.toarray() > 0), 20)
    top = np.asarray(top)
    for user in users:
        listed = set(top[user][top[user] >= 0].tolist())
        assert not listed & set(exclude[user].indices.tolist())
    # The saved model excludes every rated item, test ones included, from recommend().
    for user_id in model.users.raw[:30]:
        user = int(model.users.index([user_id])[0])
        rated = set(model.items.raw[model.seen[user].indices].tolist())
        recommended = model.recommend(int(user_id), k=25)
        assert len(recommended) == min(25, len(model.items) - len(rated))
        assert not set(recommended["item"]) & rated


def test_results_report_ranking_figures(trained) -> None:
    import json

    for name, run in trained.items():
        results = json.loads((run / "results.json").read_text())
        for key in ("precision@10", "recall@100", "ndcg@20", "hit_rate@50", "map@10",
                    "coverage@100"):
            assert 0.0 <= results[key] <= 1.0, (name, key)


def random_columns(seed: int, members: int, items: int, width: int, users: int
                   ) -> tuple[jnp.ndarray, ...]:
    """Random item codes, output kernel, biases and item offsets of an item-rows model."""
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in (
        (members, items, width), (members, width, users), (members, users), (members, items)))


def test_fold_in_recovers_a_column_exactly() -> None:
    """The item-orientation new-user path: ridge fit of an output column on fixed codes."""
    codes, kernel, bias, offset = random_columns(0, members=1, items=40, width=3, users=6)
    scaling = Scaling(shift=3.0, scale=2.0)
    ranker = ColumnRanker(codes, kernel, bias, offset, "linear", scaling, fold_in_prior=1e-7)
    truth = np.asarray(ranker.user_scores(np.array([4])))[0]
    items = np.arange(0, 40, 3)
    folded = ranker.history_scores(items, truth[items])
    np.testing.assert_allclose(folded, truth, atol=1e-3)
    # Without history the column is the average user's.
    average = ranker.history_scores(np.array([], np.int32), np.array([], np.float32))
    expected = scaling.decode(codes[0] @ kernel[0].mean(axis=1) + bias[0].mean() + offset[0])
    np.testing.assert_allclose(average, np.asarray(expected), atol=1e-4)


def test_padded_histories_fold_in_as_unpadded_ones() -> None:
    """Histories are padded to a power of two (one compilation per size class, not per
    length); the weight-0 padding must not change the fitted column."""
    codes, kernel, bias, offset = random_columns(1, members=2, items=50, width=4, users=7)
    rng = np.random.default_rng(1)
    scaling = Scaling(shift=3.0, scale=2.0)
    for length, size in ((0, 16), (5, 16), (16, 16), (17, 32)):
        items = rng.choice(50, length, replace=False).astype(np.int32)
        targets = rng.normal(size=length).astype(np.float32)
        padded = padded_history(items, targets)
        assert [part.size for part in padded] == [size] * 3
        np.testing.assert_allclose(
            _history_scores(codes, kernel, bias, offset, *padded, 3.0, scaling=scaling),
            _history_scores(codes, kernel, bias, offset, items, targets,
                            np.ones(length, np.float32), 3.0, scaling=scaling),
            rtol=1e-5, atol=1e-5)
    ranker = ColumnRanker(codes, kernel, bias, offset, "linear", scaling)
    for length in (3, 5, 9, 16):  # one size class: one compilation
        ranker.history_scores(np.arange(length), np.full(length, 4.0, np.float32))
    assert ranker._history._cache_size() == 1


@pytest.mark.parametrize("name", ["autoencoder-user", "svd-user", "svd-user-plain"])
def test_user_rows_fold_in_like_known_users(trained, name: str) -> None:
    """User orientation: a known user's own ratings given as a history score like the user
    (an uncentred SVD, `-plain`, estimates no bias for the history: it has none)."""
    model = aerec.load(trained[name] / "model")
    for user in (0, 5, 17):
        row = model.inputs[user]
        as_history = model.ranker.history_scores(row.indices, row.data)
        known = np.asarray(model.ranker.user_scores(np.array([user], np.int32)))[0]
        np.testing.assert_allclose(as_history, known, rtol=1e-5, atol=1e-5)


def test_build_ranker_rejects_unknown_models() -> None:
    from omegaconf import OmegaConf

    with pytest.raises(ValueError, match="valid: autoencoder, svd, popularity"):
        build_ranker(OmegaConf.create({"name": "knn", "orientation": "user"}), {},
                     DeviceRows(sp.csr_matrix((2, 2), dtype=np.float32), False),
                     scaling=Scaling(0.0, 1.0))


def test_exclusion_covers_every_non_test_rating(compose_config) -> None:
    """Excluded from ranking: the model's inputs (train, fold-in) and the validation ratings."""
    cfg = compose_config()
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths))
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
    exclude, _ = ranking_targets(dataset, 4.0)
    assert exclude.nnz == matrices.eval_input.matrix.nnz + matrices.valid.matrix.nnz
