"""Faults actually injected: SIGKILL mid-epoch, SIGTERM, a corrupt backup, a NaN loss; determinism."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

from tests.conftest import ROOT, compile_with_nan_loss_from, run_train, tiny_model
from fastclassify.training import backup, loop

STEPS, EPOCHS = 12, 2
COMMON = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
          '--head=gap', '--batch_size=8', f'--steps_per_epoch={STEPS}', f'--epochs={EPOCHS}',
          '--precision=float32', '--checkpoint_every_steps=2', '--validation_split=0.05']


def _saved_steps(backup_dir):
    """Global steps of the complete backups in `backup_dir`, oldest first."""
    if not backup_dir.exists():
        return []
    return sorted(int(n.split('-')[1]) for n in os.listdir(backup_dir) if n.startswith('step-'))


def _start(model_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *COMMON,
                             f'--model_dir={model_dir}'], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_backup(model_dir, proc, *, timeout=240):
    """Waits until a backup taken inside an epoch exists; returns its global step."""
    deadline = time.time() + timeout
    backup_dir = model_dir / 'backup'
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        steps = _saved_steps(backup_dir)
        if steps:
            return steps[-1]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError('no backup appeared')


def _finish(model_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), *COMMON,
                             f'--model_dir={model_dir}'], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_saved_step_with_same_step_count(tmp_path):
    model_dir = tmp_path / 'run'
    proc = _start(model_dir)
    saved = _wait_for_backup(model_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (model_dir / 'results.json').exists()
    assert 0 < saved < STEPS * EPOCHS

    out = _finish(model_dir)
    assert 'resuming from the backup' in out
    results = json.load(open(model_dir / 'results.json'))
    # Exactly the optimizer steps of an uninterrupted run: nothing lost, nothing done twice.
    assert results['optimizer_iterations'] == STEPS * EPOCHS
    assert results['global_steps'] == STEPS * EPOCHS
    history = json.load(open(model_dir / 'history.json'))
    assert [row['epoch'] for row in history] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_sigterm_saves_then_exits_and_the_rerun_finishes(tmp_path):
    model_dir = tmp_path / 'run'
    proc = _start(model_dir)
    _wait_for_backup(model_dir, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert 'preempted' in out
    steps = _saved_steps(model_dir / 'backup')
    assert steps  # what the rerun resumes from
    assert not (model_dir / 'results.json').exists()
    # The epoch SIGTERM cut short is not an epoch: not in the history, not a `last` checkpoint.
    done = steps[-1] // STEPS
    history = json.load(open(model_dir / 'history.json')) if (model_dir / 'history.json').exists() else []
    assert [row['epoch'] for row in history] == list(range(1, done + 1))
    assert (model_dir / 'checkpoints' / 'last.weights.h5').exists() == (done > 0)
    _finish(model_dir)
    assert json.load(open(model_dir / 'results.json'))['optimizer_iterations'] == STEPS * EPOCHS


def test_corrupt_latest_backup_falls_back_to_the_previous(tmp_path, caplog):
    model = tiny_model(build_optimizer=False)
    x, y = np.ones((4, 4), np.float32), np.zeros((4, 3), np.float32)
    cb = backup.BackupCallback(str(tmp_path), every_steps=1, initial_global_step=0)
    cb.set_model(model)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    cb.global_step = 1
    cb.save()
    weights_at_1 = [w.numpy() for w in model.weights]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    cb.global_step = 2
    cb.save()
    latest = tmp_path / 'step-0000000002' / 'state.weights.h5'
    latest.write_bytes(latest.read_bytes()[:100])  # torn write

    fresh = tiny_model(build_optimizer=False)
    step, _ = backup.restore(fresh, str(tmp_path))
    assert step == 1
    for restored, expected in zip(fresh.weights, weights_at_1):
        np.testing.assert_array_equal(restored.numpy(), expected)
    assert 'unreadable' in caplog.text


def test_backups_keep_two_and_never_a_partial_folder(tmp_path):
    model = tiny_model()
    cb = backup.BackupCallback(str(tmp_path), every_steps=1, initial_global_step=0)
    cb.set_model(model)
    for step in range(1, 5):
        cb.global_step = step
        cb.save()
    assert sorted(os.listdir(tmp_path)) == ['step-0000000003', 'step-0000000004']


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    original = loop.compile_trainer
    monkeypatch.setattr(loop, 'compile_trainer', compile_with_nan_loss_from(4, original))
    model_dir = tmp_path / 'run'
    with pytest.raises(SystemExit) as e:
        run_train(*COMMON, f'--model_dir={model_dir}')
    assert e.value.code != 0
    assert 'NaN' in capsys.readouterr().err
    steps = _saved_steps(model_dir / 'backup')
    assert steps and steps[-1] <= 4  # the state after the NaN step was never saved
    with h5py.File(model_dir / 'backup' / f'step-{steps[-1]:010d}' / 'state.weights.h5') as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    assert arrays and all(np.all(np.isfinite(np.asarray(a, np.float64))) for a in arrays)
    assert not (model_dir / 'results.json').exists()


@pytest.mark.slow  # a whole train.py run (or several)
def test_seeded_deterministic_runs_give_bit_identical_weights(tmp_path):
    args = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
            '--head=gap', '--batch_size=8', '--steps_per_epoch=4', '--epochs=1', '--precision=float32',
            '--deterministic', '--seed=7', '--augment=flip_crop']
    run_train(*args, f'--model_dir={tmp_path / "a"}')
    run_train(*args, f'--model_dir={tmp_path / "b"}')
    a = keras.saving.load_model(tmp_path / 'a' / 'model.keras')
    b = keras.saving.load_model(tmp_path / 'b' / 'model.keras')
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
