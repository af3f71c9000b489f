"""`python -m cli.prepare`: prepares without training, prints split sizes and skipped files."""

import os
import subprocess
import sys
import pytest

from cli import prepare
from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
from tests.conftest import ROOT



def test_unknown_dataset_exits_with_one_line_naming_flag_value_and_choices(capsys):
    assert prepare.main(['prepare', '--dataset=nope']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--dataset='nope'" in err and 'caltech256, cifar100' in err


def test_missing_dataset_flag_is_reported(capsys):
    assert prepare.main(['prepare']) == 2
    assert '--dataset is required' in capsys.readouterr().err


def test_prepares_from_manual_archive_and_reports(tmp_path, capsys):
    manual = tmp_path / 'manual'
    manual.mkdir()
    (manual / archive.ARCHIVE_NAME).write_bytes(DUMMY_ARCHIVE.read_bytes())
    argv = ['prepare', '--dataset=caltech256', f'--manual_dir={manual}', f'--data_dir={tmp_path / "data"}']
    assert prepare.main(argv) == 2  # the dummy archive is not the published one
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and '--allow_modified_archive' in err

    assert prepare.main(argv + ['--allow_modified_archive']) == 0
    out = capsys.readouterr().out
    assert 'train: 18 examples' in out and 'test: 5 examples' in out and 'classes: 5' in out
    assert 'skipped: 4 files' in out and '198.spider/RENAME2' in out and 'converted to RGB JPEG: 3' in out


@pytest.mark.slow  # starts a subprocess
def test_module_entry_point_prints_no_traceback():
    result = subprocess.run([sys.executable, '-m', 'cli.prepare', '--dataset=nope'], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'},
                            timeout=120)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr and "--dataset='nope'" in result.stderr
