"""From a user's explicit choices and a dataset's preset to one `TrainConfig`, with a note for every preset
value the run changed because of another choice. train.py and the Python API both call it; `check` runs
before TensorFlow is imported, so a bad value is reported in about a second.

Choices are a plain mapping from the names below (`FIELDS`, train.py's flag names) to values; None (or a
missing name) means "not chosen": the preset's value, else the config field's default.
"""

import math
import os
import re
from typing import Any, Mapping

from fastclassify.models.choices import HEADS, MAX_IMAGE_SIZE, PRECISIONS, JIT_CHOICES, family_facts
from fastclassify.pipelines import datasets
from fastclassify.pipelines.choices import (CACHE_CHOICES, DATA_SERVICE_MODES, FOLDER_FORMATS, GEOMETRIC_POLICIES,
                                             POLICIES, PROCESS_CACHE_CHOICES)
from fastclassify.training.backend import BACKENDS
from fastclassify.training.choices import OPTIMIZERS, SCHEDULES, STRATEGIES

# The TrainConfig field ('section.field') each choice sets.
FIELDS = {
    'dataset': 'source.dataset', 'data_dir': 'source.data_dir', 'manual_dir': 'source.manual_dir',
    'config': 'source.config', 'max_image_pixels': 'source.max_image_pixels',
    'folder_format': 'source.folder_format',
    'allow_modified_archive': 'source.allow_modified_archive', 'download': 'source.download',
    'synthetic_data': 'run.synthetic_data', 'validation_split': 'pipeline.validation_fraction',
    'cache': 'pipeline.cache', 'ram_budget_gb': 'pipeline.ram_budget_bytes',
    'process_cache': 'pipeline.process_cache',
    'augment': 'augment.policy', 'randaugment_layers': 'augment.randaugment_layers',
    'randaugment_magnitude': 'augment.randaugment_magnitude', 'mixup_alpha': 'augment.mixup_alpha',
    'cutmix_alpha': 'augment.cutmix_alpha', 'erasing_probability': 'augment.erasing_probability',
    'model': 'model.name', 'head': 'model.head', 'weights': 'model.weights', 'dropout': 'model.dropout',
    'image_size': 'model.image_size', 'precision': 'run.precision', 'jit_compile': 'run.jit_compile',
    'steps_per_execution': 'run.steps_per_execution', 'freeze_backbone_epochs': 'run.freeze_backbone_epochs',
    'batch_size': 'pipeline.batch_size', 'epochs': 'run.epochs', 'steps_per_epoch': 'run.steps_per_epoch',
    'optimizer': 'optimizer.name', 'learning_rate': 'optimizer.learning_rate',
    'base_batch_size': 'optimizer.base_batch_size', 'weight_decay': 'optimizer.weight_decay',
    'warmup_epochs': 'optimizer.warmup_epochs', 'schedule': 'optimizer.schedule',
    'ema_decay': 'optimizer.ema_decay', 'momentum': 'optimizer.momentum', 'clipnorm': 'optimizer.clipnorm',
    'label_smoothing': 'run.label_smoothing', 'model_dir': 'run.model_dir', 'seed': 'run.seed',
    'deterministic': 'run.deterministic', 'checkpoint_every_steps': 'run.checkpoint_every_steps',
    'overwrite': 'run.overwrite', 'strategy': 'run.strategy', 'backend': 'run.backend',
    'data_service': 'run.data_service', 'data_service_mode': 'run.data_service_mode',
    'data_service_stall_timeout_s': 'run.data_service_stall_timeout_s', 'benchmark': 'run.benchmark',
}

# Choices whose value needs the config sections' own handling below, not a plain copy into their field.
_DERIVED = ('dataset', 'data_dir', 'manual_dir', 'config', 'ram_budget_gb', 'batch_size', 'model_dir',
            'backend', 'synthetic_data')
