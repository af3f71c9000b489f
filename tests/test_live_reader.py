"""Re-preparation under a live reader (issue 23): a dataset a run is reading is never deleted under it;
the preparer refuses in one line naming the reader, and prepares once the reader is gone."""

import glob
import os
import subprocess
import sys
import time

import pytest

from cli import prepare
from fastclassify.pipelines import folder_lock
from tests.conftest import ROOT
from tests.folder_trees import separable_tree, write_dir

# A reader as train.py registers itself (training/loop.py), without training: it holds on until killed.
READER = ('import sys, time\n'
          'from fastclassify.pipelines import folder_lock\n'
          'folder_lock.register_reader(sys.argv[1])\n'
          'print("reading", flush=True)\n'
          'time.sleep(600)\n')


@pytest.mark.slow
def test_a_dataset_in_use_is_not_prepared_again_under_its_reader(tmp_path, capsys):
    source = write_dir(separable_tree(3, 6, size=16), tmp_path / 'src')
    data = tmp_path / 'data'
    command = ['prepare', '--dataset=folder', f'--manual_dir={source}', f'--data_dir={data}']
    assert prepare.main(command) == 0
    version_dir = glob.glob(str(data / 'class_folders' / '*' / '1.0.0'))[0]
    reader = subprocess.Popen([sys.executable, '-c', READER, os.path.dirname(version_dir)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == 'reading'
        (source / 'class_0' / '0000.jpg').unlink()  # the folder changed: it would be prepared again
        capsys.readouterr()
        assert prepare.main(command) == 2
        err = [line for line in capsys.readouterr().err.split('\n') if 'error: ' in line]
        assert len(err) == 1, err
        assert f'{version_dir} is in use by pid {reader.pid} on host ' in err[0]
        assert 'would delete it under that run' in err[0]
        assert os.path.exists(os.path.join(version_dir, 'dataset_info.json'))  # untouched
    finally:
        reader.kill()
        reader.wait()
    assert prepare.main(command) == 0  # the reader is gone: prepared again
    assert folder_lock.live_readers(os.path.dirname(version_dir)) == []
