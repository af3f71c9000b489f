"""Augmentation config: the policy names, their validation, and the cache side each policy needs."""

import dataclasses

# The policy names and their order are in pipelines/choices.py (checked before TensorFlow loads).
from fastclassify.pipelines.choices import GEOMETRIC_POLICIES, POLICIES  # noqa: F401

# Inception-style evaluation crops the central 87.5% (224 of 256); rrc crops from the same cached
# square, so training and evaluation see the same field of view on average.
RRC_CENTER_CROP_FRACTION = 0.875


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """What the device-side augmenter does to each training batch.

    Attributes:
        policy: flag `--augment`; policy names joined with '+', e.g. 'randaugment+mixup'.
            Valid names: see `POLICIES`. 'none' stands alone; at most one of seed, flip_crop, rrc.
        image_size: side of the images fed to the model, in pixels.
        num_classes: length of the one-hot label vectors.
        randaugment_layers: flag `--randaugment_layers`; operations applied per image (RandAugment N).
        randaugment_magnitude: flag `--randaugment_magnitude`; RandAugment M on the paper's (and timm's)
            0..10 scale, where 10 is the strongest: rotate 30 degrees, shear 0.3, translate 0.45 of the
            side, solarize threshold 0, posterize to 4 bits, colour/contrast/brightness/sharpness factor
            1 +- 0.9. 9 is the ImageNet ResNet-50 setting.
        mixup_alpha: flag `--mixup_alpha`; Beta(alpha, alpha) draws the mixup weight per image.
        cutmix_alpha: flag `--cutmix_alpha`; Beta(alpha, alpha) draws the kept area per image.
        erasing_probability: flag `--erasing_probability`; chance that an image gets one erased box.
        seed: flag `--seed`; all augmentation randomness derives from it.
    """

    policy: str = 'none'
    image_size: int = 224
    num_classes: int = 1000
    randaugment_layers: int = 2
    randaugment_magnitude: float = 9.0
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    erasing_probability: float = 0.25
    seed: int = 0

    def __post_init__(self):
        parts = self.policy.split('+')
        unknown = [p for p in parts if p not in POLICIES]
        if unknown or not self.policy:
            raise ValueError(
                    f'--augment={self.policy!r}: unknown policy {unknown or [""]}; valid names, '
                    f"joined with '+': {', '.join(POLICIES)}.")
        if len(set(parts)) != len(parts):
            raise ValueError(f'--augment={self.policy!r}: a policy is named twice.')
        if 'none' in parts and len(parts) > 1:
            raise ValueError(f"--augment={self.policy!r}: 'none' cannot be combined with other policies.")
        geometric = [p for p in parts if p in GEOMETRIC_POLICIES]
        if len(geometric) > 1:
            raise ValueError(
                    f'--augment={self.policy!r}: choose at most one of {", ".join(GEOMETRIC_POLICIES)} '
                    f'(each replaces the whole geometry); got {geometric}.')
        if self.image_size < 8:
            raise ValueError(f'--image_size={self.image_size}: must be at least 8 pixels.')
        if self.num_classes < 1:
            raise ValueError(f'num_classes={self.num_classes} (the dataset\'s classes): must be at least 1.')
        if self.randaugment_layers < 0:
            raise ValueError(f'--randaugment_layers={self.randaugment_layers}: must be >= 0.')
        if not 0.0 <= self.randaugment_magnitude <= 10.0:
            raise ValueError(f'--randaugment_magnitude={self.randaugment_magnitude}: must be in [0, 10].')
        if self.mixup_alpha <= 0.0:
            raise ValueError(f'--mixup_alpha={self.mixup_alpha}: must be > 0.')
        if self.cutmix_alpha <= 0.0:
            raise ValueError(f'--cutmix_alpha={self.cutmix_alpha}: must be > 0.')
        if not 0.0 <= self.erasing_probability <= 1.0:
            raise ValueError(f'--erasing_probability={self.erasing_probability}: must be in [0, 1].')

    @property
    def parts(self) -> tuple[str, ...]:
        """The policy names in the order they run; empty for 'none'."""
        named = set(self.policy.split('+')) - {'none'}
        return tuple(p for p in POLICIES if p in named)


def cache_size_for(cfg: AugmentConfig) -> int:
    """Side of the uint8 squares the pipeline caches for this policy.

    Args:
        cfg: the augmentation config.

    Returns:
        `cfg.image_size`, except for 'rrc', which crops from a larger image: image_size / 0.875
        (256 for 224), so the random crops have real pixels to choose from.
    """
    if 'rrc' in cfg.parts:
        return int(round(cfg.image_size / RRC_CENTER_CROP_FRACTION))
    return cfg.image_size
