"""Exceptions whose message is meant for the user: the CLI prints them without a traceback."""


class AerecError(Exception):
    """Base class: a problem the user can fix, explained in the message."""


class ConfigError(AerecError):
    """A configuration value is invalid; the message names the key."""


class DataError(AerecError):
    """A data file is missing or malformed; the message names the file (and line)."""


class DownloadError(AerecError):
    """A download failed or did not verify; nothing partial is left in the cache."""


class CheckpointError(AerecError):
    """A checkpoint could not be written; the previous one stays intact."""


class TrainingDivergedError(AerecError):
    """The training loss became NaN or infinite; the last good checkpoint stays intact."""


class TrainingInterrupted(Exception):  # noqa: N818 (a stop asked for, not a fault)
    """Training stopped on request (Ctrl-C, SIGTERM) after `epoch`, its checkpoint written if
    `saved`; `signum`: the signal that asked (0: another process's). The command line's exit
    status is 128 + the signal's number, as for a process the signal ended."""

    def __init__(self, epoch: int, saved: bool, signum: int = 0):
        super().__init__(f"stopped after epoch {epoch}")
        self.epoch, self.saved, self.signum = epoch, saved, signum


class UnknownIdError(AerecError, KeyError):
    """A user or item id the model or dataset does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
