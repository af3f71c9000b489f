"""fastclassify: image-classifier training whose accelerator never waits for input.

The public API is the names in `__all__` (listed with what each is for in `_PUBLIC` below); `fastclassify.pipelines`, `.models` and `.training` are the rooms behind it. Importing
the package imports no TensorFlow, JAX or Keras: each name loads its module on first use.
"""

import importlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_HERE)
# Installed, the library folders live inside this package; in a git checkout (tests, train.py, an
# editable install) they are the repository's top-level pipelines/, models/ and training/.
if (not os.path.isdir(os.path.join(_HERE, 'pipelines'))
        and os.path.isfile(os.path.join(_CHECKOUT, 'pipelines', '__init__.py'))):
    __path__.append(_CHECKOUT)  # noqa: F821 (a package's __path__)

__version__ = '0.1.0'

# The public API, in one place: name -> (module, attribute). Everything else is private by name or
# lives in the library packages behind it.
_PUBLIC = {
    # Data: a dataset in one call, as finite tf.data datasets of uint8 images (fastclassify/data.py).
    'load': ('fastclassify.data', 'load'),
    'Data': ('fastclassify.data', 'Data'),
    'DataError': ('fastclassify.pipelines.sources', 'DataMissingError'),
    # Augmentation on the accelerator, inside the compiled step (fastclassify/augment.py).
    'Augment': ('fastclassify.augment', 'Augment'),
    'AugmentedModel': ('fastclassify.augment', 'AugmentedModel'),
    'POLICIES': ('fastclassify.pipelines.augment.config', 'POLICIES'),
    # Models and whole runs (fastclassify/run.py).
    'build_model': ('fastclassify.run', 'build_model'),
    'MODELS': ('fastclassify.run', 'MODELS'),
    'train': ('fastclassify.run', 'train'),
    'TrainConfig': ('fastclassify.training.config', 'TrainConfig'),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f'module fastclassify has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(__all__))
