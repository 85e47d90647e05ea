"""Which kind of device the computation runs on, for the choices that depend on it."""

from __future__ import annotations

import jax


def on_accelerator() -> bool:
    """Whether the default device is an accelerator (GPU or TPU), not the host CPU, whose
    device memory is the host's own."""
    return jax.default_backend() != "cpu"
