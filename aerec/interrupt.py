"""Ctrl-C and SIGTERM on the command line: during the epochs, stop once the epoch ends with its
checkpoint written; otherwise, or at a second signal, exit at once.

The training loop asks `stop_requested()` after each epoch; what answers it is chosen by the
caller, as a context manager around the loop: `never` (the library's default: a Ctrl-C is a
plain KeyboardInterrupt) or `after_the_epoch` (the command line's). Exiting at once is
`exit_now`'s hard exit, not a KeyboardInterrupt: one raised while orbax writes a
checkpoint in its threads leaves them waiting for each other for minutes before the process
can end. A hard exit is as safe as SIGKILL, which the checkpoints are built and tested for.

SIGTERM (what SLURM, Kubernetes and cloud preemption send before SIGKILL) is Ctrl-C with a
bound: if the epoch has not ended `grace_seconds` after the signal, the process exits from the
last checkpoint written. The state of the last completed epoch cannot be saved then: the epoch
in progress was given it (donated) and is changing it. SIGTERM is watched from a thread of its
own (`signal_watched`), as the bound must hold while the main thread waits for a computation.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, NoReturn

# A context manager around the epoch loop, yielding `stop_requested() -> int`: the number of
# the signal that asked for a stop, 0 while none has.
Interruptible = Callable[[], AbstractContextManager[Callable[[], int]]]


def can_take(signum: int) -> bool:
    """Whether a handler may be set for `signum`: only in the main thread, and not where the
    signal is ignored (a background job of a script inherits an ignored SIGINT, and must stay
    deaf to Ctrl-C)."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signum) is not signal.SIG_IGN)


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
def signal_watched(signum: int, action: Callable[[], None]) -> Iterator[None]:
    """While active, each delivery of `signum` calls `action` at once, in a thread of its own.

    A Python signal handler runs only when the main thread next runs Python code, which a
    computation may hold off for a whole epoch (`np.asarray` of a jax array waits without
    looking). Python's own C handler writes the signal's number to the wakeup descriptor at
    delivery; a thread reads it there. (The process has one wakeup descriptor: another one
    set before is restored at the end, and gets no signals meanwhile.)
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        while received := os.read(read_end, 64):  # empty once the write end is closed
            for number in received:  # every signal with a Python handler is written here
                if number == signum:
                    action()

    watcher = threading.Thread(target=watch, name=f"aerec-{signal.Signals(signum).name}",
                               daemon=True)
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous = signal.signal(signum, lambda signum, frame: None)  # `action` acts, not this
    try:
        yield
    finally:
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_end)
        watcher.join()
        os.close(read_end)


def exit_now(prefix: str, note: Callable[[], str], status: int) -> NoReturn:
    """Print `<prefix>: <note()>` on stderr and end the process at once with `status` (a
    hard exit: see the module's docstring), whatever the note does."""
    try:
        said = note()
    except Exception as error:  # the exit must happen whatever the note
        said = f"({type(error).__name__} while saying what was kept: {error})"
    print(f"\n{prefix}: {said}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


@contextmanager
def never() -> Iterator[Callable[[], int]]:
    """No stop is ever requested (signals are left as they are)."""
    yield lambda: 0


class _StopAfterTheEpoch:
    """What `after_the_epoch`'s signal handlers and the loop share."""

    def __init__(self, grace_seconds: float, kept: Callable[[], str]):
        self.grace_seconds = grace_seconds
        self.kept = kept
        self.requested: list[int] = []  # the signals that asked for a stop, in order
        self.lock = threading.Lock()  # the loop's answer and the grace's expiry: one or the other
        self.answered = threading.Event()
        self.graces: list[threading.Timer] = []
        self.previous: Any = None  # the SIGINT handler outside the loop

    def on_ctrl_c(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second: as the handler outside the loop would do
            if callable(self.previous):
                self.previous(signum, frame)
            raise KeyboardInterrupt
        self.requested.append(signum)
        print("\nCtrl-C: stopping once this epoch ends, its checkpoint written if the run "
              "keeps them (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def overdue(self) -> None:
        with self.lock:
            if not self.answered.is_set():
                exit_now("interrupted (SIGTERM)", lambda: (
                    "the epoch in progress did not end within train.stop_grace_seconds="
                    f"{self.grace_seconds:g}; {self.kept()}"), 128 + signal.SIGTERM)

    def on_sigterm(self) -> None:  # in the watcher's thread
        with self.lock:
            if self.requested:  # a second signal, or one after the loop answered a Ctrl-C
                exit_now("interrupted (SIGTERM)", self.kept, 128 + signal.SIGTERM)
            self.requested.append(signal.SIGTERM)
            bounded = math.isfinite(self.grace_seconds)
            print("\nSIGTERM: stopping once this epoch ends, its checkpoint written if the run "
                  "keeps them" + (f" (if it ends within {self.grace_seconds:g} s)"
                                  if bounded else ""),
                  file=sys.stderr, flush=True)
            if bounded:
                self.graces.append(threading.Timer(self.grace_seconds, self.overdue))
                self.graces[-1].daemon = True
                self.graces[-1].start()

    def stop_requested(self) -> int:
        with self.lock:
            if self.requested:
                self.answer()
            return self.requested[0] if self.requested else 0

    def answer(self) -> None:
        self.answered.set()
        for grace in self.graces:
            grace.cancel()


@contextmanager
def after_the_epoch(grace_seconds: float = math.inf, kept: Callable[[], str] = lambda: ""
                    ) -> Iterator[Callable[[], int]]:
    """While the loop runs, the first Ctrl-C (SIGINT) or SIGTERM requests a stop after the
    epoch; a second one is handled as it would be outside the loop (KeyboardInterrupt, or the
    handlers of `exit_on_ctrl_c` and `exit_on_sigterm`).

    After a SIGTERM, an epoch that has not ended within `grace_seconds` is given up: the
    process exits (status 143) saying `kept()`, what was written before. The stop counts as
    taken once `stop_requested()` has answered it: the grace bounds the epoch, not the save
    that follows. Outside the main thread, where Python cannot take signals, it is `never`;
    a signal that is ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    stop = _StopAfterTheEpoch(grace_seconds, kept)
    with ExitStack() as handled:
        if can_take(signal.SIGINT):
            stop.previous = handled.enter_context(sigint_handled_by(stop.on_ctrl_c))
        if can_take(signal.SIGTERM):
            handled.enter_context(signal_watched(signal.SIGTERM, stop.on_sigterm))
        try:
            yield stop.stop_requested
        finally:  # a grace still running has nothing more to bound (an error ended the loop)
            with stop.lock:
                stop.answer()


@contextmanager
def exit_on_ctrl_c(note: Callable[[], str]) -> Iterator[None]:
    """While active, Ctrl-C prints `interrupted: <note()>` and ends the process at once
    (exit status 130), whatever it is doing. Outside the main thread, nothing changes."""
    if not can_take(signal.SIGINT):
        yield
        return
    with sigint_handled_by(lambda signum, frame: exit_now("interrupted", note, 130)):
        yield


@contextmanager
def exit_on_sigterm(note: Callable[[], str]) -> Iterator[None]:
    """While active, SIGTERM prints `interrupted (SIGTERM): <note()>` and ends the process at
    once (exit status 143), whatever it is doing. Outside the main thread, nothing changes."""
    if not can_take(signal.SIGTERM):
        yield
        return
    with signal_watched(signal.SIGTERM,
                        lambda: exit_now("interrupted (SIGTERM)", note, 128 + signal.SIGTERM)):
        yield
