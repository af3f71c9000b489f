"""Where epoch time goes: the accounting, the timed callbacks inside a real `fit`, the input probe."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastclassify.training.time_split import InputProbe, TimedCallbacks, TimeSplit


def test_parts_shares_and_per_step_add_up():
    split = TimeSplit(epochs=2, steps=10, epoch_seconds=20.0, first_step_seconds=1.0,
                      step_seconds=15.0, input_wait_seconds=0.5, validation_seconds=2.0,
                      callback_seconds=1.5)
    assert split.other_seconds == pytest.approx(0.5)
    d = split.as_dict()
    assert d['share']['train_steps'] == pytest.approx(0.75)
    assert d['share']['input_wait'] == pytest.approx(0.025)
    assert d['per_step_seconds']['compute'] == pytest.approx(1.45)  # 15 s minus 0.5 s waited, / 10
    disjoint = ('first_step', 'train_steps', 'validation', 'callbacks', 'other')
    assert sum(d['per_step_seconds'][k] for k in disjoint) == pytest.approx(d['per_step_seconds']['total'])
    assert split.line() == ('epoch time 20 s over 2 epochs: 75% train steps (1500 ms/step), '
                            '10% validation, 8% checkpoints and plots, 5% first steps (tracing, '
                            'compilation), 2% other; input wait 2.5%')


def test_sum_of_epochs_and_unmeasured_input_wait():
    a = TimeSplit(epochs=1, steps=4, epoch_seconds=4.0, step_seconds=4.0, input_wait_seconds=1.0)
    b = TimeSplit(epochs=1, steps=4, epoch_seconds=6.0, step_seconds=6.0, input_wait_seconds=0.0)
    total = a + b
    assert (total.epochs, total.steps, total.epoch_seconds, total.input_wait_seconds) == (2, 8, 10.0, 1.0)
    unprobed = total + TimeSplit(epochs=1, steps=1, epoch_seconds=1.0, step_seconds=1.0,
                                 input_wait_seconds=None)
    assert unprobed.input_wait_seconds is None
    assert unprobed.line().endswith('; input wait not measured')
    assert unprobed.as_dict()['per_step_seconds']['input_wait'] is None
    assert TimeSplit().line() == 'epoch time: no finished epoch'


class _Sleepy(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.calls = []

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(('epoch_end', epoch, 'val_loss' in (logs or {})))
        time.sleep(self.seconds)

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(('batch_end', batch, None))


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation='softmax')])
    model.compile('sgd', 'sparse_categorical_crossentropy')
    return model


def _stream(delay: float = 0.0):
    ds = tf.data.Dataset.from_tensors((tf.zeros([8, 4]), tf.zeros([8], tf.int32))).repeat()
    if delay:
        def slow(x, y):
            time.sleep(delay)
            return x, y
        ds = ds.map(lambda x, y: tf.numpy_function(slow, [x, y], [tf.float32, tf.int32]))
        ds = ds.map(lambda x, y: (tf.ensure_shape(x, [8, 4]), tf.ensure_shape(y, [8])))
    return ds


def test_timed_callbacks_run_theirs_in_order_and_attribute_time():
    inner = _Sleepy(0.05)
    probe = InputProbe()
    timed = TimedCallbacks([inner], probe)
    validation = tf.data.Dataset.from_tensors((tf.zeros([8, 4]), tf.zeros([8], tf.int32))).repeat(2)
    _tiny_model().fit(probe.wrap(_stream()), epochs=2, steps_per_epoch=5, validation_data=validation,
                      callbacks=[timed], verbose=0)
    # The wrapped callback saw every hook, with the validation logs at epoch end.
    assert [c for c in inner.calls if c[0] == 'epoch_end'] == [('epoch_end', 0, True), ('epoch_end', 1, True)]
    assert sum(c[0] == 'batch_end' for c in inner.calls) == 10
    total = timed.total
    assert total.epochs == 2 and total.steps == 9  # the first step of the fit is kept apart
    assert total.first_step_seconds > 0 and total.validation_seconds > 0
    assert 0.1 <= total.callback_seconds < 0.1 + 0.5 * total.epoch_seconds
    assert timed.callback_seconds_by_name['_Sleepy'] == pytest.approx(total.callback_seconds, rel=0.05)
    parts = (total.first_step_seconds + total.step_seconds + total.validation_seconds
             + total.callback_seconds)
    assert parts <= total.epoch_seconds + 1e-6
    assert timed.steady_state().epochs == 1 and timed.steady_state().steps == 5
    report = timed.report()
    assert set(report) == {'whole_run', 'steady_state', 'callback_seconds'}
    assert report['whole_run']['line'].startswith('epoch time ')


@pytest.mark.parametrize('delay', [0.0, 0.06])
def test_input_wait_is_measured_where_the_step_waits(delay):
    probe = InputProbe()
    timed = TimedCallbacks([], probe)
    _tiny_model().fit(probe.wrap(_stream(delay)), epochs=1, steps_per_epoch=8, callbacks=[timed],
                      verbose=0)
    split = timed.total
    wait_per_step = split.input_wait_seconds / split.steps
    assert split.input_wait_seconds <= split.step_seconds
    if delay:
        # A 60 ms input per batch against a sub-millisecond step: most of each step is waiting.
        assert 0.55 <= split.input_wait_seconds / split.step_seconds <= 1.0
        assert wait_per_step >= 0.03
    else:
        # Ready input: whatever is counted is the probe's own noise, far below the 60 ms case (a ratio
        # to a sub-millisecond step would be noise against noise on a loaded machine).
        assert wait_per_step < 0.02


def test_probe_leaves_batches_unchanged_and_ignores_what_it_cannot_wrap():
    probe = InputProbe()
    ds = tf.data.Dataset.from_tensor_slices(np.arange(6)).batch(2)
    assert [b.tolist() for b in probe.wrap(ds).as_numpy_iterator()] == [[0, 1], [2, 3], [4, 5]]
    pairs = tf.data.Dataset.from_tensors(((1, 2), 3))
    assert list(probe.wrap(pairs).as_numpy_iterator()) == [((1, 2), 3)]
    fresh = InputProbe()
    assert fresh.wrap([1, 2]) == [1, 2] and not fresh.enabled
