"""Every default and every list of choices is written once: flags agree with the config dataclasses, and no
message names a flag that does not exist."""

import ast
import dataclasses
import os
import re

import pytest
from absl import flags
from absl.testing import flagsaver

import train
from fastclassify.models import precision
from cli import prepare
from fastclassify.pipelines import data_service, datasets
from fastclassify.pipelines.choices import FOLDER_FORMATS
from fastclassify.pipelines.sources import SourceConfig
from fastclassify.training import backend, config as config_lib, strategy
from fastclassify.training.config import TrainConfig
from fastclassify.training.optimizers import OPTIMIZERS, SCHEDULES
from tests.conftest import ROOT

FLAGS = flags.FLAGS

# Flags whose None is not the field's default but a value derived at run time (the field has one).
_DERIVED = {'backend': '$KERAS_BACKEND, else tensorflow'}
_PRESETS = [spec.preset for spec in datasets.DATASETS.values()] + [datasets.general_preset()]


def _train_flags() -> dict[str, flags.Flag]:
    return {f.name: f for f in FLAGS.get_flags_for_module(train)}


def _field(path: str) -> dataclasses.Field:
    section, name = path.split('.')
    section_type = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[section]
    return {f.name: f for f in dataclasses.fields(section_type)}[name]


def test_every_train_flag_names_one_config_field():
    assert set(_train_flags()) == set(train.FLAG_FIELDS)
    for flag_name, path in train.FLAG_FIELDS.items():
        _field(path)  # raises KeyError for a section or field that does not exist


def test_flag_defaults_are_the_field_defaults_or_come_from_the_preset():
    for flag_name, flag in _train_flags().items():
        field = _field(train.FLAG_FIELDS[flag_name])
        has_default = field.default is not dataclasses.MISSING
        if flag.default is None:
            from_preset = all(flag_name in preset for preset in _PRESETS)
            assert from_preset or not has_default or field.default is None or flag_name in _DERIVED, (
                f'--{flag_name} defaults to None, but {train.FLAG_FIELDS[flag_name]} defaults to '
                f'{field.default!r} and no preset supplies it')
        else:
            assert has_default and flag.default == field.default, (
                f'--{flag_name} defaults to {flag.default!r}, {train.FLAG_FIELDS[flag_name]} to {field.default!r}')


def test_preset_keys_are_flags_that_default_to_none():
    train_flags = _train_flags()
    for preset in _PRESETS:
        for key in preset:
            assert train_flags[key].default is None, f'--{key} must be None for the preset value to apply'


def _resolved(*args):
    with flagsaver.flagsaver():
        FLAGS.unparse_flags()
        FLAGS(['train.py', *args])
        return train._config_and_notes()  # pylint: disable=protected-access


def test_resolved_config_holds_each_flag_default_or_preset_value(tmp_path):
    cfg, notes = _resolved('--dataset=caltech256', '--synthetic_data', f'--data_dir={tmp_path}',
                           f'--model_dir={tmp_path / "run"}')
    values = cfg.to_dict()
    preset = datasets.DATASETS['caltech256'].preset
    assert notes == []
    for flag_name, flag in _train_flags().items():
        section, name = train.FLAG_FIELDS[flag_name].split('.')
        value = values[section][name]
        if flag_name in preset:
            expected = 'none' if flag_name == 'weights' else preset[flag_name]  # synthetic: no weights
            assert value == expected, flag_name
        elif flag.default is not None and flag_name not in ('dataset', 'synthetic_data'):
            assert value == flag.default, flag_name
    # One seed: the pipeline and the augmenter take the run's.
    cfg, _ = _resolved('--dataset=cifar100', '--synthetic_data', '--seed=7', '--deterministic',
                       f'--model_dir={tmp_path / "run"}')
    assert cfg.pipeline.seed == cfg.augment.seed == cfg.run.seed == 7
    assert cfg.pipeline.deterministic and cfg.run.deterministic


def test_momentum_and_clipnorm_are_flags(tmp_path):
    cfg, _ = _resolved('--dataset=cifar100', '--synthetic_data', '--momentum=0.8', '--clipnorm=1.5',
                       f'--model_dir={tmp_path / "run"}')
    assert cfg.optimizer.momentum == 0.8 and cfg.optimizer.clipnorm == 1.5


