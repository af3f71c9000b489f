"""The one table of dataset facts: TFDS names, classes, splits, native and cache sizes, presets.

Three ways in: the two seed datasets (`cifar100`, `caltech256`) with the presets of their reports; any
TFDS image-classification dataset by its TFDS name (`--dataset=oxford_flowers102`, facts read from the
builder by `pipelines.catalog`); and `--dataset=folder --manual_dir=PATH` for a tree of class folders
(`pipelines.folder`). The last two share `general_preset()`.
"""

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
        preset: defaults for every training flag the seed report fixed; flags override each.
        config_classes: classes per TFDS builder config where a config changes them.
        data_version: what the prepared data was built from (a folder's fingerprint); part of cache names.
    """

    name: str
    tfds_name: str
    num_classes: int
    native_size: int | None
    train_split: str
    test_split: str
    preset: Mapping[str, Any]
    config_classes: Mapping[str, int] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    data_version: str = ''

# `--dataset=folder --manual_dir=PATH`: a directory or archive of class folders (`pipelines.folder`).
FOLDER = 'folder'
FOLDER_TFDS_NAME = 'class_folders'


DATASETS: Mapping[str, DatasetSpec] = types.MappingProxyType({
    # docs/SEEDS.md, "CIFAR-100, 10-epoch limit": EfficientNetV2-L + the report's head, RMSprop, 10 epochs.
    'cifar100': DatasetSpec(
        name='cifar100',
        tfds_name='cifar100',
        num_classes=100,
        native_size=32,
        train_split='train',
        test_split='test',
        preset=types.MappingProxyType({
            'model': 'efficientnetv2_l',
            'head': 'seed_cifar',
            'weights': 'imagenet',
            'image_size': 32,
            'batch_size': 64,
            'epochs': 10,
            'optimizer': 'rmsprop',
            'learning_rate': 1e-4,  # the report tuned by hand; an RMSprop fine-tuning rate
            'weight_decay': 0.0,
            'warmup_epochs': 0.0,
            'augment': 'none',  # the report used none
        }),
    ),
    # docs/SEEDS.md, "Caltech-256, unlimited epochs": ConvNeXt-XL + Flatten/softmax, Nadam, batch 32,
    # 224 px, ImageDataGenerator's rotation 30 / shift 0.2 / flip (our fused on-device `seed` policy).
    'caltech256': DatasetSpec(
        name='caltech256',
        tfds_name='caltech256',
        num_classes=257,
        native_size=None,
        train_split='train',
        test_split='test',
        preset=types.MappingProxyType({
            'model': 'convnext_xlarge',
            'head': 'seed_caltech',
            'weights': 'imagenet',
            'image_size': 224,
            'batch_size': 32,
            'epochs': 30,  # "unlimited" in the report; 30 covers its plotted curves
            'optimizer': 'nadam',
            'learning_rate': 1e-4,  # the report does not state its rate; a fine-tuning rate
            'weight_decay': 0.0,
            'warmup_epochs': 0.0,
            'augment': 'seed',
        }),
        config_classes=types.MappingProxyType({'all': 257, 'paper60': 256}),
    ),
})


def general_preset() -> Mapping[str, Any]:
    """The preset of every dataset that is not a seed: fine-tuning an ImageNet model, fit for any data.

    - `convnext_tiny`, ImageNet weights, `gap` head, 224 px: a mid-size family (28.6 M parameters,
      82.1% ImageNet top-1) whose features transfer well from a few hundred to a few hundred thousand
      images, and which trains at batch 64 on a 16 GB accelerator in mixed precision. 224 px is its
      pretraining size; small images are upsampled once into the cache.
    - AdamW at 1e-4 for batch 64 with weight decay 0.05 (excluded from biases and norms), 1 warmup epoch
      (a tenth of the run when that is shorter, see train.py) then cosine to 0 over 20 epochs: the ConvNeXt fine-tuning recipe scaled to a small batch; the warmup
      keeps the new random head from wrecking the pretrained features in the first steps.
    - `rrc` (random-resized crop + flip): the standard ImageNet-style augmentation, safe for any photos
      (unlike the seed's rotations, which suit Caltech-256 objects).
    Every flag overrides each value.
    """
    return types.MappingProxyType({
            'model': 'convnext_tiny',
            'head': 'gap',
            'weights': 'imagenet',
            'image_size': 224,
            'batch_size': 64,
            'epochs': 20,
            'optimizer': 'adamw',
            'learning_rate': 1e-4,
            'weight_decay': 0.05,
            'warmup_epochs': 1.0,
            'augment': 'rrc',
    })


def get_dataset_spec(name: str) -> DatasetSpec:
    """Returns the spec for `name` under its default config; raises ValueError naming the flag.

    A seed dataset comes from the table; `folder` has no classes until its source is read (see
    `pipelines.sources.dataset_spec`); any other name must be a TFDS image-classification dataset.
    """
    if name in DATASETS:
        return DATASETS[name]
    if name == FOLDER:
        return DatasetSpec(name=FOLDER, tfds_name=FOLDER_TFDS_NAME, num_classes=0, native_size=None,
                           train_split='train', test_split='test', preset=general_preset())
    from fastclassify.pipelines import catalog  # pylint: disable=import-outside-toplevel  # TFDS only for catalog names
    catalog.check_name(name, sorted([*DATASETS, FOLDER]))
    return catalog_spec(name)


def catalog_spec(name: str, config: str | None = None, data_dir: str | None = None) -> DatasetSpec:
    """The spec of TFDS dataset `name` (classes and image size from its builder, the general preset).

    Split names are 'train'/'test' until the data is prepared; `pipelines.catalog.train_test_splits`
    then picks 'validation' as the test split where there is no 'test'.
    """
    from fastclassify.pipelines import catalog  # pylint: disable=import-outside-toplevel
    facts = catalog.builder_facts(name, config, data_dir)
    splits = facts['splits']
    train, test = catalog.train_test_splits(name, splits) if splits else ('train', 'test')
    return DatasetSpec(name=name, tfds_name=name, num_classes=facts['num_classes'],
                       native_size=facts['native_size'], train_split=train, test_split=test,
                       preset=general_preset())


def num_classes(spec: DatasetSpec, config: str | None) -> int:
    """Classes of `spec` under TFDS builder config `config` (None = the default config)."""
    if config is None or spec.name not in DATASETS:
        return spec.num_classes
    if spec.config_classes and config not in spec.config_classes:
        raise ValueError(f'--config={config!r} is not a config of {spec.name}; '
                         f'valid: {", ".join(spec.config_classes)}')
    return spec.config_classes.get(config, spec.num_classes)


def from_scratch_recipe() -> Mapping[str, Any]:
    """What replaces a fine-tuning preset's optimizer when the weights are `none` (chosen, or a family without
    ImageNet weights): a random network needs a rate ten times a fine-tuning one (1e-4 fits pretrained
    features; from scratch it left a small net at 0.836 test top-1 on a folder of digits, 1e-3 reached 0.958),
    and AdamW with decoupled decay and a short warmup trains any family here from random weights."""
    return types.MappingProxyType({
            'optimizer': 'adamw',
            'learning_rate': 1e-3,
            'weight_decay': 0.05,
            'warmup_epochs': 1.0,
    })
