"""Optimizers: flag validation, LR scaling, warmup + cosine schedule, weight decay exclusions, EMA."""

import math

import keras
import numpy as np
import pytest

from fastclassify.training import optimizers
from fastclassify.training.optimizers import OptimizerConfig


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.mixed_precision.set_global_policy('float32')
    keras.backend.clear_session()


def _lr_at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step))) if callable(schedule) else schedule


def _tiny_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name='hidden')(inputs)
    x = keras.layers.BatchNormalization(name='bn')(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation='softmax', name='predictions')(x))


@pytest.mark.parametrize('kwargs, pattern', [
        (dict(name='adam'), r"--optimizer='adam'.*nadam, rmsprop, adamw, sgd"),
        (dict(schedule='step'), r"--schedule='step'.*cosine, constant"),
        (dict(learning_rate=0.0), r'--learning_rate=0.0'),
        (dict(base_batch_size=-1), r'--base_batch_size=-1'),
        (dict(weight_decay=-0.1), r'--weight_decay=-0.1'),
        (dict(ema_decay=1.0), r'--ema_decay=1.0'),
        (dict(warmup_epochs=-1), r'--warmup_epochs=-1'),
        (dict(clipnorm=-1.0), r'--clipnorm=-1.0'),
])
def test_config_validation_names_the_flag(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        OptimizerConfig(**kwargs)


def test_learning_rate_scales_linearly_with_batch_size():
    cfg = OptimizerConfig(learning_rate=0.1, base_batch_size=256)
    assert optimizers.peak_learning_rate(cfg, 1024) == pytest.approx(0.4)
    assert optimizers.peak_learning_rate(cfg, 64) == pytest.approx(0.025)
    assert optimizers.peak_learning_rate(OptimizerConfig(learning_rate=0.1), 1024) == 0.1


def test_warmup_then_cosine_decay():
    cfg = OptimizerConfig(learning_rate=0.2, base_batch_size=128, warmup_epochs=1)
    schedule = optimizers.learning_rate_schedule(cfg, steps_per_epoch=10, epochs=5, global_batch_size=256)
    peak = 0.4
    assert _lr_at(schedule, 0) == pytest.approx(0.0)
    assert _lr_at(schedule, 5) == pytest.approx(peak / 2)
    assert _lr_at(schedule, 10) == pytest.approx(peak)
    # Halfway through the 40 decay steps the cosine is at half the peak.
    assert _lr_at(schedule, 30) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-6)
    assert _lr_at(schedule, 50) == pytest.approx(0.0, abs=1e-7)
    rates = [_lr_at(schedule, s) for s in range(10, 51)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_constant_schedule_with_and_without_warmup():
    flat = optimizers.learning_rate_schedule(OptimizerConfig(learning_rate=0.01, schedule='constant'),
                                             steps_per_epoch=10, epochs=3, global_batch_size=32)
    assert flat == 0.01
    warm = optimizers.learning_rate_schedule(
            OptimizerConfig(learning_rate=0.01, schedule='constant', warmup_epochs=0.5),
            steps_per_epoch=10, epochs=3, global_batch_size=32)
    assert _lr_at(warm, 0) == pytest.approx(0.0)
    assert [_lr_at(warm, s) for s in (5, 15, 29)] == pytest.approx([0.01, 0.01, 0.01])


def test_warmup_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match='--warmup_epochs=3'):
        optimizers.learning_rate_schedule(OptimizerConfig(warmup_epochs=3), steps_per_epoch=10, epochs=3,
                                          global_batch_size=32)


@pytest.mark.parametrize('name, cls', [('nadam', keras.optimizers.Nadam), ('rmsprop', keras.optimizers.RMSprop),
                                       ('adamw', keras.optimizers.AdamW), ('sgd', keras.optimizers.SGD)])
