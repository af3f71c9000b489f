"""`python -m benchmarks.hardware`: the full device description as one JSON line (`training/hardware.py`).

Taken in its own process by `benchmarks.gpu_figures`: initialising JAX's GPU client in the driver would hold
GPU memory the measured runs need.
"""

import json

from fastclassify.training.hardware import describe, summary  # noqa: F401  (the benchmarks' one description)

if __name__ == '__main__':
    print(json.dumps(describe()))
