"""What a figure ran on: `summary()`, one line every benchmark report carries (the devices the running Keras
backend sees), and `describe()` (`python -m benchmarks.hardware`), the full description as one JSON line (accelerators as
JAX sees them, the host, library versions).

The JSON is taken in its own process by `benchmarks.gpu_figures`: initialising JAX's GPU client in the
driver would hold GPU memory the measured runs need.
"""

import importlib.metadata
import os
import platform
import subprocess

# Distributions whose versions a figure depends on; those not installed are left out.
_DISTRIBUTIONS = ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda13-pjrt', 'jax-cuda12-plugin',
                  'jax-cuda12-pjrt', 'keras', 'tensorflow', 'tensorflow-cpu', 'tensorflow-datasets',
                  'keras-cv', 'numpy', 'pillow', 'nvidia-cudnn-cu13', 'nvidia-cudnn-cu12')


def _versions() -> dict:
    versions = {'python': platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _cpu() -> dict:
    model = platform.processor() or platform.machine()
    memory = None
    try:
        with open('/proc/cpuinfo') as f:
            model = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), model)
        with open('/proc/meminfo') as f:
            memory = next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemTotal:'))
    except OSError:
        pass
    return {'model': model, 'cores': os.cpu_count(), 'usable_cores': len(os.sched_getaffinity(0)),
            'memory_bytes': memory}


def _cpu_summary() -> str:
    cpu = _cpu()
    return f'CPU only: {cpu["model"]}, {cpu["cores"]} cores'


def summary() -> str:
    """The accelerators of the running Keras backend ('1 x NVIDIA H100 80GB HBM3'), or the CPU and its cores."""
    import keras  # pylint: disable=import-outside-toplevel  # the JSON description must not start a backend

    accelerators = [d for d in keras.distribution.list_devices() if 'cpu' not in d.lower()]
    if not accelerators:
        return _cpu_summary()
    name = None
    if keras.backend.backend() == 'tensorflow':  # TF names the card; the device string is only 'gpu:0'
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        gpus = tf.config.list_physical_devices('GPU')
        name = gpus and tf.config.experimental.get_device_details(gpus[0]).get('device_name')
    return f'{len(accelerators)} x {name or accelerators[0]}'


def _jax_devices() -> dict:
    import jax  # pylint: disable=import-outside-toplevel  # only here: its GPU client starts on use
    devices = []
    for device in jax.devices():
        entry = {'platform': device.platform, 'kind': device.device_kind, 'id': device.id}
        capability = getattr(device, 'compute_capability', None)
        if capability is not None:
            entry['compute_capability'] = str(capability)
        try:
            stats = device.memory_stats() or {}
            entry['memory_bytes'] = stats.get('bytes_limit')
        except Exception:  # pylint: disable=broad-except  # CPU devices have no memory stats
            pass
        devices.append(entry)
    return {'default_backend': jax.default_backend(), 'devices': devices}


def _nvidia_smi() -> str | None:
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total,compute_cap',
                              '--format=csv,noheader'], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe() -> dict:
    """Accelerators (JAX's view), nvidia-smi's line, the host CPU and RAM, and library versions."""
    try:
        jax_view = _jax_devices()
    except Exception as e:  # pylint: disable=broad-except  # a figure without JAX still names its host
        jax_view = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""}'}
    devices = jax_view.get('devices') or []
    accelerators = [d for d in devices if d['platform'] != 'cpu']
    if accelerators:
        summary = f'{len(accelerators)} x {accelerators[0]["kind"]}'
    else:
        summary = _cpu_summary()
    return {'summary': summary, 'jax': jax_view, 'nvidia_smi': _nvidia_smi(), 'cpu': _cpu(),
            'versions': _versions(), 'keras_backend': os.environ.get('KERAS_BACKEND')}