def test_each_optimizer_builds_and_trains(name, cls):
    optimizer = optimizers.build_optimizer(OptimizerConfig(name=name, learning_rate=0.05, warmup_epochs=1),
                                           steps_per_epoch=2, epochs=3, global_batch_size=8)
    assert type(optimizer) is cls
    if name == 'sgd':
        assert optimizer.nesterov and optimizer.momentum == 0.9
    if name == 'rmsprop':
        assert optimizer.momentum == 0.9
    model = _tiny_model()
    model.compile(optimizer=optimizer, loss='sparse_categorical_crossentropy', run_eagerly=True)
    x, y = np.random.default_rng(0).normal(size=(8, 3)).astype('float32'), np.arange(8) % 2
    first = model.get_layer('hidden').kernel.numpy().copy()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # step 0 runs at lr 0 (warmup start), 1 and 2 do not
    assert int(optimizer.iterations.numpy()) == 3
    assert not np.array_equal(first, model.get_layer('hidden').kernel.numpy())


def test_weight_decay_skips_biases_and_norm_parameters():
    model = _tiny_model()
    cfg = OptimizerConfig(name='sgd', learning_rate=0.5, schedule='constant', weight_decay=0.1, momentum=0.0)
    optimizer = optimizers.build_optimizer(cfg, steps_per_epoch=1, epochs=1, global_batch_size=1, model=model)
    model.get_layer('hidden').bias.assign(np.ones(4, 'float32'))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    # Zero gradients: anything that moves, moves by weight decay alone.
    optimizer.apply_gradients([(np.zeros(v.shape, 'float32'), v) for v in model.trainable_variables])
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            np.testing.assert_allclose(v.numpy(), before[v.path] * (1 - 0.5 * 0.1), rtol=1e-6)
        else:
            np.testing.assert_array_equal(v.numpy(), before[v.path])


def test_clipnorm_is_passed_through():
    optimizer = optimizers.build_optimizer(OptimizerConfig(name='adamw', clipnorm=1.0), steps_per_epoch=1,
                                           epochs=1, global_batch_size=1)
    assert optimizer.clipnorm == 1.0


class _Recorder(keras.callbacks.Callback):
    """Records the hidden kernel after each train step and when each validation pass starts."""

    def __init__(self):
        super().__init__()
        self.after_steps, self.at_validation = [], []

    def _kernel(self):
        return self.model.get_layer('hidden').kernel.numpy().copy()

    def on_train_batch_end(self, batch, logs=None):
        self.after_steps.append(self._kernel())

    def on_test_begin(self, logs=None):
        self.at_validation.append(self._kernel())


def test_ema_weights_are_the_average_and_swap_in_for_evaluation():
    momentum = 0.5
    cfg = OptimizerConfig(name='sgd', learning_rate=0.5, schedule='constant', ema_decay=momentum, momentum=0.0)
    optimizer = optimizers.build_optimizer(cfg, steps_per_epoch=1, epochs=1, global_batch_size=1)
    assert optimizer.use_ema and optimizer.ema_momentum == momentum
    assert optimizers.ema_callbacks(OptimizerConfig()) == []

    model = _tiny_model()
    model.compile(optimizer=optimizer, loss='sparse_categorical_crossentropy', run_eagerly=True)
    x, y = np.random.default_rng(0).normal(size=(8, 3)).astype('float32'), np.arange(8) % 2
    recorder = _Recorder()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=optimizers.ema_callbacks(cfg) + [recorder])  # swap first, so the recorder sees EMA
    expected, ema = [], None
    for raw in recorder.after_steps:  # Keras: the first step copies, later steps average
        ema = raw if ema is None else momentum * ema + (1 - momentum) * raw
        expected.append(ema)
    for seen, want, raw in zip(recorder.at_validation, expected, recorder.after_steps):
        np.testing.assert_allclose(seen, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(recorder.at_validation[-1], recorder.after_steps[-1])
    # fit ends by writing the EMA into the model, so a final evaluate or save uses it.
    np.testing.assert_allclose(model.get_layer('hidden').kernel.numpy(), expected[-1], rtol=1e-5, atol=1e-6)


def test_mixed_float16_compile_wraps_for_loss_scaling_and_keeps_ema():
    keras.mixed_precision.set_global_policy('mixed_float16')
    cfg = OptimizerConfig(name='adamw', ema_decay=0.99)
    optimizer = optimizers.build_optimizer(cfg, steps_per_epoch=1, epochs=2, global_batch_size=8)
    model = _tiny_model()
    model.compile(optimizer=optimizer, loss='sparse_categorical_crossentropy', run_eagerly=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer is optimizer and optimizer.use_ema
