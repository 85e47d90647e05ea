"""Ctrl-C during training: stop once the current epoch ends, with its checkpoint written.

The training loop asks `stop_requested()` after each epoch; what answers it is chosen by the
caller, as a context manager around the loop: `never` (the library's default: a Ctrl-C is a
plain KeyboardInterrupt) or `after_the_epoch` (the command line's: the first Ctrl-C asks for
a stop, a second one interrupts at once).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

# A context manager around the epoch loop, yielding `stop_requested() -> bool`.
Interruptible = Callable[[], AbstractContextManager[Callable[[], bool]]]


@contextmanager
def never() -> Iterator[Callable[[], bool]]:
    """No stop is ever requested (signals are left as they are)."""
    yield lambda: False


@contextmanager
def after_the_epoch() -> Iterator[Callable[[], bool]]:
    """While the loop runs, the first Ctrl-C (SIGINT) requests a stop after the epoch; the
    second raises KeyboardInterrupt there and then. Outside the main thread, where Python
    cannot take signals, it is `never`."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("\nCtrl-C: stopping once this epoch ends, its checkpoint written if the run "
              "keeps them (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield requested.is_set
    finally:  # None: a handler not set from Python (an embedding program's); the default
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
