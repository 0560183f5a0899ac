"""The exceptions for problems a user can fix, apart from the bugs that are ours.

Anything the user gives tinymask can be wrong: a file, a command-line option, a config
value, a target passed to the model, a full disk under ``--out``. Such a problem raises a
``UserError`` (or one of its kinds below) whose message says what is wrong and what to do.
The ``tinymask`` command prints exactly these in one line (exit status 2); any other
exception is a bug in tinymask and keeps its traceback, so it cannot pass for a mistake of
the user's.

``UserError`` is a ``ValueError``: code that caught ``ValueError`` around tinymask's checks
keeps working.
"""

from __future__ import annotations

import contextlib
import errno
import os


class UserError(ValueError):
    """A problem in what the user gave tinymask; the message says what to fix."""


class ConfigError(UserError):
    """A config field with a value it cannot take, or a preset that does not exist."""


class UnknownFieldError(ConfigError, KeyError):
    """A config key that no config has. Also a ``KeyError`` (a missing key, as for dicts),
    printed as its message rather than as a quoted key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OutputError(UserError, OSError):
    """A file or folder that cannot be written: disk full, read-only, a file where a folder
    should be. Also an ``OSError``, as the failure it reports."""


# what to do about each kind of failed write, by errno
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up: free some space or write somewhere else",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.EEXIST: "a file stands where a folder is needed: choose another folder",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another folder",
    errno.EISDIR: "a folder stands where a file is needed: choose another file name",
}


@contextlib.contextmanager
def writing(path, what: str = "file"):
    """Turn an ``OSError`` raised while writing ``path`` into a one-line ``OutputError``
    naming the path, the cause and the remedy."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        advice = _WRITE_ADVICE.get(exc.errno, "check the path and the disk")
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write the {what} {os.fspath(path)!r}: {reason}; "
                          f"{advice}") from exc
