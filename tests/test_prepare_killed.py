"""A preparation killed half-way is never trusted: the next run notices and builds it again.

The preparer (`cli.prepare`'s own main, in a subprocess) is held inside the build, after some examples are
written, until it is killed: the kill lands mid-build on any machine, however fast.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from fastclassify.pipelines import sources
from fastclassify.pipelines.caltech256 import archive, make_dummy_data
from tests.conftest import ROOT

# Runs `python -m cli.prepare ARGS` with the builder's example generator stopping for good at example 100
# (after touching the file argv[1]), so the parent kills a build that is certainly under way.
_HELD_PREPARE = """
import sys, time
from fastclassify.pipelines.folder import builder_base
from cli import prepare
held, generate = sys.argv[1], builder_base.ClassFolderBuilder._generate_examples
def held_generate(self, *args, **kwargs):
    for i, example in enumerate(generate(self, *args, **kwargs)):
        if i == 100:
            open(held, 'w').close()
            time.sleep(3600)
        yield example
builder_base.ClassFolderBuilder._generate_examples = held_generate
sys.exit(prepare.main(['prepare', *sys.argv[2:]]))
"""

@pytest.mark.slow
def test_killed_prepare_leaves_nothing_trusted_and_the_rerun_builds(tmp_path, caplog):
    manual = tmp_path / 'manual'
    manual.mkdir()
    make_dummy_data.write_tar(manual / archive.ARCHIVE_NAME, make_dummy_data.full_size_members(1500))
    data_dir = tmp_path / 'data'
    held = tmp_path / 'held'
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, '-c', _HELD_PREPARE, str(held), '--dataset=caltech256',
                             f'--manual_dir={manual}', f'--data_dir={data_dir}', '--allow_modified_archive'],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not held.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, 'the build never reached its 100th example'
        time.sleep(0.05)
    dataset_dir = data_dir / 'caltech256' / 'all'
    # TFDS builds in a temporary `*incomplete*` folder and renames it when done.
    assert any('incomplete' in n for n in os.listdir(dataset_dir))
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
