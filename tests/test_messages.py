"""Words a new user meets when the data is not what was expected: each names what was found and what to do."""

import pytest

from fastclassify.pipelines import sources
from tests import folder_trees


def _prepare_folder(tmp_path, tree):
    source = folder_trees.write(tree, tmp_path, 'dir')
    sources.prepare(sources.SourceConfig('folder', data_dir=str(tmp_path / 'data'), manual_dir=str(source)))


@pytest.mark.parametrize('tree, needle', [
    ({f'cats/{i}.jpg': folder_trees.encoded(i, 'JPEG') for i in range(3)}, 'one class folder (cats/, 3 files)'),
    ({f'{i}.jpg': folder_trees.encoded(i, 'JPEG') for i in range(3)}, '3 files and no class folders'),
])
def test_a_folder_without_two_classes_says_so(tmp_path, tree, needle):
    with pytest.raises(ValueError) as error:
        _prepare_folder(tmp_path, tree)
    message = str(error.value)
    assert needle in message and 'two or more classes' in message and '\n' not in message, message
    assert 'not inside a class folder' not in message


def test_offline_tfds_dataset_names_the_file_a_user_may_have(tmp_path):
    cfg = sources.SourceConfig('cifar100', data_dir=str(tmp_path / 'data'), download=False)
    with pytest.raises(sources.DataMissingError) as error:
        sources.prepare(cfg)
    message = str(error.value)
    assert 'cifar-100-binary.tar.gz' in message and '--manual_dir=FOLDER' in message, message
    assert 'cli.prepare --dataset=cifar100 --data_dir=DIR' in message
