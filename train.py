"""Trains an image classifier: `python train.py --dataset=caltech256` (or cifar100, a TFDS name, a folder).

Each dataset has a preset reproducing its seed report (pipelines/datasets.py); every flag
overrides it. The resolved config is printed and written to `--model_dir/config.json`.

Defaults and choices belong to the config dataclasses; a flag's default is its field's (None where the
dataset preset fills it), which tests/test_defaults.py checks through `FLAG_FIELDS`.
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

# Data.
flags.DEFINE_string('dataset', None, 'Dataset: cifar100 | caltech256 (seed presets) | folder (with '
                    '--manual_dir) | any TFDS image-classification name, e.g. oxford_flowers102.')
flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: TFDS\'s, ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None, 'Folder holding 256_ObjectCategories.tar (nothing is fetched); '
                    'for --dataset=folder: a directory, .tar(.gz) or .zip of CLASS/IMAGE or '
                    'train|test/CLASS/IMAGE.')
flags.DEFINE_string('config', None, 'TFDS builder config of the dataset (caltech256: all | paper60).')
flags.DEFINE_integer('max_image_pixels', 40_000_000, 'When preparing caltech256 or a folder: an image '
                     'over this many pixels is stored downscaled (JPEG) or skipped, each reported.')
flags.DEFINE_bool('allow_modified_archive', False, 'Build from an archive whose size/sha256 differ.')
flags.DEFINE_bool('download', True, 'May fetch the dataset; --nodownload fails fast when offline.')
flags.DEFINE_bool('synthetic_data', False, 'Random tensors of the dataset\'s shape instead of data.')
flags.DEFINE_float('validation_split', 0.1, 'Fraction of train held out for validation (0 = none).')
flags.DEFINE_string('cache', 'auto', 'Cache placement: auto | memory | disk | device | none.')
flags.DEFINE_float('ram_budget_gb', None, 'RAM the memory cache may use (default: part of RAM).')
# Augmentation (on the accelerator, inside the train step).
flags.DEFINE_string('augment', None, 'Policy, "+" to combine: none|seed|flip_crop|rrc|randaugment|'
                    'mixup|cutmix|erasing.')
flags.DEFINE_integer('randaugment_layers', 2, 'RandAugment: ops per image.')
flags.DEFINE_float('randaugment_magnitude', 9.0, 'RandAugment magnitude M, 0..10 (see pipelines/augment).')
flags.DEFINE_float('mixup_alpha', 0.2, 'Mixup Beta(alpha, alpha).')
flags.DEFINE_float('cutmix_alpha', 1.0, 'CutMix Beta(alpha, alpha).')
flags.DEFINE_float('erasing_probability', 0.25, 'Random erasing probability per image.')
# Model.
flags.DEFINE_string('model', None, 'Model family (see models/registry.py).')
flags.DEFINE_string('head', None, 'Head: gap | seed_caltech | seed_cifar (default: the preset\'s; with '
                    '--model, the family\'s: gap).')
flags.DEFINE_string('weights', None, 'imagenet | none | PATH to .weights.h5 or .keras (default: the '
                    'preset\'s; with --model, the family\'s: imagenet where it has them).')
flags.DEFINE_float('dropout', 0.2, 'Dropout rate of the head.')
flags.DEFINE_integer('image_size', None, 'Training image side in pixels.')
flags.DEFINE_string('precision', 'auto', 'auto | float32 | mixed_float16 | mixed_bfloat16.')
flags.DEFINE_string('jit_compile', 'auto', 'XLA for the train step: auto | true | false.')
flags.DEFINE_string('steps_per_execution', 'auto', 'Train steps per compiled call, or auto: the largest that '
                    'divides the epoch and --checkpoint_every_steps within ~100 ms of device work.')
flags.DEFINE_integer('freeze_backbone_epochs', 0, 'Train only the head for this many epochs first.')
# Optimization.
flags.DEFINE_string('batch_size', None, 'Global batch size (all replicas together), or "auto".')
flags.DEFINE_integer('epochs', None, 'Training epochs.')
flags.DEFINE_integer('steps_per_epoch', 0, 'Steps per epoch; 0 = one pass over the train split.')
flags.DEFINE_string('optimizer', None, 'nadam | rmsprop | adamw | sgd.')
flags.DEFINE_float('learning_rate', None, 'Peak learning rate (at --base_batch_size if set).')
flags.DEFINE_integer('base_batch_size', 0, 'Scale the rate by batch/base_batch_size; 0 = no scaling.')
flags.DEFINE_float('weight_decay', None, 'Decoupled weight decay (default: the dataset\'s preset).')
flags.DEFINE_float('warmup_epochs', None, 'Linear warmup length in epochs (default: the preset).')
flags.DEFINE_string('schedule', 'cosine', 'Learning-rate schedule after warmup: cosine | constant.')
flags.DEFINE_float('ema_decay', 0.0, 'EMA of weights for evaluation; 0 = off (e.g. 0.999).')
flags.DEFINE_float('momentum', 0.9, 'Momentum of sgd (Nesterov) and rmsprop.')
flags.DEFINE_float('clipnorm', 0.0, 'Clip each gradient to this L2 norm; 0 = off.')
flags.DEFINE_float('label_smoothing', 0.0, 'Label smoothing of the cross-entropy.')
# The run.
flags.DEFINE_string('model_dir', None, 'Output folder (default: runs/DATASET-MODEL).')
flags.DEFINE_integer('seed', 0, 'Seed for init, shuffling and augmentation.')
flags.DEFINE_bool('deterministic', False, 'Bit-identical reruns (slower): ordered input, op determinism.')
flags.DEFINE_integer('checkpoint_every_steps', 0, 'In-epoch backup period for resuming; 0 = epoch ends.')
flags.DEFINE_bool('overwrite', False, 'Replace a run with a different config in --model_dir.')
flags.DEFINE_string('strategy', 'auto', 'auto | one_device | mirrored | multi_worker | tpu (TensorFlow); '
                    'auto | one_device | data_parallel (JAX).')
flags.DEFINE_string('backend', None, 'Keras backend: tensorflow | jax (default: $KERAS_BACKEND, else '
                    'tensorflow). The model, augmentation and device cache run on it; tf.data feeds both.')
flags.DEFINE_string('data_service', '', 'grpc://HOST:PORT of a tf.data service dispatcher.')
flags.DEFINE_string('data_service_mode', 'distributed_epoch', 'distributed_epoch | parallel_epochs.')
flags.DEFINE_float('data_service_stall_timeout_s', 300.0, 'Fail when the data service sends no batch '
                   'this long (a dead worker); must exceed the slowest normal gap between batches.')
flags.DEFINE_bool('benchmark', False, 'Measure the model-side ceiling vs end-to-end instead of training.')

# The TrainConfig field ('section.field') each flag sets. A flag's default must be that field's default,
# or None where the dataset preset supplies the value (`preset` keys) or the field has none.
FLAG_FIELDS = {
    'dataset': 'source.dataset', 'data_dir': 'source.data_dir', 'manual_dir': 'source.manual_dir',
    'config': 'source.config', 'max_image_pixels': 'source.max_image_pixels',
    'allow_modified_archive': 'source.allow_modified_archive', 'download': 'source.download',
    'synthetic_data': 'run.synthetic_data', 'validation_split': 'pipeline.validation_fraction',
    'cache': 'pipeline.cache', 'ram_budget_gb': 'pipeline.ram_budget_bytes',
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


def _preset_or(flag_name: str, preset: dict, key: str | None = None):
    value = FLAGS[flag_name].value
    return preset[key or flag_name] if value is None else value


def _warmup_epochs(preset: dict) -> float:
    """The flag, else the preset's warmup capped at a tenth of the run (a 1-epoch run still warms up)."""
    if FLAGS.warmup_epochs is not None:
        return FLAGS.warmup_epochs
    return min(preset['warmup_epochs'], _preset_or('epochs', preset) / 10)


