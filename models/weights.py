"""Weights for a built model: ImageNet by name (Keras' download), `.weights.h5` or `.keras` files (safe mode).

Every failure is one `WeightsError` line naming the file, what is wrong, and what to do.
"""

import contextlib
import os
import socket
import zipfile

import keras
# Keras' own answer for its home folder (KERAS_HOME read at import, or ~/.keras, or /tmp/.keras when the home
# is read-only): the folder its applications look in, so ours must be the same.
from keras.src.backend import config as keras_config

from fastclassify.models import registry

# A `.keras` file is a zip: its members' sizes are checked from the zip directory before anything is
# inflated, so a small hostile file cannot balloon memory. Keras' JSON members (config, metadata) are
# kilobytes to a few MB even for the largest models; weights (HDF5) hardly compress, so a member that
# inflates more than `_MAX_INFLATION` times its stored size, beyond `_JSON_LIMIT_BYTES`, is a zip bomb.
_JSON_LIMIT_BYTES = 64 * 2**20
_MAX_INFLATION = 100
_HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'

# Seconds a stalled connection may block the weights download before it counts as offline; Keras'
# `urlretrieve` has no timeout of its own and would otherwise hang forever on a black-holed network.
DOWNLOAD_TIMEOUT_S = 60.0


class WeightsError(Exception):
    """Weights could not be had or loaded; the message is one line: which file, what is wrong, what to do."""


def keras_models_dir(cache_dir: str | None = None) -> str:
    """The folder Keras downloads application weights into: `$KERAS_HOME/models` (default ~/.keras/models)."""
    return os.path.join(cache_dir or keras_config.keras_home(), 'models')


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def fetch_imagenet_weights(model_name: str, *, cache_dir: str | None = None,
                           timeout_s: float = DOWNLOAD_TIMEOUT_S) -> str:
    """Makes sure the family's headless ImageNet weights are in Keras' cache; returns their path.

    Uses Keras' own downloader (`keras.utils.get_file`) into the folder Keras' applications read, so a file
    placed there by hand on an offline machine is used as is.

    Args:
        model_name: registry name, e.g. 'convnext_tiny'.
        cache_dir: Keras home to use instead of `$KERAS_HOME` / ~/.keras (tests).
        timeout_s: socket timeout for the download.

    Raises:
        WeightsError: the family has no ImageNet weights, or the file is absent and cannot be downloaded.
    """
    family = registry.get_family(model_name)
    if family.imagenet_weights_file is None:
        raise WeightsError(f'--weights=imagenet: --model={model_name} has no ImageNet weights (trained from scratch)')
    folder = keras_models_dir(cache_dir)
    target = os.path.join(folder, family.imagenet_weights_file)
    if os.path.exists(target):
        return target
    try:
        with _socket_timeout(timeout_s):
            return keras.utils.get_file(
                    family.imagenet_weights_file, family.imagenet_weights_url, cache_subdir='models',
                    cache_dir=cache_dir or os.path.dirname(folder))
    except Exception as e:  # Keras re-raises any urllib failure as a bare Exception
        raise WeightsError(
                f'--weights=imagenet: could not download {family.imagenet_weights_file} from '
                f'{family.imagenet_weights_url} ({_one_line(e)}); on an offline machine place that file in '
                f'{folder}/ (~/.keras/models/ or $KERAS_HOME/models/)') from None


def build_imagenet_backbone(model_name: str, input_shape: tuple[int, int, int]) -> keras.Model:
    """Builds the family's headless backbone with ImageNet weights, as one WeightsError when it cannot."""
    family = registry.get_family(model_name)
    path = fetch_imagenet_weights(model_name)
    try:
        # Keras' constructor finds the cached file, checks its published hash and loads it.
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return family.backbone(input_shape, 'imagenet')
    except Exception as e:
        if 'URL fetch failure' in str(e) or 'hash' in str(e):
            raise WeightsError(
                    f'--weights=imagenet: {path} does not match the hash Keras publishes for it (partial or '
                    f'corrupt download) and no fresh copy could be downloaded ({_one_line(e)}); replace the '
                    f'file with a good copy of {family.imagenet_weights_url}') from None
        raise


