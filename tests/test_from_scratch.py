"""Training from scratch under a fine-tuning preset: the preset's recipe gives way to a from-scratch one, and
the run learns as well as one given that recipe explicitly."""

import json

import pytest

from fastclassify.pipelines import datasets
from tests import folder_trees
from tests.conftest import run_train

_COMMON = ['--dataset=folder', '--model=cifar_resnet9', '--image_size=32', '--batch_size=16', '--epochs=4',
           '--precision=float32', '--cache=memory']


@pytest.mark.slow  # two small training runs
def test_folder_preset_with_weights_none_learns_like_an_explicit_from_scratch_recipe(tmp_path, capsys):
    source = folder_trees.write_dir(folder_trees.separable_tree(4, 60), tmp_path / 'digits')
    recipe = datasets.from_scratch_recipe()
    explicit = [f'--{k}={v}' for k, v in recipe.items() if k != 'warmup_epochs'] + ['--warmup_epochs=0.4']
    top1 = {}
    for name, extra in (('preset', ['--weights=none']), ('explicit', ['--weights=none', *explicit])):
        model_dir = tmp_path / name
        run_train(*_COMMON, *extra, f'--manual_dir={source}', f'--data_dir={tmp_path / "data"}',
                  f'--model_dir={model_dir}')
        config = json.load(open(model_dir / 'config.json'))
        assert config['optimizer']['name'] == recipe['optimizer']
        assert config['optimizer']['learning_rate'] == recipe['learning_rate']  # not the preset's 1e-4
        top1[name] = json.load(open(model_dir / 'results.json'))['top1']
    out = capsys.readouterr().out
    assert 'training from scratch, not fine-tuning' in out
    print(top1)
    assert top1['preset'] > 0.9 and top1['preset'] >= top1['explicit'] - 0.05, top1