_CHOICE_LISTS = {'optimizer': OPTIMIZERS, 'schedule': SCHEDULES, 'cache': CACHE_CHOICES,
                 'precision': PRECISIONS, 'jit_compile': JIT_CHOICES, 'strategy': STRATEGIES,
                 'backend': BACKENDS, 'data_service_mode': DATA_SERVICE_MODES, 'head': HEADS,
                 'folder_format': FOLDER_FORMATS, 'process_cache': PROCESS_CACHE_CHOICES}
# name: (lowest, lowest allowed itself, highest or None, highest allowed itself).
_RANGES = {
    'epochs': (0, False, None, True), 'steps_per_epoch': (0, True, None, True),
    'steps_per_execution': (0, False, None, True), 'checkpoint_every_steps': (0, True, None, True),
    'freeze_backbone_epochs': (0, True, None, True), 'learning_rate': (0, False, None, True),
    'weight_decay': (0, True, None, True), 'warmup_epochs': (0, True, None, True),
    'dropout': (0, True, 1, False), 'label_smoothing': (0, True, 1, False),
    'validation_split': (0, True, 1, False), 'ram_budget_gb': (0, True, math.inf, False),
    'max_image_pixels': (0, False, None, True), 'ema_decay': (0, True, 1, False),
    'momentum': (0, True, 1, False), 'clipnorm': (0, True, None, True), 'base_batch_size': (0, True, None, True),
    'randaugment_layers': (0, True, None, True), 'randaugment_magnitude': (0, True, 10, True),
    'erasing_probability': (0, True, 1, True), 'mixup_alpha': (0, False, None, True),
    'cutmix_alpha': (0, False, None, True), 'data_service_stall_timeout_s': (0, False, None, True),
}


def dataset_preset(dataset: str) -> Mapping[str, Any]:
    """The preset of `dataset` (a seed dataset's own; every other name and folders share the general one)."""
    return datasets.DATASETS[dataset].preset if dataset in datasets.DATASETS else datasets.general_preset()


def preset_values(choices: Mapping[str, Any], preset: Mapping[str, Any], *,
                  dataset: str) -> tuple[dict[str, Any], list[str]]:
    """Every preset key's value for this run, and a plain-words note for each one changed by another choice.

    - A `model` other than the preset's: the preset's `weights` and `head` were chosen for its own model, so
      the family's own replace them (ImageNet weights where it has them, the `gap` head).
    - No pretrained weights (`weights=none`, or a family without ImageNet weights) under a fine-tuning preset:
      the fine-tuning optimizer would leave a random network undertrained, so `datasets.from_scratch_recipe`
      replaces it.
    - The warmup is capped at a tenth of the run (a 1-epoch run still warms up).
    An explicit choice always wins; random `synthetic_data` takes no pretrained weights (and no note).

    Raises:
        ValueError: an unknown `model`, naming it and the valid names.
    """
    values = dict(preset)
    notes = []
    dataset = dataset if dataset in datasets.DATASETS else 'general'  # TFDS names and folders share one
    chosen = {k: choices.get(k) for k in preset if choices.get(k) is not None}
    model = chosen.get('model', preset['model'])
    if model != preset['model']:
        own = {'weights': 'imagenet' if family_facts(model).imagenet else 'none', 'head': HEADS[0]}
        changed = {k: v for k, v in own.items() if v != preset[k] and k not in chosen}
        if changed:
            notes.append(f'model={model} is not the {dataset} preset\'s {preset["model"]}, so '
                         + ', '.join(f'{k}={v} (the preset\'s {preset[k]} suits its own model)'
                                     for k, v in changed.items()))
        values.update(own)
    values.update(chosen)
    if values['weights'] == 'none' and preset['weights'] != 'none' and not choices.get('synthetic_data'):
        recipe = datasets.from_scratch_recipe()
        changed = {k: v for k, v in recipe.items() if k not in chosen and values[k] != v}
        if changed:
            why = ('weights=none' if 'weights' in chosen
                   else f'model={model} has no ImageNet weights')
            notes.append(f'{why}: training from scratch, not fine-tuning, so '
                         + ', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                                     for k, v in changed.items())
                         + ' (the preset\'s fine-tuning values: '
                         + ', '.join(f'{k}={values[k]:g}' if isinstance(values[k], float) else f'{k}={values[k]}'
                                     for k in changed) + ')')
            values.update(changed)
    if choices.get('synthetic_data') and 'weights' not in chosen:
        values['weights'] = 'none'  # random pixels gain nothing from pretrained weights
    if 'warmup_epochs' not in chosen:
        values['warmup_epochs'] = min(values['warmup_epochs'], values['epochs'] / 10)
    return values, notes


