"""MultiWorkerMirroredStrategy from TF_CONFIG: two worker processes on localhost train in lockstep.

Each worker is a subprocess with its own TF_CONFIG (the strategy must be built before TensorFlow starts
its runtime, once per process). The first test drives the real Trainer through `training.strategy`
directly; the second runs `train.py` itself and checks that one set of outputs is written.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

WORKER_TIMEOUT_S = 240
GLOBAL_BATCH = 8
STEPS = 3


def _free_ports(count: int) -> list[int]:
    """Ports free now, drawn below the kernel's ephemeral range: a port from `bind(0)` is released before
    the workers bind it, and any process's outgoing connection (or `bind(0)`) could take it meanwhile; a
    port outside that range is only taken by a process that asks for it by number."""
    low = _ephemeral_range()[0]
    rng = np.random.default_rng()
    ports: list[int] = []
    while len(ports) < count:
        port = int(rng.integers(max(1024, low - 12_000), low))
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(('localhost', port))
            except OSError:
                continue
        ports.append(port)
    return ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low, high = f.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _all_stderr(results) -> str:
    """Every worker's exit code and stderr tail: a cluster failure is often another worker's crash."""
    return '\n'.join(f'--- worker {i} (rc {r.returncode}) stderr:\n{r.stderr[-3000:]}'
                     for i, r in enumerate(results))


def _run_cluster(argv_for_worker, cwd) -> list[subprocess.CompletedProcess]:
    """Starts one process per worker with TF_CONFIG set, waits (bounded) for all, returns their results."""
    workers = [f'localhost:{p}' for p in _free_ports(2)]
    procs = []
    for index in range(len(workers)):
        config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT,
                   CUDA_VISIBLE_DEVICES='')
        procs.append(subprocess.Popen(argv_for_worker(index), cwd=cwd, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return results


@pytest.mark.slow
def test_two_workers_train_in_lockstep_and_only_the_chief_writes(tmp_path):
    model_dir = tmp_path / 'run'
    model_dir.mkdir()
    results = _run_cluster(lambda i: [sys.executable, os.path.abspath(__file__), str(model_dir)], ROOT)
    for r in results:
        assert r.returncode == 0, _all_stderr(results)
    reports = [json.loads(r.stdout.strip().splitlines()[-1]) for r in results]
    assert [r['chief'] for r in reports] == [True, False]
    assert all(r['replicas'] == 2 and r['iterations'] == STEPS for r in reports)
    # All-reduced gradients: both workers hold the same weights, and they moved.
    np.testing.assert_allclose(reports[0]['weights'], reports[1]['weights'], rtol=1e-6, atol=1e-7)
    assert reports[0]['weights'] != reports[0]['initial']
    # The logged loss is the global one (both shards), not each worker's own.
    np.testing.assert_allclose(reports[0]['loss'], reports[1]['loss'], rtol=1e-6)
    # Each worker read its own half of the data (input pipeline 0 and 1 of 2).
    assert sorted([r['pipeline'] for r in reports]) == [[0, 2], [1, 2]]
    assert sorted(os.listdir(model_dir)) == ['result.json']
    assert not os.path.exists(reports[1]['wrote_to'])  # the non-chief's throwaway folder is gone


@pytest.mark.slow
def test_train_py_with_two_workers_writes_one_set_of_outputs(tmp_path):
    model_dir = tmp_path / 'run'
    args = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
            '--batch_size=8', '--steps_per_epoch=2', '--epochs=1', '--precision=float32',
            '--strategy=multi_worker', f'--model_dir={model_dir}']
    results = _run_cluster(lambda i: [sys.executable, 'train.py', *args], ROOT)
    for r in results:
        assert r.returncode == 0, _all_stderr(results)
    assert 'batch: 8 global, 4 per replica on 2 replica(s)' in results[0].stdout
    assert (model_dir / 'results.json').exists() and (model_dir / 'model.keras').exists()
    results_json = json.loads((model_dir / 'results.json').read_text())
    assert results_json['optimizer_iterations'] == 2
    # Nothing from the second worker lands next to the chief's outputs.
    assert not [n for n in os.listdir(model_dir) if 'worker' in n]


@pytest.mark.slow
def test_a_worker_paused_longer_than_tfs_default_heartbeat_timeout_does_not_fail_the_cluster(tmp_path):
    """A busy host (a loaded CI machine) can keep a worker from heartbeating for over 10 s, TF's default
    timeout, after which the chief failed with "tasks are unhealthy (stopped sending heartbeats)"."""
    import signal
    import time

    model_dir = tmp_path / 'run'
    args = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
            '--batch_size=8', '--steps_per_epoch=2', '--epochs=1', '--precision=float32',
            '--strategy=multi_worker', f'--model_dir={model_dir}']
    workers = [f'localhost:{p}' for p in _free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT,
                   CUDA_VISIBLE_DEVICES='')
        out, err = open(tmp_path / f'out{index}', 'w+'), open(tmp_path / f'err{index}', 'w+')
        logs.append((out, err))
        procs.append(subprocess.Popen([sys.executable, 'train.py', *args], cwd=ROOT, env=env, text=True,
                                      stdout=out, stderr=err))
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        # Worker 1 joined the cluster (its strategy is built): from now on it must heartbeat.
        while 'devices:' not in (tmp_path / 'out1').read_text() and time.monotonic() < deadline:
            assert procs[1].poll() is None, (tmp_path / 'err1').read_text()[-3000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGSTOP)
        time.sleep(15)
        procs[1].send_signal(signal.SIGCONT)
        codes = [proc.wait(timeout=max(1, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
    results = [subprocess.CompletedProcess(p.args, c, (tmp_path / f'out{i}').read_text(),
                                           (tmp_path / f'err{i}').read_text())
               for i, (p, c) in enumerate(zip(procs, codes))]
    assert codes == [0, 0], _all_stderr(results)
    assert (model_dir / 'results.json').exists()


def _worker_main(model_dir: str) -> None:
    """One worker of the lockstep test: a tiny model, per-worker input, the chief alone keeps its output."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from fastclassify.training import strategy as strategy_lib  # pylint: disable=import-outside-toplevel

    strategy = strategy_lib.build_strategy('auto')  # TF_CONFIG with two workers -> multi_worker
    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), type(strategy)
    import keras  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.augment import AugmentConfig, Augmenter  # pylint: disable=import-outside-toplevel
    from fastclassify.training.trainer import Trainer  # pylint: disable=import-outside-toplevel

    size, classes = 8, 4
    keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = keras.Input((size, size, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(4, 3, activation='relu')(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        classifier = keras.Model(inputs, keras.layers.Dense(classes, activation='softmax', dtype='float32')(x))
        trainer = Trainer(classifier, Augmenter(AugmentConfig(policy='none', image_size=size,
                                                              num_classes=classes)), classes)
        trainer.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.CategoricalCrossentropy())
    initial = np.concatenate([w.numpy().ravel() for w in classifier.weights])

    context = strategy_lib.input_context(strategy, GLOBAL_BATCH)
    rng = np.random.default_rng(context.input_pipeline_id)  # each worker's shard differs
    images = rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, 64).astype(np.int32)
    dataset = (tf.data.Dataset.from_tensor_slices((images, labels))
               .batch(context.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True).repeat())
    history = trainer.fit(strategy_lib.distribute_per_worker(strategy, dataset), epochs=1,
                          steps_per_epoch=STEPS, verbose=0)
    weights = np.concatenate([w.numpy().ravel() for w in classifier.weights])

    chief = strategy_lib.is_chief(strategy)
    out_dir = strategy_lib.worker_dir(model_dir, strategy)
    with open(os.path.join(out_dir, 'result.json'), 'w') as f:
        json.dump({'steps': STEPS}, f)
    strategy_lib.remove_worker_dir(out_dir, model_dir)
    print(json.dumps({'chief': chief, 'replicas': strategy.num_replicas_in_sync,
                      'iterations': int(trainer.optimizer.iterations.numpy()),
                      'pipeline': [context.input_pipeline_id, context.num_input_pipelines],
                      'wrote_to': out_dir, 'loss': history.history['loss'], 'initial': initial.tolist(), 'weights': weights.tolist()}))


if __name__ == '__main__':
    _worker_main(sys.argv[1])
