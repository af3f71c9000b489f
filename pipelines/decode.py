"""The one decode: encoded JPEG/PNG bytes -> uint8 [S, S, 3] at the cache resolution.

Resize policy: a plain (aspect-changing) resize of the whole image to S x S (see `resize_to_cache`).
Why not keep-aspect + center-crop: Caltech-256 objects often touch the image border, and a center crop
would cut them off before any augmentation could see them; the seed report's `flow_from_directory` and
`image_dataset_from_directory` also squash, so our figures compare like with like. Random crops (scale
variety) happen after the cache, on the device. Images already at the cache size (CIFAR-100 at 32 px)
are not resampled at all.

A JPEG much larger than the cache (a 12 MP photo cached at 224 px) is decoded at 1/2, 1/4 or 1/8 scale by
libjpeg's DCT scaling: the largest scale that keeps both sides at least `MARGIN` x the cache size, so the
area resize still averages (quality: see `MARGIN`). One thread, 12 MP to 224 px: 22.7 images/s in full, 54.3 at 1/8.
"""

import functools
import math

import tensorflow as tf

# Shuffle buffer for encoded records, wherever they are shuffled before this decode (no cache to shuffle
# by index): records are ~10-100 KB, so this many cost at most a few hundred MB.
RECORD_SHUFFLE_BUFFER = 8192


# libjpeg's DCT scaling factors, 1/N of each side (`decode_jpeg(ratio=N)`).
JPEG_RATIOS = (1, 2, 4, 8)
# Scaled decoding keeps both decoded sides at least MARGIN x the cache side, so the area resize after it
# still averages >= 1.5 decoded pixels per cached one. libjpeg's 1/N IDCT is itself a low-pass (at 1/8 a
# pixel is its 8x8 block's mean), but with the decoded side near the cache side the resize barely filters
# and block-aligned averaging shows: on strongly textured photo-like JPEGs (tests/test_decode_scaled.py) the
# cached pixels' mean abs difference from a full decode, in 0..255 units, was ~3-4.5 at 1.0-1.2x, 1.2-1.9
# at 1.5-2x, <= 0.9 beyond 3x. 1.5 keeps it within the tests' bound of 2.0 (about what one JPEG
# re-encode at quality 90 moves), and still decodes a 12 MP photo at 1/8 for a 224 px cache (378 >= 336).
MARGIN = 1.5


def jpeg_ratio_index(height: tf.Tensor, width: tf.Tensor, min_side: int) -> tf.Tensor:
    """Index into `JPEG_RATIOS` of the largest scale 1/N that keeps both decoded sides >= `min_side`.

    libjpeg rounds a scaled side up (a side H becomes ceil(H / N)); a scale that fits means every smaller
    reduction fits too, so the index is the number of reductions that fit.
    """
    fits = [tf.logical_and((height + n - 1) // n >= min_side, (width + n - 1) // n >= min_side)
            for n in JPEG_RATIOS[1:]]
    return tf.add_n([tf.cast(f, tf.int32) for f in fits])


def _decode_jpeg_scaled(encoded: tf.Tensor, min_side: int) -> tf.Tensor:
    """A JPEG decoded at the smallest DCT scale whose sides stay >= `min_side` (the header says its size)."""
    shape = tf.io.extract_jpeg_shape(encoded, output_type=tf.int32)
    # `ratio` is an op attribute, so each scale is its own branch; only the chosen one runs.
    branches = [functools.partial(tf.io.decode_jpeg, encoded, channels=3, ratio=n) for n in JPEG_RATIOS]
    return tf.switch_case(jpeg_ratio_index(shape[0], shape[1], min_side), branches)


def decode_image(encoded: tf.Tensor, min_side: int | None = None) -> tf.Tensor:
    """Decodes one JPEG/PNG/GIF/BMP record to uint8 [H, W, 3].

    JPEG goes through `decode_jpeg` (the fast path; grayscale and CMYK come out as RGB with channels=3).
    Everything else goes through `decode_image` with `expand_animations=False`, so a GIF yields its
    first frame as a 3-D image instead of a 4-D stack that would break every later shape.

    Args:
        encoded: scalar tf.string with the file's bytes.
        min_side: when given, a JPEG at least twice this on both sides is decoded at reduced scale (1/2,
            1/4 or 1/8: the smallest that keeps both sides >= min_side); None decodes every pixel.

    Returns:
        uint8 tensor [H, W, 3].
    """
    if min_side is None:
        # Default IDCT (INTEGER_ACCURATE): INTEGER_FAST measured no faster here, one thread with resize.
        jpeg = lambda: tf.io.decode_jpeg(encoded, channels=3)  # noqa: E731
    else:
        jpeg = functools.partial(_decode_jpeg_scaled, encoded, min_side)
    image = tf.cond(
            tf.io.is_jpeg(encoded),
            jpeg,
            lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8),
    )
    image.set_shape([None, None, 3])
    return image


def resize_to_cache(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes uint8 [H, W, 3] to uint8 [size, size, 3]; an image already that size is returned as is.

    Shrinking uses 'area' (a box filter): it averages every source pixel, so fine texture does not alias
    the way plain bilinear sampling does at Caltech-256's ~1.6x reduction, and it measured 2.2x faster
    than bilinear with `antialias=True` (one thread, 224 px: area ~700/s, bilinear+antialias ~320/s,
    bilinear without ~920/s but aliased). Enlarging (small images) uses bilinear, which is smooth where
    area would repeat pixels.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]

    def _to_uint8(resized):
        # Round, then saturate: never wrap around at 255.
        return tf.saturate_cast(tf.round(resized), tf.uint8)

    def _resize():
        shrinking = tf.logical_and(height >= size, width >= size)
        return tf.cond(shrinking,
                       lambda: _to_uint8(tf.image.resize(image, [size, size], method='area')),
                       lambda: _to_uint8(tf.image.resize(image, [size, size], method='bilinear')))

    already = tf.logical_and(tf.equal(height, size), tf.equal(width, size))
    out = tf.cond(already, lambda: image, _resize)
    out.set_shape([size, size, 3])
    return out


def make_decoder(size: int, *, scaled_jpeg: bool = True):
    """Returns `fn(record) -> (image uint8 [size, size, 3], label int32 [])` for `Dataset.map`.

    Args:
        size: side of the cached squares in pixels.
        scaled_jpeg: decode large JPEGs at the DCT scale the cache needs (`MARGIN`); False decodes every
            pixel (what benchmarks compare against).

    Raises:
        ValueError: if size is not positive (the flag is `--image_size`).
    """
    if size <= 0:
        raise ValueError(f'--image_size={size} must be a positive number of pixels')
    min_side = math.ceil(MARGIN * size) if scaled_jpeg else None

    def decode_record(record):
        image = resize_to_cache(decode_image(record['image'], min_side), size)
        return image, tf.cast(record['label'], tf.int32)

    return decode_record
