"""Class folder names the class-name file cannot hold (issue 23): refused in one line, before anything
is prepared, so no run trains a model with outputs for classes that do not exist."""

import os

from cli import prepare
from tests.folder_trees import separable_tree, write_dir


def test_a_class_folder_named_with_a_line_break_is_refused_in_one_line(tmp_path, capsys):
    tree = separable_tree(3, 4, size=16)
    tree = {path.replace('class_1/', 'dog\nbird/'): data for path, data in tree.items()}
    source = write_dir(tree, tmp_path / 'src')
    data = tmp_path / 'data'
    capsys.readouterr()
    assert prepare.main(['prepare', '--dataset=folder', f'--manual_dir={source}', f'--data_dir={data}']) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.split('\n') if 'error: ' in line]
    assert len(errors) == 1 and 'Traceback' not in err, err[-2000:]
    assert "the class folder 'dog\\nbird' has a line break" in errors[0]
    assert not any(name.endswith('.labels.txt') for _, _, files in os.walk(data) for name in files)
