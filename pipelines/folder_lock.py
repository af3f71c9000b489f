"""One writer per folder: an OS lock (`flock`) on a file inside it, which the kernel drops when the
holder dies, so a SIGKILL never leaves a stale lock behind (unlike a pid file or an `O_EXCL` marker).

`flock` is per host: on a network file system shared by several machines it may not exclude a writer
on another host (BUILD.md, Reliability).
"""

import fcntl
import os
import socket
import time
from typing import Callable


class FolderBusyError(Exception):
    """Another live process holds the lock; `holder` says which ('pid 123 on host h')."""

    def __init__(self, path: str, holder: str):
        super().__init__(f'{path} is locked by {holder}')
        self.path = path
        self.holder = holder


# Locks this process holds, by lock-file path: a second acquire from the same process (an in-process
# rerun of the same folder) is the same writer, not a competitor.
_HELD: dict[str, 'FolderLock'] = {}


class FolderLock:
    """An exclusive lock on `path` (a file, created if absent), held until `release()` or process exit."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ('pid N on host H'); 'another process' if unreadable."""
        try:
            with open(self.path) as f:
                text = f.read().strip()
        except OSError:
            text = ''
        return text or 'another process'

    def try_acquire(self) -> None:
        """Takes the lock now or raises FolderBusyError naming the holder.

        Raises:
            FolderBusyError: a live process holds it.
            OSError: the lock file cannot be created (e.g. a read-only folder).
        """
        mine = _HELD.get(self.path)
        if mine is not None and mine is not self and mine._still_the_file():
            self._fd = os.dup(mine._fd)  # same open file description: same lock, same owner
            return
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(self.path, self.holder()) from None
        # Written after locking, so whoever reads it while we hold the lock reads us.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'pid {os.getpid()} on host {socket.gethostname()}\n'.encode(), 0)
        self._fd = fd
        _HELD[self.path] = self

    def acquire(self, *, on_wait: Callable[[str], None] | None = None, poll_s: float = 0.5,
                timeout_s: float | None = None) -> None:
        """Takes the lock, waiting while another process holds it; `on_wait(holder)` is called once.

        Raises:
            FolderBusyError: still held after `timeout_s` seconds (None = wait as long as it takes).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        told = False
        while True:
            try:
                self.try_acquire()
                return
            except FolderBusyError as e:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                if not told and on_wait is not None:
                    on_wait(e.holder)
                    told = True
            time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is None:
            return
        if _HELD.get(self.path) is self:
            del _HELD[self.path]
        os.close(self._fd)  # closing the last descriptor of the open file drops the flock
        self._fd = None

    def _still_the_file(self) -> bool:
        """False once the lock file was deleted or replaced (e.g. its folder was removed)."""
        try:
            return self._fd is not None and os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except OSError:
            return False


def file_on_the_way(path: str) -> str | None:
    """The first existing component of `path` that is not a folder (a folder cannot be made there)."""
    parts = os.path.abspath(os.path.expanduser(path)).split(os.sep)
    for i in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:i])
        if not os.path.exists(prefix):
            return None
        if not os.path.isdir(prefix):
            return prefix
    return None


_READERS = '.readers'
# Reader registrations this process holds, by folder: one per folder for the process's life.
_MY_READS: dict[str, FolderLock] = {}


def register_reader(folder: str) -> None:
    """Marks this process as a reader of the dataset in `folder` until it exits: a file in
    `folder/.readers/` that it holds locked (a killed reader's lock goes with it). A preparer that would
    delete the dataset asks `live_readers` first. Best effort: a folder that cannot be written (a read-only
    share) is read without registering."""
    folder = os.path.abspath(folder)
    if folder in _MY_READS:
        return
    try:
        os.makedirs(os.path.join(folder, _READERS), exist_ok=True)
        lock = FolderLock(os.path.join(folder, _READERS, f'pid-{os.getpid()}-{socket.gethostname()}'))
        lock.try_acquire()
    except (OSError, FolderBusyError):
        return
    _MY_READS[folder] = lock


def live_readers(folder: str) -> list[str]:
    """Who else reads the dataset in `folder` now ('pid N on host H'); stale registrations are removed.

    Another host's reader is seen only where `flock` reaches across hosts (not on every NFS).
    """
    readers_dir = os.path.join(os.path.abspath(folder), _READERS)
    try:
        names = sorted(os.listdir(readers_dir))
    except OSError:
        return []
    mine = _MY_READS.get(os.path.abspath(folder))
    live = []
    for name in names:
        path = os.path.join(readers_dir, name)
        if mine is not None and os.path.abspath(path) == mine.path:
            continue
        probe = FolderLock(path)
        try:
            probe.try_acquire()
        except FolderBusyError as e:
            live.append(e.holder)
            continue
        except OSError:
            continue
        try:
            os.remove(path)  # its reader is gone (the kernel dropped its lock)
        except OSError:
            pass
        probe.release()
    return live