def _dataset_spec(source):
    """The dataset's facts; a folder is prepared here (once), its report printed: its classes are its folders."""
    from cli import prepare
    from fastclassify.pipelines import datasets, sources

    try:
        spec = sources.dataset_spec(source)
        if source.dataset == datasets.FOLDER:
            # Printed: the log is held back while flags are resolved, and skipped files must be seen.
            print(prepare.report(sources.prepare(source)), flush=True)
    except sources.DataMissingError as e:
        raise ValueError(str(e)) from None
    return spec


def _preset(spec) -> tuple[dict, list[str]]:
    """The dataset's preset as this run uses it, and a note for each value changed from it.

    The preset's weights and head were chosen for its own model: when `--model` picks another family,
    that family's defaults replace them (an explicit `--weights` / `--head` still wins).
    """
    from fastclassify.models.config import family_defaults

    preset, notes = dict(spec.preset), []
    if FLAGS.model is not None and FLAGS.model != preset['model']:
        own = family_defaults(FLAGS.model)  # raises naming --model and the valid names
        changed = {k: v for k, v in own.items() if v != preset[k] and FLAGS[k].value is None}
        if changed:
            notes.append(f'--model={FLAGS.model} replaces the {spec.name} preset\'s {preset["model"]}, so '
                         + ', '.join(f'{k}={v} (the family\'s default; preset: {preset[k]})'
                                     for k, v in changed.items())
                         + '; --' + ' / --'.join(changed) + ' set them')
        preset.update(own)
    if FLAGS.synthetic_data:
        preset['weights'] = 'none'  # random pixels gain nothing from pretrained weights
    return preset, notes


