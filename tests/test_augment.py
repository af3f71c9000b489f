"""The augmenter's contracts: config validation, dtypes, determinism, no per-image loop, replicas."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment

ALL_POLICIES = ['none', 'seed', 'flip_crop', 'rrc', 'randaugment', 'mixup', 'cutmix', 'erasing',
                'rrc+randaugment+erasing+mixup+cutmix']
# Ops that would mean a loop per image (while_loop, map_fn, vectorized_map fallbacks) or a warp without
# an XLA kernel.
LOOP_OPS = {'While', 'StatelessWhile', 'TensorListReserve', 'TensorListFromTensor', 'TensorListSetItem',
            'TensorArrayV3', 'ImageProjectiveTransformV3'}


def _batch(cfg, batch=4, dtype=np.uint8, seed=0):
    size = augment.cache_size_for(cfg)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, size, size, 3)).astype(dtype)
    labels = tf.one_hot(np.arange(batch) % cfg.num_classes, cfg.num_classes)
    return tf.constant(images), labels


def test_unknown_policy_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"--augment='randaugment\+foo'.*none, seed, flip_crop, rrc"):
        augment.AugmentConfig(policy='randaugment+foo')


@pytest.mark.parametrize('policy, message', [
        ('seed+rrc', 'at most one of'),
        ('none+mixup', "'none' cannot be combined"),
        ('mixup+mixup', 'named twice'),
])
def test_invalid_combinations_are_refused(policy, message):
    with pytest.raises(ValueError, match=message):
        augment.AugmentConfig(policy=policy)


@pytest.mark.parametrize('field, value, flag', [
        ('randaugment_magnitude', 11.0, '--randaugment_magnitude=11.0'),
        ('randaugment_layers', -1, '--randaugment_layers=-1'),
        ('mixup_alpha', 0.0, '--mixup_alpha=0.0'),
        ('erasing_probability', 1.5, '--erasing_probability=1.5'),
])
def test_bad_parameters_name_the_flag(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        augment.AugmentConfig(**{field: value})


def test_parts_run_in_canonical_order_and_cache_size_follows_rrc():
    cfg = augment.AugmentConfig(policy='mixup+randaugment+rrc')
    assert cfg.parts == ('rrc', 'randaugment', 'mixup')
    assert augment.cache_size_for(cfg) == 256
    assert augment.cache_size_for(augment.AugmentConfig(policy='seed', image_size=32)) == 32
    assert augment.AugmentConfig(policy='none').parts == ()


@pytest.mark.parametrize('policy', ALL_POLICIES)
def test_shape_range_and_dtype(policy):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg)
    out, soft = augment.Augmenter(cfg)(images, labels, training=True)
    assert out.shape == (4, 32, 32, 3) and out.dtype == tf.float32
    assert soft.shape == (4, 5) and soft.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
    np.testing.assert_allclose(tf.reduce_sum(soft, axis=1).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize('policy', ['seed', 'rrc+randaugment+erasing+mixup+cutmix'])
@pytest.mark.parametrize('precision, expected', [('mixed_float16', tf.float16), ('mixed_bfloat16', tf.bfloat16)])
@pytest.mark.parametrize('input_dtype', [np.uint8, np.float16, 'bfloat16'])
def test_mixed_precision_computes_in_the_compute_dtype(policy, precision, expected, input_dtype):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg, dtype=np.uint8)
    if input_dtype != np.uint8:
        images = tf.cast(images, input_dtype)
    out, soft = augment.Augmenter(cfg, dtype=precision)(images, labels, training=True)
    assert out.dtype == expected and soft.dtype == tf.float32
    values = tf.cast(out, tf.float32).numpy()
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 255.0
    # Same input through float32: the low-precision result agrees to its rounding.
    reference, _ = augment.Augmenter(cfg)(images, labels, training=True)
    assert np.abs(values - reference.numpy()).mean() < 2.0


def test_same_seed_same_batches_and_state_advances():
    cfg = augment.AugmentConfig(policy='seed+mixup', image_size=32, num_classes=5, seed=7)
    images, labels = _batch(cfg)
    a, b = augment.Augmenter(cfg), augment.Augmenter(cfg)
    first_a, second_a = a(images, labels, training=True)[0], a(images, labels, training=True)[0]
    first_b, second_b = b(images, labels, training=True)[0], b(images, labels, training=True)[0]
    np.testing.assert_array_equal(first_a.numpy(), first_b.numpy())
    np.testing.assert_array_equal(second_a.numpy(), second_b.numpy())
    assert not np.array_equal(first_a.numpy(), second_a.numpy())
    other = augment.Augmenter(augment.AugmentConfig(policy='seed+mixup', image_size=32, num_classes=5, seed=8))
    assert not np.array_equal(other(images, labels, training=True)[0].numpy(), first_a.numpy())


def test_seed_state_is_a_checkpointed_variable():
    cfg = augment.AugmentConfig(policy='flip_crop', image_size=32, num_classes=5, seed=1)
    images, labels = _batch(cfg, batch=16)
    layer = augment.Augmenter(cfg)
    layer(images, labels, training=True)
    assert len(layer.non_trainable_variables) == 1  # the SeedGenerator state travels with the model
    saved = [v.numpy() for v in layer.non_trainable_variables]
    expected = layer(images, labels, training=True)[0].numpy()
    layer.non_trainable_variables[0].assign(saved[0])
    np.testing.assert_array_equal(layer(images, labels, training=True)[0].numpy(), expected)


@pytest.mark.parametrize('policy', ALL_POLICIES)
def test_traced_graph_has_no_per_image_loop(policy):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg)
    layer = augment.Augmenter(cfg)
    graph = tf.function(lambda x, y: layer(x, y, training=True)).get_concrete_function(images, labels).graph
    graph_def = graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    assert not ops & LOOP_OPS, f'{policy}: per-image loop ops {ops & LOOP_OPS}'
    assert 'GatherV2' in ops or policy in ('none', 'mixup', 'cutmix', 'erasing')


_MIRRORED_SCRIPT = '''
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipelines import augment
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with strategy.scope():
    layer = augment.Augmenter(augment.AugmentConfig(policy='seed+mixup', image_size=16, num_classes=3))
x = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.uint8))
y = tf.one_hot([0, 1, 2, 0], 3)
out = tf.function(lambda: strategy.run(lambda: layer(x, y, training=True)))()
a, b = [t.numpy() for t in strategy.experimental_local_results(out[0])]
print('DIFFERENT' if not np.array_equal(a, b) else 'SAME')
'''


def test_replicas_of_a_mirrored_strategy_draw_different_augmentations():
    # Logical devices must be configured before TF starts, hence a fresh interpreter.
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL='2')
    result = subprocess.run([sys.executable, '-c', _MIRRORED_SCRIPT], capture_output=True, text=True,
                            cwd=root, env=env, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == 'DIFFERENT'
