"""Holds back TensorFlow's native start-up log lines so a bad flag gets exactly one line.

TF 2.21 writes its C++ start-up lines (CPU features, CUDA probing) to file descriptor 2 at import,
past `TF_CPP_MIN_LOG_LEVEL`. They are captured while the config is resolved and replayed only if
something unexpected fails, so nothing useful is lost.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def held_back(replay_on=(BaseException,), drop_on=()):
    """Captures fd 2; replays it on an exception in `replay_on` unless it is one of `drop_on`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except drop_on:
            raise
        except replay_on:
            _restore(saved)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            _restore(saved)
            os.close(saved)


def _restore(saved: int) -> None:
    sys.stderr.flush()
    try:
        os.dup2(saved, 2)
    except OSError:
        pass