def config_from_flags():
    """Turns the flags, once, into a frozen TrainConfig (raises ValueError naming a bad flag)."""
    return _config_and_notes()[0]


def _config_and_notes():
    """The TrainConfig and the notes on preset values this run replaced (printed with the config)."""
    from fastclassify.models.config import ModelConfig
    from fastclassify.pipelines import datasets
    from fastclassify.pipelines.augment import AugmentConfig, cache_size_for
    from fastclassify.pipelines.pipeline import PipelineConfig
    from fastclassify.pipelines.sources import SourceConfig
    from fastclassify.training.config import RunConfig, TrainConfig
    from fastclassify.training.optimizers import OptimizerConfig

    import keras
    if FLAGS.backend is not None and FLAGS.backend != keras.backend.backend():
        raise ValueError(f'--backend={FLAGS.backend}: Keras was already loaded with the '
                         f'{keras.backend.backend()} backend in this process')
    if FLAGS.dataset is None:
        raise ValueError(f'--dataset is required; valid: {", ".join(sorted(datasets.DATASETS))}, '
                         f'{datasets.FOLDER}, or a TFDS image-classification dataset name')
    if FLAGS.synthetic_data and FLAGS.dataset == datasets.FOLDER:
        raise ValueError('--synthetic_data does not apply to --dataset=folder (its classes are its folders)')
    source = SourceConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                          config=FLAGS.config, allow_modified_archive=FLAGS.allow_modified_archive,
                          download=FLAGS.download, max_image_pixels=FLAGS.max_image_pixels)
    spec = _dataset_spec(source)
    preset, notes = _preset(spec)
    num_classes = spec.num_classes
    image_size = _preset_or('image_size', preset)
    batch_flag = str(_preset_or('batch_size', preset))
    auto_batch = batch_flag == 'auto'
    try:
        batch_size = preset['batch_size'] if auto_batch else int(batch_flag)
    except ValueError:
        raise ValueError(f'--batch_size={batch_flag!r} is not valid; use a positive integer or "auto"') from None
    # The seed and determinism go to RunConfig only; TrainConfig passes them down.
    augment = AugmentConfig(
        policy=_preset_or('augment', preset), image_size=image_size, num_classes=num_classes,
        randaugment_layers=FLAGS.randaugment_layers, randaugment_magnitude=FLAGS.randaugment_magnitude,
        mixup_alpha=FLAGS.mixup_alpha, cutmix_alpha=FLAGS.cutmix_alpha,
        erasing_probability=FLAGS.erasing_probability)
    model_name = _preset_or('model', preset)
    model = ModelConfig(name=model_name, num_classes=num_classes, image_size=image_size,
                        weights=_preset_or('weights', preset), head=_preset_or('head', preset),
                        dropout=FLAGS.dropout)
    if FLAGS.ram_budget_gb is not None and not 0 <= FLAGS.ram_budget_gb < float('inf'):
        raise ValueError(f'--ram_budget_gb={FLAGS.ram_budget_gb:g} is not valid; it must be a number of '
                         'GiB >= 0 (0 = no memory cache)')
    data_root = FLAGS.data_dir or os.path.expanduser('~/tensorflow_datasets')
    cache_size = cache_size_for(augment)
    pipeline = PipelineConfig(
        cache_size=cache_size, batch_size=batch_size, cache=FLAGS.cache,
        cache_dir=os.path.join(data_root, 'cache', f'{spec.name}-{FLAGS.config or "default"}-'
                               f'{spec.data_version + "-" if spec.data_version else ""}{cache_size}px'),
        ram_budget_bytes=None if FLAGS.ram_budget_gb is None else int(FLAGS.ram_budget_gb * 2**30),
        validation_fraction=FLAGS.validation_split)
    optimizer = OptimizerConfig(
        name=_preset_or('optimizer', preset), learning_rate=_preset_or('learning_rate', preset),
        base_batch_size=FLAGS.base_batch_size, weight_decay=_preset_or('weight_decay', preset),
        warmup_epochs=_warmup_epochs(preset), schedule=FLAGS.schedule, ema_decay=FLAGS.ema_decay,
        momentum=FLAGS.momentum, clipnorm=FLAGS.clipnorm)
    run = RunConfig(
        model_dir=FLAGS.model_dir or os.path.join('runs', f'{spec.name}-{model_name}'),
        epochs=_preset_or('epochs', preset), steps_per_epoch=FLAGS.steps_per_epoch, seed=FLAGS.seed,
        deterministic=FLAGS.deterministic, synthetic_data=FLAGS.synthetic_data,
        precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
        steps_per_execution=FLAGS.steps_per_execution, label_smoothing=FLAGS.label_smoothing,
        freeze_backbone_epochs=FLAGS.freeze_backbone_epochs,
        checkpoint_every_steps=FLAGS.checkpoint_every_steps, overwrite=FLAGS.overwrite,
        auto_batch_size=auto_batch, strategy=FLAGS.strategy, backend=keras.backend.backend(),
        data_service=FLAGS.data_service,
        data_service_mode=FLAGS.data_service_mode,
        data_service_stall_timeout_s=FLAGS.data_service_stall_timeout_s, benchmark=FLAGS.benchmark)
    return TrainConfig(source=source, pipeline=pipeline, augment=augment, model=model,
                       optimizer=optimizer, run=run), notes


