"""Decodes each image once at build time: keeps RGB JPEG bytes as given, converts the rest, bounds pixels.

The pixel limit (`--max_image_pixels`, default `DEFAULT_MAX_PIXELS`) is checked on the header before any
pixel is decoded, so preparation's memory is bounded by the limit, not by the input: a JPEG over it is
decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, via Pillow's `draft`) and stored downscaled; any
other format over it is skipped (its decoders can only allocate the full image).
"""

import contextlib
import dataclasses
import hashlib
import io
import math
import re
import warnings

from PIL import Image
import tensorflow as tf

# Re-encoding is rare (grayscale, CMYK, non-JPEG); a high quality keeps the converted ones faithful.
_JPEG_QUALITY = 95
# 40 MP: every common camera up to ~7,700 x 5,200 is stored untouched; a decode then needs ~120 MB (RGB)
# per thread, and a stored image is far above any training resolution.
DEFAULT_MAX_PIXELS = 40_000_000
# libjpeg decodes at 1/2, 1/4 or 1/8 scale without ever holding the full-size image.
_JPEG_SCALES = (2, 4, 8)
# The keep-as-is check decodes a JPEG at this 1/N scale: libjpeg still reads and entropy-decodes every
# block (truncated or corrupt data fails the same way) but runs a 1x1 IDCT per block instead of 8x8 and
# writes 1/64 of the pixels: a 12 MP photo checks ~2x faster. 1 = every pixel (benchmarks compare).
CHECK_RATIO = 8


class UndecodableImageError(ValueError):
    """The bytes are not an image either decoder can read in full, or one too large to store."""


class TooLargeError(UndecodableImageError):
    """The image's header declares more pixels than the limit allows, and it cannot be decoded smaller."""


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


def max_file_bytes(max_pixels: int) -> int:
    """Largest file read into memory: 4 bytes per allowed pixel (an uncompressed RGBA image at the limit)."""
    return 4 * max_pixels


