"""The model's frozen config: which family, how many classes, input size, weights and head."""

import dataclasses

from fastclassify.models import heads
from fastclassify.models import registry
from fastclassify.models.choices import MAX_IMAGE_SIZE  # noqa: F401  (checked before Keras loads)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What `build_model` builds; each field but `num_classes` (the dataset's) is a `train.py` flag.

    Attributes:
        name: registry name (`--model`), e.g. 'convnext_tiny', 'cifar_resnet9'.
        num_classes: width of the softmax output (the dataset's classes).
        image_size: side of the square input in pixels (`--image_size`).
        weights: 'imagenet', 'none', or a path to a `.weights.h5` / `.keras` file (`--weights`); a family's
            own default is `family_defaults(name)['weights']`.
        head: 'gap' (default), 'seed_caltech' or 'seed_cifar' (`--head`).
        dropout: dropout rate of the head (`--dropout`), in [0, 1).
    """

    name: str
    num_classes: int
    image_size: int
    weights: str = 'none'
    head: str = 'gap'
    dropout: float = 0.2

    def __post_init__(self):
        family = registry.get_family(self.name)  # raises naming --model and the valid names
        if self.head not in heads.HEADS:
            raise ValueError(f'--head={self.head!r} is not a known head; valid: {", ".join(heads.HEADS)}')
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f'num_classes={self.num_classes!r} must be an integer >= 2')
        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise ValueError(f'--image_size={self.image_size!r} must be a positive integer')
        if self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(
                    f'--image_size={self.image_size} is too large: at most {MAX_IMAGE_SIZE} px (one cached '
                    f'image is {self.image_size}x{self.image_size}x3 bytes, and activations grow with its square)')
        if self.image_size < family.min_image_size:
            raise ValueError(
                    f'--image_size={self.image_size} is too small for --model={self.name}: '
                    f'its minimum is {family.min_image_size} px')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'--dropout={self.dropout!r} must be in [0, 1)')
        if not self.weights:
            raise ValueError("--weights='' is empty; valid: imagenet, none, or a path to .weights.h5 / .keras")
        if self.weights == 'imagenet' and family.imagenet_weights_file is None:
            raise ValueError(
                    f'--weights=imagenet: --model={self.name} is trained from scratch and has no ImageNet '
                    f'weights; use --weights=none or a path to .weights.h5 / .keras')
        if self.weights not in ('imagenet', 'none') and not self.weights.endswith(('.weights.h5', '.keras')):
            raise ValueError(
                    f'--weights={self.weights!r} is not imagenet, none, or a path ending in .weights.h5 or .keras '
                    f'(legacy full-model .h5 files are refused: they bypass Keras safe_mode)')


def family_defaults(name: str) -> dict[str, str]:
    """The `weights` and `head` a model family gets when nothing chose them for it.

    ImageNet weights where the family has them (fine-tuning beats training from scratch on every dataset
    here), else none; the plain `gap` head, which fits any backbone (the seed heads belong to the seed
    reports' models). Raises ValueError naming --model for an unknown name.
    """
    family = registry.get_family(name)
    head = next(f.default for f in dataclasses.fields(ModelConfig) if f.name == 'head')
    return {'weights': 'none' if family.imagenet_weights_file is None else 'imagenet', 'head': head}
