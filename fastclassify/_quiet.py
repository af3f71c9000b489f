"""The library's console stays the user's: TensorFlow's start-up lines and TFDS's chatter are held back."""

import contextlib
import logging
import os
import sys

from fastclassify.training import native_stderr

# TFDS says these at WARNING for every folder dataset; they describe our own builder, not a problem.
_TFDS_CHATTER = ('Using custom data configuration',)


def import_tensorflow() -> None:
    """Imports TensorFlow and Keras once and starts TensorFlow's devices, replaying what that prints to
    fd 2 (CPU features, CUDA probing) only if it fails. Native INFO lines stay off unless the user's
    TF_CPP_MIN_LOG_LEVEL says otherwise."""
    if 'tensorflow' in sys.modules and 'keras' in sys.modules:
        return
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
    with native_stderr.held_back():
        import keras  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.config.list_logical_devices()


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TFDS_CHATTER)


@contextlib.contextmanager
def tfds_chatter_dropped():
    """Drops TFDS's routine warnings about our own builders while the library prepares or reads data."""
    logger, dropped = logging.getLogger('absl'), _DropChatter()
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)
