"""fastclassify: image-classifier training whose accelerator never waits for input.

The public API is the names in `__all__` (listed with what each is for in `fastclassify/api.py`'s
docstring); `fastclassify.pipelines`, `.models` and `.training` are the rooms behind it. Importing
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

# name -> module that defines it (fastclassify.api re-exports the library's public pieces).
_PUBLIC = {
    'load': 'fastclassify.api',
    'Data': 'fastclassify.api',
    'Augment': 'fastclassify.api',
    'AugmentedModel': 'fastclassify.api',
    'build_model': 'fastclassify.api',
    'train': 'fastclassify.api',
    'TrainConfig': 'fastclassify.api',
    'policies': 'fastclassify.api',
    'model_names': 'fastclassify.api',
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module fastclassify has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(__all__))
