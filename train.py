"""Trains an image classifier on a folder of images, a TFDS dataset, CIFAR-100 or Caltech-256.

  python train.py --dataset=folder --manual_dir=PATH --model=cifar_resnet9 --image_size=32 --batch_size=16
  python train.py --dataset=oxford_flowers102          (fine-tunes ConvNeXt-Tiny from ImageNet; a GPU job)

Each dataset has a preset (below); every flag overrides it, and the run says what changed. The run
folder (--model_dir, default runs/DATASET-MODEL) gets the model, results, plots, logs and config.json.
"""

# Maintainers: defaults and choices belong to the config dataclasses; a flag's default is its field's (None
# where the dataset preset fills it), which tests/test_defaults.py checks through `FLAG_FIELDS`.

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402

from fastclassify.training import presets  # noqa: E402  (no TensorFlow: flags are checked first)

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
flags.DEFINE_string('folder_format', 'jpeg', 'folder: how images are stored once prepared: jpeg (JPEGs as '
                    'given, other formats re-encoded at quality 95: small, lossy) | png (JPEGs as given, the '
                    'rest lossless PNG: exact, several times larger).')
flags.DEFINE_bool('allow_modified_archive', False, 'Build from an archive whose size/sha256 differ.')
flags.DEFINE_bool('download', True, 'May fetch the dataset; --nodownload fails fast when offline.')
flags.DEFINE_bool('synthetic_data', False, 'Random tensors of the dataset\'s shape instead of data.')
flags.DEFINE_float('validation_split', 0.1, 'Fraction of train held out for validation (0 = none).')
flags.DEFINE_string('cache', 'auto', 'Cache placement: auto | memory | disk | device | none.')
flags.DEFINE_float('ram_budget_gb', None, 'RAM the memory cache may use (default: part of RAM).')
flags.DEFINE_string('process_cache', 'auto', 'Several JAX processes: auto | share (each reads and caches '
                    'only its part of the training split) | whole (each caches all of it). auto: share for '
                    'a new run on several processes, what the run started with on a resume.')
# Augmentation (on the accelerator, inside the train step).
flags.DEFINE_string('augment', None, 'Policy, "+" to combine: none|seed|flip_crop|rrc|randaugment|'
                    'mixup|cutmix|erasing.')
flags.DEFINE_integer('randaugment_layers', 2, 'RandAugment: ops per image.')
flags.DEFINE_float('randaugment_magnitude', 9.0, 'RandAugment magnitude M, 0..10 (10: strongest).')
flags.DEFINE_float('mixup_alpha', 0.2, 'Mixup Beta(alpha, alpha).')
flags.DEFINE_float('cutmix_alpha', 1.0, 'CutMix Beta(alpha, alpha).')
flags.DEFINE_float('erasing_probability', 0.25, 'Random erasing probability per image.')
# Model.
flags.DEFINE_string('model', None, 'Model family; `train.py -h` lists the 15 families.')
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
                    'auto | one_device | data_parallel (JAX; across processes when '
                    'KERAS_DISTRIBUTION_NUM_PROCESSES > 1, see BUILD.md).')
flags.DEFINE_string('backend', None, 'Keras backend: tensorflow | jax (default: $KERAS_BACKEND, else '
                    'tensorflow). The model, augmentation and device cache run on it; tf.data feeds both.')
flags.DEFINE_string('data_service', '', 'grpc://HOST:PORT of a tf.data service dispatcher.')
flags.DEFINE_string('data_service_mode', 'distributed_epoch', 'distributed_epoch | parallel_epochs.')
flags.DEFINE_float('data_service_stall_timeout_s', 300.0, 'Fail when the data service sends no batch '
                   'this long (a dead worker); must exceed the slowest normal gap between batches.')
flags.DEFINE_bool('benchmark', False, 'Measure the model-side ceiling vs end-to-end instead of training.')

# The TrainConfig field ('section.field') each flag sets (the library's choice names are the flag names).
# A flag's default must be that field's default, or None where the dataset preset supplies the value.
FLAG_FIELDS = presets.FIELDS


def choices_from_flags() -> dict:
    """The flags as the library's choices (None = not set: the preset's value, else the field default)."""
    return {name: FLAGS[name].value for name in FLAG_FIELDS}


