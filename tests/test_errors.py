"""The user-error types and the conversion of failed writes into one-line messages."""

import errno
import os

import pytest

from tinymask.errors import OutputError, UserError, writing


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"),
    (errno.ENOTDIR, "a file stands where a folder is needed"),
])
def test_a_failed_write_says_where_why_and_what_to_do(code, advice):
    with pytest.raises(OutputError) as caught, writing("/runs/a/log.jsonl", "training log"):
        raise OSError(code, os.strerror(code))
    message = str(caught.value)
    assert message.startswith("cannot write the training log '/runs/a/log.jsonl': ")
    assert os.strerror(code) in message and advice in message and "\n" not in message
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert caught.value.__cause__.errno == code


def test_other_errors_pass_through_unchanged():
    with pytest.raises(KeyError), writing("x"):
        raise KeyError("a bug, not a write")
