"""A run killed mid-epoch and resumed trains on exactly the examples, in exactly the order, of an
uninterrupted run, and ends with bit-identical weights.

Each run is a subprocess of this file (`probe`): it trains through `train.py`'s own code path with the
device cache, whose training stream is index batches, i.e. the example ids themselves. The probe
records every batch the stream hands out, tagged with its position in the whole sequence.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EPOCHS = 6, 2
ARGS = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
        '--head=gap', '--batch_size=8', f'--steps_per_epoch={STEPS}', f'--epochs={EPOCHS}',
        '--precision=float32', '--checkpoint_every_steps=1', '--validation_split=0.05',
        '--cache=device', '--augment=flip_crop', '--deterministic', '--seed=3']


def _probe(model_dir: str, record: str) -> None:
    """Runs train.py's main with the device-cache stream recording (position, example ids)."""
    from tests.conftest import run_train_recording_ids
    run_train_recording_ids(model_dir, record, ARGS)


def _run(model_dir, record, *, kill_after_backup=False):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.abspath(__file__), str(model_dir), str(record)]
    if not kill_after_backup:
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    backups = model_dir / 'backup'
    # Kill inside the first epoch, after a few in-epoch backups.
    while time.time() < deadline:
        assert proc.poll() is None, 'the run ended before it could be killed'
        steps = [int(n.split('-')[1]) for n in os.listdir(backups) if n.startswith('step-')] if backups.exists() else []
        if steps and max(steps) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return None


def _trained(record, total_steps):
    """{position: ids} of the batches handed out, cut at the run's last trained step."""
    batches = {}
    for line in open(record):
        position, ids = json.loads(line)
        batches.setdefault(position, []).append(ids)
    return {p: v for p, v in batches.items() if p < total_steps}


def _weights(model_dir):
    import keras
    model = keras.saving.load_model(model_dir / 'model.keras')
    return [w.numpy() for w in model.weights]


@pytest.mark.slow
def test_killed_and_resumed_run_trains_on_the_same_examples_and_ends_bit_identical(tmp_path):
    total = STEPS * EPOCHS
    straight = tmp_path / 'straight'
    _run(straight, tmp_path / 'straight.jsonl')
    resumed = tmp_path / 'resumed'
    _run(resumed, tmp_path / 'first.jsonl', kill_after_backup=True)
    saved = max(int(n.split('-')[1]) for n in os.listdir(resumed / 'backup') if n.startswith('step-'))
    assert 0 < saved < STEPS, saved  # killed inside the first epoch
    out = _run(resumed, tmp_path / 'second.jsonl')
    assert 'resuming from the backup' in out

    expected = _trained(tmp_path / 'straight.jsonl', total)
    assert sorted(expected) == list(range(total))
    assert all(len(v) == 1 for v in expected.values())  # each position handed out once
    # Every epoch covers distinct examples.
    for epoch in range(EPOCHS):
        ids = [i for p in range(epoch * STEPS, (epoch + 1) * STEPS) for i in expected[p][0]]
        assert len(set(ids)) == len(ids)

    second = _trained(tmp_path / 'second.jsonl', total)
    # The rerun starts at the backup's step, not at batch 0 of the epoch ...
    assert min(second) >= saved and saved in second
    # ... and each batch it trains on is the uninterrupted run's batch at that position (a position
    # may be handed out twice: the stream of a `fit` that ends mid-way prefetches past its end, and the
    # next `fit`'s stream starts there again).
    for position, handed_out in second.items():
        assert all(ids == expected[position][0] for ids in handed_out), position

    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    results = json.load(open(resumed / 'results.json'))
    assert results['optimizer_iterations'] == total


if __name__ == '__main__':
    _probe(sys.argv[1], sys.argv[2])
