"""Train / validation / test pipelines on tiny generated JPEGs: shapes, dtypes, counts, seeds, placements."""

import numpy as np
import pytest
import tensorflow as tf

from fastclassify.pipelines import pipeline
from fastclassify.pipelines import synthetic
from fastclassify.pipelines.datasets import get_dataset_spec

N_TRAIN, N_VAL, N_TEST, SIZE, BATCH = 30, 6, 11, 16, 4


@pytest.fixture(scope='module')
def records():
    # Label = example id, so every count below can check *which* examples came out, not just how many.
    n = N_TRAIN + N_VAL + N_TEST
    blobs, _ = synthetic.encoded_examples(n, n, size_range=(20, 40), grayscale_every=7)
    ds = synthetic.records_dataset(blobs, np.arange(n))
    return ds.take(N_TRAIN), ds.skip(N_TRAIN).take(N_VAL), ds.skip(N_TRAIN + N_VAL)


def _inputs(records, tmp_path=None, **overrides):
    cfg = pipeline.PipelineConfig(**{'cache_size': SIZE, 'batch_size': BATCH, 'cache': 'memory',
                                     'cache_dir': str(tmp_path) if tmp_path else None, **overrides})
    train, val, test = records
    return pipeline.inputs_from_records(train, val, test, num_examples=N_TRAIN + N_VAL + N_TEST,
                                        class_names=('a', 'b'), cfg=cfg, cache_name='toy')


def _labels(dataset):
    return sorted(int(x) for _, labels in dataset for x in labels.numpy())


@pytest.mark.parametrize('placement', ['memory', 'disk', 'none', 'device'])
def test_every_placement_counts_shapes_and_evaluates_each_example_once(records, tmp_path, placement):
    inputs = _inputs(records, tmp_path, cache=placement)
    assert (inputs.num_train, inputs.num_validation, inputs.num_test) == (N_TRAIN, N_VAL, N_TEST)
    assert inputs.steps_per_epoch == N_TRAIN // BATCH
    assert inputs.cache_decision.startswith(f'cache={placement}')
    first, labels = inputs.train.element_spec
    assert labels.shape == (BATCH,) and labels.dtype == tf.int32
    if placement == 'device':
        assert first.shape == (BATCH,) and first.dtype == tf.int32
        indices, labels = next(iter(inputs.train))
        # The device cache is the train split in decode order, so index i holds example (label) i.
        np.testing.assert_array_equal(labels.numpy(), indices.numpy())
        assert inputs.device_cache.shape == (N_TRAIN, SIZE, SIZE, 3)
        images = tf.gather(inputs.device_cache, indices)
    else:
        assert inputs.device_cache is None
        assert first.shape == (BATCH, SIZE, SIZE, 3) and first.dtype == tf.uint8  # static, for XLA
        images, labels = next(iter(inputs.train))
    assert images.shape == (BATCH, SIZE, SIZE, 3) and images.dtype == tf.uint8
    assert set(labels.numpy()) <= set(range(N_TRAIN))
    assert _labels(inputs.validation) == list(range(N_TRAIN, N_TRAIN + N_VAL))
    assert _labels(inputs.test) == list(range(N_TRAIN + N_VAL, N_TRAIN + N_VAL + N_TEST))
    image_spec, _ = inputs.test.element_spec
    assert image_spec.dtype == tf.uint8


def test_train_epochs_are_permutations_and_reshuffle(records):
    inputs = _inputs(records)
    it = iter(inputs.train)
    steps = inputs.steps_per_epoch
    epochs = [np.concatenate([next(it)[1].numpy() for _ in range(steps)]) for _ in range(3)]
    for epoch in epochs:
        assert len(set(epoch)) == steps * BATCH  # no example twice within an epoch
    assert not np.array_equal(epochs[0], epochs[1])


