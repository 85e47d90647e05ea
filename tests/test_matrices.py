"""The matrices a run reads hold exactly the ratings of their roles: no test rating leaks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.matrices import build_matrices, data_dir_of


def cells(matrix) -> set[tuple[int, int, float]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True))


@pytest.mark.parametrize(("split", "orientation"), [("users", "user"), ("ratings", "item")])
def test_each_matrix_holds_exactly_its_roles_ratings(compose_config, split: str,
                                                     orientation: str) -> None:
    cfg = compose_config(f"split.kind={split}", f"model.orientation={orientation}")
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           data_dir_of(run.paths), progress=False)
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)

    def expected(*roles: int) -> set[tuple[int, int, float]]:
        chosen = np.isin(dataset.role, roles)
        users, items = dataset.user_index[chosen], dataset.item_index[chosen]
        rows, cols = (users, items) if orientation == "user" else (items, users)
        return set(zip(rows.tolist(), cols.tolist(), dataset.rating[chosen].tolist(),
                       strict=True))

    assert cells(matrices.train.matrix) == expected(TRAIN)
    assert cells(matrices.valid.matrix) == expected(VALID)
    assert cells(matrices.eval_input.matrix) == expected(TRAIN, FOLD_IN)
    assert cells(matrices.test.matrix) == expected(TEST)
    assert cells(matrices.everything.matrix) == expected(TRAIN, VALID, TEST, FOLD_IN)
    test_cells = {(row, col) for row, col, _ in cells(matrices.test.matrix)}
    for readable in (matrices.train, matrices.valid, matrices.eval_input):
        assert not test_cells & {(row, col) for row, col, _ in cells(readable.matrix)}
    if split == "users":  # held-out users are read whole: their fold-in ratings are inputs
        assert (dataset.role == FOLD_IN).any()
        assert cells(matrices.paper_input.matrix) == expected(TRAIN, FOLD_IN, TEST)


def test_the_cpu_resident_matrix_is_not_copied_on_the_way_to_the_device() -> None:
    # densify() writes into an aligned buffer so that the CPU device uses it as it is (an
    # unaligned one is copied: twice the dense matrix at the peak).
    import scipy.sparse as sp

    from aerec.data.device_rows import aligned_empty, densify

    for shape in ((7, 5), (604, 370)):
        buffer = aligned_empty(shape, np.float32)
        assert buffer.ctypes.data % 64 == 0 and buffer.shape == shape
        if jax.default_backend() == "cpu":
            assert jax.device_put(buffer, may_alias=True).unsafe_buffer_pointer() == (
                buffer.ctypes.data)
    matrix = sp.random(60, 37, density=0.1, format="csr", dtype=np.float32, random_state=0)
    np.testing.assert_array_equal(np.asarray(densify(matrix)), matrix.toarray())


def test_resident_matrices_are_stored_in_the_configured_dtype(compose_config) -> None:
    auto = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16  # whole stars
    for requested, stored in (("bfloat16", jnp.bfloat16), ("auto", auto)):
        cfg = compose_config("train.data_path=resident", f"train.dense_dtype={requested}")
        run = run_config(cfg)
        dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths),
                               progress=False)
        matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
        assert matrices.train.dense.dtype == stored and matrices.valid.dense.dtype == stored
        np.testing.assert_array_equal(np.asarray(matrices.train.dense, np.float32),
                                      matrices.train.matrix.toarray())
