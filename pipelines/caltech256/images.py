"""Decodes each archive image once at build time: keeps RGB JPEG bytes as given, converts the rest."""

import dataclasses
import hashlib
import io
import re

from PIL import Image
import tensorflow as tf

# Re-encoding is rare (grayscale, CMYK, non-JPEG); a high quality keeps the converted ones faithful.
_JPEG_QUALITY = 95


class UndecodableImageError(ValueError):
    """The bytes are not an image either decoder can read in full."""


@dataclasses.dataclass(frozen=True)
class Examined:
    """What one file becomes.

    Attributes:
        sha256: hex digest of the original bytes (the split key).
        converted: RGB JPEG bytes to store instead of the original, or None to store the original.
        note: why it was converted, e.g. `JPEG CMYK -> RGB JPEG`; empty when kept.
    """

    sha256: str
    converted: bytes | None
    note: str


def examine(data: bytes) -> Examined:
    """Decodes `data` once and decides what to store.

    An RGB JPEG is kept byte for byte when TensorFlow's own JPEG decoder (the one training uses) reads it
    completely; anything else that Pillow can read in full becomes an RGB JPEG.

    Raises:
        UndecodableImageError: not an image, or truncated / corrupt.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, mode = image.format, image.mode
    except Image.UnidentifiedImageError:
        raise UndecodableImageError('not an image (no known image format)') from None
    except Exception as e:  # Pillow raises several types for broken headers; all mean "skip this file"
        raise UndecodableImageError(f'not an image ({type(e).__name__}: {e})') from None
    tf_error = ''
    if image_format == 'JPEG' and mode == 'RGB':
        try:
            decoded = tf.io.decode_jpeg(data, channels=3)
            if decoded.shape[0] and decoded.shape[1]:
                return Examined(sha256, None, '')
            tf_error = 'empty image'
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            tf_error = _short(e.message) or type(e).__name__
    try:
        converted = _to_rgb_jpeg(data)
    except Exception as e:  # truncated or corrupt data surfaces as OSError, SyntaxError, ValueError...
        reason = tf_error or f'{type(e).__name__}: {e}'
        raise UndecodableImageError(f'cannot decode {image_format} ({reason})') from None
    note = f'{image_format} {mode} -> RGB JPEG'
    if tf_error:
        note += f' (TensorFlow could not decode it: {tf_error})'
    return Examined(sha256, converted, note)


def _to_rgb_jpeg(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # the full decode: raises on truncated data
        if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
            # Transparent pixels would turn black in a plain convert; white is what viewers show.
            rgba = image.convert('RGBA')
            rgb = Image.new('RGB', rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel('A'))
        else:
            rgb = image.convert('RGB')  # Pillow undoes Adobe's inverted CMYK here
    out = io.BytesIO()
    rgb.save(out, format='JPEG', quality=_JPEG_QUALITY)
    return out.getvalue()


def _short(tf_message: str) -> str:
    """`{{function_node ...}} jpeg::Uncompress failed. ... [Op:DecodeJpeg]` -> the human part."""
    first_line = (tf_message or '').splitlines()[0] if tf_message else ''
    return re.sub(r'\{\{.*?\}\}\s*|\s*\[Op:\w+\]', '', first_line).strip()
