"""A preparation killed half-way is never trusted: the next run notices and builds it again."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines import sources
from pipelines.caltech256 import archive, make_dummy_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_killed_prepare_leaves_nothing_trusted_and_the_rerun_builds(tmp_path, caplog):
    manual = tmp_path / 'manual'
    manual.mkdir()
    make_dummy_data.write_tar(manual / archive.ARCHIVE_NAME, make_dummy_data.full_size_members(1500))
    data_dir = tmp_path / 'data'
    cmd = [sys.executable, '-m', 'cli.prepare', '--dataset=caltech256', f'--manual_dir={manual}',
           f'--data_dir={data_dir}', '--allow_modified_archive']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    dataset_dir = data_dir / 'caltech256' / 'all'
    # TFDS builds in a temporary `*incomplete*` folder and renames it when done: kill while it exists.
    while time.time() < deadline and proc.poll() is None:
        if dataset_dir.exists() and any('incomplete' in n for n in os.listdir(dataset_dir)):
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip('the build finished before it could be killed')
    time.sleep(1.0)  # well inside the build: it decodes 1,500 images
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    cfg = sources.SourceConfig('caltech256', data_dir=str(data_dir), manual_dir=str(manual),
                               allow_modified_archive=True, download=False)
    builder = sources.prepare(cfg)  # notices nothing complete is there, and builds again
    assert 'was interrupted' in caplog.text
    assert not any('incomplete' in n for n in os.listdir(dataset_dir))
    sizes = sources.split_sizes(builder)
    assert sizes['train'] + sizes['test'] == 1500
    assert sum(1 for _ in sources.read_split(builder, 'test')) == sizes['test']
