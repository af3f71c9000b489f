"""training/strategy.py: `auto` resolution, chief and input-pipeline roles, and MirroredStrategy numerics.

The numerics test needs two logical CPU devices, which must be configured before TensorFlow starts, so
it runs this file as a script in a fresh process (`python tests/test_strategy.py NAME FEED`).
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from fastclassify.training import strategy as strategy_lib  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 4


def _fake_strategy(cluster: dict, task_type, task_id, replicas=1):
    """An object with what `is_chief` / `input_context` read from a multi-worker strategy."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver, num_replicas_in_sync=replicas)


CLUSTER = {'worker': ['localhost:1', 'localhost:2', 'localhost:3']}
CLUSTER_WITH_CHIEF = {'chief': ['localhost:0'], 'worker': ['localhost:1', 'localhost:2']}


@pytest.mark.parametrize('cluster, task_type, task_id, chief', [
    (CLUSTER, 'worker', 0, True),
    (CLUSTER, 'worker', 2, False),
    (CLUSTER_WITH_CHIEF, 'chief', 0, True),
    (CLUSTER_WITH_CHIEF, 'worker', 0, False),  # a named chief outranks worker 0
    (CLUSTER_WITH_CHIEF, 'evaluator', 0, False),
])
def test_is_chief_follows_keras_convention(cluster, task_type, task_id, chief):
    assert strategy_lib.is_chief(_fake_strategy(cluster, task_type, task_id)) is chief


def test_single_process_is_its_own_chief_and_writes_in_model_dir(tmp_path):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    one = tf.distribute.OneDeviceStrategy('/cpu:0')
    assert strategy_lib.is_chief(one)
    assert strategy_lib.worker_dir(str(tmp_path), one) == str(tmp_path)


def test_non_chief_writes_to_a_private_folder_that_is_removed(tmp_path):
    worker = _fake_strategy(CLUSTER, 'worker', 1)
    path = strategy_lib.worker_dir(str(tmp_path), worker)
    assert path != str(tmp_path) and os.path.isdir(path) and not path.startswith(str(tmp_path))
    strategy_lib.remove_worker_dir(path, str(tmp_path))
    assert not os.path.exists(path)
    strategy_lib.remove_worker_dir(str(tmp_path), str(tmp_path))  # the chief's folder survives
    assert os.path.isdir(tmp_path)


def test_input_context_numbers_the_chief_first_and_splits_the_batch():
    contexts = [strategy_lib.input_context(_fake_strategy(CLUSTER_WITH_CHIEF, t, i, replicas=6), 96)
                for t, i in (('chief', 0), ('worker', 0), ('worker', 1))]
    assert [c.input_pipeline_id for c in contexts] == [0, 1, 2]
    assert all(c.num_input_pipelines == 3 for c in contexts)
    assert contexts[0].get_per_replica_batch_size(96) == 16
    with pytest.raises(ValueError, match='--batch_size=100 .* multiple of the 6 replicas'):
        strategy_lib.input_context(_fake_strategy(CLUSTER, 'worker', 0, replicas=6), 100)


def test_auto_picks_multi_worker_from_tf_config_and_one_device_otherwise(monkeypatch):
    for var in ('TPU_NAME', 'COLAB_TPU_ADDR', 'TF_CONFIG'):
        monkeypatch.delenv(var, raising=False)
    assert strategy_lib.resolve_name('auto') == 'one_device'  # this machine: CPU only
    monkeypatch.setenv('TF_CONFIG', json.dumps({'cluster': CLUSTER, 'task': {'type': 'worker', 'index': 1}}))
    assert strategy_lib.resolve_name('auto') == 'multi_worker'
    monkeypatch.setenv('TPU_NAME', 'my-tpu')
    assert strategy_lib.resolve_name('auto') == 'tpu'
    assert strategy_lib.resolve_name('mirrored') == 'mirrored'


def test_unusable_requests_fail_with_one_line_that_says_what_to_do(monkeypatch):
    for var in ('TPU_NAME', 'COLAB_TPU_ADDR'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(strategy_lib.StrategyError, match='--strategy=tpu but no TPU was found'):
        strategy_lib.build_strategy('tpu')
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(strategy_lib.StrategyError, match='--strategy=multi_worker needs TF_CONFIG'):
        strategy_lib.build_strategy('multi_worker')
    monkeypatch.setenv('TF_CONFIG', '{not json')
    with pytest.raises(strategy_lib.StrategyError, match='TF_CONFIG is not valid JSON'):
        strategy_lib.resolve_name('auto')


def _run_replicas(name: str, feed: str) -> dict:
    """Trains the tiny model STEPS steps in a fresh process with two logical CPUs; returns what it printed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
    env.pop('TF_CONFIG', None)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), name, feed], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_mirrored_replicas_match_one_replica_at_the_same_global_batch():
    one = _run_replicas('one_device', 'global')
    assert one['replicas'] == 1
    for feed in ('global', 'per_worker'):  # Keras splitting global batches, and our per-replica feed
        two = _run_replicas('mirrored', feed)
        assert two['replicas'] == 2
        np.testing.assert_allclose(two['initial'], one['initial'], rtol=0, atol=0)
        np.testing.assert_allclose(two['losses'], one['losses'], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(two['weights'], one['weights'], rtol=1e-4, atol=1e-6)
    assert one['losses'][-1] < one['losses'][0]  # it trained at all


def _replicas_main(name: str, feed: str) -> None:
    """The subprocess side of the numerics test: the real Trainer + augmenter 'none', a tiny model."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.augment import AugmentConfig, Augmenter  # pylint: disable=import-outside-toplevel
    from fastclassify.training.trainer import Trainer  # pylint: disable=import-outside-toplevel

    size, classes = 8, 4
    strategy = strategy_lib.build_strategy(name)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (GLOBAL_BATCH * STEPS, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, GLOBAL_BATCH * STEPS).astype(np.int32)

    keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = keras.Input((size, size, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(4, 3, activation='relu')(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(classes, activation='softmax', dtype='float32')(x)
        classifier = keras.Model(inputs, outputs)
        augmenter = Augmenter(AugmentConfig(policy='none', image_size=size, num_classes=classes))
        trainer = Trainer(classifier, augmenter, classes)
        trainer.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.CategoricalCrossentropy())
    initial = np.concatenate([w.numpy().ravel() for w in classifier.weights])

    if feed == 'global':
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(GLOBAL_BATCH)
    else:
        context = strategy_lib.input_context(strategy, GLOBAL_BATCH)
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        dataset = strategy_lib.distribute_per_worker(
            strategy, tf.data.Dataset.from_tensor_slices((images, labels)).batch(per_replica))
    losses = []
    # The loss of each step alone: Keras' logged loss is a running mean, so undo the averaging.
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs['loss'])))
    trainer.fit(dataset, epochs=1, steps_per_epoch=STEPS, verbose=0, callbacks=[record])
    step_losses = [losses[0]] + [(i + 1) * losses[i] - i * losses[i - 1] for i in range(1, len(losses))]
    weights = np.concatenate([w.numpy().ravel() for w in classifier.weights])
    print(json.dumps({'replicas': strategy.num_replicas_in_sync, 'losses': step_losses,
                      'initial': initial.tolist(), 'weights': weights.tolist()}))


if __name__ == '__main__':
    _replicas_main(sys.argv[1], sys.argv[2])
