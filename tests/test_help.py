"""`train.py --help` is a user's page: flags, the 15 models, the datasets and their presets; exit 0, fast."""

import os
import subprocess
import sys
import time

import pytest

from fastclassify.models.choices import FAMILY_FACTS
from tests.conftest import ROOT


@pytest.mark.slow  # a subprocess (under a second: no TensorFlow)
def test_help_lists_models_datasets_presets_and_exits_zero():
    start = time.monotonic()
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), '--help'], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 3.0
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in FAMILY_FACTS:
        assert f'\n  {name} ' in text, name
    for needle in ('--dataset', '--manual_dir', 'cifar100 ', 'caltech256 ', 'folder, TFDS names',
                   'learning_rate=0.0001', 'Without pretrained weights'):
        assert needle in text, needle
    # Maintainers' notes stay in the source, not on the user's page.
    for note in ('FLAG_FIELDS', 'tests/', 'registry.py'):
        assert note not in text, note
