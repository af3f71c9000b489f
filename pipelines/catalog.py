"""Facts of any TFDS image-classification dataset, read from its builder's `info` instead of a table.

`--dataset=NAME` takes any name in the TFDS catalog (`tfds.list_builders()`), spelled as TFDS spells it:
`--dataset=oxford_flowers102`, `--dataset=food101 --config=...`. What training needs is read from the
builder: an `Image` feature, a `ClassLabel` label (its classes and names), the splits and the image size.
"""

import difflib
import functools

from absl import logging
import tensorflow_datasets as tfds


def check_name(name: str, known: list[str]) -> None:
    """Raises ValueError (one line) when `name` is neither in `known` nor in the TFDS catalog."""
    catalog = tfds.list_builders(with_community_datasets=False)
    if name in catalog:
        return
    # Each candidate once (TFDS lists its aliases too), matched case-insensitively.
    candidates = {c.lower(): c for c in [*known, *catalog]}
    close = [candidates[c] for c in dict.fromkeys(difflib.get_close_matches(name.lower(), list(candidates), n=3))]
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    raise ValueError(f'--dataset={name!r} is not a known dataset; valid: {", ".join(known)}, or the name of '
                     f'a TFDS image-classification dataset (tfds.list_builders()){hint}')


@functools.lru_cache(maxsize=None)
def builder_facts(name: str, config: str | None = None, data_dir: str | None = None) -> dict:
    """Classes, image size and split names of TFDS dataset `name`, from its builder (nothing is downloaded).

    Raises:
        ValueError: unknown `--config`, or no image + class-label feature pair (the line names the
            features found and what is needed).
    """
    try:
        builder = tfds.builder(name, config=config, data_dir=data_dir)
    except ValueError as e:
        if config is None or 'not found' not in str(e).lower():
            raise
        choices = [c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS]
        raise ValueError(f'--config={config!r} is not a config of {name}; valid: {", ".join(choices)}') from None
    image_key, label_key = feature_keys(builder.info, name)
    label = builder.info.features[label_key]
    if not label.num_classes:
        raise ValueError(f'--dataset={name}: its {label_key!r} ClassLabel does not declare its classes; '
                         'training needs the number of classes before reading the data')
    shape = builder.info.features[image_key].shape
    native = shape[0] if shape[0] is not None and shape[0] == shape[1] else None
    return {'num_classes': label.num_classes, 'native_size': native, 'splits': dict(
            (s, i.num_examples) for s, i in builder.info.splits.items())}


def feature_keys(info: tfds.core.DatasetInfo, name: str) -> tuple[str, str]:
    """The (image, label) feature keys: `image`/`label` when they are an Image and a ClassLabel, else the
    supervised keys, else the only Image and the only ClassLabel at the top level.

    Raises:
        ValueError: one line naming the features found and what is needed.
    """
    features = info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    supervised = tuple(info.supervised_keys or ()) if isinstance(info.supervised_keys, tuple) else ()

    def pick(preferred, found):
        for key in preferred:
            if key in found:
                return key
        return found[0] if len(found) == 1 else None

    image = pick(['image', *supervised[:1]], images)
    label = pick(['label', *supervised[1:2]], labels)
    if image is None or label is None:
        found = ', '.join(f'{k}: {type(f).__name__}' for k, f in features.items())
        raise ValueError(f'--dataset={name} is not an image-classification dataset: its features are '
                         f'{{{found}}}; training needs one Image feature and one ClassLabel label')
    return image, label


def train_test_splits(name: str, splits: dict[str, int]) -> tuple[str, str]:
    """('train', 'test'), or ('train', 'validation') when there is no test split (said in the log).

    Raises:
        ValueError: no 'train', or neither 'test' nor 'validation'; names the splits found.
    """
    if 'train' in splits and 'test' in splits:
        return 'train', 'test'
    if 'train' in splits and 'validation' in splits:
        logging.warning('%s has no test split: its validation split is used as the test split '
                        '(and --validation_split carves validation from train).', name)
        return 'train', 'validation'
    raise ValueError(f'--dataset={name} has splits {", ".join(sorted(splits)) or "(none)"}; training needs '
                     "'train' and 'test' (or 'validation', used as test)")
