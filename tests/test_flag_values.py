"""Flag values that used to pass silently or end in a traceback (issue 23): each is one line naming the
flag the user typed, exit 2, before anything is built."""

import os

import pytest

from tests.conftest import SMALL, run_train


@pytest.mark.parametrize('flag, said', [
    ('--seed=-1', '--seed=-1 is not valid; it must be an integer in 0..4294967295'),
    ('--seed=4294967296', '--seed=4294967296 is not valid'),
    ('--epochs=-1', '--epochs=-1 is not valid'),
    ('--epochs=0', '--epochs=0 is not valid'),
    ('--model_dir=', "--model_dir='' is not valid; name the folder this run writes to"),
    ('--config=nope', "--config='nope' is not a config of cifar100; cifar100 has no builder configs"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch, flag, said):
    monkeypatch.chdir(tmp_path)  # a silently used default would write runs/ here
    args = [*SMALL, f'--model_dir={tmp_path / "run"}', flag]
    with pytest.raises(SystemExit) as e:
        run_train(*args)
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('train.py: error:')]
    assert len(err) == 1 and said in err[0], err
    assert '--warmup_epochs' not in err[0]
    assert not os.path.exists(tmp_path / 'runs') and not os.path.exists(tmp_path / 'run')


def test_the_largest_seed_is_accepted():
    from fastclassify.training.config import RunConfig
    assert RunConfig(model_dir='r', seed=2**32 - 1).seed == 2**32 - 1
