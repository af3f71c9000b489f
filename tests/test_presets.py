"""The library's preset resolution (training/presets.py): what a run trains when a choice outlives the preset's
reasons, the early check that needs no TensorFlow, and readable names."""

import subprocess
import sys
import time

import pytest

from fastclassify.models import choices as model_choices
from fastclassify.pipelines import datasets
from fastclassify.training import presets
from tests.conftest import ROOT


def _values(**choices):
    return presets.preset_values(choices, presets.dataset_preset(choices['dataset']), dataset=choices['dataset'])


def test_from_scratch_under_a_fine_tuning_preset_takes_the_from_scratch_recipe():
    values, notes = _values(dataset='folder', weights='none')
    recipe = datasets.from_scratch_recipe()
    assert {k: values[k] for k in recipe} == {**recipe, 'warmup_epochs': 1.0}
    assert len(notes) == 1 and notes[0].startswith('weights=none: training from scratch'), notes
    assert 'learning_rate=0.001' in notes[0] and 'learning_rate=0.0001' in notes[0]  # new and the preset's
    # A family without ImageNet weights says why, and an explicit choice wins over the recipe.
    values, notes = _values(dataset='cifar100', model='cifar_resnet9', learning_rate=3e-3)
    assert values['weights'] == 'none' and values['learning_rate'] == 3e-3 and values['optimizer'] == 'adamw'
    assert 'has no ImageNet weights' in notes[-1] and 'learning_rate' not in notes[-1]


def test_fine_tuning_and_synthetic_runs_keep_the_preset():
    values, notes = _values(dataset='folder')
    assert values == {**datasets.general_preset(), 'warmup_epochs': 1.0} and notes == []
    values, notes = _values(dataset='cifar100', synthetic_data=True)
    assert values['weights'] == 'none' and values['optimizer'] == 'rmsprop' and notes == []


def test_warmup_is_capped_at_a_tenth_of_the_run_unless_chosen():
    assert _values(dataset='folder', epochs=2)[0]['warmup_epochs'] == 0.2
    assert _values(dataset='folder', epochs=2, warmup_epochs=1.5)[0]['warmup_epochs'] == 1.5


@pytest.mark.parametrize('choices, needles', [
    ({'dataset': 'cifar100', 'epochs': 0}, ['epochs=0']),
    ({'dataset': 'CIFAR100'}, ['did you mean cifar100']),
    ({'dataset': 'cifar100', 'model': 'resnet9000'}, ['model=', 'cifar_resnet9']),
    ({'dataset': 'cifar100', 'batch_size': 'big'}, ['batch_size=', 'auto']),
    ({'dataset': 'cifar100', 'cache': 'gpu'}, ['cache=', 'device']),
    ({'dataset': 'cifar100', 'augment': 'rrc+seed'}, ['augment=', 'at most one']),
    ({'dataset': 'cifar100', 'model': 'cifar_resnet9', 'weights': 'imagenet'}, ['no ImageNet weights']),
    ({'dataset': 'folder'}, ['manual_dir']),
    ({'dataset': 'cifar100', 'model_dir': '/proc/version/run'}, ['model_dir=', 'is a file']),
])
def test_check_names_the_choice(choices, needles):
    with pytest.raises(ValueError) as error:
        presets.check(choices)
    for needle in needles:
        assert needle in str(error.value), (needle, str(error.value))


def test_a_misspelt_dataset_gets_each_suggestion_once():
    with pytest.raises(ValueError) as error:
        presets.check({'dataset': 'caltech265'})
    hint = str(error.value).split('did you mean ')[1]
    names = [n.strip(' ?') for n in hint.split(',')]
    assert 'caltech256' in names and len(names) == len(set(names)), hint


def test_field_message_turns_choice_names_into_flags():
    assert presets.field_message("image_size=0 must be > 0; --epochs=2 and model=x") == (
        "--image_size=0 must be > 0; --epochs=2 and --model=x")


def test_run_folder_of_a_folder_dataset_has_no_hash():
    spec = datasets.DatasetSpec(name='folder-digits-4aefe88f62', tfds_name=datasets.FOLDER_TFDS_NAME,
                                num_classes=10, native_size=None, train_split='train', test_split='test',
                                preset=datasets.general_preset())
    assert presets.run_name(spec, 'cifar_resnet9') == 'digits-cifar_resnet9'
    assert presets.run_name(datasets.DATASETS['cifar100'], 'cifar_resnet9') == 'cifar100-cifar_resnet9'


def test_model_facts_agree_with_the_registry_and_heads():
    from fastclassify.models import heads, registry  # pylint: disable=import-outside-toplevel  # Keras

    assert tuple(model_choices.FAMILY_FACTS) == tuple(registry.FAMILIES)
    for name, family in registry.FAMILIES.items():
        facts = model_choices.FAMILY_FACTS[name]
        assert (facts.min_image_size, facts.default_image_size, facts.imagenet, facts.params_millions,
                facts.large) == (family.min_image_size, family.default_image_size,
                                 family.imagenet_weights_file is not None, family.published_params,
                                 family.large), name
    assert model_choices.HEADS == tuple(heads.HEADS)


def test_the_check_imports_no_tensorflow_and_takes_about_a_second():
    code = ('import sys, time; t = time.time(); from fastclassify.training import presets; '
            'presets.check({"dataset": "cifar100", "model": "cifar_resnet9", "epochs": 3}); '
            'print(time.time() - t, [m for m in ("tensorflow", "keras", "jax") if m in sys.modules])')
    start = time.time()
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={'PYTHONPATH': ROOT, 'PATH': '/usr/bin:/bin'}).stdout
    assert out.strip().endswith('[]'), out
    assert time.time() - start < 3.0


def test_check_leaves_words_to_the_config_dataclasses():
    # e.g. a steps_per_execution='auto' (another change in flight): not a number, not judged here.
    presets.check({'dataset': 'cifar100', 'steps_per_execution': 'auto', 'steps_per_epoch': 10})