def _refuse_legacy_h5(path: str) -> None:
    import h5py  # a Keras dependency; imported here because only this check needs it

    try:
        with h5py.File(path, 'r') as f:
            full_model = 'model_config' in f.attrs
    except OSError as e:
        raise WeightsError(f'--weights={path}: not a readable HDF5 file ({_one_line(e)})') from None
    if full_model:
        raise WeightsError(
                f'--weights={path}: legacy full-model .h5 files are refused because loading them bypasses Keras '
                f'safe_mode (they can carry code); re-save as .keras or .weights.h5')
    raise WeightsError(
            f'--weights={path}: legacy .h5 weight files are not supported; re-save with '
            f'model.save_weights("name.weights.h5")')


def _weight_shapes(weights) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in weights]


def load_weights_file(model: keras.Model, path: str) -> None:
    """Loads weights from `path` into the already built `model`.

    `.weights.h5` is read by Keras' own loader (matching the model's layer structure and names). A `.keras`
    file is deserialised with `safe_mode=True` (a `Lambda` layer's code is refused, not run) and its weights
    are copied in; when only its backbone matches (a different head or class count) only the backbone is
    copied, which is how a run fine-tunes from another run's model.

    Raises:
        WeightsError: missing file, unsupported or unsafe format, or weights that do not fit the model.
    """
    if not os.path.exists(path):
        raise WeightsError(f'--weights={path}: file not found')
    if path.endswith('.weights.h5'):
        try:
            model.load_weights(path)
        except Exception as e:
            raise WeightsError(
                    f'--weights={path}: does not fit --model={model.name} ({_one_line(e)}); it must come from '
                    f'save_weights of the same model, head and class count') from None
        return
    if path.endswith('.h5'):
        _refuse_legacy_h5(path)
    if not path.endswith('.keras'):
        raise WeightsError(f'--weights={path}: unknown weights format; valid: imagenet, none, .weights.h5, .keras')
    check_keras_archive(path)
    try:
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise WeightsError(f'--weights={path}: refused or unreadable .keras file ({_one_line(e)})') from None
    target_weights = model.get_weights()
    if _weight_shapes(source.get_weights()) == _weight_shapes(target_weights):
        model.set_weights(source.get_weights())
        return
    try:
        source_backbone, target_backbone = source.get_layer('backbone'), model.get_layer('backbone')
    except ValueError:
        source_backbone = target_backbone = None
    if source_backbone is not None and (
            _weight_shapes(source_backbone.get_weights()) == _weight_shapes(target_backbone.get_weights())):
        target_backbone.set_weights(source_backbone.get_weights())
        return
    raise WeightsError(
            f'--weights={path}: its weights fit neither the whole model nor the backbone of --model={model.name} '
            f'({len(source.get_weights())} vs {len(target_weights)} arrays)')


def check_keras_archive(path: str) -> None:
    """Raises WeightsError unless `path` is a zip whose members inflate to sane sizes.

    Reads only the zip's central directory (declared sizes; Python's zip reader never inflates a
    member past its declared size), so a refusal costs no memory.
    """
    if os.path.isdir(path):
        raise WeightsError(f'--weights={path}: is a folder, not a .keras file')
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f'--weights={path}: it is {_what_it_is(path, e)}, not a .keras file (a zip archive); '
                           'pass a file written by model.save("name.keras")') from None
    for member in members:
        if member.filename.endswith('.json') and member.file_size > _JSON_LIMIT_BYTES:
            raise WeightsError(
                    f'--weights={path}: refused before inflating: its {member.filename} would inflate to '
                    f'{member.file_size:,} bytes (a .keras JSON member is at most {_JSON_LIMIT_BYTES:,})')
        if member.file_size > max(_JSON_LIMIT_BYTES, _MAX_INFLATION * member.compress_size):
            raise WeightsError(
                    f'--weights={path}: refused before inflating: its {member.filename} would inflate '
                    f'{member.compress_size:,} stored bytes to {member.file_size:,} (more than '
                    f'{_MAX_INFLATION}x; a zip bomb, not model weights)')


def _what_it_is(path: str, error: BaseException) -> str:
    """Names what a file that is not a zip is, from its first bytes."""
    try:
        with open(path, 'rb') as f:
            head = f.read(8)
    except OSError as e:
        return f'unreadable ({e.strerror or e})'  # e.g. no read permission
    if not head:
        return 'an empty file (0 bytes)'
    if head == _HDF5_SIGNATURE:
        return 'an HDF5 file (rename it to .weights.h5 if it holds save_weights output)'
    if head.startswith(b'PK'):
        return f'a damaged zip archive ({_one_line(error)})'
    return f'a file of another kind (its first bytes: {head!r})'
