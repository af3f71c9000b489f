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


def train(config):
    """Runs a whole training run, as `python train.py` does: resumable, with checkpoints, plots and results.

    Args:
        config: a `fastclassify.TrainConfig` (what `train.py` resolves from its flags and the dataset's
            preset; `config.json` in a run folder holds one).

    Returns:
        The results dict of the run (test top-1/top-5, per-class accuracy, timings; also written to
        `results.json` under `config.run.model_dir`), or None when the run was preempted (SIGTERM; its state is
        saved and the same call resumes it).

    Raises:
        ValueError, fastclassify.DataError, and the run's one-line errors (a changed config in the run
        folder, a non-finite loss, out of memory).
    """
    from fastclassify.training import loop  # pylint: disable=import-outside-toplevel
    outcome = loop.run(config)
    return outcome.results
