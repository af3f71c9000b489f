"""The augmenter's contracts: config validation, dtypes, determinism, no per-image loop, replicas."""

import os
import pathlib
import subprocess
import sys

import keras
from keras import ops
import numpy as np
import pytest

from fastclassify.pipelines import augment
from fastclassify.pipelines.augment import policies

pytestmark = pytest.mark.backends  # CI runs these under TensorFlow and JAX

ALL_POLICIES = ['none', 'seed', 'flip_crop', 'rrc', 'randaugment', 'mixup', 'cutmix', 'erasing',
                'rrc+randaugment+erasing+mixup+cutmix']
# TensorFlow graph ops that would mean a loop per image (while_loop, map_fn, vectorized_map fallbacks)
# or a warp without an XLA kernel; on JAX, the loop primitives of a jaxpr.
LOOP_OPS = {'While', 'StatelessWhile', 'TensorListReserve', 'TensorListFromTensor', 'TensorListSetItem',
            'TensorArrayV3', 'ImageProjectiveTransformV3'}
JAX_LOOP_PRIMITIVES = {'while', 'scan', 'fori_loop', 'map'}
BACKEND = keras.backend.backend()


def _batch(cfg, batch=4, dtype=np.uint8, seed=0):
    size = augment.cache_size_for(cfg)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, size, size, 3)).astype(dtype)
    labels = np.eye(cfg.num_classes, dtype=np.float32)[np.arange(batch) % cfg.num_classes]
    return images, labels


def _dtype(tensor) -> str:
    return keras.backend.standardize_dtype(tensor.dtype)


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
    assert out.shape == (4, 32, 32, 3) and _dtype(out) == 'float32'
    assert soft.shape == (4, 5) and _dtype(soft) == 'float32'
    out, soft = ops.convert_to_numpy(out), ops.convert_to_numpy(soft)
    assert out.min() >= 0.0 and out.max() <= 255.0
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize('policy', ['seed', 'rrc+randaugment+erasing+mixup+cutmix'])
@pytest.mark.parametrize('precision, expected', [('mixed_float16', 'float16'), ('mixed_bfloat16', 'bfloat16')])
@pytest.mark.parametrize('input_dtype', ['uint8', 'float16', 'bfloat16'])
def test_mixed_precision_computes_in_the_compute_dtype(policy, precision, expected, input_dtype):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg, dtype=np.uint8)
    images = ops.cast(images, input_dtype)
    out, soft = augment.Augmenter(cfg, dtype=precision)(images, labels, training=True)
    assert _dtype(out) == expected and _dtype(soft) == 'float32'
    values = ops.convert_to_numpy(ops.cast(out, 'float32'))
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 255.0
    # Same input through float32: the low-precision result agrees to its rounding.
    reference, _ = augment.Augmenter(cfg)(images, labels, training=True)
    assert np.abs(values - ops.convert_to_numpy(reference)).mean() < 2.0


def test_same_seed_same_batches_and_state_advances():
    cfg = augment.AugmentConfig(policy='seed+mixup', image_size=32, num_classes=5, seed=7)
    images, labels = _batch(cfg)
    a, b = augment.Augmenter(cfg), augment.Augmenter(cfg)
    draw = lambda layer: ops.convert_to_numpy(layer(images, labels, training=True)[0])
    first_a, second_a = draw(a), draw(a)
    first_b, second_b = draw(b), draw(b)
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(second_a, second_b)
    assert not np.array_equal(first_a, second_a)
    other = augment.Augmenter(augment.AugmentConfig(policy='seed+mixup', image_size=32, num_classes=5, seed=8))
    assert not np.array_equal(draw(other), first_a)


def test_seed_state_is_a_checkpointed_variable():
    cfg = augment.AugmentConfig(policy='flip_crop', image_size=32, num_classes=5, seed=1)
    images, labels = _batch(cfg, batch=16)
    layer = augment.Augmenter(cfg)
    layer(images, labels, training=True)
    assert len(layer.non_trainable_variables) == 1  # the SeedGenerator state travels with the model
    saved = [ops.convert_to_numpy(v) for v in layer.non_trainable_variables]
    expected = ops.convert_to_numpy(layer(images, labels, training=True)[0])
    layer.non_trainable_variables[0].assign(saved[0])
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(images, labels, training=True)[0]), expected)


def _tensorflow_ops(fn, images, labels) -> set[str]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    graph_def = tf.function(fn).get_concrete_function(images, labels).graph.as_graph_def()
    names = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        names |= {node.op for node in function.node_def}
    return names


def _jax_primitives(fn, images, labels) -> set[str]:
    import jax  # pylint: disable=import-outside-toplevel
    from jax.extend import core as jax_core  # pylint: disable=import-outside-toplevel

    def walk(jaxpr, names):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for sub in jax_core.jaxprs_in_params(eqn.params):
                walk(sub, names)
        return names

    return walk(jax.make_jaxpr(fn)(images, labels).jaxpr, set())


@pytest.mark.parametrize('policy', ALL_POLICIES)
def test_traced_graph_has_no_per_image_loop(policy):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg)
    seed = np.array([1, 2], np.int32)
    fn = lambda x, y: policies.augment_batch(x, y, seed, cfg, training=True)
    if BACKEND == 'tensorflow':
        names, loops, gather = _tensorflow_ops(fn, images, labels), LOOP_OPS, 'GatherV2'
    else:
        names, loops, gather = _jax_primitives(fn, images, labels), JAX_LOOP_PRIMITIVES, 'gather'
    assert not names & loops, f'{policy}: per-image loop ops {names & loops}'
    assert gather in names or policy in ('none', 'mixup', 'cutmix', 'erasing')


_MIRRORED_SCRIPT = '''
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fastclassify.pipelines import augment
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with strategy.scope():
    layer = augment.Augmenter(augment.AugmentConfig(policy='seed+mixup', image_size=16, num_classes=3))
x = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.uint8))
y = tf.one_hot([0, 1, 2, 0], 3)
out = tf.function(lambda: strategy.run(lambda: layer(x, y, training=True)))()
a, b = [t.numpy() for t in strategy.experimental_local_results(out[0])]
print('DIFFERENT' if not np.array_equal(a, b) else 'SAME')
'''


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != 'tensorflow', reason='tf.distribute replicas exist only on TensorFlow')
def test_replicas_of_a_mirrored_strategy_draw_different_augmentations():
    # Logical devices must be configured before TF starts, hence a fresh interpreter.
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL='2', KERAS_BACKEND='tensorflow')
    result = subprocess.run([sys.executable, '-c', _MIRRORED_SCRIPT], capture_output=True, text=True,
                            cwd=root, env=env, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == 'DIFFERENT'