def test_model_override_takes_the_family_weights_and_head_unless_given(tmp_path):
    cfg, notes = _resolved('--dataset=cifar100', '--model=cifar_resnet9', f'--model_dir={tmp_path / "run"}')
    assert (cfg.model.weights, cfg.model.head) == ('none', 'gap')  # the preset's were imagenet, seed_cifar
    assert 'weights=none' in notes[0] and 'head=gap' in notes[0], notes
    # No pretrained weights: the preset's fine-tuning optimizer gives way to the from-scratch recipe, said so.
    assert len(notes) == 2 and 'from scratch' in notes[1] and 'learning_rate=0.001' in notes[1], notes
    assert (cfg.optimizer.name, cfg.optimizer.learning_rate) == ('adamw', 1e-3)
    cfg, notes = _resolved('--dataset=cifar100', '--model=convnext_tiny', '--head=seed_cifar',
                           f'--model_dir={tmp_path / "run"}')
    assert (cfg.model.weights, cfg.model.head) == ('imagenet', 'seed_cifar') and notes == []
    with pytest.raises(ValueError, match='--weights=imagenet: --model=cifar_resnet9'):
        _resolved('--dataset=cifar100', '--model=cifar_resnet9', '--weights=imagenet',
                  f'--model_dir={tmp_path / "run"}')


def test_source_flags_of_prepare_and_train_agree_with_source_config():
    prepare_flags = flags.FlagValues()
    prepare.define_flags(prepare_flags)
    fields = {f.name: f.default for f in dataclasses.fields(SourceConfig)}
    train_flags = _train_flags()
    for name in prepare_flags:
        if name in fields:
            assert prepare_flags[name].default == train_flags[name].default, name
            assert fields[name] in (dataclasses.MISSING, prepare_flags[name].default), name


@pytest.mark.parametrize('flag_name, choices', [
    ('precision', precision.PRECISIONS), ('jit_compile', precision.JIT_CHOICES),
    ('strategy', strategy.STRATEGIES), ('backend', backend.BACKENDS),
    ('data_service_mode', data_service.MODES), ('optimizer', OPTIMIZERS), ('schedule', SCHEDULES),
    ('folder_format', FOLDER_FORMATS),
])
def test_help_lists_the_choices_defined_once(flag_name, choices):
    for choice in choices:
        assert choice in _train_flags()[flag_name].help, (flag_name, choice)


def test_run_config_checks_the_choice_tuples_of_the_modules_that_act_on_them():
    assert config_lib.PRECISIONS is precision.PRECISIONS
    assert config_lib.JIT_CHOICES is precision.JIT_CHOICES
    assert config_lib.STRATEGIES is strategy.STRATEGIES
    assert config_lib.BACKENDS is backend.BACKENDS
    assert config_lib.DATA_SERVICE_MODES is data_service.MODES
    assert set(strategy.STRATEGIES) == set(strategy.TF_STRATEGIES) | set(strategy.JAX_STRATEGIES)


def _sources():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('tests', '__pycache__')]
        for name in files:
            if name.endswith('.py'):
                yield os.path.join(folder, name)


def test_every_flag_a_message_names_exists():
    texts = {path: open(path).read() for path in _sources()}
    defined = set()
    for text in texts.values():
        defined |= set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", text))  # absl, train.py and the CLIs
        defined |= set(re.findall(r"add_argument\(\s*'--(\w+)'", text))  # argparse scripts
    defined.add('flag')  # "every setting is a --flag": the word, not a name
    unknown = []
    for path, text in texts.items():
        tree = ast.parse(text)
        # Items of a list or tuple are argv of another program (e.g. nvidia-smi's --format), not messages.
        argv = {id(item) for node in ast.walk(tree) if isinstance(node, (ast.List, ast.Tuple)) for item in node.elts}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in argv:
                for name in re.findall(r'(?<![\w-])--(?:no)?([a-z][a-z0-9_]*)', node.value):
                    # XLA's own flags (XLA_FLAGS=--xla_...) are another program's, not ours.
                    if name not in defined and name.removeprefix('no') not in defined and not name.startswith('xla_'):
                        unknown.append(f'{os.path.relpath(path, ROOT)}:{node.lineno}: --{name}')
    assert 'momentum' in defined and 'dataset' in defined
    assert unknown == []
