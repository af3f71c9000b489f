"""`--steps_per_execution=auto`: the choice, a warm-up that leaves no trace, and one host sync per execution."""

import collections
import json
import sys

import keras
import numpy as np
import pytest

from tests.conftest import run_train, tiny_model
from fastclassify.training import callbacks, execution, time_split
from fastclassify.training.config import RunConfig


def test_the_flag_takes_auto_or_a_positive_number_and_names_itself_otherwise():
    assert execution.parse_flag('auto') == 'auto' and execution.parse_flag('AUTO') == 'auto'
    assert execution.parse_flag('8') == 8 and execution.parse_flag(3) == 3
    for bad in ('0', '-2', 'fast', ''):
        with pytest.raises(ValueError, match='--steps_per_execution=.* use auto or a positive number'):
            execution.parse_flag(bad)
    assert RunConfig(model_dir='x').steps_per_execution == 'auto'
    assert RunConfig(model_dir='x', steps_per_execution='4', steps_per_epoch=8).steps_per_execution == 4
    RunConfig(model_dir='x', steps_per_epoch=7, checkpoint_every_steps=5)  # auto: no divisibility demand


@pytest.mark.parametrize('step_ms,epoch,every,done,expected', [
        (1.0, 88, 0, 0, 88),     # 88 x 1 ms fits 100 ms: the whole epoch in one call
        (2.0, 88, 0, 0, 44),     # at most 50 steps: the largest divisor of 88 below
        (2.0, 88, 8, 0, 8),      # the backup period divides too
        (2.0, 97, 0, 0, 1),      # a prime epoch: only 1 (or 97, too long) divides
        (30.0, 90, 0, 0, 3),     # 3 x 30 ms
        (60.0, 90, 0, 0, 1),     # a big model: a step is over half the target, nothing to gain
        (0.01, 100_000, 0, 0, 10_000),
        (1.0, 88, 0, 84, 4),     # a resumed run's rest of the epoch (4 steps) must be whole calls
])
def test_the_choice_divides_the_epoch_and_fits_the_target(step_ms, epoch, every, done, expected):
    k = execution.choose(step_ms / 1000, epoch, every, steps_done_in_epoch=done)
    assert k == expected
    assert epoch % k == 0 and (every == 0 or every % k == 0) and (epoch - done) % k == 0


def test_the_warm_up_leaves_the_training_state_as_it_found_it():
    model = tiny_model()
    before = [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]
    seconds = execution.measure_step_seconds(model, (np.ones((8, 4), np.float32), np.ones((8, 3), np.float32)))
    assert 0 < seconds < 5
    after = [v.numpy() for v in [*model.variables, *model.optimizer.variables]]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 0


class _Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(batch)


def test_applied_steps_per_execution_runs_callbacks_once_per_call_and_nan_stops_there():
    model = tiny_model()
    execution.apply(model, 4)
    x = np.ones((32, 4), np.float32)
    x[12:16] = np.nan  # steps 6 and 7 (batch 2): inside the second call of 4 steps
    count, nan = _Count(), callbacks.NonFiniteLossCallback()
    model.fit(x, np.zeros((32, 3), np.float32), batch_size=2, epochs=1, shuffle=False, verbose=0,
              callbacks=[time_split.TimedCallbacks([count, nan])])
    assert count.ends == [3, 7]  # one call per 4 steps; the NaN at step 7 is seen at that call's end
    assert nan.tripped_at == 7
    assert int(model.optimizer.iterations.numpy()) == 8


def test_throughput_leaves_out_the_whole_first_execution():
    cb = callbacks.ThroughputCallback(global_batch_size=10, epochs=1)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    cb.on_train_batch_end(3)  # the first call: 4 steps with compilation
    cb.on_train_batch_end(7)
    cb.on_train_batch_end(11)
    assert cb._timed_steps == 8  # pylint: disable=protected-access


def test_input_wait_counts_late_batches_inside_an_execution():
    probe = time_split.InputProbe()
    probe.enabled = True
    # 4 steps of 10 ms from t=0, the third batch ready only at t=0.1: steps 0-1 end at 0.02, step 2 waits
    # 0.08 s, then 2 more steps: the call ends at 0.12.
    probe._ready.extend([0.0, 0.0, 0.1, 0.1])  # pylint: disable=protected-access
    waited = probe.wait(0.0, 4, 0.12)
    assert waited == pytest.approx(0.08, abs=0.005)


def _count_host_syncs(monkeypatch) -> collections.Counter:
    """Counts, by the Keras hook that did it, every conversion of device-resident logs to Python numbers."""
    from keras.src.callbacks import callback_list  # pylint: disable=import-outside-toplevel
    counts = collections.Counter()
    original = callback_list.python_utils.pythonify_logs

    def pythonify_logs(logs):
        if logs and any(not isinstance(v, (int, float, str)) for v in logs.values()):
            counts[sys._getframe(1).f_code.co_name] += 1  # pylint: disable=protected-access
        return original(logs)

    monkeypatch.setattr(callback_list.python_utils, 'pythonify_logs', pythonify_logs)
    return counts


@pytest.mark.slow  # two whole train.py runs
def test_a_default_run_syncs_with_the_host_once_per_execution(tmp_path, monkeypatch, capsys):
    # 8 steps per epoch, 2 epochs; the warm-up is told a step takes 1 ms, so auto runs all 8 in one call.
    args = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none', '--head=gap',
            '--batch_size=8', '--steps_per_epoch=8', '--epochs=2', '--precision=float32']
    before = _count_host_syncs(monkeypatch)
    run_train(*args, '--steps_per_execution=1', f'--model_dir={tmp_path / "one"}')
    monkeypatch.undo()
    monkeypatch.setattr(execution, 'measure_step_seconds', lambda model, batch: 0.001)
    after = _count_host_syncs(monkeypatch)
    run_train(*args, f'--model_dir={tmp_path / "auto"}')
    assert '--steps_per_execution=auto: 8' in capsys.readouterr().out
    assert before['_on_train_batch_end'] == 2 * 8  # every step
    assert after['_on_train_batch_end'] == 2 * 1  # once per execution of 8 steps
    results = json.load(open(tmp_path / 'auto' / 'results.json'))
    assert results['optimizer_iterations'] == results['global_steps'] == 16
    assert results['epoch_time']['whole_run']['steps'] + 8 == 16  # the first call is timed apart
