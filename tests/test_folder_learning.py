"""The loop really learns from a folder: a tar.gz of separable class folders, prepared by our builder."""

import json

import pytest

from tests import folder_trees
from tests.conftest import run_train


@pytest.mark.slow
def test_folder_accuracy_far_above_chance(tmp_path, capsys):
    # 4 colour-coded classes of 100 JPEGs each, as a user would tar their export.
    source = folder_trees.write_tar(folder_trees.separable_tree(4, 100), tmp_path / 'export.tar.gz', gz=True)
    model_dir = tmp_path / 'run'
    run_train('--dataset=folder', f'--manual_dir={source}', f'--data_dir={tmp_path / "data"}',
              f'--model_dir={model_dir}', '--model=cifar_resnet9', '--weights=none', '--image_size=32',
              '--batch_size=32', '--epochs=3', '--learning_rate=0.003', '--precision=float32',
              '--augment=flip_crop', '--cache=memory')
    out = capsys.readouterr().out
    assert 'train: 320 examples' in out and 'test: 80 examples' in out and 'classes: 4' in out
    results = json.load(open(model_dir / 'results.json'))
    assert results['num_examples'] == 80  # every test example exactly once
    assert results['top1'] > 0.9, results  # chance is 1/4
    config = json.load(open(model_dir / 'config.json'))
    assert config['optimizer']['name'] == 'adamw'  # the general preset, under the flags given
    assert config['model']['num_classes'] == 4
