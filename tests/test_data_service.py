"""pipelines/data_service.py: the worker pipeline, and a real dispatcher + two workers on loopback.

The servers are started with the module's own CLI (`python -m cli.data_service ...`) as
subprocesses, so the test also proves the commands BUILD.md gives. The worker-kill test consumes in a
subprocess of its own (this file run as a script) so that a hang fails the test instead of freezing it.
"""

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.experimental.ops import testing as tf_data_testing  # test-only sleep op

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script by the worker-kill test: conftest.py is not loaded there
    sys.path.insert(0, ROOT)

from cli.data_service import start_dispatcher  # noqa: E402
from fastclassify.pipelines import data_service, synthetic  # noqa: E402

SIZE = 16
BATCH = 8
SERVER_START_TIMEOUT_S = 60


def id_records(num_examples: int) -> tf.data.Dataset:
    """Encoded JPEG records whose label is the example id, so consumers can count who was served."""
    blobs, _ = synthetic.encoded_examples(min(num_examples, 32), 10, size_range=(20, 40))
    ids = np.arange(num_examples, dtype=np.int64)
    return synthetic.records_dataset([blobs[i % len(blobs)] for i in ids], ids)


def test_service_config_names_the_flag_the_bad_value_and_the_choices():
    with pytest.raises(ValueError, match=r"--data_service='localhost:5050' is not valid; use grpc://HOST:PORT"):
        data_service.ServiceConfig('localhost:5050')
    with pytest.raises(ValueError, match='--data_service_mode=.every. .*distributed_epoch, parallel_epochs'):
        data_service.ServiceConfig('grpc://localhost:5050', mode='every')


def test_distributed_epoch_worker_pipeline_is_one_epoch_with_its_remainder():
    ds = data_service.worker_pipeline(id_records(20), mode='distributed_epoch', batch_size=BATCH,
                                      image_size=SIZE, num_examples=20)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [8, 8, 4]  # the remainder is kept; the trainer rebatches
    assert sorted(np.concatenate([y.numpy() for _, y in batches])) == list(range(20))
    assert batches[0][0].dtype == tf.uint8 and batches[0][0].shape[1:] == (SIZE, SIZE, 3)


def test_parallel_epochs_worker_pipeline_is_endless_static_and_a_permutation_per_epoch():
    ds = data_service.worker_pipeline(id_records(24), mode='parallel_epochs', batch_size=BATCH,
                                      image_size=SIZE, num_examples=24)
    batches = list(ds.take(6))  # two epochs
    assert all(x.shape == (BATCH, SIZE, SIZE, 3) for x, _ in batches)
    ids = np.concatenate([y.numpy() for _, y in batches])
    assert sorted(ids[:24]) == list(range(24)) and sorted(ids[24:]) == list(range(24))
    assert list(ids[:24]) != list(ids[24:])  # reshuffled each epoch


def test_two_workers_building_the_same_graph_shuffle_differently():
    # Keras fixes the global seed; a graph-fixed shuffle would make parallel_epochs workers send the
    # same order in lockstep. Each build here stands for one worker receiving the same graph.
    orders = []
    for _ in range(2):
        tf.random.set_seed(0)
        ds = data_service.worker_pipeline(id_records(64), mode='parallel_epochs', batch_size=BATCH,
                                          image_size=SIZE, num_examples=64)
        orders.append(np.concatenate([y.numpy() for _, y in ds.take(8)]).tolist())
        time.sleep(0.01)
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(64))
    assert orders[0] != orders[1]


