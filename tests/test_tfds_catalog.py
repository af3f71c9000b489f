"""Any TFDS image-classification dataset by name: facts from its builder, mock data through the real
pipeline and train loop, and one-line errors for unknown names and non-classification datasets."""

import json
import pathlib

import pytest
import tensorflow_datasets as tfds

from fastclassify.pipelines import datasets
from fastclassify.pipelines import sources
from tests.conftest import run_train


def _write_metadata(data_dir: pathlib.Path, name: str, split_sizes: dict[str, int]) -> None:
    """What `tfds.testing.mock_data(policy=USE_FILES)` reads: the builder's real info with these splits.

    The shard files are created empty: the prepared-data check looks for them, and mock_data serves the
    examples (their num_bytes of 0 turns off the size check).
    """
    builder = tfds.builder(name, data_dir=str(data_dir))
    template = tfds.core.ShardedFileTemplate(data_dir=builder.data_path, dataset_name=builder.name,
                                             filetype_suffix='tfrecord')
    builder.info.set_splits(tfds.core.SplitDict([
            tfds.core.SplitInfo(name=split, shard_lengths=[count], num_bytes=0,
                                filename_template=template.replace(split=split))
            for split, count in split_sizes.items()]))
    builder.data_path.mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_path)
    for split in builder.info.splits.values():
        for filename in split.filenames:
            (builder.data_path / filename).touch()


@pytest.mark.parametrize('name, split_sizes, test_split, num_classes', [
        ('oxford_flowers102', {'train': 40, 'validation': 20, 'test': 20}, 'test', 102),
        ('food101', {'train': 40, 'validation': 20}, 'validation', 101),  # no test split
])
@pytest.mark.slow  # a whole train.py run (or several)
def test_catalog_dataset_trains_through_mock_data(tmp_path, capsys, caplog, name, split_sizes, test_split,
                                                  num_classes):
    data_dir = tmp_path / 'data'
    _write_metadata(data_dir, name, split_sizes)
    model_dir = tmp_path / 'run'
    with tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(data_dir)):
        spec = sources.dataset_spec(sources.SourceConfig(name, data_dir=str(data_dir)))
        run_train(f'--dataset={name}', f'--data_dir={data_dir}', f'--model_dir={model_dir}',
                  '--model=cifar_resnet9', '--weights=none', '--image_size=32', '--batch_size=16',
                  '--epochs=1', '--precision=float32', '--cache=memory', '--nodownload')
    assert (spec.num_classes, spec.test_split, spec.native_size) == (num_classes, test_split, None)
    assert spec.preset == datasets.general_preset()
    config = json.load(open(model_dir / 'config.json'))
    # The general preset filled what the flags left: AdamW with warmup (capped at a tenth of 1 epoch).
    assert config['optimizer']['name'] == 'adamw' and config['optimizer']['weight_decay'] == 0.05
    assert config['optimizer']['warmup_epochs'] == pytest.approx(0.1)
    assert config['model']['num_classes'] == num_classes and config['augment']['policy'] == 'rrc'
    results = json.load(open(model_dir / 'results.json'))
    # mock_data serves 32 generated PNGs for each split read: 2 steps of 16, and 32 test examples.
    assert results['num_examples'] == 32 and results['optimizer_iterations'] >= 1
    if test_split == 'validation':
        assert 'no test split: its validation split is used as the test split' in caplog.text


def test_seed_presets_are_kept():
    assert datasets.get_dataset_spec('caltech256').preset['model'] == 'convnext_xlarge'
    assert datasets.get_dataset_spec('cifar100').preset['optimizer'] == 'rmsprop'


def test_unknown_name_is_one_line_naming_choices_and_the_closest(tmp_path):
    with pytest.raises(ValueError) as error:
        sources.SourceConfig('oxford_flower102', data_dir=str(tmp_path))
    message = str(error.value)
    assert "--dataset='oxford_flower102'" in message and 'caltech256, cifar100, folder' in message
    assert 'did you mean oxford_flowers102' in message and '\n' not in message


def test_dataset_without_image_and_class_label_names_what_it_has(tmp_path):
    with pytest.raises(ValueError) as error:
        sources.dataset_spec(sources.SourceConfig('imdb_reviews', data_dir=str(tmp_path)))
    message = str(error.value)
    assert '--dataset=imdb_reviews is not an image-classification dataset' in message
    assert 'label: ClassLabel' in message and 'text: Text' in message
    assert 'needs one Image feature and one ClassLabel label' in message and '\n' not in message


def test_unknown_config_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"--config='nope' is not a config of imagenette; valid: full-size"):
        sources.dataset_spec(sources.SourceConfig('imagenette', data_dir=str(tmp_path), config='nope'))
