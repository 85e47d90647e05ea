"""An exclusive, crash-safe lock on a directory for the lifetime of a run.

`fcntl.flock` locks belong to the open file: the operating system releases them when the
process ends in any way (SIGKILL included), so a killed run never leaves a stale lock behind.
The lock file sits beside the directory, which may be renamed while it is held.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from aerec.errors import ConfigError


class DirectoryLock:
    """Hold `<directory>.lock`; a second holder is refused with who holds it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory.with_name(f"{directory.name}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "a+")  # noqa: SIM115 (held until release)
        except OSError as error:
            where = Path(error.filename or self.path.parent)
            if isinstance(error, (FileExistsError, NotADirectoryError)):
                # mkdir names the directory it could not make, not the file in its way
                blocking = next((path for path in (where, *where.parents)
                                 if path.exists() and not path.is_dir()), where)
                reason = f"{blocking} is a file, not a directory"
            else:
                reason = f"{where}: {error.strerror}"
            raise ConfigError(f"cannot keep checkpoints in {directory}: {reason}; point "
                              "checkpoint.dir or paths.checkpoint_dir at a writable "
                              "directory") from error
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            owner = self.handle.read().strip() or "another process"
            self.handle.close()
            raise ConfigError(
                f"another run ({owner}) is using {directory}; wait for it to end, or give this "
                "run its own checkpoint.dir=...") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self.handle.flush()

    def release(self) -> None:
        """Unlock (also done by the OS when the process ends)."""
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