def check(choices: Mapping[str, Any]) -> None:
    """Checks every choice that can be judged without TensorFlow or the data; raises ValueError naming it.

    What it cannot judge (a TFDS builder's configs, a folder's classes, batch vs. dataset size) the config
    dataclasses check when `resolve` builds them.
    """
    dataset = choices.get('dataset')
    check_dataset(dataset)
    if choices.get('synthetic_data') and dataset == datasets.FOLDER:
        raise ValueError('synthetic_data does not apply to dataset=folder (its classes are its folders)')
    if dataset in datasets.DATASETS and choices.get('config') is not None:
        datasets.num_classes(datasets.DATASETS[dataset], choices['config'])
    for name, valid in _CHOICE_LISTS.items():
        if choices.get(name) is not None and choices[name] not in valid:
            raise ValueError(f'{name}={choices[name]!r} is not valid; valid: {", ".join(valid)}')
    for name, (low, low_ok, high, high_ok) in _RANGES.items():
        value = choices.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # unset, or a word such as 'auto': the config dataclass judges it
        if value < low or (value == low and not low_ok) or (high is not None and (
                value > high or (value == high and not high_ok))):
            bound = {(0, False): '> 0', (0, True): '>= 0'}[(low, low_ok)] if high is None else (
                f'in {"[" if low_ok else "("}{low}, {high}{"]" if high_ok else ")"}')
            raise ValueError(f'{name}={value:g} is not valid; it must be {bound}')
    values, _ = preset_values(choices, dataset_preset(dataset), dataset=dataset)
    _check_policy(values['augment'])
    _check_model(values)
    batch_size(values['batch_size'])
    for flag, steps in (('steps_per_epoch', choices.get('steps_per_epoch') or 0),
                        ('checkpoint_every_steps', choices.get('checkpoint_every_steps') or 0)):
        per_call = choices.get('steps_per_execution') or 1
        if isinstance(per_call, int) and isinstance(steps, int) and steps % per_call:
            raise ValueError(f'{flag}={steps} is not valid with steps_per_execution={per_call}; it must be '
                             'a multiple of it')
    if (choices.get('freeze_backbone_epochs') or 0) >= values['epochs'] and choices.get('freeze_backbone_epochs'):
        raise ValueError(f'freeze_backbone_epochs={choices["freeze_backbone_epochs"]} is not valid; it must be '
                         f'smaller than epochs={values["epochs"]} (the backbone would never be trained)')
    if choices.get('data_service') and not choices['data_service'].startswith('grpc://'):
        raise ValueError(f'data_service={choices["data_service"]!r} is not valid; use grpc://HOST:PORT')
    if dataset == datasets.FOLDER and not choices.get('manual_dir'):
        raise ValueError('dataset=folder needs manual_dir=PATH: a directory, .tar(.gz) or .zip of class folders')
    for name in ('manual_dir',):
        path = choices.get(name)
        if path and not os.path.exists(os.path.expanduser(path)):
            raise ValueError(f'{name}={path} does not exist')
    for name in ('model_dir', 'data_dir'):
        if choices.get(name):
            check_writable(name, choices[name])


def check_dataset(name: str | None) -> None:
    """Raises ValueError when `name` is no seed dataset, not `folder` and not in the TFDS catalog.

    The suggestion is case-insensitive (`CIFAR100` -> cifar100) and names each candidate once.
    """
    known = [*datasets.DATASETS, datasets.FOLDER]
    if name is None:
        raise ValueError(f'dataset is required; valid: {", ".join(known)}, or a TFDS image-classification '
                         'dataset name (e.g. oxford_flowers102)')
    if name in known:
        return
    if name.lower() in known:
        raise ValueError(f'dataset={name!r} is not a known dataset; did you mean {name.lower()}? '
                         '(names are lower case)')
    from fastclassify.pipelines import catalog  # pylint: disable=import-outside-toplevel  # TFDS, not TF
    catalog.check_name(name, known)


