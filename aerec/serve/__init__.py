"""The HTTP service of a saved model: `python -m aerec.serve MODEL --port 8000`.

Needs the optional extra `aerec[serve]` (FastAPI and uvicorn). Importing this package imports
neither, nor JAX: the command checks its port before it loads anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aerec.saved_model import TrainedModel


def create_app(model: TrainedModel, *, warm: bool = True) -> FastAPI:
    """The service's application for a loaded model (`aerec.serve.app.create_app`)."""
    from aerec.serve.app import create_app as create

    return create(model, warm=warm)
