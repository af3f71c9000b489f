"""Several JAX processes on one CPU machine (issue 21): 2 processes x 2 devices train like 1 process x 4
devices (same examples at every step, same weights); a SIGTERM to one process stops the job after one step,
a dead process ends the others with one line in bounded time, and the run resumes across process counts on
exactly the uninterrupted run's examples.

Each process is this file run as a script (`probe`): train.py's own code path with the device cache,
whose training stream is index batches, i.e. the example ids; the probe records (position, ids) of
every batch this process streams. The subprocesses get KERAS_BACKEND=jax explicitly, so the tests run
alike in the TensorFlow and the JAX pass of the suite.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SGD, not the preset's RMSprop: RMSprop divides each gradient by its running RMS, which turns the rounding
# of a near-zero gradient (processes sum the all-reduce in another order than one process does) into a
# learning-rate-sized step; measured, 12 steps of 2 x 2 vs 1 x 4: 58,399 of 2,003,524 weights off by up to
# 0.019 with RMSprop (all in channels whose gradients are near zero), none beyond 1e-6 + 1e-4 |w| with SGD.
# With SGD the weight comparison below is sharp.
ARGS = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
        '--head=gap', '--batch_size=16', '--precision=float32', '--validation_split=0.05',
        '--cache=device', '--augment=flip_crop', '--deterministic', '--seed=3', '--optimizer=sgd']
TIMEOUT_S = 240  # per process: a hard stop, far above a normal run here


def _probe(model_dir: str, record: str, args: list[str]) -> None:
    """Runs train.py's main recording (position, ids) of this process's rows into `record`.pID."""
    from tests.conftest import run_train_recording_ids
    run_train_recording_ids(model_dir, f'{record}.p{os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0")}', args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(model_dir, record, args, *, processes: int, devices: int, env=None) -> list[subprocess.Popen]:
    """Starts `processes` probes, `devices` CPU devices each, as one job (a coordinator on loopback)."""
    port = _free_port()
    procs = []
    for i in range(processes):
        penv = dict(os.environ, KERAS_BACKEND='jax', JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
                    PYTHONPATH=ROOT, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
                    **(env or {}))
        for key in ('KERAS_DISTRIBUTION_JOB_ADDRESSES', 'KERAS_DISTRIBUTION_NUM_PROCESSES',
                    'KERAS_DISTRIBUTION_PROCESS_ID'):
            penv.pop(key, None)
        if processes > 1:
            penv.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f'127.0.0.1:{port}',
                        KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes), KERAS_DISTRIBUTION_PROCESS_ID=str(i))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(model_dir), str(record), *args], cwd=ROOT,
            env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs, timeout=TIMEOUT_S) -> list[tuple[int, str, str]]:
    """(returncode, stdout, stderr) of each process; kills all of them past `timeout`."""
    deadline = time.time() + timeout
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=max(1, deadline - time.time()))
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


def _ok(results):
    for rc, stdout, stderr in results:
        assert rc == 0, stdout[-2000:] + stderr[-3000:]


def _batches(record, processes: int) -> dict[int, list[int]]:
    """{position: global batch ids}: the processes' rows of each batch, in process order."""
    parts = []
    for i in range(processes):
        seen = {}
        for line in open(f'{record}.p{i}'):
            position, ids = json.loads(line)
            # A position may be streamed twice (a fit's stream prefetches past its end); same ids.
            assert seen.setdefault(position, ids) == ids, position
        parts.append(seen)
    common = set.intersection(*(set(p) for p in parts))
    return {pos: [i for p in parts for i in p[pos]] for pos in sorted(common)}


def _weights(model_dir):
    import keras
    model = keras.saving.load_model(os.path.join(model_dir, 'model.keras'))
    return [w.numpy() for w in model.weights]