def check_writable(name: str, path: str) -> None:
    """Raises ValueError when `path` (a folder to be) is a file or its nearest existing folder is read-only."""
    path = os.path.abspath(os.path.expanduser(path))
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        if probe == path:
            raise ValueError(f'{name}={path} is a file, not a folder')
        raise ValueError(f'{name}={path} is not writable: {probe} is a file, not a folder')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f'{name}={path} is not writable ({probe} is read-only for this user)')


def batch_size(value: Any) -> tuple[int | None, bool]:
    """`(batch size, auto)` from a choice: a positive integer, or 'auto' (None: probed at run time)."""
    if str(value) == 'auto':
        return None, True
    try:
        size = int(str(value))
    except ValueError:
        raise ValueError(f'batch_size={value!r} is not valid; use a positive integer or "auto"') from None
    if size <= 0:
        raise ValueError(f'batch_size={size} is not valid; it must be positive (or "auto")')
    return size, False


def _check_policy(policy: str) -> None:
    parts = policy.split('+')
    unknown = [p for p in parts if p not in POLICIES]
    if unknown or not policy:
        raise ValueError(f'augment={policy!r}: unknown policy {unknown or [""]}; valid names, joined with '
                         f"'+': {', '.join(POLICIES)}")
    if len([p for p in parts if p in GEOMETRIC_POLICIES]) > 1:
        raise ValueError(f'augment={policy!r}: choose at most one of {", ".join(GEOMETRIC_POLICIES)} (each '
                         'replaces the whole geometry)')


def _check_model(values: Mapping[str, Any]) -> None:
    model, size, weights = values['model'], values['image_size'], values['weights']
    facts = family_facts(model)
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f'image_size={size!r} must be a positive integer')
    if size > MAX_IMAGE_SIZE:
        raise ValueError(f'image_size={size} is too large: at most {MAX_IMAGE_SIZE} px')
    if size < facts.min_image_size:
        raise ValueError(f'image_size={size} is too small for model={model}: its minimum is '
                         f'{facts.min_image_size} px')
    if weights == 'imagenet' and not facts.imagenet:
        raise ValueError(f'weights=imagenet: model={model} is trained from scratch and has no ImageNet weights; '
                         'use weights=none or a path to .weights.h5 / .keras')
    if weights not in ('imagenet', 'none'):
        if not weights.endswith(('.weights.h5', '.keras')):
            raise ValueError(f'weights={weights!r} is not imagenet, none, or a path ending in .weights.h5 or '
                             '.keras')
        if not os.path.isfile(os.path.expanduser(weights)):
            raise ValueError(f'weights={weights} is not a file')


def display_name(spec: datasets.DatasetSpec) -> str:
    """The dataset as a user names it: a folder dataset by its folder's name (no prefix, no hash)."""
    if spec.tfds_name == datasets.FOLDER_TFDS_NAME:
        return re.sub(r'-[0-9a-f]{10}(-png)?$', '', spec.name.removeprefix(f'{datasets.FOLDER}-'))
    return spec.name


def run_name(spec: datasets.DatasetSpec, model: str) -> str:
    """The default run folder's name: DATASET-MODEL, a folder dataset by its folder's name."""
    return f'{display_name(spec)}-{model}'


