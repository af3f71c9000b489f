"""The folder layout keeps the data flow one-way: the library packages never reach into the run or the tools."""

import ast
import os

from tests.conftest import ROOT

# Package -> packages it must not import: pipelines/ feeds training/, and neither depends on the tools.
FORBIDDEN = {'pipelines': ('training', 'benchmarks', 'cli'), 'models': ('training', 'benchmarks', 'cli'),
             'training': ('benchmarks', 'cli')}


def _top(module: str) -> str:
    # fastclassify.pipelines.x -> pipelines: the installed namespace over the repository's folders.
    parts = module.split('.')
    return parts[1] if parts[0] == 'fastclassify' and len(parts) > 1 else parts[0]


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {_top(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(_top(node.module))
    return names


def test_library_packages_import_nothing_downstream():
    found = []
    for package, forbidden in FORBIDDEN.items():
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith('.py'):
                    path = os.path.join(folder, name)
                    found += [f'{os.path.relpath(path, ROOT)} imports {bad}'
                              for bad in sorted(_imports(path) & set(forbidden))]
    assert found == []


def test_the_scan_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    # Both are how data_service.py once reached TrainConfig; the scan must see them.
    path = tmp_path / 'm.py'
    path.write_text('import typing\nif typing.TYPE_CHECKING:\n    import benchmarks.timing\n'
                    'def f():\n    from training.config import TrainConfig\n')
    assert _imports(str(path)) == {'typing', 'benchmarks', 'training'}


def _command_files():
    """Each command's files: train.py, cli/, benchmarks/, examples/ (the checkout's commands)."""
    yield 'train.py', os.path.join(ROOT, 'train.py')
    for command in ('cli', 'benchmarks', 'examples'):
        for folder, _, files in os.walk(os.path.join(ROOT, command)):
            for name in files:
                if name.endswith('.py'):
                    yield command, os.path.join(folder, name)


def test_commands_call_the_library_never_each_other_and_nothing_imports_tests():
    others = {'train.py': {'train', 'cli', 'benchmarks', 'examples'}, 'cli': {'train', 'benchmarks', 'examples'},
              'benchmarks': {'train', 'cli', 'examples'}, 'examples': {'train', 'cli', 'benchmarks'}}
    # The one exception: the ceilings CLI parses train.py's own flags (the GPU lease runs it with them) and
    # imports train.py for their definitions only; what it measures is the library's (training/throughput.py).
    allowed = {('benchmarks/throughput.py', 'train')}
    found = []
    for command, path in _command_files():
        found += [f'{os.path.relpath(path, ROOT)} imports {bad}'
                  for bad in sorted(_imports(path) & (others[command] | {'tests'}))
                  if (os.path.relpath(path, ROOT), bad) not in allowed]
    for package in ('pipelines', 'models', 'training', 'fastclassify'):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            found += [f'{os.path.relpath(os.path.join(folder, n), ROOT)} imports tests' for n in files
                      if n.endswith('.py') and 'tests' in _imports(os.path.join(folder, n))]
    assert found == []
