"""Models from the registry, and whole training runs (what `train.py` does), as Python calls."""

from __future__ import annotations

from fastclassify import _errors
from fastclassify import _quiet

_quiet.import_tensorflow()

from fastclassify.models import builder as _builder  # noqa: E402
from fastclassify.models.config import ModelConfig  # noqa: E402
from fastclassify.models.registry import FAMILIES  # noqa: E402

# The model families `build_model` (and `train.py --model`) knows, by name.
MODELS: tuple[str, ...] = tuple(FAMILIES)


def build_model(name: str, *, num_classes: int, image_size: int, weights: str = 'none', head: str = 'gap',
                dropout: float = 0.2):
    """Builds a classifier from the registry: pixels 0..255 (uint8 or float) in, float32 probabilities out.

    The family's own preprocessing is inside the model, so it takes the batches of `fastclassify.load`
    as they come; the backbone is the nested model 'backbone' (freeze it for head-only fine-tuning).

        model = fastclassify.build_model('convnext_tiny', num_classes=data.num_classes, image_size=224,
                                         weights='imagenet')

    Args:
        name: a family from `fastclassify.MODELS`, e.g. 'convnext_tiny', 'efficientnetv2_s', 'cifar_resnet9'.
        num_classes: outputs of the softmax (>= 2).
        image_size: side of the square input in pixels.
        weights: 'imagenet' (families that have them), 'none', or a path to .weights.h5 / .keras.
        head: 'gap' (global average pooling + dropout + dense), 'seed_caltech' or 'seed_cifar'.
        dropout: dropout rate of the head, in [0, 1).

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: an argument named with its value and the valid choices.
        fastclassify.models.WeightsError: 'imagenet' weights that cannot be found or loaded (offline).
    """
    with _errors.as_arguments(renamed={'model': 'name'}):
        cfg = ModelConfig(name=name, num_classes=num_classes, image_size=image_size, weights=weights, head=head,
                          dropout=dropout)
    return _builder.build_model(cfg)


def train(source=None, /, **choices):
    """Runs a whole training run, as `python train.py` does: preset, resume, checkpoints, plots, results.

        results = fastclassify.train('photos/', model='cifar_resnet9', image_size=32, epochs=10)
        results = fastclassify.train('cifar100', model='cifar_resnet9', weights='none', batch_size=256)
        results = fastclassify.train(config)      # a fastclassify.TrainConfig, e.g. from a run's config.json

    Args:
        source: a dataset name ('cifar100', 'caltech256', any TFDS name), the path of a folder / .tar / .zip
            of class folders, or a whole `TrainConfig`.
        **choices: `train.py`'s flags by name (`model`, `epochs`, `batch_size`, `learning_rate`, `augment`,
            `model_dir`, ...; train.py's help lists them). Unset ones come from the dataset's preset,
            adjusted as train.py adjusts them (another model's weights and head; a from-scratch recipe).

    Returns:
        The results dict of the run (test top-1/top-5, per-class accuracy, timings; also `results.json` in its
        run folder, `results['model_dir']`), or None when the run was preempted (SIGTERM; its state is saved
        and the same call resumes it).

    Raises:
        ValueError: a bad choice, named (`epochs=0 ...`).
        fastclassify.DataError, and the run's one-line errors (a changed config in the run folder, a
        non-finite loss, out of memory).
    """
    # pylint: disable=import-outside-toplevel
    import keras
    from fastclassify.training import loop, presets
    from fastclassify.training.config import TrainConfig

    if isinstance(source, TrainConfig):
        if choices:
            raise ValueError(f'{", ".join(sorted(choices))}: a TrainConfig is complete; change it with '
                             'dataclasses.replace instead')
        config = source
    else:
        unknown = sorted(set(choices) - set(presets.FIELDS))
        if unknown:
            raise ValueError(f'{", ".join(unknown)}: not a choice of train(); valid: {", ".join(presets.FIELDS)}')
        if source is not None:
            from fastclassify.data import _resolve_source
            choices['dataset'], manual_dir = _resolve_source(source, choices.get('manual_dir'))
            choices['manual_dir'] = manual_dir
        with _errors.as_arguments(folder=choices.get('dataset') == 'folder'), _quiet.tfds_chatter_dropped():
            presets.check(choices)
            from fastclassify.pipelines import sources
            source_cfg = sources.SourceConfig(**{k: choices[k] for k in (
                    'dataset', 'data_dir', 'manual_dir', 'config', 'allow_modified_archive', 'download',
                    'max_image_pixels', 'folder_format') if choices.get(k) is not None})
            config, _ = presets.resolve(choices, sources.dataset_spec(source_cfg), backend=keras.backend.backend())
    outcome = loop.run(config)
    if outcome.results is None:
        return None
    return {**outcome.results, 'model_dir': outcome.model_dir}
