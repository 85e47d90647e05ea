"""An exclusive, crash-safe lock on a directory for the lifetime of a run.

The lock is the operating system's lock on `<directory>.lock` (flock on POSIX, LockFileEx on
Windows, through `filelock`). It belongs to the open file, so the OS releases it when the
process ends in any way (SIGKILL included) and a killed run never leaves a stale lock behind.
Soft locks (a file's mere existence) would stay behind after a kill: they are never used, and
a filesystem without OS locks is refused. Each DirectoryLock opens its own file, so two on one
directory exclude each other even within one process. The holder's "pid N on HOST" is written
to `<directory>.lock.owner` after locking (Windows forbids reading the locked file itself).
Both files sit beside the directory, which may be renamed while it is held.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from contextlib import suppress
from pathlib import Path

from filelock import Timeout, UnixFileLock, WindowsFileLock

from aerec.errors import ConfigError

# Named explicitly: `filelock.FileLock` becomes a soft lock where POSIX lacks flock.
OSFileLock = WindowsFileLock if sys.platform == "win32" else UnixFileLock


class DirectoryLock:
    """Hold `<directory>.lock`; a second holder is refused with who holds it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory.with_name(f"{directory.name}.lock")
        self.owner_path = directory.with_name(f"{directory.name}.lock.owner")
        # Not thread-local: the run may release from another thread than the one that locked.
        self._lock = OSFileLock(self.path, thread_local=False, blocking=False,
                                fallback_to_soft=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise ConfigError(
                f"another run ({self._owner()}) is using {directory}; wait for it to end, or "
                "give this run its own checkpoint.dir=...") from None
        except OSError as error:
            raise self._unusable(error) from error
        try:
            self.owner_path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        except OSError as error:
            self._lock.release()
            raise self._unusable(error) from error

    def _owner(self) -> str:
        try:
            return self.owner_path.read_text().strip() or "another process"
        except OSError:  # not yet written, or just removed by a release
            return "another process"

    def _unusable(self, error: OSError) -> ConfigError:
        where = Path(error.filename or self.path.parent)
        if isinstance(error, (FileExistsError, NotADirectoryError)):
            # mkdir names the directory it could not make, not the file in its way
            blocking = next((path for path in (where, *where.parents)
                             if path.exists() and not path.is_dir()), where)
            reason = f"{blocking} is a file, not a directory"
        elif error.errno in (errno.ENOSYS, errno.ENOLCK):
            reason = f"{where} is on a filesystem without file locks"
        else:
            reason = f"{where}: {error.strerror}"
        return ConfigError(f"cannot keep checkpoints in {self.directory}: {reason}; point "
                           "checkpoint.dir or paths.checkpoint_dir at a writable directory")

    def release(self) -> None:
        """Unlock (also done by the OS when the process ends)."""
        if self._lock.is_locked:
            with suppress(OSError):  # if left, the next holder overwrites it
                self.owner_path.unlink(missing_ok=True)
            self._lock.release()
