"""What a user sees from a short train.py run, on a terminal and on a pipe: each epoch once, no library
INFO lines or Python warnings, and at the end where every output went."""

import os
import pty
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SMALL

_ABSL_LINE = re.compile(r'^[IW]\d{4} ', re.MULTILINE)


def _check(text: str, model_dir: str) -> None:
    for epoch in (1, 2):
        assert len(re.findall(rf'^epoch {epoch}/2: ', text, re.MULTILINE)) == 1, text
    assert 'Epoch 1/2' not in text and 'images_per_sec:' not in text, text  # Keras' own display is off
    assert not _ABSL_LINE.search(text), text
    assert 'Warning' not in text and 'Traceback' not in text, text
    assert not re.search(r'^config:\s*\{', text, re.MULTILINE)  # a summary, not the JSON dump
    tail = text.rstrip().splitlines()[-7:]
    assert tail[0] == f'outputs in {model_dir}/', tail
    for needle in ('model.keras', 'results.json', 'config.json', 'plots/accuracy.png',
                   f'tensorboard --logdir {model_dir}/logs'):
        assert any(needle in line for line in tail), (needle, tail)


@pytest.mark.slow  # two train.py subprocesses
def test_console_on_a_pipe_and_on_a_terminal(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # as a user runs it
    args = [sys.executable, os.path.join(ROOT, 'train.py'), *SMALL]
    piped = subprocess.run([*args, '--model_dir=piped'], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert piped.returncode == 0, piped.stderr
    assert '\r' not in piped.stdout and '\x1b' not in piped.stdout
    _check(piped.stdout + piped.stderr, 'piped')

    controller, terminal = pty.openpty()
    process = subprocess.Popen([*args, '--model_dir=tty'], cwd=tmp_path, env=env, stdout=terminal,
                               stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=600) == 0
    raw = b''.join(chunks).decode().replace('\r\n', '\n')
    # What the terminal shows: a redrawn progress line is erased ("\r" + clear-line) before the epoch line.
    shown = re.sub(r'[^\n]*\r\x1b\[K', '', raw)
    assert 'epoch 1/2: ' in shown and '\x1b' not in shown, repr(raw[-2000:])
    _check(shown, 'tty')
