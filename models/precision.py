"""Precision policy and XLA choices for the accelerator at hand (`--precision`, `--jit_compile`)."""

import dataclasses

import keras
import tensorflow as tf

from fastclassify.models.choices import JIT_CHOICES, PRECISIONS  # noqa: F401  (checked before Keras loads)

# Tensor Cores run float16 matmuls from Volta (compute capability 7.0) on; older GPUs gain nothing.
_MIN_FLOAT16_COMPUTE_CAPABILITY = (7, 0)
# bfloat16 Tensor Cores arrive with Ampere (8.0).
_MIN_BFLOAT16_COMPUTE_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """What the program runs on: 'tpu', 'gpu' or 'cpu', and the first GPU's compute capability."""

    kind: str
    compute_capability: tuple[int, int] | None = None


def detect_accelerator() -> Accelerator:
    """Looks at the devices the Keras backend computes on: a TPU wins over GPUs, GPUs over the CPU.

    On the JAX backend that is JAX's devices (TensorFlow may be the CPU-only build there, for tf.data).
    """
    if keras.backend.backend() == 'jax':
        return _jax_accelerator()
    if tf.config.list_logical_devices('TPU'):
        return Accelerator('tpu')
    gpus = tf.config.list_physical_devices('GPU')
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return Accelerator('gpu', tuple(details.get('compute_capability', (0, 0))))
    return Accelerator('cpu')


def _jax_accelerator() -> Accelerator:
    import jax  # pylint: disable=import-outside-toplevel
    device = jax.devices()[0]
    if device.platform == 'tpu':
        return Accelerator('tpu')
    if device.platform == 'gpu':
        capability = getattr(device, 'compute_capability', '0.0')
        return Accelerator('gpu', tuple(int(p) for p in str(capability).split('.')[:2]))
    return Accelerator('cpu')


def resolve_precision(name: str, accelerator: Accelerator | None = None) -> str:
    """Turns `--precision` into a concrete Keras dtype policy name.

    'auto' picks mixed_bfloat16 on TPUs and on GPUs of compute capability >= 8.0 (Ampere on: bfloat16
    Tensor Cores as fast as float16, float32's exponent range, so no loss scaling), mixed_float16 on
    Volta/Turing GPUs (7.x, Tensor Cores without bfloat16) and float32 elsewhere (CPUs emulate half
    types slowly). The same on both Keras backends.

    Args:
        name: 'auto', 'float32', 'mixed_float16' or 'mixed_bfloat16'.
        accelerator: the device to decide for; detected when None.

    Raises:
        ValueError: `name` is not one of the choices.
    """
    if name not in PRECISIONS:
        raise ValueError(f'--precision={name!r} is not a known precision; valid: {", ".join(PRECISIONS)}')
    if name != 'auto':
        return name
    accelerator = accelerator or detect_accelerator()
    if accelerator.kind == 'tpu':
        return 'mixed_bfloat16'
    capability = accelerator.compute_capability or (0, 0)
    if accelerator.kind == 'gpu' and capability >= _MIN_BFLOAT16_COMPUTE_CAPABILITY:
        return 'mixed_bfloat16'
    if accelerator.kind == 'gpu' and capability >= _MIN_FLOAT16_COMPUTE_CAPABILITY:
        return 'mixed_float16'
    return 'float32'


def resolve_jit_compile(value: str | bool, accelerator: Accelerator | None = None) -> bool:
    """Turns `--jit_compile` ('auto', 'true', 'false') into a bool: auto = XLA on GPU/TPU, not on CPU.

    XLA on the CPU compiles slowly and often runs slower than TF's own kernels; on accelerators it fuses
    the elementwise ops of normalisation layers and activations, which is where they lose time. On the
    JAX backend XLA is the only compiler (without it every op runs eagerly), so `auto` is always XLA.
    """
    if isinstance(value, bool):
        return value
    if value not in JIT_CHOICES:
        raise ValueError(f'--jit_compile={value!r} is not valid; valid: {", ".join(JIT_CHOICES)}')
    if value != 'auto':
        return value == 'true'
    if keras.backend.backend() == 'jax':
        return True
    accelerator = accelerator or detect_accelerator()
    return accelerator.kind in ('gpu', 'tpu')


def apply_precision(name: str, accelerator: Accelerator | None = None) -> str:
    """Resolves `name` and sets it as Keras' global dtype policy (before any model is built); returns it.

    Loss scaling needs no code here: `Model.compile` wraps the optimizer in a `LossScaleOptimizer` when the
    model's policy is mixed_float16, and bfloat16 has float32's exponent range so it needs none.
    """
    policy = resolve_precision(name, accelerator)
    keras.mixed_precision.set_global_policy(policy)
    return policy
