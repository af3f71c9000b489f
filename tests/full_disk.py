"""Full disks for tests: a small tmpfs mounted for one test (real ENOSPC from every writer, h5py and
TensorFlow included), a filler that takes all its free space, and `python -m tests.full_disk` that runs
train.py filling the disk just before a chosen backup save (the most likely fault of a long run)."""

import contextlib
import os
import subprocess
import sys


@contextlib.contextmanager
def tmpfs(path: str, size: str):
    """Mounts a tmpfs of `size` ('200k', '4m') at `path` (root only); raises OSError when this machine cannot."""
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', path],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f'cannot mount a tmpfs at {path}: {done.stderr.strip()}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', path], check=False)


def fill(folder: str, leave_bytes: int = 0) -> str:
    """Writes `folder/filler` until the disk is full (or only `leave_bytes` are left); returns its path."""
    path = os.path.join(folder, 'filler')
    with open(path, 'ab') as f:
        try:
            while True:
                st = os.statvfs(folder)
                left = st.f_bavail * st.f_frsize - leave_bytes
                if left <= 0:
                    break
                f.write(b'\0' * min(left, 1 << 20))
                f.flush()
        except OSError:
            pass
    return path


def main() -> None:
    """train.py with the disk of $FILL_DIR filled before backup save number $FILL_AT_SAVE; with
    $NO_PRECHECK the backup's free-space check is skipped, so h5py itself meets the full disk."""
    from absl import app  # pylint: disable=import-outside-toplevel

    from fastclassify.training import backup  # pylint: disable=import-outside-toplevel

    if 'FILL_AT_SAVE' not in os.environ or 'FILL_DIR' not in os.environ:
        print(f'{__doc__}\n\nUsage: FILL_DIR=DIR FILL_AT_SAVE=N [NO_PRECHECK=1] python -m tests.full_disk '
              '[train.py flags]; train.py\'s flags follow with --help.', file=sys.stderr)
        sys.exit(0 if '--help' in sys.argv[1:] else 2)
    at, calls = int(os.environ['FILL_AT_SAVE']), [0]
    original = backup.BackupCallback.save

    def save(self):
        calls[0] += 1
        if calls[0] == at:
            fill(os.environ['FILL_DIR'])
        return original(self)

    backup.BackupCallback.save = save
    if os.environ.get('NO_PRECHECK'):
        backup.free_bytes = lambda path: 1 << 50
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import train  # pylint: disable=import-outside-toplevel
    app.run(train.main)


if __name__ == '__main__':
    main()