def test_same_seed_same_batches_other_seed_different(records):
    def first_batches(seed):
        it = iter(_inputs(records, seed=seed, deterministic=True).train)
        return [next(it) for _ in range(3)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for (ia, la), (ib, lb) in zip(a, b):
        np.testing.assert_array_equal(ia.numpy(), ib.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
    assert not all(np.array_equal(la.numpy(), lc.numpy()) for (_, la), (_, lc) in zip(a, c))


def test_nothing_random_before_the_cache(records):
    decoded = pipeline.decode_for_cache(records[0], SIZE)
    graph = decoded._as_serialized_graph().numpy().decode('latin-1')  # pylint: disable=protected-access
    for op in ('Random', 'Shuffle', 'StatelessRandom'):
        assert op not in graph, op
    # And the same records always decode to the same cache.
    once = np.stack([image.numpy() for image, _ in decoded])
    again = np.stack([image.numpy() for image, _ in decoded])
    np.testing.assert_array_equal(once, again)


def test_epoch_index_batches_cover_each_index_at_most_once_per_epoch():
    ds = pipeline.epoch_index_batches(10, 3, seed=5)
    batches = [b.numpy() for b in ds.take(6)]  # 3 steps per epoch, 2 epochs
    assert all(b.shape == (3,) and b.dtype == np.int32 for b in batches)
    for epoch in (batches[:3], batches[3:]):
        flat = np.concatenate(epoch)
        assert len(set(flat)) == 9 and flat.max() < 10
    with pytest.raises(ValueError, match='--batch_size=11 is larger than the 10'):
        pipeline.epoch_index_batches(10, 11, seed=0)


def test_validation_is_carved_by_absolute_index():
    assert pipeline.carve_validation('train', 24_485, 0.1) == ('train[:22037]', 'train[22037:]', 22_037, 2_448)
    assert pipeline.carve_validation('train', 100, 0.0) == ('train', None, 100, 0)


def test_input_context_gives_per_replica_batches(records):
    cfg = pipeline.PipelineConfig(cache_size=SIZE, batch_size=BATCH, cache='memory')
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    train, val, test = records
    inputs = pipeline.inputs_from_records(train, val, test, num_examples=47, class_names=('a',), cfg=cfg,
                                          input_context=context)
    assert inputs.train.element_spec[0].shape[0] == BATCH // 2
    assert inputs.steps_per_epoch == N_TRAIN // BATCH  # each step feeds both replicas


@pytest.mark.parametrize('kwargs, message', [
        ({'cache': 'ram'}, "--cache='ram'.*valid: auto, memory, disk, device, none"),
        ({'batch_size': 0}, '--batch_size=0'),
        ({'validation_fraction': 1.0}, '--validation_split=1.0'),
        ({'cache': 'disk'}, '--cache=disk needs a cache directory'),
])
def test_config_errors_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.PipelineConfig(**{'cache_size': 32, 'batch_size': 8, **kwargs})


@pytest.mark.parametrize('cache', ['memory', 'device'])
def test_synthetic_inputs_have_the_dataset_shape(cache):
    spec = get_dataset_spec('cifar100')
    cfg = pipeline.PipelineConfig(cache_size=32, batch_size=8, cache=cache)
    inputs = pipeline.build_synthetic_inputs(spec, cfg, num_train=40, num_test=10)
    assert (inputs.num_train, inputs.num_validation, inputs.num_test) == (36, 4, 10)
    assert len(inputs.class_names) == 100
    assert (inputs.device_cache is not None) == (cache == 'device')
    first, labels = next(iter(inputs.train))
    assert first.shape[0] == 8 and labels.dtype == tf.int32
    assert sum(int(images.shape[0]) for images, _ in inputs.test) == 10


def test_build_inputs_on_tfds_own_cifar100_builder(tmp_path):
    from fastclassify.pipelines import sources  # pylint: disable=import-outside-toplevel
    from tests import fake_cifar  # pylint: disable=import-outside-toplevel
    extracted = fake_cifar.write_cifar100_binary(tmp_path / 'extracted', {'train': 12, 'test': 4})
    with fake_cifar.offline_download(extracted):
        builder = sources.prepare(sources.SourceConfig('cifar100', data_dir=str(tmp_path / 'data')))
    cfg = pipeline.PipelineConfig(cache_size=32, batch_size=3, cache='auto', validation_fraction=0.25,
                                  cache_dir=str(tmp_path / 'cache'))
    inputs = pipeline.build_inputs(builder, get_dataset_spec('cifar100'), cfg)
    assert (inputs.num_train, inputs.num_validation, inputs.num_test) == (9, 3, 4)
    assert inputs.cache_decision.startswith('cache=memory') and 'fits' in inputs.cache_decision
    assert len(inputs.class_names) == 100
    images, labels = next(iter(inputs.train))
    assert images.shape == (3, 32, 32, 3) and images.dtype == tf.uint8 and labels.dtype == tf.int32
    assert sum(int(x.shape[0]) for x, _ in inputs.validation) == 3
    assert sum(int(x.shape[0]) for x, _ in inputs.test) == 4


def test_file_cache_names_separate_validation_cuts(records, tmp_path):
    _inputs(records, tmp_path, cache='disk', validation_fraction=0.1)
    _inputs(records, tmp_path, cache='disk', validation_fraction=0.2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert any('train_val0.1' in n for n in names) and any('train_val0.2' in n for n in names)
    assert sum('test' in n for n in names) == 1  # the test split does not depend on the cut


def test_synthetic_labels_follow_the_builder_config():
    # caltech256 --config=paper60 has 256 classes: a label of 256 would one-hot to a zero row, silently.
    from fastclassify.pipelines.sources import SourceConfig
    from fastclassify.training import loop
    from fastclassify.training.config import TrainConfig, RunConfig
    from fastclassify.pipelines.pipeline import PipelineConfig
    from fastclassify.pipelines.augment import AugmentConfig
    from fastclassify.models.config import ModelConfig
    from fastclassify.training.optimizers import OptimizerConfig

    cfg = TrainConfig(source=SourceConfig(dataset='caltech256', config='paper60'),
                      pipeline=PipelineConfig(cache_size=32, batch_size=64),
                      augment=AugmentConfig(image_size=32, num_classes=256),
                      model=ModelConfig(name='cifar_resnet9', num_classes=256, image_size=32),
                      optimizer=OptimizerConfig(), run=RunConfig(model_dir='unused', synthetic_data=True))
    inputs = loop.load_inputs(cfg)
    labels = np.concatenate([y for _, y in inputs.train.take(20).as_numpy_iterator()])
    assert labels.max() == 255 and labels.min() == 0
