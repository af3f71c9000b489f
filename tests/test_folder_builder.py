"""`--dataset=folder`: generated trees in every form and layout, prepared by the real TFDS builder; the
class list, split sizes and skipped-file report asserted exactly."""

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fastclassify.pipelines import sources
from tests import folder_trees

ONE_POOL_SKIPPED = {
        'export/dogs/broken.jpg': 'cannot decode JPEG',
        'export/dogs/labels.csv': 'not an image',
        'export/empty_class/readme.txt': 'not an image',
        'export/cats/sub/deep.jpg': 'in a stray subfolder of cats/',
        'export/cats/.thumbnails/t.jpg': 'hidden file or folder',
        'export/.DS_Store': 'hidden file or folder',
        '__MACOSX/export/cats/._000.jpeg': 'hidden file or folder',
        'export/README.txt': 'not inside a class folder',
}


def _prepare(tmp_path, tree, form, **kwargs):
    source = folder_trees.write(tree, tmp_path, form)
    cfg = sources.SourceConfig('folder', data_dir=str(tmp_path / 'data'), manual_dir=str(source), **kwargs)
    return cfg, sources.prepare(cfg)


def _skipped(builder) -> dict[str, str]:
    return {s['path']: s['reason'] for s in builder.info.metadata['skipped']}


def _file_names(builder, split) -> set[str]:
    return {ex['file_name'].decode() for ex in tfds.as_numpy(builder.as_dataset(split=split))}


@pytest.mark.parametrize('form', ['dir', 'tar', 'tar.gz', 'zip'])
def test_one_pool_in_every_form(tmp_path, form):
    _, builder = _prepare(tmp_path, folder_trees.mixed_tree(), form)
    assert sources.class_names(builder) == ['birds', 'cats', 'dogs']
    # Per class 80% train (rounded half up) by content hash: cats 9 -> 7, dogs 8 -> 6, birds 5 -> 4.
    assert sources.split_sizes(builder) == {'train': 17, 'test': 5}
    skipped = _skipped(builder)
    assert set(skipped) == set(ONE_POOL_SKIPPED)
    for path, reason in ONE_POOL_SKIPPED.items():
        assert reason in skipped[path], (path, skipped[path])
    metadata = builder.info.metadata
    assert metadata['empty_classes'] == ['empty_class', 'no_files']
    assert metadata['num_converted'] == 6  # PNG, grayscale, GIF, WebP, BMP, CMYK
    twins = ['cats/000.jpeg', 'cats/copy_of_000.jpg']
    assert metadata['duplicates'] == [twins]
    train = _file_names(builder, 'train')
    assert (twins[0] in train) == (twins[1] in train)  # byte-identical files share a split
    assert not train & _file_names(builder, 'test')
    assert metadata['layout'] == 'export/CLASS/IMAGE (one pool, split by content hash)'
    for ex in tfds.as_numpy(builder.as_dataset(split='train+test', decoders={'image': tfds.decode.SkipDecoding()})):
        assert ex['image'][:2] == b'\xff\xd8' and tf.io.decode_jpeg(ex['image']).shape[2] == 3


@pytest.mark.parametrize('form', ['dir', 'zip'])
def test_given_train_and_test_folders_are_kept(tmp_path, form):
    _, builder = _prepare(tmp_path, folder_trees.mixed_tree(given_splits=True), form)
    assert sources.class_names(builder) == ['birds', 'cats', 'dogs']  # birds only in test: still a class
    assert sources.split_sizes(builder) == {'train': 12, 'test': 6}
    assert _skipped(builder) == {
            'export/train/cats/notes.txt': 'not an image (no known image format)',
            'export/train/empty_class/readme.txt': 'not an image (no known image format)',
            'export/val/cats/x.jpg': 'not inside train/ or test/',
            'export/test/dogs/leak.jpg': 'byte-identical to train/dogs/000.jpeg (kept in train only)',
    }
    assert builder.info.metadata['empty_classes'] == ['empty_class']
    assert builder.info.metadata['duplicates'] == [['test/dogs/leak.jpg', 'train/dogs/000.jpeg']]
    assert _file_names(builder, 'test') == {'test/cats/000.jpeg', 'test/cats/001.jpeg', 'test/dogs/000.jpeg',
                                            'test/dogs/001.jpeg', 'test/birds/000.jpeg', 'test/birds/001.jpeg'}


def test_train_without_test_is_one_line_naming_both_layouts(tmp_path):
    tree = {f'train/{c}/{i}.jpg': folder_trees.encoded(i, 'JPEG') for c in ('a', 'b') for i in range(2)}
    with pytest.raises(ValueError) as error:
        _prepare(tmp_path, tree, 'dir')
    message = str(error.value)
    assert 'has train/ but no test/' in message and 'train/CLASS/IMAGE + test/CLASS/IMAGE' in message
    assert '\n' not in message


def test_a_changed_folder_is_noticed_and_prepared_again(tmp_path, capsys):
    cfg, builder = _prepare(tmp_path, folder_trees.separable_tree(2, 10), 'dir')
    assert sources.split_sizes(builder) == {'train': 16, 'test': 4}
    again = sources.prepare(cfg)
    assert again.info.metadata['fingerprint'] == builder.info.metadata['fingerprint']
    assert 'changed since it was prepared' not in capsys.readouterr().out
    new_class = folder_trees.separable_tree(3, 10, seed=1)
    folder_trees.write_dir({k: v for k, v in new_class.items() if k.startswith('class_2/')}, tmp_path / 'tree')
    rebuilt = sources.prepare(cfg)
    out = capsys.readouterr().out
    assert f'--manual_dir={cfg.manual_dir} changed since it was prepared' in out and 'files 20 -> 30' in out
    assert sources.class_names(rebuilt) == ['class_0', 'class_1', 'class_2']
    assert sources.split_sizes(rebuilt) == {'train': 24, 'test': 6}
    assert sources.dataset_spec(cfg).num_classes == 3


def test_source_errors_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match='--dataset=folder needs --manual_dir=PATH'):
        sources.SourceConfig('folder')
    with pytest.raises(ValueError, match=f'--manual_dir={tmp_path}/nope does not exist'):
        sources.SourceConfig('folder', manual_dir=str(tmp_path / 'nope'))
    (tmp_path / 'images.rar').write_bytes(b'Rar!')
    with pytest.raises(ValueError, match=r'images.rar is neither a directory nor an archive \(.tar, .tar.gz'):
        sources.SourceConfig('folder', manual_dir=str(tmp_path / 'images.rar'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no files'):
        sources.prepare(sources.SourceConfig('folder', manual_dir=str(tmp_path / 'empty'),
                                             data_dir=str(tmp_path / 'data')))
