"""Damaged metadata of a prepared dataset (issue 23): one line naming the file, and the advised
`cli.prepare --rebuild` repairs it without reading it first."""

import glob
import os
import shutil

import pytest

from cli import prepare
from fastclassify.pipelines import sources
from tests.folder_trees import separable_tree, write_dir


@pytest.fixture(scope='module')
def prepared_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('damaged')
    source = write_dir(separable_tree(3, 6, size=16), root / 'src')
    data = root / 'data'
    assert prepare.main(['prepare', '--dataset=folder', f'--manual_dir={source}', f'--data_dir={data}']) == 0
    version_dir = glob.glob(str(data / 'class_folders' / '*' / '1.0.0'))[0]
    pristine = root / 'pristine'
    shutil.copytree(version_dir, pristine)
    return source, data, version_dir, pristine


def _empty(path):
    open(path, 'w').close()


def _one_name_short(path):
    with open(path) as f:
        names = f.read().split('\n')
    with open(path, 'w') as f:
        f.write('\n'.join(names[1:]))


DAMAGES = {
    'empty dataset_info.json': ('dataset_info.json', _empty, 'is empty'),
    'label.labels.txt deleted': ('label.labels.txt', os.remove, 'is missing (3 class names expected)'),
    'label.labels.txt one name short': ('label.labels.txt', _one_name_short, 'holds 2 class names, 3 expected'),
    'metadata.json not JSON': ('metadata.json', lambda p: open(p, 'w').write('{'), 'is unreadable'),
}


@pytest.mark.parametrize('damage', list(DAMAGES))
def test_damaged_metadata_is_one_line_and_rebuild_repairs_it(prepared_folder, capsys, damage):
    source, data, version_dir, pristine = prepared_folder
    shutil.rmtree(version_dir)
    shutil.copytree(pristine, version_dir)
    name, damage_it, said = DAMAGES[damage]
    damage_it(os.path.join(version_dir, name))
    command = ['prepare', '--dataset=folder', f'--manual_dir={source}', f'--data_dir={data}']
    capsys.readouterr()
    assert prepare.main(command) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err
    assert f'{os.path.join(version_dir, name)} {said}' in err
    assert err.endswith(f'`python -m cli.prepare --dataset=folder --data_dir={data} --manual_dir={source} --rebuild`')
    assert prepare.main(command + ['--rebuild']) == 0  # the advised command repairs it
    builder = sources.prepare(sources.SourceConfig(dataset='folder', manual_dir=str(source), data_dir=str(data)))
    assert sources.class_names(builder) == ['class_0', 'class_1', 'class_2']
