"""One run per folder: a training command holds an exclusive lock on its output folder while it writes.

The lock is ``fcntl.flock`` on ``OUT/.gauda.lock``: the kernel releases it when the process ends, however
it ends (a killed run leaves no stale lock to clean up). A second command pointed at the same folder
stops at once with an error naming the folder and the process that holds it. Whoever takes the lock
removes the temporary files a killed writer left there (``gauda.io.atomic_path``'s ``.NAME.*.tmp``, and
the ``.NAME.*.tmp/`` folders of a dataset being written into a subfolder, ``gauda.data.folder``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gauda.config import ConfigError

LOCK_FILE = ".gauda.lock"
logger = logging.getLogger(__name__)


class FolderLockedError(ConfigError):
    """Another process is writing to the folder."""


@contextmanager
def folder_lock(folder: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if missing) for the body; ``enabled=False`` does nothing
    (the other ranks of a ``torchrun`` job, whose rank 0 holds it)."""
    if not enabled:
        yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK_FILE).open("a+")
    except OSError as error:  # permissions, a read-only file system, a full disk
        raise ConfigError(
            f"--out {folder}: not writable ({error.strerror}); expected a folder this user may write to"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FolderLockedError(
                f"--out {folder}: another gauda run (process {holder}) is writing there; "
                "wait for it to finish or choose another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        for stale in folder.glob(".*.tmp"):  # files of atomic_path, folders of a dataset being written
            if stale.is_dir() and not stale.is_symlink():
                if is_locked(stale):  # a dataset still being written holds its own lock
                    continue
                logger.info("removing %s, left by a writer that was killed", stale)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                logger.info("removing %s, left by a run that was killed while writing", stale)
                stale.unlink(missing_ok=True)
        yield
    finally:
        handle.close()  # closing releases the lock


def is_locked(folder: str | Path) -> bool:
    """Whether a live process holds the lock of ``folder`` (False when it has no lock file)."""
    try:
        handle = (Path(folder) / LOCK_FILE).open("r")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
