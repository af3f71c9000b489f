"""`python -m benchmarks.prepare --photos`: both sides of the scaled decode measured by one command."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow  # three subprocesses (the benchmark and its two preparations)
def test_photo_benchmark_measures_both_sides_and_their_pixel_difference(tmp_path):
    command = [sys.executable, '-m', 'benchmarks.prepare', '--photos=8', '--photo_size=1200x900',
               '--image_size=64', '--repeats=1', f'--work={tmp_path / "work"}']
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for side in ('off', 'on'):
        assert f'preparation, scaled decode {side}' in out
        assert f'first epoch @64 px, scaled decode {side}' in out
    difference = float(out.split('mean abs difference ')[1].split(',')[0])
    assert 0 < difference <= 2.0  # the bound tests/test_decode_scaled.py holds the decode to