def _start(args: list[str], pattern: str) -> tuple[subprocess.Popen, str]:
    """Starts a server subprocess and waits (bounded) for the line that names its port."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, '-m', 'cli.data_service', *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f'{args[0]} did not start within {SERVER_START_TIMEOUT_S}s')


@pytest.fixture(scope='module')
def service():
    """A dispatcher and two workers on loopback, started by the CLI; stopped with SIGTERM at the end."""
    dispatcher, port = _start(['dispatcher', '--port=0'], r'grpc://localhost:(\d+)')
    workers = []
    try:
        for _ in range(2):
            workers.append(_start(['worker', f'--dispatcher=localhost:{port}', '--port=0'],
                                  r'worker on port (\d+)')[0])
        yield {'address': f'grpc://localhost:{port}', 'workers': workers}
    finally:
        for proc in [*workers, dispatcher]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*workers, dispatcher]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_distributed_epoch_serves_every_example_exactly_once_per_epoch(service):
    n = 60  # not a multiple of BATCH (but 2 * n is): epochs straddle batches, nothing may be dropped
    cfg = data_service.ServiceConfig(service['address'], mode='distributed_epoch', job_name='exactly-once',
                                     batch_size=BATCH, image_size=SIZE)
    worker = data_service.worker_pipeline(id_records(n), mode='distributed_epoch', batch_size=BATCH,
                                          image_size=SIZE, num_examples=n)
    batches = list(data_service.distribute(worker, cfg).take(2 * n // BATCH))  # two whole epochs
    assert all(x.shape == (BATCH, SIZE, SIZE, 3) for x, _ in batches)
    ids = np.concatenate([y.numpy() for _, y in batches])
    for epoch in range(2):
        counts = collections.Counter(ids[epoch * n:(epoch + 1) * n].tolist())
        assert counts == {i: 1 for i in range(n)}, f'epoch {epoch}: {counts}'


@pytest.mark.slow
def test_the_trainer_fits_from_the_service(service, tmp_path):
    import keras  # pylint: disable=import-outside-toplevel
    from fastclassify.models.config import ModelConfig  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.augment import AugmentConfig, Augmenter  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.pipeline import PipelineConfig  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.sources import SourceConfig  # pylint: disable=import-outside-toplevel
    from fastclassify.training.config import RunConfig, TrainConfig  # pylint: disable=import-outside-toplevel
    from fastclassify.training.optimizers import OptimizerConfig  # pylint: disable=import-outside-toplevel
    from fastclassify.training.trainer import Trainer  # pylint: disable=import-outside-toplevel

    cfg = TrainConfig(
        source=SourceConfig('cifar100'),
        pipeline=PipelineConfig(cache_size=SIZE, batch_size=BATCH),
        augment=AugmentConfig(policy='none', image_size=SIZE, num_classes=100),
        model=ModelConfig('cifar_resnet9', num_classes=100, image_size=32),
        optimizer=OptimizerConfig(),
        run=RunConfig(model_dir=str(tmp_path), synthetic_data=True, data_service=service['address'],
                      data_service_mode='parallel_epochs'))
    service_cfg = data_service.ServiceConfig(service['address'], mode='parallel_epochs', job_name='train-run')
    train = data_service.distribute_train(service_cfg, cfg.source.dataset, cfg.pipeline, None)
    assert train.element_spec[0].shape.as_list() == [BATCH, SIZE, SIZE, 3]

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation='relu')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.Model(inputs, keras.layers.Dense(100, activation='softmax', dtype='float32')(x))
    trainer = Trainer(classifier, Augmenter(cfg.augment), 100)
    trainer.compile(optimizer='sgd', loss=keras.losses.CategoricalCrossentropy())
    history = trainer.fit(train, epochs=2, steps_per_epoch=5, verbose=0)
    assert len(history.history['loss']) == 2 and np.all(np.isfinite(history.history['loss']))
    assert int(trainer.optimizer.iterations.numpy()) == 10


def test_service_config_rejects_a_non_positive_stall_timeout():
    with pytest.raises(ValueError, match='stall_timeout_s=0 must be positive'):
        data_service.ServiceConfig('grpc://localhost:5050', stall_timeout_s=0)


def test_a_stalled_service_read_fails_with_a_message_naming_the_dispatcher():
    # A dispatcher with no workers: TF's client waits for a task forever; the watchdog must end the read.
    dispatcher = start_dispatcher(0)
    address = f'grpc://localhost:{dispatcher.target.rsplit(":", 1)[1]}'
    cfg = data_service.ServiceConfig(address, job_name='nobody-home', batch_size=BATCH, image_size=SIZE,
                                     stall_timeout_s=2)
    ds = data_service.distribute(tf.data.Dataset.range(4).batch(2), cfg)
    start = time.monotonic()
    with pytest.raises(tf.errors.OpError, match=rf"DataServiceStalledError: tf.data service {re.escape(address)} "
                                                 r"\(job 'nobody-home', distributed_epoch\) sent no batch for 2 s"):
        next(iter(ds))
    assert time.monotonic() - start < 30


@pytest.mark.slow
def test_killing_a_worker_mid_epoch_does_not_hang_the_trainer(service):
    """Runs last in this module: it SIGKILLs one of the fixture's workers while the consumer reads.

    Bounded outcome, either way: the consumer finishes (the dead worker held no unserved examples; with
    today's pipeline one worker may hold the whole epoch's single split, so this happens when the idle
    worker is the one killed), or it fails with DataServiceStalledError naming the dispatcher within
    KILL_TEST_STALL_S plus slack (TF never releases a dead worker's task). It must never hang.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
    consumer = subprocess.Popen([sys.executable, os.path.abspath(__file__), service['address']],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout.readline().strip() == 'consuming', consumer.stderr.read()[-2000:]
        service['workers'][1].kill()  # SIGKILL: no goodbye to the dispatcher
        out, err = consumer.communicate(timeout=KILL_TEST_BOUND_S)
    except subprocess.TimeoutExpired:
        consumer.kill()
        pytest.fail(f'the consumer hung for more than {KILL_TEST_BOUND_S}s after a worker died')
    if consumer.returncode == 0:
        assert int(re.search(r'batches=(\d+)', out).group(1)) == KILL_TEST_BATCHES
    else:
        assert consumer.returncode == KILL_TEST_STALLED_RC, err[-3000:]
        assert re.search(rf"DataServiceStalledError: tf.data service {re.escape(service['address'])} "
                         rf"\(job 'worker-dies', distributed_epoch\) sent no batch for {KILL_TEST_STALL_S} s",
                         out), out[-3000:]


KILL_TEST_STALL_S = 15
KILL_TEST_BOUND_S = KILL_TEST_STALL_S + 45  # the stall timeout, plus slack for a loaded machine
KILL_TEST_BATCHES = 60
KILL_TEST_STALLED_RC = 3


def _consume_through_a_worker_death(address: str) -> None:
    """Subprocess side: reads KILL_TEST_BATCHES batches, announcing when the parent may kill a worker."""
    n = 400
    cfg = data_service.ServiceConfig(address, mode='distributed_epoch', job_name='worker-dies',
                                     batch_size=BATCH, image_size=SIZE, max_outstanding_requests=2,
                                     stall_timeout_s=KILL_TEST_STALL_S)
    slow = data_service.worker_pipeline(id_records(n), mode='distributed_epoch', batch_size=BATCH,
                                        image_size=SIZE, num_examples=n)
    # Slowed on the workers so the kill lands mid-epoch, not after the workers ran ahead to the end.
    # 100 ms a batch (a graph op: it runs on the workers): an epoch (50 batches) lasts >= 5 s.
    slow = slow.apply(tf_data_testing.sleep(100_000))
    iterator = iter(data_service.distribute(slow, cfg))
    try:
        for i in range(KILL_TEST_BATCHES):
            next(iterator)
            if i == 3:
                print('consuming', flush=True)
    except tf.errors.OpError as e:
        print(e.message.splitlines()[0] if 'DataServiceStalledError' not in e.message else
              next(line for line in e.message.splitlines() if 'DataServiceStalledError' in line), flush=True)
        sys.exit(KILL_TEST_STALLED_RC)
    print(f'batches={KILL_TEST_BATCHES}', flush=True)


if __name__ == '__main__':
    _consume_through_a_worker_death(sys.argv[1])


def test_dispatcher_that_is_down_is_one_line_naming_the_flag():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # free, and nobody listens once closed
    with pytest.raises(ValueError, match=rf'--data_service=grpc://127.0.0.1:{port}: no dispatcher answers'):
        data_service.check_dispatcher(f'grpc://127.0.0.1:{port}', timeout_s=2)
