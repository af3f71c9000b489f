"""`python -m benchmarks.hardware`: what a figure ran on, as one JSON line (accelerators as JAX sees them).

Run in its own process by `benchmarks.gpu_figures`: initialising JAX's GPU client in the driver would hold
GPU memory the measured runs need.
"""

import importlib.metadata
import json
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
        summary = f'CPU only: {_cpu()["model"]}'
    return {'summary': summary, 'jax': jax_view, 'nvidia_smi': _nvidia_smi(), 'cpu': _cpu(),
            'versions': _versions(), 'keras_backend': os.environ.get('KERAS_BACKEND')}


if __name__ == '__main__':
    print(json.dumps(describe()))
