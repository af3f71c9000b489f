"""`--steps_per_execution`: epochs of whole executions, so the step count a resume relies on holds."""

import json

import pytest

from tests.conftest import run_train
from fastclassify.training import loop
from fastclassify.training.config import RunConfig


def test_an_epoch_that_is_not_a_multiple_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r'--steps_per_epoch=3 is not valid with --steps_per_execution=2'):
        RunConfig(model_dir='x', steps_per_epoch=3, steps_per_execution=2)
    with pytest.raises(ValueError, match=r'--checkpoint_every_steps=5 is not valid'):
        RunConfig(model_dir='x', checkpoint_every_steps=5, steps_per_execution=2)


def test_a_derived_epoch_is_cut_to_whole_executions():
    assert loop._whole_executions(97, 10) == 90  # pylint: disable=protected-access
    assert loop._whole_executions(8, 4) == 8  # pylint: disable=protected-access
    with pytest.raises(loop.TrainingError, match='--steps_per_execution=16 is larger than the 7 steps'):
        loop._whole_executions(7, 16)  # pylint: disable=protected-access


@pytest.mark.slow  # a whole train.py run (or several)
@pytest.mark.backends
def test_a_run_trains_exactly_its_steps(tmp_path):
    # 1,843 synthetic train examples at batch 256: 7 batches, cut to 4 steps of one 4-step execution.
    run_train('--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
              '--head=gap', '--batch_size=256', '--epochs=2', '--steps_per_execution=4',
              '--precision=float32', '--validation_split=0.1', f'--model_dir={tmp_path}')
    results = json.load(open(tmp_path / 'results.json'))
    assert results['optimizer_iterations'] == results['global_steps'] == 2 * 4