@contextlib.contextmanager
def pixel_guard(max_pixels: int):
    """Sets Pillow's decompression-bomb threshold to match `max_pixels` while a scan runs.

    Our own header check refuses or downscales first; Pillow's check stays on as a second net, set where
    a 1/8-scale JPEG decode would still exceed the limit (64x its pixels), so it never refuses an image
    that `examine` can store, and its warning (at half that) is silenced because `examine` reports each.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 32 * max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def examine(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, lossless: bool = False) -> Examined:
    """Decodes `data` once and decides what to store.

    An RGB JPEG within the pixel limit is kept byte for byte when TensorFlow's own JPEG decoder (the one
    training uses) reads it completely; anything else that Pillow can read in full becomes an RGB JPEG;
    a JPEG over the limit is stored downscaled to fit it.

    Args:
        data: the file's bytes.
        max_pixels: `--max_image_pixels`, the most pixels (width x height) an image may have.
        lossless: `--folder_format=png`: an image that is not a JPEG is kept as it is when it is an RGB PNG
            and becomes an RGB PNG otherwise, instead of a JPEG (pixels exact; files several times larger).

    Raises:
        UndecodableImageError: not an image, or truncated / corrupt.
        TooLargeError: over `max_pixels` and not a JPEG (or over it even at 1/8 scale).
    """
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            image_format, mode, (width, height) = image.format, image.mode, image.size
    except Image.UnidentifiedImageError:
        raise UndecodableImageError('not an image (no known image format)') from None
    except Image.DecompressionBombError as e:
        raise TooLargeError(f'over --max_image_pixels={max_pixels:,} ({e})') from None
    except Exception as e:  # Pillow raises several types for broken headers; all mean "skip this file"
        raise UndecodableImageError(f'not an image ({type(e).__name__}: {e})') from None
    if width * height > max_pixels:
        return _downscaled(data, sha256, image_format, width, height, max_pixels)
    tf_error = ''
    if image_format == 'JPEG' and mode == 'RGB':
        try:
            decoded = tf.io.decode_jpeg(data, channels=3, ratio=CHECK_RATIO)
            if decoded.shape[0] and decoded.shape[1]:
                return Examined(sha256, None, '')
            tf_error = 'empty image'
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            tf_error = _short(e.message) or type(e).__name__
    target = 'PNG' if lossless and image_format != 'JPEG' else 'JPEG'
    try:
        converted = _to_rgb_jpeg(data, image_format=target)
    except Exception as e:  # truncated or corrupt data surfaces as OSError, SyntaxError, ValueError...
        reason = tf_error or f'{type(e).__name__}: {e}'
        raise UndecodableImageError(f'cannot decode {image_format} ({reason})') from None
    if target == 'PNG' and image_format == 'PNG' and mode == 'RGB' and 'transparency' not in _info(data):
        return Examined(sha256, None, '')  # decoded in full above: kept byte for byte
    note = f'{image_format} {mode} -> RGB {target}'
    if tf_error:
        note += f' (TensorFlow could not decode it: {tf_error})'
    return Examined(sha256, converted, note)


def _downscaled(data: bytes, sha256: str, image_format: str, width: int, height: int,
                max_pixels: int) -> Examined:
    """An over-limit image: a JPEG decoded at the first DCT scale that fits, anything else refused."""
    over = f'{image_format} {width}x{height} ({width * height:,} px) is over --max_image_pixels={max_pixels:,}'
    if image_format != 'JPEG':
        raise TooLargeError(f'{over}; only a JPEG can be decoded at reduced size')
    scale = next((s for s in _JPEG_SCALES if math.ceil(width / s) * math.ceil(height / s) <= max_pixels), None)
    if scale is None:
        raise TooLargeError(f'{over} even at 1/8 scale')
    target = (math.ceil(width / scale), math.ceil(height / scale))
    try:
        converted, size = _to_rgb_jpeg(data, draft=target)
    except Exception as e:  # truncated or corrupt data, as above
        raise UndecodableImageError(f'cannot decode {image_format} ({type(e).__name__}: {e})') from None
    if size[0] * size[1] > max_pixels:  # the decoder did not scale as asked: refuse rather than store it
        raise TooLargeError(f'{over} and could not be decoded at 1/{scale} scale')
    return Examined(sha256, converted, f'{over}: stored at 1/{scale} scale, {size[0]}x{size[1]} RGB JPEG')


def _info(data: bytes) -> dict:
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.info)


def _to_rgb_jpeg(data: bytes, *, draft: tuple[int, int] | None = None, image_format: str = 'JPEG'):
    """Decodes in full and re-encodes as RGB JPEG (or `image_format` PNG); with `draft`, decodes a JPEG at
    the scale giving that size.

    Returns the JPEG bytes, or (bytes, stored size) when `draft` is given.
    """
    with Image.open(io.BytesIO(data)) as image:
        if draft is not None:
            image.draft('RGB', draft)  # before load(): libjpeg then never allocates the full size
        image.load()  # the full decode: raises on truncated data
        if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
            # Transparent pixels would turn black in a plain convert; white is what viewers show.
            rgba = image.convert('RGBA')
            rgb = Image.new('RGB', rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel('A'))
        else:
            rgb = image.convert('RGB')  # Pillow undoes Adobe's inverted CMYK here
    out = io.BytesIO()
    if image_format == 'PNG':
        rgb.save(out, format='PNG')
    else:
        rgb.save(out, format='JPEG', quality=_JPEG_QUALITY)
    return out.getvalue() if draft is None else (out.getvalue(), rgb.size)


def _short(tf_message: str) -> str:
    """`{{function_node ...}} jpeg::Uncompress failed. ... [Op:DecodeJpeg]` -> the human part."""
    first_line = (tf_message or '').splitlines()[0] if tf_message else ''
    return re.sub(r'\{\{.*?\}\}\s*|\s*\[Op:\w+\]', '', first_line).strip()
