"""Files the harness creates are private: stores, journals and locks hold study data and
sometimes secrets, so they are made readable by their owner only."""

from __future__ import annotations

import contextlib
import os

PRIVATE_UMASK = 0o077  # files 0600, folders 0700


def private_umask() -> int:
    """Make everything this process creates from now on private; the old umask."""
    return os.umask(PRIVATE_UMASK)


def create_private(path: str | os.PathLike) -> None:
    """Create `path` empty with mode 0600 if it does not exist (an existing file is kept
    as it is: its owner chose its mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
