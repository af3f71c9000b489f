"""Which Keras backend the run uses (`--backend`); importable before Keras, which reads it once at import."""

import os

BACKENDS = ('tensorflow', 'jax')


def select(flag_value: str | None) -> str:
    """Makes `flag_value` (else $KERAS_BACKEND, else tensorflow) Keras' backend and returns it.

    Must run before anything imports Keras.

    Raises:
        ValueError: a name outside BACKENDS, naming the flag and the valid names.
    """
    backend = flag_value or os.environ.get('KERAS_BACKEND') or 'tensorflow'
    if backend not in BACKENDS:
        raise ValueError(f'--backend={backend!r} (or KERAS_BACKEND) is not valid; valid: {", ".join(BACKENDS)}')
    os.environ['KERAS_BACKEND'] = backend
    return backend
