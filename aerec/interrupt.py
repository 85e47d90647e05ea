"""Ctrl-C on the command line: during the epochs, stop once the epoch ends with its
checkpoint written; otherwise, or at a second Ctrl-C, exit at once.

The training loop asks `stop_requested()` after each epoch; what answers it is chosen by the
caller, as a context manager around the loop: `never` (the library's default: a Ctrl-C is a
plain KeyboardInterrupt) or `after_the_epoch` (the command line's). Exiting at once is
`exit_on_ctrl_c`'s hard exit, not a KeyboardInterrupt: one raised while orbax writes a
checkpoint in its threads leaves them waiting for each other for minutes before the process
can end. A hard exit is as safe as SIGKILL, which the checkpoints are built and tested for.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

# A context manager around the epoch loop, yielding `stop_requested() -> bool`.
Interruptible = Callable[[], AbstractContextManager[Callable[[], bool]]]


def can_take_ctrl_c() -> bool:
    """Whether a handler may be set: only in the main thread, and not where SIGINT is
    ignored (a background job of a script inherits that, and must stay deaf to Ctrl-C)."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)


@contextmanager
def sigint_handled_by(handler: Callable[[int, Any], None]) -> Iterator[Any]:
    """SIGINT handled by `handler` while active; yields the handler it replaced, which is
    restored at the end."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield previous
    finally:  # None: a handler not set from Python (an embedding program's); the default
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


@contextmanager
def never() -> Iterator[Callable[[], bool]]:
    """No stop is ever requested (signals are left as they are)."""
    yield lambda: False


@contextmanager
def after_the_epoch() -> Iterator[Callable[[], bool]]:
    """While the loop runs, the first Ctrl-C (SIGINT) requests a stop after the epoch; the
    second is handled as it would be outside the loop (KeyboardInterrupt, or the handler of
    `exit_on_ctrl_c`). Outside the main thread, where Python cannot take signals, it is
    `never`."""
    if not can_take_ctrl_c():
        yield lambda: False
        return
    requested = threading.Event()

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if requested.is_set():  # the second: as the handler outside the loop would do
            if callable(previous):
                previous(signum, frame)
            raise KeyboardInterrupt
        requested.set()
        print("\nCtrl-C: stopping once this epoch ends, its checkpoint written if the run "
              "keeps them (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    with sigint_handled_by(on_ctrl_c) as previous:
        yield requested.is_set


@contextmanager
def exit_on_ctrl_c(note: Callable[[], str]) -> Iterator[None]:
    """While active, Ctrl-C prints `interrupted: <note()>` and ends the process at once
    (exit status 130), whatever it is doing. Outside the main thread, nothing changes."""
    if not can_take_ctrl_c():
        yield
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        try:
            said = note()
        except Exception as error:  # the exit must happen whatever the note
            said = f"({type(error).__name__} while saying what was kept: {error})"
        print(f"\ninterrupted: {said}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)

    with sigint_handled_by(on_ctrl_c):
        yield