def _fail(message: str, code: int) -> None:
    print(f'train.py: error: {message}', file=sys.stderr, flush=True)
    sys.exit(code)


def select_backend() -> None:
    """Makes `--backend` (else $KERAS_BACKEND, else tensorflow) Keras' backend; before Keras is imported."""
    from fastclassify.training import backend

    try:
        backend.select(FLAGS.backend)
    except ValueError as e:
        _fail(str(e), 2)


def main(argv):
    if len(argv) > 1:
        _fail(f'unexpected arguments {argv[1:]}; every setting is a flag, e.g. --epochs=5', 2)
    select_backend()
    from fastclassify.training import native_stderr

    try:
        with native_stderr.held_back(drop_on=(ValueError,)):
            cfg, notes = _config_and_notes()
            from fastclassify.training import strategy as strategy_lib
            # The strategy comes first (multi-worker collectives must be configured before the
            # runtime starts); device start-up logs here, held back; we print one line instead.
            try:
                strategy = strategy_lib.build_strategy(cfg.run.strategy)
            except strategy_lib.StrategyError as e:
                raise ValueError(str(e)) from None
    except ValueError as e:
        _fail(str(e), 2)
    print(f'devices: {", ".join(strategy_lib.device_names(strategy))} (Keras backend '
          f'{cfg.run.backend})', flush=True)
    print('config:\n' + cfg.to_json(), flush=True)
    for note in notes:
        print(f'config: {note}', flush=True)

    from fastclassify.models.weights import WeightsError
    from fastclassify.pipelines.sources import DataMissingError
    from fastclassify.training import loop
    from fastclassify.training.run_dir import RunDirError

    try:
        if cfg.run.benchmark:
            from benchmarks import throughput
            throughput.run(cfg, strategy=strategy)
            return
        outcome = loop.run(cfg, strategy=strategy)
    except (RunDirError, DataMissingError, WeightsError, strategy_lib.StrategyError,
            loop.TrainingError) as e:
        _fail(str(e), 1)
    if outcome.status == 'preempted':
        print(f'preempted: state saved in {outcome.model_dir}; rerun the same command to resume.',
              flush=True)
        sys.exit(143)


if __name__ == '__main__':
    app.run(main)
