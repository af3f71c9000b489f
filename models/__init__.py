"""Model side: a registry of Keras classifier families, heads, weights and precision.

The names below load their module (and Keras) on first use, so `models.choices` stays importable before
Keras: the command line checks `--model` against it in about a second.
"""

import importlib

_NAMES = {
    'build_model': 'builder', 'set_backbone_trainable': 'builder', 'ModelConfig': 'config',
    'apply_precision': 'precision', 'resolve_jit_compile': 'precision', 'resolve_precision': 'precision',
    'FAMILIES': 'registry', 'WeightsError': 'weights',
}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f'{__name__}.{_NAMES[name]}'), name)
    raise AttributeError(f'module {__name__} has no attribute {name!r}')
