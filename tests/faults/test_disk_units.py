"""Storage faults said in words, never with the path of the file."""

from __future__ import annotations

import errno

import pytest

from core.persist.disk import disk_problem, not_saved_note

PATH = "/srv/data/threads/0f0e/001-7-overlay.jpg"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (errno.ENOSPC, "the disk is full"),  # full disk
        (errno.EDQUOT, "the disk is full"),  # quota
        (errno.EACCES, "the storage is not writable"),  # permissions
        (errno.EROFS, "the storage is not writable"),  # read-only mount
        (errno.EPERM, "the storage is not writable"),  # chattr +i
        (errno.ENOTDIR, "the storage is not writable"),  # a file where a folder was
        (errno.EIO, "the storage failed (EIO)"),  # a failing disk
    ],
)
def test_disk_problem_names_the_fault_without_the_path(number, expected):
    exc = OSError(number, "boom", PATH)
    assert disk_problem(exc) == expected
    note = not_saved_note([disk_problem(exc), disk_problem(exc)])
    assert PATH not in note and "/srv" not in note
    assert note.count(expected) == 1  # said once per turn
