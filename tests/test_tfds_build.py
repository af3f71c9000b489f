"""TFDS's own `build` command on our builder folder (the `tfds` script itself needs apache-beam)."""

import json
import os
import shutil
import subprocess
import sys
import pytest

from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
from tests.conftest import ROOT



def _build(tmp_path, **env):
    manual = tmp_path / 'manual'
    manual.mkdir(exist_ok=True)
    shutil.copy(DUMMY_ARCHIVE, manual / archive.ARCHIVE_NAME)
    return subprocess.run(
        [sys.executable, '-m', 'cli.tfds_build', 'pipelines/caltech256', f'--manual_dir={manual}',
         f'--data_dir={tmp_path / "data"}'], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **env))


@pytest.mark.slow  # starts a subprocess
def test_tfds_build_on_the_folder_prepares_the_dataset(tmp_path):
    result = _build(tmp_path, CALTECH256_ALLOW_MODIFIED_ARCHIVE='1')
    assert result.returncode == 0, result.stderr[-2000:]
    version_dir = next((tmp_path / 'data' / 'caltech256' / 'all').iterdir())
    info = json.load(open(version_dir / 'dataset_info.json'))
    sizes = {s['name']: sum(int(n) for n in s['shardLengths']) for s in info['splits']}
    assert sizes['train'] > 0 and sizes['test'] > 0


@pytest.mark.slow  # starts a subprocess
def test_tfds_build_refuses_the_modified_archive_by_default(tmp_path):
    result = _build(tmp_path)
    assert result.returncode != 0
    assert 'not the published Caltech-256 archive' in result.stderr
    assert '--allow_modified_archive' in result.stderr
