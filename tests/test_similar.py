"""Similar items: every family's item vectors keep their contract, and a saved model's
`similar_items` ranks by their cosine (or dot product), the query and unlearned items left out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.sparse as sp

import aerec
from aerec import similar
from aerec.data.device_rows import DeviceRows
from aerec.errors import DataError, UnknownIdError
from aerec.models.autoencoder import AutoencoderConfig, member_params_fn
from aerec.models.popularity import PopularityConfig, fit_popularity
from aerec.models.registry import get_family
from aerec.models.scaling import Scaling
from aerec.models.svd import SVDConfig, fit_svd
from tests.small_models import train_small_model

SCALING = Scaling(0.0, 1.0)


def ratings(rows: int = 30, columns: int = 12, seed: int = 0) -> sp.csr_matrix:
    """A small random rating matrix (1..5, about half the cells)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 6, (rows, columns)) * (rng.random((rows, columns)) < 0.5)
    return sp.csr_matrix(values.astype(np.float32))


def test_most_similar_ranks_by_score_ties_by_index_and_leaves_out_query_and_excluded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [1, 1], [1, 0]], np.float32)
    excluded = np.array([False, False, False, False, False, True])
    order, scores = next(similar.most_similar(vectors, np.array([0]), 10, excluded))
    # items 1 and 3 tie with score 1 (the lower index first); 5 is excluded, 0 is the query
    np.testing.assert_array_equal(order, [[1, 3, 4, 2]])
    np.testing.assert_array_equal(scores, [[1, 1, 1, 0]])
    # blocks of queries give the same as one block
    queries = np.array([4, 0, 2, 1])
    whole = list(similar.most_similar(vectors, queries, 2, excluded))
    monkeypatch.setattr(similar, "BLOCK_CELLS", 7)  # one query per block
    blocks = list(similar.most_similar(vectors, queries, 2, excluded))
    assert len(whole) == 1 and len(blocks) == 4
    np.testing.assert_array_equal(whole[0][0], np.concatenate([o for o, _ in blocks]))


def test_unit_rows_keep_zero_rows_zero() -> None:
    unit = similar.unit_rows(np.array([[3, 4], [0, 0]], np.float32))
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0, 0]])


@pytest.mark.parametrize(("k", "metric", "message"), [
    (0, "cosine", "k=0 must be"), (True, "cosine", "k=True"), (2.5, "cosine", "k=2.5"),
    (3, "l2", "metric='l2'.*valid: cosine, dot")])
