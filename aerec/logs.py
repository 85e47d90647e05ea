"""The command line's console: aerec's own records, one line each; library records and every
traceback go to the run's log file (`run.log`) only.

A recovery event (an unreadable checkpoint skipped, a checkpoint set aside) is one line that
the user reads; what orbax, TensorStore or absl log about it, with their tracebacks, is for a
look afterwards. A record that aerec logs with `extra=FILE_ONLY` (its full detail) goes to the
file alone.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

# Loggers whose records the console shows: aerec's own and Hydra's (a sweep's job list).
CONSOLE_LOGGERS = ("aerec", "hydra", "__main__")
FILE_ONLY = {"file_only": True}


def brief(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def for_the_console(record: logging.LogRecord) -> bool:
    """Whether the console shows `record`: aerec's and Hydra's, unless marked FILE_ONLY."""
    return (record.name.split(".")[0] in CONSOLE_LOGGERS
            and not getattr(record, "file_only", False))


class WithoutTraceback(logging.Formatter):
    """Formats a record as `inner` does, leaving out its traceback and stack."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The record's line(s) without the exception or stack that the file handler shows."""
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def log_unraisable(unraisable: Any) -> None:
    """`sys.unraisablehook` for the command line: an exception nothing could raise (a
    TensorStore callback finding orbax's event loop closed after a failed save) goes to the
    log file, not as a traceback on the console."""
    logging.getLogger("aerec.unraisable").info(
        "ignored %s in %r", unraisable.exc_type.__name__, unraisable.object, extra=FILE_ONLY,
        exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback))


def route_library_logs() -> None:
    """Console handlers of the root logger (Hydra's job logging) show only aerec's records,
    without tracebacks; the log file keeps everything, also exceptions that nothing could
    raise. Idempotent (once per sweep job)."""
    sys.unraisablehook = log_unraisable
    # A log file that cannot be written (a full disk) must not print a traceback per record.
    logging.raiseExceptions = False
    root = logging.getLogger()
    if not root.handlers:  # job logging disabled: not Python's last resort, which prints all
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(
                handler, logging.StreamHandler):
            continue
        handler.addFilter(for_the_console)  # added once: logging keeps a filter once
        if not isinstance(handler.formatter, WithoutTraceback):
            handler.setFormatter(WithoutTraceback(handler.formatter or logging.Formatter()))
