"""TFDS sources: preparing from a manual archive or TFDS's own CIFAR-100 builder, and reading encoded records."""

import pathlib
from unittest import mock

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fastclassify.pipelines import sources
from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
from tests import fake_cifar


@pytest.fixture(scope='module')
def manual_dir(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp('manual')
    (path / archive.ARCHIVE_NAME).write_bytes(DUMMY_ARCHIVE.read_bytes())
    return path


@pytest.fixture(scope='module')
def prepared(tmp_path_factory, manual_dir):
    data_dir = tmp_path_factory.mktemp('data')
    cfg = sources.SourceConfig('caltech256', data_dir=str(data_dir), manual_dir=str(manual_dir),
                               allow_modified_archive=True, download=False)
    return cfg, sources.prepare(cfg)


def test_prepare_builds_from_the_manual_archive_without_fetching(prepared):
    _, builder = prepared
    assert builder.is_prepared()
    assert sources.split_sizes(builder) == {'train': 18, 'test': 5}
    assert sources.class_names(builder) == ['ak47', 'american-flag', 'dog', 'spider', 'clutter']


def test_prepared_data_is_reused_without_the_archive(prepared):
    cfg, builder = prepared
    # No manual dir and no network allowed: only an already prepared dataset can satisfy this.
    again = sources.prepare(sources.SourceConfig('caltech256', data_dir=cfg.data_dir, download=False))
    assert again.data_dir == builder.data_dir


def test_read_split_gives_encoded_images_and_int64_labels_in_a_fixed_order(prepared):
    _, builder = prepared
    dataset = sources.read_split(builder, 'train')
    assert dataset.element_spec == {'image': tf.TensorSpec((), tf.string), 'label': tf.TensorSpec((), tf.int64)}
    first = [(ex['image'], ex['label']) for ex in tfds.as_numpy(dataset)]
    second = [(ex['image'], ex['label']) for ex in tfds.as_numpy(sources.read_split(builder, 'train'))]
    assert first == second and len(first) == 18
    assert tf.io.decode_jpeg(first[0][0]).shape[2] == 3
    assert len(list(sources.read_split(builder, 'train[:50%]'))) == 9


def test_read_split_shards_by_input_context(prepared):
    _, builder = prepared
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0)
    assert len(list(sources.read_split(builder, 'test', input_context=context))) == 5


def test_missing_data_offline_is_one_line_naming_the_remedy(tmp_path):
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path), download=False)
    with pytest.raises(sources.DataMissingError) as error:
        sources.prepare(cfg)
    assert '--manual_dir' in str(error.value) and '\n' not in str(error.value)


def test_manual_dir_without_the_archive_is_an_error_not_a_download(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path / 'data'), manual_dir=str(empty))
    with pytest.raises(sources.DataMissingError, match=archive.ARCHIVE_NAME):
        sources.prepare(cfg)


def test_modified_archive_is_a_value_error_naming_the_flag(tmp_path, manual_dir):
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path), manual_dir=str(manual_dir))
    with pytest.raises(ValueError, match='--allow_modified_archive') as error:
        sources.prepare(cfg)
    assert archive.PUBLISHED_SHA256 in str(error.value)


def test_network_failure_becomes_data_missing(tmp_path):
    import requests  # pylint: disable=import-outside-toplevel
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path))
    # The host answers (so TFDS downloads), then the download itself fails: TFDS's error, mapped.
    with mock.patch.object(sources, 'unreachable_host', return_value=None), \
            mock.patch.object(tfds.download.DownloadManager, 'download',
                              side_effect=requests.exceptions.ConnectionError('Name or service not known')):
        with pytest.raises(sources.DataMissingError, match='could not download caltech256'):
            sources.prepare(cfg)


@pytest.mark.parametrize('kwargs, match', [
        ({'dataset': 'nope'}, r"--dataset='nope'.*caltech256, cifar100"),
        ({'dataset': 'cifar100', 'allow_modified_archive': True}, '--allow_modified_archive'),
])
def test_source_config_rejects_bad_values_naming_the_flag(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sources.SourceConfig(**kwargs)


def test_unknown_builder_config_names_the_flag_and_choices(tmp_path):
    with pytest.raises(ValueError, match=r"--config='nope'.*all, paper60"):
        sources.prepare(sources.SourceConfig('caltech256', data_dir=str(tmp_path), config='nope'))


def test_cifar100_is_prepared_by_tfds_own_builder(tmp_path):
    extracted = fake_cifar.write_cifar100_binary(tmp_path / 'extracted', {'train': 12, 'test': 4})
    cfg = sources.SourceConfig('cifar100', data_dir=str(tmp_path / 'data'))
    # Only the network is replaced: TFDS's cifar100 builder parses the binary files itself.
    with fake_cifar.offline_download(extracted):
        builder = sources.prepare(cfg)
    assert type(builder).__module__.startswith('tensorflow_datasets.')
    assert sources.split_sizes(builder) == {'train': 12, 'test': 4}
    assert sources.class_names(builder)[:2] == ['fine_0', 'fine_1']
    example = next(iter(sources.read_split(builder, 'test')))
    assert tf.io.decode_image(example['image']).shape == (32, 32, 3) and example['label'].dtype == tf.int64
