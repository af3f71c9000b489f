"""Every command README.md and BUILD.md print still runs: each `python -m X` / `python train.py` answers --help.

The modules are read from the documents themselves, so a command that moves without its documentation
(or documentation naming a module that is gone) fails here.
"""

import concurrent.futures
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOCUMENTS = ('README.md', 'BUILD.md', 'docs/GUIDE.md')
_COMMAND = re.compile(r'python3? (?:-m ([A-Za-z_][\w.]*)|(train\.py))')
# Commands documented for other programs' own flags (venv, pytest): their --help is not ours to check.
_NOT_OURS = {'venv', 'pytest', 'pip'}


def documented_modules() -> dict[str, list[str]]:
    """Module (or 'train.py') -> the documents that print a command running it."""
    found = {}
    for name in DOCUMENTS:
        with open(os.path.join(ROOT, name)) as f:
            for module, script in _COMMAND.findall(f.read()):
                target = module or script
                if target not in _NOT_OURS:
                    found.setdefault(target, [])
                    if name not in found[target]:
                        found[target].append(name)
    return found


def test_the_documents_print_the_commands_of_every_tool_folder():
    modules = documented_modules()
    # The extraction itself must work: a regex that matched nothing would pass every check below.
    assert 'train.py' in modules and 'cli.prepare' in modules and 'benchmarks.input_pipeline' in modules
    assert all(m == 'train.py' or not m.startswith(('pipelines.benchmark', 'pipelines.prepare', 'training.'))
               for m in modules)


def test_every_documented_module_exists():
    missing = [f'{module} (in {", ".join(docs)})' for module, docs in documented_modules().items()
               if module != 'train.py' and importlib.util.find_spec(module) is None]
    assert missing == []


def _help(target: str) -> tuple[str, int, str]:
    argv = [sys.executable, target] if target.endswith('.py') else [sys.executable, '-m', target]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    result = subprocess.run([*argv, '--help'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return target, result.returncode, result.stdout + result.stderr


@pytest.mark.slow
def test_every_documented_command_answers_help():
    modules = sorted(documented_modules())
    # Two at a time: each mostly imports TensorFlow, and this machine has two cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_help, modules))
    failures = []
    for target, returncode, output in results:
        # absl's --help exits 1 after printing the flags; argparse's and our own CLIs' exit 0.
        answered = returncode == 0 or (returncode == 1 and 'Try --helpfull' in output)
        if not answered or 'Traceback' in output:
            failures.append(f'{target}: exit {returncode}: {output[-1500:]}')
    assert failures == [], '\n\n'.join(failures)