def _close(a_dir, b_dir):
    # The same all-reduce over 4 devices, summed in another order across processes: float rounding only.
    for a, b in zip(_weights(a_dir), _weights(b_dir)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_processes_of_two_devices_train_like_one_process_of_four(tmp_path):
    args = ARGS + ['--steps_per_epoch=3', '--epochs=1']
    private = tmp_path / 'tmp'
    private.mkdir()
    # The two processes each cache their share (auto, a new run); one process is told to draw alike.
    two = _launch(tmp_path / 'two', tmp_path / 'two.jsonl', args, processes=2, devices=2,
                  env={'TMPDIR': str(private)})
    one = _launch(tmp_path / 'one', tmp_path / 'one.jsonl', args + ['--process_cache=share'], processes=1,
                  devices=4)
    two_out, one_out = _finish(two), _finish(one)
    _ok(two_out + one_out)

    assert 'batch: 16 global, 4 per replica on 4 replica(s)' in two_out[1][1]
    # 2048 synthetic examples, 5% validation: 1946 train; rows 8..15 are blocks 8..15 of 16.
    assert ('process 1 of 2: feeds rows 8..15 of each global batch, gathered from its own cache of its '
            'share of the training split, examples 973..1945 (973 of 1946); --process_cache=share: a new '
            'run on 2 processes') in two_out[1][1]
    mine = [json.loads(line)[1] for line in open(tmp_path / 'two.jsonl.p1')]
    assert all(973 <= i < 1946 for ids in mine for i in ids)
    # Every global batch is the one-process run's, each process streaming its half.
    expected = _batches(tmp_path / 'one.jsonl', 1)
    got = _batches(tmp_path / 'two.jsonl', 2)
    assert sorted(got)[:3] == [0, 1, 2]
    assert all(got[p] == expected[p] for p in range(3))
    _close(tmp_path / 'two', tmp_path / 'one')
    # Process 0 wrote the records; every test example counted once across the two processes.
    results = json.load(open(tmp_path / 'two' / 'results.json'))
    assert results['num_examples'] == 512 and results['optimizer_iterations'] == 3
    assert abs(results['top1'] - json.load(open(tmp_path / 'one' / 'results.json'))['top1']) < 1e-6
    assert not os.path.exists(tmp_path / 'two' / 'backup')
    assert not [n for n in os.listdir(private) if n.startswith('process-')]  # process 1 kept nothing


def _positions(record) -> list[int]:
    """The stream positions a probe recorded so far (complete lines only)."""
    if not os.path.exists(record):
        return []
    with open(record) as f:
        return [json.loads(line)[0] for line in f if line.endswith('\n')]


def _backup_steps(run) -> list[int]:
    backups = run / 'backup'
    return sorted(int(n.split('-')[1]) for n in os.listdir(backups) if n.startswith('step-')) \
        if backups.exists() else []


@pytest.mark.slow
def test_a_job_preempted_then_losing_a_process_finishes_on_one_process_on_exactly_the_same_examples(tmp_path):
    """One run through both faults, the cheapest way to test each (CI time): a SIGTERM to process 1 only
    stops both processes after one step S with one backup, step S; the rerun on 2 processes resumes at S
    and loses process 1 to a SIGKILL: process 0 ends with one line in bounded time; the rerun as 1 process
    of 4 devices finishes. Every step of the three trained the uninterrupted run's examples."""
    steps, epochs = 6, 2
    # No periodic backup in the first part: the one backup is the SIGTERM's.
    args = ARGS + [f'--steps_per_epoch={steps}', f'--epochs={epochs}', '--checkpoint_every_steps=1000']
    # The job shares the cache (auto, new run): the uninterrupted reference draws its batches alike.
    reference = _launch(tmp_path / 'ref', tmp_path / 'ref.jsonl', args + ['--process_cache=share'],
                        processes=1, devices=4)
    run = tmp_path / 'run'
    job = _launch(run, tmp_path / 'first.jsonl', args, processes=2, devices=2)
    deadline = time.time() + TIMEOUT_S
    try:
        # A recorded batch means fit runs, so the SIGTERM handler is in place; position 3 (the stream
        # prefetches a few batches ahead) means training is under way.
        while max(_positions(f'{tmp_path / "first.jsonl"}.p1'), default=-1) < 3:
            assert all(p.poll() is None for p in job), 'the job ended before the signal'
            assert time.time() < deadline, 'the job never started training'
            time.sleep(0.05)
        job[1].send_signal(signal.SIGTERM)
        signalled_at = time.time()
        results = _finish(job, timeout=120)
        waited = time.time() - signalled_at
    finally:
        _finish(job)
    lines = []
    for rc, stdout, stderr in results:
        # Each ends as a preempted run ends (train.py: exit 143 and the line naming the shared folder).
        assert rc == 143, stdout[-2000:] + stderr[-3000:]
        assert f'preempted: state saved in {run}; rerun the same command to resume.' in stdout
        assert 'sent no heartbeat' not in stderr
        lines.append(re.findall(r'SIGTERM on process 1 of 2: every process stops after global step (\d+)',
                                stderr))
    assert waited < 60, waited  # one step, the save, the exit; no peer timeout
    stop = int(lines[0][0])
    assert lines == [[str(stop)], [str(stop)]]  # one line on each process, the same step
    assert _backup_steps(run) == [stop] and 1 <= stop < steps * epochs - 3, _backup_steps(run)

    # The rerun on 2 processes, saving every step (an operational flag: the resume accepts it); process 1
    # is killed two steps on. The peer timeout is 5 s here (20 s by default).
    job = _launch(run, tmp_path / 'second.jsonl', [*args, '--checkpoint_every_steps=1'], processes=2,
                  devices=2, env={'FASTCLASSIFY_PEER_TIMEOUT_S': '5'})
    try:
        while max(_backup_steps(run)) < stop + 2:
            assert all(p.poll() is None for p in job), 'the job ended before it could be killed'
            assert time.time() < deadline + TIMEOUT_S, 'the resumed job never trained'
            time.sleep(0.05)
        job[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        rc, stdout, stderr = _finish(job[:1], timeout=60)[0]
        waited = time.time() - killed_at
    finally:
        _finish(job)
    assert f'resuming from the backup in {run / "backup"}' in stdout
    assert rc != 0
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith('multi-process job stopped: process 1 of 2 sent no heartbeat'), stderr[-2000:]
    assert waited < 30, waited  # 5 s of silence, checked every second, plus a loaded machine's slack
    saved = max(_backup_steps(run))
    assert stop + 2 <= saved < steps * epochs

    # The last rerun: one process of four devices, the same global batch (auto keeps the run's order).
    resumed = _finish(_launch(run, tmp_path / 'third.jsonl', args, processes=1, devices=4))
    _ok(resumed + _finish(reference))
    assert f'resuming from the backup in {run / "backup"}' in resumed[0][1]
    expected = _batches(tmp_path / 'ref.jsonl', 1)
    first, second = _batches(tmp_path / 'first.jsonl', 2), _batches(tmp_path / 'second.jsonl', 2)
    third = _batches(tmp_path / 'third.jsonl', 1)
    assert all(first[p] == expected[p] for p in range(stop))
    assert min(second) == stop and all(second[p] == expected[p] for p in range(stop, saved))
    assert min(third) == saved and all(third[p] == expected[p] for p in range(saved, steps * epochs))
    _close(run, tmp_path / 'ref')
    assert json.load(open(run / 'results.json'))['optimizer_iterations'] == steps * epochs


@pytest.mark.slow
def test_two_processes_consume_one_tf_data_service_job(tmp_path):
    from tests.test_data_service import _start  # the CLI's dispatcher and worker, on loopback
    dispatcher, port = _start(['dispatcher', '--port=0'], r'grpc://localhost:(\d+)')
    worker = None
    try:
        worker = _start(['worker', f'--dispatcher=localhost:{port}', '--port=0'], r'worker on port (\d+)')[0]
        args = ARGS + ['--steps_per_epoch=2', '--epochs=1', '--cache=memory',
                       f'--data_service=grpc://localhost:{port}', '--data_service_mode=distributed_epoch',
                       '--data_service_stall_timeout_s=120']
        results = _finish(_launch(tmp_path / 'run', tmp_path / 'run.jsonl', args, processes=2, devices=2))
    finally:
        for proc in (worker, dispatcher):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    _ok(results)
    # Both consumed the same job (one job name), each receiving its 8 rows of the 16-image batch.
    assert 'process 1 of 2: feeds rows 8..15' in results[1][1]
    assert json.load(open(tmp_path / 'run' / 'results.json'))['optimizer_iterations'] == 2


if __name__ == '__main__':
    _probe(sys.argv[1], sys.argv[2], sys.argv[3:])