def resolve(choices: Mapping[str, Any], spec: datasets.DatasetSpec, *, backend: str):
    """The frozen `TrainConfig` of `choices` on dataset `spec` (its classes known), and the preset notes.

    Raises:
        ValueError: a bad choice, naming it (the config dataclasses' own checks included).
    """
    # pylint: disable=import-outside-toplevel  # TensorFlow loads here, after `check`
    from fastclassify.models.config import ModelConfig
    from fastclassify.pipelines.augment import AugmentConfig, cache_size_for
    from fastclassify.pipelines.pipeline import PipelineConfig
    from fastclassify.pipelines.sources import SourceConfig
    from fastclassify.training.config import RunConfig, TrainConfig
    from fastclassify.training.optimizers import OptimizerConfig

    values, notes = preset_values(choices, spec.preset, dataset=spec.name)
    sections = {'source': {}, 'pipeline': {}, 'augment': {}, 'model': {}, 'optimizer': {}, 'run': {}}
    for name, path in FIELDS.items():
        value = values[name] if name in values else choices.get(name)
        if value is not None and name not in _DERIVED:
            section, field = path.split('.')
            sections[section][field] = value
    size, auto_batch = batch_size(values['batch_size'])
    source = SourceConfig(**sections['source'], **{k: choices[k] for k in (
        'dataset', 'data_dir', 'manual_dir', 'config') if choices.get(k) is not None})
    augment = AugmentConfig(**sections['augment'], image_size=values['image_size'], num_classes=spec.num_classes)
    model = ModelConfig(**sections['model'], num_classes=spec.num_classes)
    data_root = choices.get('data_dir') or os.path.expanduser('~/tensorflow_datasets')
    cache_size = cache_size_for(augment)
    ram_gb = choices.get('ram_budget_gb')
    pipeline = PipelineConfig(
        **sections['pipeline'], cache_size=cache_size, batch_size=spec.preset['batch_size'] if auto_batch else size,
        cache_dir=os.path.join(data_root, 'cache', f'{spec.name}-{choices.get("config") or "default"}-'
                               f'{spec.data_version + "-" if spec.data_version else ""}{cache_size}px'),
        ram_budget_bytes=None if ram_gb is None else int(ram_gb * 2**30))
    optimizer = OptimizerConfig(**sections['optimizer'])
    model_dir = choices.get('model_dir')  # '' is the user's (refused by RunConfig), not "unset"
    run = RunConfig(**sections['run'], model_dir=os.path.join('runs', run_name(spec, values['model']))
                    if model_dir is None else model_dir, synthetic_data=bool(choices.get('synthetic_data')),
        auto_batch_size=auto_batch, backend=backend)
    return TrainConfig(source=source, pipeline=pipeline, augment=augment, model=model, optimizer=optimizer,
                       run=run), notes


def summary(cfg, choices: Mapping[str, Any], notes: list[str], *, explicit: set[str]) -> list[str]:
    """A few lines saying what this run trains: the preset's recipe, what `explicit` choices changed, notes."""
    m, o, p, r = cfg.model, cfg.optimizer, cfg.pipeline, cfg.run
    preset = 'its seed report\'s preset' if cfg.source.dataset in datasets.DATASETS else 'the general preset'
    batch = 'auto' if r.auto_batch_size else p.batch_size
    lines = [
        f'{cfg.source.dataset}{" (synthetic data)" if r.synthetic_data else ""}, {preset}: model {m.name} '
        f'({"from scratch" if m.weights == "none" else m.weights + " weights"}, head {m.head}) at '
        f'{m.image_size} px, batch {batch}, {r.epochs} epoch{"s" * (r.epochs != 1)}'
        f'{f" of {r.steps_per_epoch} steps" if r.steps_per_epoch else ""}',
        f'{o.name} lr {o.learning_rate:g} weight decay {o.weight_decay:g}, warmup {o.warmup_epochs:g} epochs '
        f'then {o.schedule}; augment {cfg.augment.policy}; cache {p.cache}; precision {r.precision}',
    ]
    changed = sorted(explicit - {'dataset'})
    if changed:
        lines.append('set by you: ' + ', '.join(f'{k}={choices[k]}' for k in changed))
    lines += notes
    return lines


def field_message(message: str, prefix: str = '--') -> str:
    """`message` with each `name=` of a choice written as `{prefix}name=` (train.py: a flag)."""
    names = '|'.join(sorted(FIELDS, key=len, reverse=True))
    return re.sub(rf'(?<![\w-])({names})=', rf'{prefix}\1=', message)