def test_bad_requests_are_refused(k: object, metric: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        similar.check_request(k, metric)


def test_autoencoder_vectors_are_output_columns_or_item_codes() -> None:
    matrix = ratings(rows=12, columns=12)  # square: the same parameters fit either orientation
    config = AutoencoderConfig(hidden=6, latent=5, ensemble=2)
    rng = np.random.default_rng(1)  # two members' parameters, in the tree training builds
    layers = {layer: {"kernel": rng.normal(size=(2, a, b)).astype(np.float32),
                      "bias": rng.normal(size=(2, b)).astype(np.float32)}
              for layer, (a, b) in enumerate([(12, 6), (6, 5), (5, 12)])}
    params = {"layers": layers}
    assert jax.tree.map(np.shape, params) == jax.tree.map(
        np.shape, jax.eval_shape(member_params_fn(config, 12, 0, 2)))
    family = get_family("autoencoder")
    # user rows: item j is the members' output columns j, one after the other
    vectors = family.item_vectors(dataclasses.replace(config, orientation="user"), params,
                                  DeviceRows(matrix, False), scaling=SCALING, chunk_rows=8)
    assert vectors.dtype == np.float32 and vectors.shape == (12, 2 * 5)
    kernel = layers[2]["kernel"]  # (members, latent, items)
    np.testing.assert_array_equal(vectors, np.concatenate([kernel[0].T, kernel[1].T], axis=1))
    # item rows: item j is the members' codes (last hidden layer) of its row of ratings
    items = matrix.T.tocsr()
    vectors = family.item_vectors(dataclasses.replace(config, orientation="item"), params,
                                  DeviceRows(items, False), scaling=SCALING, chunk_rows=8)
    assert vectors.shape == (12, 2 * 5) and np.isfinite(vectors).all()
    codes = []
    for m in range(2):
        hidden = np.tanh(items.toarray() @ layers[0]["kernel"][m] + layers[0]["bias"][m])
        codes.append(np.tanh(hidden @ layers[1]["kernel"][m] + layers[1]["bias"][m]))
    np.testing.assert_allclose(vectors, np.concatenate(codes, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("orientation", ["user", "item"])
def test_svd_vectors_are_item_factors(orientation: str) -> None:
    matrix = ratings()
    rows = matrix if orientation == "user" else matrix.T.tocsr()
    config = SVDConfig(rank=3, orientation=orientation)
    params = jax.tree.map(np.asarray, fit_svd(rows, 3, bias_reg=5.0, seed=0))
    vectors = get_family("svd").item_vectors(config, params, DeviceRows(rows, False),
                                             scaling=SCALING, chunk_rows=8)
    assert vectors.dtype == np.float32 and vectors.shape == (matrix.shape[1], 3)
    if orientation == "user":  # V: the basis over items
        expected = params["basis"]
    else:  # the items' residuals from the baseline, projected on the basis over users
        dense = rows.toarray()
        baseline = params["mean"] + params["row_bias"][:, None] + params["col_bias"][None, :]
        expected = np.where(dense > 0, dense - baseline, 0) @ params["basis"]
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-5)


def test_popularity_has_no_item_vectors() -> None:
    matrix = ratings()
    params = jax.device_put(fit_popularity(matrix, "user", 5.0))
    assert get_family("popularity").item_vectors(
        PopularityConfig(), params, DeviceRows(matrix, False), scaling=SCALING,
        chunk_rows=8) is None


def test_saved_model_similar_items_are_the_nearest_by_cosine(small_svd_model: Path) -> None:
    model = aerec.load(small_svd_model)
    table = model.similar_items([1, 2], k=3)
    assert list(table.columns) == ["item", "rank", "similar_item", "score", "title", "year",
                                   "genres"]
    assert list(table["item"]) == [1, 1, 1, 2, 2, 2]
    assert list(table["rank"]) == [1, 2, 3] * 2
    vectors = model.item_vectors
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for query in (1, 2):
        rows = table[table["item"] == query]
        index = int(model.items.index([query])[0])
        cosine = unit @ unit[index]
        cosine[index] = -np.inf  # never itself
        best = model.items.raw[np.argsort(-cosine, kind="stable")[:3]]
        assert list(rows["similar_item"]) == list(best)
        np.testing.assert_allclose(rows["score"], np.sort(cosine)[::-1][:3], rtol=1e-5)
    titles = dict(zip(model.items.raw, model.catalog["titles"], strict=True))
    assert [titles[item] for item in table["similar_item"]] == list(table["title"])
    assert titles[2] == "Misérables, Les (1995)"
    # one id alone; the dot product ranks by the raw vectors
    dot = model.similar_items(5, k=2, metric="dot")
    index = int(model.items.index([5])[0])
    scores = vectors @ vectors[index]
    scores[index] = -np.inf
    assert list(dot["similar_item"]) == list(model.items.raw[np.argsort(-scores)[:2]])


def test_unlearned_items_are_left_out_and_refused(small_svd_model: Path) -> None:
    model = aerec.load(small_svd_model)
    everything = model.similar_items(1, k=len(model.items))
    assert len(everything) == len(model.items) - 1 and 1 not in set(everything["similar_item"])
    best = everything["similar_item"].iloc[0]
    unlearned = np.zeros(len(model.items), bool)
    unlearned[model.items.index([best])] = True  # as if it had had no training ratings
    model.__dict__["unlearned_items"] = unlearned
    table = model.similar_items(1, k=len(model.items))
    assert len(table) == len(model.items) - 2 and best not in set(table["similar_item"])
    with pytest.raises(DataError, match=f"item {best} had no training ratings"):
        model.similar_items(best)


def test_errors_name_the_problem(small_svd_model: Path) -> None:
    model = aerec.load(small_svd_model)
    with pytest.raises(UnknownIdError, match="unknown item 99999"):
        model.similar_items([1, 99999])
    with pytest.raises(DataError, match="k=0 must be"):
        model.similar_items(1, k=0)
    assert model.similar_items([], k=3).empty


def test_a_model_without_item_vectors_says_so(tmp_path: Path) -> None:
    model = aerec.load(train_small_model(tmp_path, "model=popularity"))
    with pytest.raises(DataError, match="popularity model has no item representations"):
        model.similar_items(1)