def _dataset_spec(source):
    """The dataset's facts; a folder is prepared here (once), its report printed: its classes are its folders."""
    from fastclassify.pipelines import datasets, report, sources

    try:
        spec = sources.dataset_spec(source)
        if source.dataset == datasets.FOLDER:
            # Printed: the log is held back while flags are resolved, and skipped files must be seen.
            print(report.report(sources.prepare(source)), flush=True)
    except sources.DataMissingError as e:
        raise ValueError(str(e)) from None
    return spec


def config_from_flags():
    """Turns the flags, once, into a frozen TrainConfig (raises ValueError naming a bad flag)."""
    return _config_and_notes()[0]


def _config_and_notes():
    """The TrainConfig and the notes on preset values this run replaced (printed with the config)."""
    from fastclassify.pipelines.sources import SourceConfig

    import keras
    if FLAGS.backend is not None and FLAGS.backend != keras.backend.backend():
        raise ValueError(f'--backend={FLAGS.backend}: Keras was already loaded with the '
                         f'{keras.backend.backend()} backend in this process')
    choices = choices_from_flags()
    try:
        presets.check(choices)
        source = SourceConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                              config=FLAGS.config, allow_modified_archive=FLAGS.allow_modified_archive,
                              download=FLAGS.download, max_image_pixels=FLAGS.max_image_pixels,
                              folder_format=FLAGS.folder_format)
        spec = _dataset_spec(source)
        return presets.resolve(choices, spec, backend=keras.backend.backend())
    except ValueError as e:
        raise ValueError(presets.field_message(str(e))) from None


class _WeightsMissing(ValueError):
    """The ImageNet weights are neither cached nor downloadable (exit 1: the flags are fine)."""


def _fetch_imagenet_weights_first() -> None:
    """Has the ImageNet weights the run will load (downloads them) before a folder is prepared or a
    dataset decoded: offline without them, the run fails in seconds, not after the whole data pass."""
    choices = choices_from_flags()
    values, _ = presets.preset_values(choices, presets.dataset_preset(FLAGS.dataset), dataset=FLAGS.dataset)
    if values['weights'] != 'imagenet':
        return
    from fastclassify.models.weights import WeightsError, fetch_imagenet_weights

    try:
        fetch_imagenet_weights(values['model'])
    except WeightsError as e:
        raise _WeightsMissing(str(e)) from None


def _fail(message: str, code: int) -> None:
    print(f'train.py: error: {message}', file=sys.stderr, flush=True)
    if 'fastclassify.training.multiprocess' in sys.modules:
        sys.modules['fastclassify.training.multiprocess'].on_failure(SystemExit(code))
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
    if not FLAGS['verbosity'].present:
        # Libraries' INFO lines (TFDS's thread ids and config reprs, strategy notes) are not the user's
        # business; --verbosity=0 (INFO) or 1 (DEBUG) shows them.
        import logging as py_logging
        from absl import logging
        logging.set_verbosity(logging.WARNING)
        py_logging.getLogger('tensorflow').setLevel(py_logging.WARNING)
    try:
        presets.check(choices_from_flags())  # before TensorFlow loads: a bad flag is one line in a second
    except ValueError as e:
        _fail(presets.field_message(str(e)), 2)
    select_backend()
    from fastclassify.training import native_stderr

    try:
        with native_stderr.held_back(drop_on=(ValueError,)):
            _fetch_imagenet_weights_first()
            cfg, notes = _config_and_notes()
            from fastclassify.training import strategy as strategy_lib
            # The strategy comes first (multi-worker collectives must be configured before the
            # runtime starts); device start-up logs here, held back; we print one line instead.
            try:
                strategy = strategy_lib.build_strategy(cfg.run.strategy)
            except strategy_lib.StrategyError as e:
                raise ValueError(str(e)) from None
    except ValueError as e:
        _fail(str(e), 1 if isinstance(e, _WeightsMissing) else 2)
    print(f'devices: {", ".join(strategy_lib.device_names(strategy))} (Keras backend '
          f'{cfg.run.backend})', flush=True)
    explicit = {name for name in FLAG_FIELDS if FLAGS[name].present}
    for line in presets.summary(cfg, choices_from_flags(), notes, explicit=explicit):
        print(f'config: {presets.field_message(line)}', flush=True)
    print(f'config: the full config goes to {os.path.join(cfg.run.model_dir, "config.json")}', flush=True)

    from fastclassify.models.weights import WeightsError
    from fastclassify.pipelines.sources import DataMissingError
    from fastclassify.training import loop
    from fastclassify.training.run_dir import RunDirError

    try:
        if cfg.run.benchmark:
            from fastclassify.training import throughput
            throughput.run(cfg, strategy=strategy)
            return
        outcome = loop.run(cfg, strategy=strategy)
    except (RunDirError, DataMissingError, WeightsError, strategy_lib.StrategyError,
            loop.TrainingError) as e:
        _fail(str(e), 1)
    except Exception as e:  # pylint: disable=broad-except
        from fastclassify.training import multiprocess
        multiprocess.on_failure(e)  # one line and out in a multi-process job (a peer died)
        raise
    from fastclassify.training import multiprocess
    # The other processes of a multi-process job may now see it leave: they finished too, or stopped after
    # the same step (a SIGTERM stops the whole job there).
    multiprocess.mark_finished()
    if outcome.status == 'preempted':
        print(f'preempted: state saved in {outcome.model_dir}; rerun the same command to resume.',
              flush=True)
        sys.exit(143)
    print_outputs(outcome.model_dir)


