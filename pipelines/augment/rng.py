"""A counter-based random generator in `keras.ops` uint32 arithmetic: the same draws on every backend.

`keras.random` draws from each backend's own generator (Philox on TensorFlow, threefry on JAX), so the
same seed would augment differently per backend. Here every draw is a hash of (key, element index):
integer math only, elementwise (XLA fuses it), bit-identical on TensorFlow and JAX.
"""

import math

from keras import ops

# Hash constants: the golden-ratio increment and the 'lowbias32' finaliser's multipliers (Wellons),
# whose output bits each flip with probability ~0.5 for any flipped input bit.
_GOLDEN = 0x9E3779B9
_MIX_1 = 0x7FEB352D
_MIX_2 = 0x846CA68B
_SALT = 0x85EBCA6B


def _u32(value):
    return ops.convert_to_tensor(value, dtype='uint32')


def _mix(h):
    """lowbias32: a bijection of uint32 with near-ideal avalanche."""
    h = ops.bitwise_xor(h, ops.right_shift(h, 16))
    h = ops.multiply(h, _u32(_MIX_1))
    h = ops.bitwise_xor(h, ops.right_shift(h, 15))
    h = ops.multiply(h, _u32(_MIX_2))
    return ops.bitwise_xor(h, ops.right_shift(h, 16))


def key(seed):
    """[2] uint32 key from a [2] integer seed (a `SeedGenerator.next()` value or any int pair).

    Both words of the key depend on both words of the seed, so the generator's step (the second word)
    and `cfg.seed` (the first) each change every draw.
    """
    seed = ops.cast(ops.convert_to_tensor(seed), 'uint32')
    s0, s1 = seed[0], seed[1]
    k0 = _mix(ops.add(ops.multiply(s0, _u32(_GOLDEN)), _mix(ops.bitwise_xor(s1, _u32(_SALT)))))
    k1 = _mix(ops.bitwise_xor(ops.multiply(s1, _u32(_SALT)), _mix(ops.add(s0, k0))))
    return ops.stack([k0, k1])


def fold_in(parent, data: int):
    """An independent key for sub-stream `data` (a Python int) of `parent`."""
    k0, k1 = parent[0], parent[1]
    n = _u32(data)
    a = _mix(ops.add(ops.bitwise_xor(k0, _mix(ops.add(ops.multiply(n, _u32(_GOLDEN)), _u32(_SALT)))), k1))
    b = _mix(ops.bitwise_xor(ops.add(k1, _mix(ops.bitwise_xor(n, _u32(_MIX_1)))), a))
    return ops.stack([a, b])


def _size(shape):
    size = 1
    for dim in shape:
        size = size * dim
    return size


def bits(rng_key, shape):
    """Uniform uint32 words of `shape` (its first entry may be a dynamic batch size).

    Element i is lowbias32(lowbias32(i + k0) ^ k1): a bijection of i for a fixed key, so no two
    elements of one draw collide.
    """
    counters = ops.cast(ops.reshape(ops.arange(_size(shape), dtype='int32'), shape), 'uint32')
    h = _mix(ops.add(counters, rng_key[0]))
    return _mix(ops.bitwise_xor(h, rng_key[1]))


def uniform(rng_key, shape):
    """float32 uniforms in [0, 1) on a 2^-24 grid (exact in float32, so the same on every backend)."""
    top = ops.cast(ops.right_shift(bits(rng_key, shape), 8), 'int32')
    return ops.cast(top, 'float32') * (1.0 / (1 << 24))


def normal(rng_key, shape):
    """float32 standard normals by Box-Muller, from two uniforms per draw."""
    u = uniform(rng_key, tuple(shape) + (2,))
    radius = ops.sqrt(-2.0 * ops.log(1.0 - u[..., 0]))  # 1 - u is in (0, 1]: no log(0)
    return radius * ops.cos((2.0 * math.pi) * u[..., 1])


def gamma(rng_key, shape, alpha: float, candidates: int = 8):
    """Gamma(alpha, 1) draws by Marsaglia-Tsang, the rejection loop unrolled into `candidates`.

    A rejection `while` loop would be a per-draw loop; instead every draw gets `candidates`
    proposals at once and keeps the first accepted one. Each is accepted with probability >= 0.95,
    so all 8 fail about once in 10^10 draws (then the mode is used). alpha < 1 uses
    Gamma(alpha + 1) * U^(1 / alpha).
    """
    shape = tuple(shape)
    boosted = alpha + 1.0 if alpha < 1.0 else alpha
    d = boosted - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = normal(fold_in(rng_key, 0), shape + (candidates,))
    # 1 - u is in (0, 1], so log never sees 0.
    log_u = ops.log(1.0 - uniform(fold_in(rng_key, 1), shape + (candidates,)))
    v = (1.0 + c * z) ** 3
    safe_v = ops.where(v > 0.0, v, 1.0)
    accepted = ops.logical_and(v > 0.0, log_u < 0.5 * z * z + d - d * safe_v + d * ops.log(safe_v))
    first = ops.argmax(ops.cast(accepted, 'int32'), axis=-1)
    chosen = ops.squeeze(ops.take_along_axis(safe_v, ops.expand_dims(first, -1), axis=-1), -1)
    draws = d * ops.where(ops.any(accepted, axis=-1), chosen, 1.0)
    if alpha < 1.0:
        boost = 1.0 - uniform(fold_in(rng_key, 2), shape)  # in (0, 1]: never 0 ** (1 / alpha)
        draws = draws * boost ** (1.0 / alpha)
    return draws


def beta(rng_key, shape, alpha: float):
    """Beta(alpha, alpha) draws as a ratio of two gamma draws."""
    a = gamma(fold_in(rng_key, 0), shape, alpha)
    b = gamma(fold_in(rng_key, 1), shape, alpha)
    return a / ops.maximum(a + b, 1e-30)

