"""`python -m benchmarks.multihost`: one training on 1 process x D devices, then on P processes x D/P devices
(JAX, CPU devices forced by XLA_FLAGS, gloo collectives, a coordinator on loopback): steps/s of each, and what
crosses the process boundary every step (the gradient all-reduce, batch-norm statistics; no input).

Each run is `train.py` itself (synthetic CIFAR-shaped data, device cache); the figure is the `train steps`
ms/step of process 0's epoch-time line (compilation and first steps excluded).

`--stop_lookups=N`: instead, what the shared SIGTERM stop costs each step (training/multiprocess.py
`SharedStop.stops_after`, its one key-value lookup), timed N times in each process of a job of `--processes`.
"""

import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(model_dir: str, *, processes: int, devices: int, args: list[str]) -> float:
    """ms per train step of one job of `processes` x `devices`."""
    port, procs = _port(), []
    for i in range(processes):
        env = dict(os.environ, KERAS_BACKEND='jax', JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
                   PYTHONPATH=ROOT, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
        if processes > 1:
            env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f'127.0.0.1:{port}',
                       KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes), KERAS_DISTRIBUTION_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([sys.executable, 'train.py', *args, f'--model_dir={model_dir}'],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f'{processes}x{devices} failed:\n{out[-2000:]}\n{err[-3000:]}')
    return float(re.search(r'train steps \((\d+) ms/step\)', outs[0][0]).group(1))


def _crossing_bytes(model_path: str) -> dict:
    """Per step, per direction, what the processes exchange: gradients and batch-norm batch statistics."""
    import keras  # pylint: disable=import-outside-toplevel
    model = keras.saving.load_model(model_path)
    grads = sum(math.prod(w.shape) for w in model.trainable_weights) * 4
    bn = sum(math.prod(w.shape) for w in model.weights if w.path.endswith('moving_mean'))
    # Mean and variance per channel, forward; their gradients, backward (float32).
    return {'gradient_allreduce_bytes': grads, 'batchnorm_stats_bytes': bn * 2 * 2 * 4,
            'input_bytes': 0}


def _stop_lookups(processes: int, lookups: int) -> list[dict]:
    """Microseconds per step end of `SharedStop.stops_after` (no SIGTERM), in each process of one job."""
    port, procs = _port(), []
    for i in range(processes):
        env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
        code = ('from benchmarks.multihost import _time_stop_lookups; '
                f'_time_stop_lookups("127.0.0.1:{port}", {processes}, {i}, {lookups})')
        procs.append(subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f'stop lookups failed:\n{out[-2000:]}\n{err[-3000:]}')
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def _time_stop_lookups(coordinator: str, processes: int, process_id: int, lookups: int) -> None:
    """One process of `_stop_lookups`: the job's real start-up (watchdog beating), then the timed step ends."""
    import time  # pylint: disable=import-outside-toplevel
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    from fastclassify.training import multiprocess  # pylint: disable=import-outside-toplevel
    multiprocess.initialize(multiprocess.Layout(coordinator, processes, process_id))
    stop = multiprocess.shared_stop(last_step=lookups + 1)
    start = time.perf_counter()
    for step in range(1, lookups + 1):
        stop.stops_after(step, False)
    us = (time.perf_counter() - start) / lookups * 1e6
    distributed.global_state.client.wait_at_barrier('stop-lookups-done', 60_000)
    multiprocess.mark_finished()
    print(json.dumps({'process': process_id, 'lookups': lookups, 'us_per_step': round(us, 1)}), flush=True)


def main(argv):
    del argv
    f = flags.FLAGS
    if f.stop_lookups:
        for row in _stop_lookups(f.processes, f.stop_lookups):
            print(json.dumps(row), flush=True)
        return
    args = ['--dataset=cifar100', '--synthetic_data', f'--model={f.model}', '--weights=none', '--head=gap',
            f'--batch_size={f.batch_size}', f'--steps_per_epoch={f.steps}', '--epochs=1',
            '--precision=float32', '--cache=device', '--augment=flip_crop', '--validation_split=0']
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, f.processes):
            devices = f.devices // processes
            ms = _run(os.path.join(tmp, f'{processes}x{devices}'), processes=processes, devices=devices,
                      args=args)
            rows.append({'processes': processes, 'devices_per_process': devices, 'ms_per_step': ms,
                         'steps_per_s': round(1000 / ms, 2), 'images_per_s': round(f.batch_size * 1000 / ms)})
            print(json.dumps(rows[-1]), flush=True)
        crossing = _crossing_bytes(os.path.join(tmp, f'1x{f.devices}', 'model.keras'))
    print(json.dumps(crossing), flush=True)
    if f.json:
        with open(f.json, 'w') as out:
            json.dump({'runs': rows, 'per_step_across_processes': crossing, 'args': args}, out, indent=1)


if __name__ == '__main__':
    flags.DEFINE_integer('devices', 4, 'CPU devices in all (1 x devices, then processes x devices/processes).')
    flags.DEFINE_integer('processes', 2, 'processes of the multi-process run.')
    flags.DEFINE_integer('steps', 30, 'train steps per run.')
    flags.DEFINE_integer('batch_size', 64, 'global batch.')
    flags.DEFINE_string('model', 'cifar_resnet9', 'model family (train.py --model).')
    flags.DEFINE_string('json', '', 'also write the rows here.')
    flags.DEFINE_integer('stop_lookups', 0, 'time this many step ends of the shared SIGTERM stop instead.')
    app.run(main)
