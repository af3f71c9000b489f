"""The one table of dataset facts: TFDS names, classes, splits, native and cache sizes, presets."""

import dataclasses
import types
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset and the training preset that reproduces its seed report.

    Attributes:
        name: the `--dataset` value.
        tfds_name: the TFDS builder name (`cifar100` is TFDS's own, `caltech256` ours).
        num_classes: classes in the default builder config.
        native_size: side of the stored images in pixels, or None when sizes vary.
        train_split / test_split: TFDS split names.
        train_examples: examples in the default train split (for size estimates before loading).
        preset: defaults for every training flag the seed report fixed; flags override each.
        config_classes: classes per TFDS builder config where a config changes them.
    """

    name: str
    tfds_name: str
    num_classes: int
    native_size: int | None
    train_split: str
    test_split: str
    train_examples: int
    preset: Mapping[str, Any]
    config_classes: Mapping[str, int] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))


DATASETS: Mapping[str, DatasetSpec] = types.MappingProxyType({
    # SEEDS.md, "CIFAR-100, 10-epoch limit": EfficientNetV2-L + the report's head, RMSprop, 10 epochs.
    'cifar100': DatasetSpec(
        name='cifar100',
        tfds_name='cifar100',
        num_classes=100,
        native_size=32,
        train_split='train',
        test_split='test',
        train_examples=50_000,
        preset=types.MappingProxyType({
            'model': 'efficientnetv2_l',
            'head': 'seed_cifar',
            'weights': 'imagenet',
            'image_size': 32,
            'batch_size': 64,
            'epochs': 10,
            'optimizer': 'rmsprop',
            'learning_rate': 1e-4,  # the report tuned by hand; an RMSprop fine-tuning rate
            'augment': 'none',  # the report used none
        }),
    ),
    # SEEDS.md, "Caltech-256, unlimited epochs": ConvNeXt-XL + Flatten/softmax, Nadam, batch 32,
    # 224 px, ImageDataGenerator's rotation 30 / shift 0.2 / flip (our fused on-device `seed` policy).
    'caltech256': DatasetSpec(
        name='caltech256',
        tfds_name='caltech256',
        num_classes=257,
        native_size=None,
        train_split='train',
        test_split='test',
        train_examples=24_485,
        preset=types.MappingProxyType({
            'model': 'convnext_xlarge',
            'head': 'seed_caltech',
            'weights': 'imagenet',
            'image_size': 224,
            'batch_size': 32,
            'epochs': 30,  # "unlimited" in the report; 30 covers its plotted curves
            'optimizer': 'nadam',
            'learning_rate': 1e-4,  # the report does not state its rate; a fine-tuning rate
            'augment': 'seed',
        }),
        config_classes=types.MappingProxyType({'all': 257, 'paper60': 256}),
    ),
})


def get_dataset_spec(name: str) -> DatasetSpec:
    """Returns the spec for `name`; raises ValueError naming the flag and the valid choices."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
                f'--dataset={name!r} is not a known dataset; valid: {", ".join(sorted(DATASETS))}') from None


def num_classes(spec: DatasetSpec, config: str | None) -> int:
    """Classes of `spec` under TFDS builder config `config` (None = the default config)."""
    if config is None:
        return spec.num_classes
    if spec.config_classes and config not in spec.config_classes:
        raise ValueError(f'--config={config!r} is not a config of {spec.name}; '
                         f'valid: {", ".join(spec.config_classes)}')
    return spec.config_classes.get(config, spec.num_classes)
