"""Raising --epochs on a finished run trains on from its last epoch: only the new epochs, said so."""

import json
import os

import pytest

from fastclassify.training import run_dir as run_dir_lib
from tests.conftest import SMALL, run_train


class _Cfg:
    def __init__(self, epochs):
        self.run = type('Run', (), {'overwrite': False, 'epochs': epochs})()
        self._epochs = epochs

    def to_dict(self):
        return {'run': {'epochs': self._epochs}, 'model': {'name': 'resnet'}}


def test_claim_turns_a_finished_run_with_more_epochs_into_a_continuation(tmp_path, capsys):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg(2))
    os.makedirs(rd.checkpoints)
    open(rd.last_weights, 'wb').close()
    run_dir_lib.write_json_atomic(rd.results, {'top1': 0.5, 'global_steps': 6})
    assert rd.claim(_Cfg(3)) == 'resume'
    assert 'continuing the finished 2-epoch run' in capsys.readouterr().out
    assert rd.continuation() == {'global_step': 6, 'weights': rd.last_weights, 'from_epochs': 2}
    assert not os.path.exists(rd.results) and os.path.exists(tmp_path / 'run' / 'results-epochs-2.json')
    assert json.load(open(rd.config))['run']['epochs'] == 3


@pytest.mark.slow  # two train.py runs
def test_raising_epochs_on_a_finished_run_trains_only_the_new_epochs(tmp_path, capsys):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}')  # 2 epochs of 3 steps
    capsys.readouterr()
    run_train(*SMALL, '--epochs=3', f'--model_dir={model_dir}')
    out = capsys.readouterr().out
    assert 'continuing the finished 2-epoch run' in out
    assert 'epoch 3/3:' in out and 'epoch 1/3:' not in out and 'epoch 2/3:' not in out, out
    results = json.load(open(model_dir / 'results.json'))
    assert results['global_steps'] == 9 and results['optimizer_iterations'] == 9
    history = json.load(open(model_dir / 'history.json'))
    assert [row['epoch'] for row in history] == [1, 2, 3]  # one record, the new epoch appended
