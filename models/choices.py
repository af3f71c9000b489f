"""What the command line checks before Keras loads (about a second, not ten): the model families' names and
the facts a flag is judged by, and the precision choices. `models/registry.py` builds the families; a test
checks the two agree."""

import dataclasses
import types
from typing import Mapping

PRECISIONS = ('auto', 'float32', 'mixed_float16', 'mixed_bfloat16')
JIT_CHOICES = ('auto', 'true', 'false')
HEADS = ('gap', 'seed_caltech', 'seed_cifar')
# Largest `--image_size`: one decoded uint8 image is S*S*3 bytes (12 MiB at 2048) in every cache, and a
# model's activations grow with S*S (a ResNet-50 at 2048 px needs ~8 GB per image in training). Larger
# sides only end in "Cannot allocate memory" deep inside decode or the first step.
MAX_IMAGE_SIZE = 2048


@dataclasses.dataclass(frozen=True)
class FamilyFacts:
    """One `--model` value as flags see it: its smallest input side, design size, ImageNet weights, size."""

    min_image_size: int
    default_image_size: int
    imagenet: bool
    params_millions: float | None  # with the ImageNet top where published; None for the from-scratch nets
    large: bool


def _app(size: int, params: float, large: bool = True) -> FamilyFacts:
    return FamilyFacts(32, size, True, params, large)


FAMILY_FACTS: Mapping[str, FamilyFacts] = types.MappingProxyType({
    'convnext_tiny': _app(224, 28.6, large=False),
    'convnext_small': _app(224, 50.2),
    'convnext_base': _app(224, 88.5),
    'convnext_large': _app(224, 197.7),
    'convnext_xlarge': _app(224, 350.1),
    'efficientnetv2_b0': _app(224, 7.2, large=False),
    'efficientnetv2_b1': _app(240, 8.2),
    'efficientnetv2_b2': _app(260, 10.2),
    'efficientnetv2_b3': _app(300, 14.5),
    'efficientnetv2_s': _app(384, 21.6),
    'efficientnetv2_m': _app(480, 54.4),
    'efficientnetv2_l': _app(480, 119.0),
    'resnet50': _app(224, 25.6, large=False),
    'cifar_resnet9': FamilyFacts(8, 32, False, None, False),
    'wide_resnet28_10': FamilyFacts(8, 32, False, None, True),
})


def family_facts(name: str) -> FamilyFacts:
    """The facts of `--model=name`; raises ValueError naming --model and the valid names."""
    try:
        return FAMILY_FACTS[name]
    except KeyError:
        raise ValueError(f'--model={name!r} is not a known model; valid: {", ".join(FAMILY_FACTS)}') from None
