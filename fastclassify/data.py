"""`fastclassify.load`: a dataset in one call, decoded once into a uint8 cache, as finite tf.data datasets."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from fastclassify import _errors
from fastclassify import _quiet

CACHES = ('auto', 'memory', 'disk', 'device', 'none')


@dataclasses.dataclass(frozen=True)
class Data:
    """What `load` returns: ready datasets and the facts a model needs.

    Every dataset yields `(images, labels)` batches: uint8 images `[B, S, S, 3]` (S = `image_size`, or
    `cache_size` when that was set larger) and int32 labels `[B]` (float32 one-hot `[B, num_classes]`
    with `one_hot=True`). All are finite: `train` is one epoch per iteration (`steps_per_epoch` full
    batches, a fresh permutation each iteration, so `model.fit(data.train, epochs=E)` reshuffles every
    epoch); `validation` and `test` hold every example exactly once, in order, the last batch smaller.

    Attributes:
        train: the training split, one epoch per iteration.
        validation: the validation slice carved from the end of train (`validation_split`), or None.
        test: the test split (a dataset without one: its validation split).
        num_classes / class_names: the labels, `class_names[label]` names label `label`.
        image_size: the side asked for; `cache_size`: the side of the cached (and yielded) squares.
        batch_size, steps_per_epoch: the batch and the full batches of one training epoch.
        num_train / num_validation / num_test: examples per split.
        cache: where the decoded images live: 'memory', 'disk', 'device' or 'none'; `cache_decision`
            says why in one line.
        device_cache: with cache='device', the training images as one uint8 array `[num_train, S, S, 3]`
            that `AugmentedModel` places on the accelerator; else None.
        train_indices: with cache='device', the training epoch as `(int32 indices [B], labels)` batches
            into `device_cache` (what `AugmentedModel.fit` feeds); else None.
    """

    train: Any
    validation: Any | None
    test: Any
    num_classes: int
    class_names: tuple[str, ...]
    image_size: int
    cache_size: int
    batch_size: int
    steps_per_epoch: int
    num_train: int
    num_validation: int
    num_test: int
    cache: str
    cache_decision: str
    device_cache: Any | None = None
    train_indices: Any | None = None

    def __repr__(self) -> str:
        return (f'Data({self.num_classes} classes; {self.num_train} train / {self.num_validation} validation / '
                f'{self.num_test} test; batch {self.batch_size}, {self.steps_per_epoch} steps/epoch; '
                f'{self.cache_size}px uint8, cache={self.cache})')


def load(source: str | os.PathLike, *, image_size: int, batch_size: int, cache: str = 'auto',
         validation_split: float = 0.1, data_dir: str | None = None, seed: int = 0, one_hot: bool = False,
         cache_size: int | None = None, config: str | None = None, manual_dir: str | None = None,
         download: bool = True, ram_budget_gb: float | None = None,
         max_image_pixels: int = 40_000_000, folder_format: str = 'jpeg') -> Data:
    """Loads an image-classification dataset as cached, batched, finite tf.data datasets.

    The dataset is prepared once into TFDS format under `data_dir` (downloaded, or read from
    `manual_dir` / the folder), every image is decoded once and resized into a uint8 cache, and batches
    are gathered whole from it. Works for any Keras model on the TensorFlow or the JAX backend:

        data = fastclassify.load('photos/', image_size=64, batch_size=32)
        model.fit(data.train, epochs=5, validation_data=data.validation)
        model.evaluate(data.test)

    Args:
        source: 'cifar100', 'caltech256', any TFDS image-classification name ('oxford_flowers102'), or
            the path of a folder / .tar / .tar.gz / .zip of class folders (`CLASS/IMAGE`, split 80/20 per
            class by content hash, or `train/CLASS/IMAGE` + `test/CLASS/IMAGE`).
        image_size: side of the square images, in pixels (8..2048).
        batch_size: images per batch.
        cache: 'auto' (memory when it fits `ram_budget_gb`, else a memory-mapped file under `data_dir`),
            'memory', 'disk', 'device' (the training images also as `device_cache`, for
            `AugmentedModel`), or 'none' (decode every epoch).
        validation_split: fraction of train held out (from its end, the same every run); 0 = none.
        data_dir: where prepared datasets and disk caches live (default: TFDS's, ~/tensorflow_datasets).
        seed: the training order's seed (same seed, same batches).
        one_hot: labels as float32 one-hot vectors instead of int32 class ids.
        cache_size: cache (and yield) larger squares than `image_size`, e.g. 256 for random-resized crops
            to 224 by an `Augment` layer, which then also centre-crops at inference. Default: image_size.
        config: the TFDS builder config (caltech256: 'all' or 'paper60').
        manual_dir: a folder holding a manually downloaded archive (caltech256: 256_ObjectCategories.tar).
        download: whether preparing may fetch from the network.
        ram_budget_gb: RAM the cache may use with cache='auto' (default: half of physical RAM).
        max_image_pixels: when a folder or caltech256 is prepared, larger images are stored downscaled.
        folder_format: how a folder's images are stored once prepared: 'jpeg' (other formats re-encoded at
            quality 95: small, slightly lossy) or 'png' (non-JPEG images kept lossless).

    Returns:
        A `Data`.

    Raises:
        ValueError: an argument that cannot work, named with its value and what is allowed.
        FileNotFoundError: a path `source` that does not exist.
        fastclassify.DataError: the data is missing (offline, no manual archive) or a prepared file is damaged.
    """
    _check_arguments(image_size=image_size, batch_size=batch_size, cache=cache, seed=seed,
                     validation_split=validation_split, cache_size=cache_size, ram_budget_gb=ram_budget_gb)
    dataset, manual_dir = _resolve_source(source, manual_dir)
    with _errors.as_arguments(folder=dataset == 'folder'), _quiet.tfds_chatter_dropped():
        _quiet.import_tensorflow()
        from fastclassify.pipelines import pipeline, sources  # pylint: disable=import-outside-toplevel

        side = cache_size or image_size
        source_cfg = sources.SourceConfig(dataset=dataset, data_dir=data_dir, manual_dir=manual_dir,
                                          config=config, download=download, max_image_pixels=max_image_pixels,
                                          folder_format=folder_format)
        spec = sources.dataset_spec(source_cfg)
        data_root = data_dir or os.path.expanduser('~/tensorflow_datasets')
        pipeline_cfg = pipeline.PipelineConfig(
                cache_size=side, batch_size=batch_size, cache=cache, seed=seed,
                cache_dir=os.path.join(data_root, 'cache', f'{spec.name}-{config or "default"}-'
                                       f'{spec.data_version + "-" if spec.data_version else ""}{side}px'),
                ram_budget_bytes=None if ram_budget_gb is None else int(ram_budget_gb * 2**30),
                validation_fraction=validation_split)
        inputs = pipeline.build_inputs(sources.prepare(source_cfg), spec, pipeline_cfg)
    return _data(inputs, image_size=image_size, cache_size=side, batch_size=batch_size, one_hot=one_hot)


def _data(inputs, *, image_size: int, cache_size: int, batch_size: int, one_hot: bool) -> Data:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    num_classes = len(inputs.class_names)

    def labelled(ds):
        if ds is None or not one_hot:
            return ds
        return ds.map(lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    placement = re.match(r'cache=(\w+)', inputs.cache_decision)
    on_device = inputs.device_cache is not None
    return Data(
            train=labelled(inputs.train_epoch()),
            validation=labelled(inputs.validation),
            test=labelled(inputs.test),
            num_classes=num_classes,
            class_names=tuple(inputs.class_names),
            image_size=image_size,
            cache_size=cache_size,
            batch_size=batch_size,
            steps_per_epoch=inputs.steps_per_epoch,
            num_train=inputs.num_train,
            num_validation=inputs.num_validation,
            num_test=inputs.num_test,
            cache=placement.group(1) if placement else 'none',
            cache_decision=inputs.cache_decision,
            device_cache=inputs.device_cache if on_device else None,
            train_indices=labelled(inputs.train_epoch(indices=True)) if on_device else None,
    )


def _resolve_source(source, manual_dir: str | None) -> tuple[str, str | None]:
    """(dataset name, manual_dir): a path is the folder route; anything else a dataset name."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and (os.sep in source or os.path.exists(source))):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f'source={path!r} does not exist; give a folder, .tar(.gz) or .zip of '
                                    'class folders, or a dataset name such as "cifar100"')
        if manual_dir is not None:
            raise ValueError(f'manual_dir={manual_dir!r} applies to a dataset name; source={path!r} is '
                             'itself the data')
        return 'folder', path
    if not isinstance(source, str) or not source:
        raise ValueError(f'source={source!r} must be a dataset name (e.g. "cifar100") or the path of a '
                         'folder, .tar(.gz) or .zip of class folders')
    if source == 'folder':
        raise ValueError("source='folder': give the folder's path itself as source")
    return source, manual_dir


def _check_arguments(*, image_size, batch_size, cache, seed, validation_split, cache_size, ram_budget_gb):
    """Checks what TensorFlow is not needed for, before anything is imported or read."""
    _errors.positive_int('image_size', image_size, maximum=2048, minimum=8)
    _errors.positive_int('batch_size', batch_size)
    if cache_size is not None:
        _errors.positive_int('cache_size', cache_size, maximum=2048, minimum=8)
        if cache_size < image_size:
            raise ValueError(f'cache_size={cache_size} must be >= image_size={image_size}')
    if cache not in CACHES:
        raise ValueError(f'cache={cache!r} is not valid; valid: {", ".join(CACHES)}')
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f'seed={seed!r} must be an integer in [0, 2**32)')
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ValueError(f'validation_split={validation_split!r} must be a fraction in [0, 1)')
    if ram_budget_gb is not None and not (isinstance(ram_budget_gb, (int, float)) and 0 <= ram_budget_gb < float('inf')):
        raise ValueError(f'ram_budget_gb={ram_budget_gb!r} must be a number of GiB >= 0')
