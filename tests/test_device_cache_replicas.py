"""The device cache under MirroredStrategy and JAX DataParallel: one copy per replica device, each replica
gathers locally."""

import os
import subprocess
import sys
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # starts a subprocess
def test_each_replica_gathers_from_its_own_copy():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT, KERAS_BACKEND='tensorflow')
    result = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'ok' in result.stdout


@pytest.mark.slow  # starts a subprocess
def test_train_run_with_device_cache_on_two_mirrored_replicas(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT, KERAS_BACKEND='tensorflow')
    result = subprocess.run([sys.executable, os.path.abspath(__file__), 'train', str(tmp_path / 'run')],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'batch: 16 global, 8 per replica on 2 replica(s)' in result.stdout
    assert 'trained ok' in result.stdout


@pytest.mark.slow  # starts a subprocess
def test_jax_data_parallel_rows_gather_from_their_own_devices_copy():
    # What --process_cache=share relies on: each process's copy of the "replicated" cache holds its own
    # share, and a row only ever reads the copy on the device that computes it.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT, KERAS_BACKEND='jax',
               JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=4')
    result = subprocess.run([sys.executable, os.path.abspath(__file__), 'jax'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'ok' in result.stdout


def _jax_main():
    import jax
    import keras
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from fastclassify.pipelines.device_cache import DeviceCache

    keras.distribution.set_distribution(keras.distribution.DataParallel())
    images = np.arange(8 * 2 * 2 * 3, dtype=np.uint8).reshape(8, 2, 2, 3)
    cache = DeviceCache(images)
    mesh = keras.distribution.distribution().device_mesh.backend_mesh
    assert cache.pixels.value.sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec()), 4)
    devices = list(mesh.devices.flat)
    # Device d's copy: the images + d, so each output row shows which copy it was read from.
    marked = jax.make_array_from_single_device_arrays(
        images.shape, cache.pixels.value.sharding, [jax.device_put(images + d, dev) for d, dev in enumerate(devices)])
    cache.pixels.assign(marked)
    order = np.array([1, 6, 3, 7, 0, 2, 5, 4], np.int32)
    indices = jax.device_put(order, NamedSharding(mesh, PartitionSpec('batch')))
    rows = np.asarray(jax.jit(lambda pixels, i: cache.stateless_call([], [pixels], i)[0])(
        cache.pixels.value, indices))
    np.testing.assert_array_equal(rows, images[order] + (np.arange(8) // 2)[:, None, None, None])
    print('ok')


def _train(model_dir):
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from absl import flags
    import train
    from fastclassify.training import loop
    flags.FLAGS(['train.py', '--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9',
                 '--weights=none', '--head=gap', '--batch_size=16', '--steps_per_epoch=2', '--epochs=1',
                 '--precision=float32', '--cache=device', '--augment=flip_crop',
                 f'--model_dir={model_dir}'])
    outcome = loop.run(train.config_from_flags(), strategy=tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))
    assert outcome.status == 'finished' and outcome.results['optimizer_iterations'] == 2, outcome
    print('trained ok')


def _main():
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from fastclassify.pipelines.device_cache import DeviceCache

    images = np.arange(8 * 2 * 2 * 3, dtype=np.uint8).reshape(8, 2, 2, 3)
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    with strategy.scope():
        cache = DeviceCache(images)
    copies = cache.pixels.value.values  # the mirrored variable's per-replica components
    assert [c.device.endswith(f'CPU:{i}') for i, c in enumerate(copies)] == [True, True], copies
    # Mark replica 1's copy so the results show which copy each replica read.
    copies[1].assign(copies[1] + 1)

    @tf.function
    def step(indices):
        return strategy.run(cache, args=(indices,))

    indices = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([1, 6] if ctx.replica_id_in_sync_group == 0 else [3, 7], tf.int32))
    per_replica = strategy.experimental_local_results(step(indices))
    np.testing.assert_array_equal(per_replica[0].numpy(), images[[1, 6]])
    np.testing.assert_array_equal(per_replica[1].numpy(), images[[3, 7]] + 1)
    print('ok')


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == 'train':
        _train(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == 'jax':
        _jax_main()
    else:
        _main()
