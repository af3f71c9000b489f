"""Errors raised through the public API name its arguments, not the CLI's flags."""

import contextlib
import re

# Flags whose argument has another name in the API; the rest keep their name without the dashes.
_RENAMED = {'dataset': 'source', 'validation_split': 'validation_split', 'augment': 'augment'}


def positive_int(name: str, value, *, maximum: int | None = None, minimum: int = 1) -> None:
    """Raises ValueError naming `name` unless `value` is an int in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        allowed = f'an integer >= {minimum}' if maximum is None else f'an integer in [{minimum}, {maximum}]'
        raise ValueError(f'{name}={value!r} must be {allowed}')


def flags_to_arguments(message: str, renamed: dict[str, str] | None = None) -> str:
    """'--image_size=0 must be ...' -> 'image_size=0 must be ...' (library messages speak the CLI's flags)."""
    names = {**_RENAMED, **(renamed or {})}
    return re.sub(r'--(\w+)', lambda m: names.get(m.group(1), m.group(1)), message)


@contextlib.contextmanager
def as_arguments(*, folder: bool = False, renamed: dict[str, str] | None = None):
    """Re-raises the library's one-line errors (ValueError, DataMissingError) with argument names.

    Args:
        folder: the source is a folder path: the CLI's `--manual_dir` is then the API's `source`.
        renamed: more flag -> argument renames (e.g. augment -> policy for a layer).
    """
    renamed = dict(renamed or {})
    if folder:
        renamed['manual_dir'] = 'source'
    try:
        yield
    except ValueError as e:
        if not e.args or not isinstance(e.args[0], str) or '--' not in e.args[0]:
            raise
        raise type(e)(flags_to_arguments(e.args[0], renamed)) from None
    except Exception as e:  # pylint: disable=broad-except
        if type(e).__name__ not in ('DataMissingError', 'DataCorruptError') or '--' not in str(e):
            raise
        raise type(e)(flags_to_arguments(str(e), renamed)) from None