def print_outputs(model_dir: str) -> None:
    """The run's last lines: where each of its outputs is (those that exist), and how to look at them."""
    from fastclassify.training.run_dir import RunDir

    run_dir = RunDir(model_dir)
    shown = os.path.relpath(run_dir.path) if not os.path.relpath(run_dir.path).startswith('..') else run_dir.path
    lines = [f'outputs in {shown}/']
    plots = sorted(os.listdir(run_dir.plots)) if os.path.isdir(run_dir.plots) else []
    for label, path in (('model', run_dir.model), ('results', run_dir.results), ('config', run_dir.config),
                        ('history', run_dir.history_csv)):
        if os.path.exists(path):
            lines.append(f'  {label + ":":9s}{os.path.join(shown, os.path.basename(path))}')
    if plots:
        lines.append(f'  {"plots:":9s}' + ', '.join(os.path.join(shown, 'plots', p) for p in plots))
    if os.path.isdir(run_dir.logs):
        lines.append(f'  {"logs:":9s}' + ' '.join(['tensorboard', '--logdir', os.path.join(shown, 'logs')]))
    print('\n'.join(lines), flush=True)


def usage() -> str:
    """`-h`: what train.py does, its flags, then the models, datasets and presets (no TensorFlow)."""
    from fastclassify.models.choices import FAMILY_FACTS
    from fastclassify.pipelines import datasets

    models = [f'  {name:18s} {"ImageNet weights" if f.imagenet else "from scratch    "}  '
              f'{f"{f.params_millions:g} M parameters, " if f.params_millions else ""}designed for '
              f'{f.default_image_size} px' for name, f in FAMILY_FACTS.items()]
    keys = list(datasets.general_preset())

    def preset_line(name, preset):
        return f'  {name:18s} ' + ', '.join(f'{k}={preset[k]}' for k in keys)

    presets_text = [preset_line(n, s.preset) for n, s in datasets.DATASETS.items()]
    presets_text.append(preset_line('folder, TFDS names', datasets.general_preset()))
    scratch = ', '.join(f'{k}={v}' for k, v in datasets.from_scratch_recipe().items())
    return '\n'.join([
        __doc__.strip(), '', 'Flags:', FLAGS.module_help(sys.modules[__name__]).rstrip(), '',
        '  --verbosity=0 shows libraries\' INFO logs; --flagfile=FILE reads flags from a file; --helpfull '
        'adds absl\'s own flags.', '',
        'Models (--model):', *models, '',
        'Datasets and their presets (--dataset): cifar100 and caltech256 reproduce docs/SEEDS.md; a folder '
        '(--dataset=folder --manual_dir=PATH) or any TFDS image-classification name shares the general one:',
        *presets_text,
        f'  Without pretrained weights (--weights=none, or a model trained from scratch) a fine-tuning '
        f'preset\'s optimizer becomes: {scratch}.', ''])


if __name__ == '__main__':
    if any(a in ('--help', '-help', '-h', '-?', '--helpshort') for a in sys.argv[1:]):
        print(usage())  # absl's --help exits 1 and lists no models or presets
        sys.exit(0)
    app.run(main)
