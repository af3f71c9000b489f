"""Full disks: free space where a file is about to go, recognising ENOSPC, and the numbers a message shows.

Shared by the preparation, the disk cache and the run folder (training/ imports it; it imports nothing).
"""

import errno
import os

# ENOSPC, and EDQUOT (a quota is a full disk to the user who hits it).
_FULL = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str) -> int:
    """Bytes this user may still write on the file system holding `path` (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def is_disk_full(error: BaseException) -> bool:
    """True for an error caused by a full disk (or quota), including the ones TensorFlow and h5py wrap."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in _FULL:
            return True
        text = str(e)
        # tf.errors.ResourceExhaustedError and h5py put the errno in the message only.
        if 'No space left on device' in text or 'Disk quota exceeded' in text:
            return True
    return False


def human_bytes(n: float) -> str:
    """'3.7 GB'-style text (decimal units, as in the docs), with three significant digits: two sizes that
    differ show different text down to 0.1%, so a refusal never reads 'needs 2.6 MB, has 2.6 MB free'."""
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if abs(n) < 1000 or unit == 'TB':
            if unit == 'B':
                return f'{n:.0f} B'
            return f'{n:.3g} {unit}'
        n /= 1000
    raise AssertionError('unreachable')


def exact_bytes(n: int) -> str:
    """'2,621,440 bytes (2.62 MB)': both, where a comparison of two close sizes must be readable."""
    return f'{n:,} bytes ({human_bytes(n)})'


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
