"""examples/ run as a user runs them (a subprocess each, on generated data in the real formats, few steps)."""

import os
import subprocess
import sys

import pytest

from tests import fake_cifar
from tests.conftest import ROOT


@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
    """A tiny real-format CIFAR-100 prepared by TFDS's own builder (nothing downloaded)."""
    import tensorflow_datasets as tfds
    root = tmp_path_factory.mktemp('examples')
    extracted = fake_cifar.write_cifar100_binary(root / 'extracted', {'train': 48, 'test': 16})
    with fake_cifar.offline_download(extracted):
        tfds.builder('cifar100', data_dir=str(root / 'data')).download_and_prepare()
    return str(root / 'data')


def _run(script: str, *args: str, backend: str | None = None) -> str:
    env = {**os.environ, 'PYTHONPATH': ROOT}
    if backend:
        env['KERAS_BACKEND'] = backend
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_backbone_on_a_tfds_dataset(cifar_dir):
    # TensorFlow here; the API's JAX side (Augment, AugmentedModel from the device cache) is test_api's.
    out = _run('backbone_on_a_tfds_dataset.py', '--dataset=cifar100', '--image_size=32', '--epochs=1',
               '--batch_size=8', '--weights=none', f'--data_dir={cifar_dir}', backend='tensorflow')
    assert 'test accuracy' in out and 'on 16 images' in out


@pytest.mark.slow
def test_custom_training_loop(cifar_dir):
    out = _run('custom_training_loop.py', '--dataset=cifar100', '--epochs=2', '--batch_size=8',
               f'--data_dir={cifar_dir}', backend='tensorflow')
    assert out.count('test accuracy') == 2


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path):
    """The README's Python block, with its folder swapped for generated class folders and fewer epochs."""
    import re
    from tests import folder_trees
    readme = open(os.path.join(ROOT, 'README.md')).read()
    code = re.search(r'```python\n(.*?)```', readme, re.S).group(1)
    folder = folder_trees.write_dir(folder_trees.separable_tree(3, 24, size=64), tmp_path / 'photos')
    assert "'photos/'" in code and 'epochs=10' in code
    code = code.replace("'photos/'", f"{str(folder)!r}, data_dir={str(tmp_path / 'tfds')!r}")
    code = code.replace('epochs=10', 'epochs=1') + '\nprint("evaluated", data.num_test)\n'
    script = tmp_path / 'readme_example.py'
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, 'PYTHONPATH': ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'evaluated \d+', result.stdout)
