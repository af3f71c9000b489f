"""`--batch_size=auto`: probing halves on (injected) OOM and returns the largest batch that trains."""

import keras
import pytest
import tensorflow as tf

from fastclassify.models import builder
from fastclassify.models.config import ModelConfig
from fastclassify.training import batch_size


class _MemoryLimit(keras.layers.Layer):
    """Raises the OOM TensorFlow raises when a batch above `limit` would not fit (eager: real batch size)."""

    def __init__(self, limit, error_factory, **kwargs):
        super().__init__(**kwargs)
        self.limit, self.error_factory = limit, error_factory

    def call(self, inputs):
        if inputs.shape[0] is not None and inputs.shape[0] > self.limit:
            raise self.error_factory(inputs.shape[0])
        return inputs


def _resource_exhausted(batch):
    return tf.errors.ResourceExhaustedError(None, None, f'OOM when allocating tensor with shape[{batch},8,8,16]')


def _xla_internal_oom(batch):
    return tf.errors.InternalError(None, None, f'RESOURCE_EXHAUSTED: Out of memory allocating {batch * 4096} bytes')


def _fake_device(limit, error_factory=_resource_exhausted):
    """A model factory whose train step 'runs out of memory' above `limit` images; records every build."""
    built = []

    def build():
        inputs = keras.Input((8, 8, 3))
        x = _MemoryLimit(limit, error_factory)(inputs)
        x = keras.layers.Conv2D(4, 3)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation='softmax')(x))
        built.append(model)
        return model

    return build, built


_EAGER = dict(optimizer='sgd', loss='sparse_categorical_crossentropy', run_eagerly=True)


@pytest.mark.parametrize('error_factory', [_resource_exhausted, _xla_internal_oom])
def test_halves_on_oom_until_a_batch_fits(error_factory):
    build, built = _fake_device(limit=20, error_factory=error_factory)
    found = batch_size.find_max_batch_size(build, 8, 3, start=128, compile_kwargs=_EAGER)
    assert found == 16
    assert len(built) == 4  # 128, 64, 32 failed; 16 fit; each probe on a fresh model


def test_start_is_also_the_cap():
    build, built = _fake_device(limit=1000)
    assert batch_size.find_max_batch_size(build, 8, 3, start=24, compile_kwargs=_EAGER) == 24
    assert len(built) == 1


def test_nothing_fits_is_a_clear_error():
    build, _ = _fake_device(limit=0)
    with pytest.raises(RuntimeError, match=r'even a batch of 4 runs out of memory at --image_size=8'):
        batch_size.find_max_batch_size(build, 8, 3, start=16, minimum=4, compile_kwargs=_EAGER)


def test_errors_that_are_not_oom_propagate():
    build, _ = _fake_device(limit=2, error_factory=lambda batch: tf.errors.InvalidArgumentError(None, None, 'bad'))
    with pytest.raises(tf.errors.InvalidArgumentError):
        batch_size.find_max_batch_size(build, 8, 3, start=8, compile_kwargs=_EAGER)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match=r'minimum \(8\) <= start \(4\)'):
        batch_size.find_max_batch_size(lambda: None, 8, 3, start=4, minimum=8)


def test_oom_classification():
    assert batch_size.is_out_of_memory(_resource_exhausted(4))
    assert batch_size.is_out_of_memory(_xla_internal_oom(4))
    assert batch_size.is_out_of_memory(MemoryError())
    assert not batch_size.is_out_of_memory(tf.errors.InternalError(None, None, 'some other failure'))
    assert not batch_size.is_out_of_memory(ValueError('OOM when allocating'))


def test_real_model_on_this_device_with_compiled_step():
    """A real registry model and a real (graph-compiled) train step on whatever device this is."""
    cfg = ModelConfig('cifar_resnet9', num_classes=10, image_size=8)
    built = []

    def build():
        built.append(builder.build_model(cfg))
        return built[-1]

    assert batch_size.find_max_batch_size(build, 8, 10, start=8) == 8
    assert len(built) == 1 and built[0].optimizer.iterations.numpy() == 1  # one real step ran
