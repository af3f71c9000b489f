"""A SIGTERM to one process of a multi-process JAX job (issue 21): every process stops after the same global
step, process 0 saves the backup of that step, each exits as a preempted run does, and the rerun on another
process count resumes there on exactly the uninterrupted run's examples.

The processes are tests/test_multihost_jax.py's probes (train.py's own code path, recording each process's
example ids per step).
"""

import json
import os
import re
import signal
import time

import pytest

from tests.conftest import long_test
from tests.test_multihost_jax import ARGS, TIMEOUT_S, _batches, _close, _finish, _launch, _ok


class _Store:
    """The coordination service's key-value store as `SharedStop` uses it, counting the calls."""

    def __init__(self):
        self.values, self.calls = {}, 0

    def key_value_set(self, key, value, allow_overwrite=False):
        self.calls += 1
        self.values[key] = value

    def key_value_dir_get(self, prefix):
        self.calls += 1
        return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]


def _stops(store, count=2, last_step=12):
    from fastclassify.training import multiprocess
    return [multiprocess.SharedStop(store, multiprocess.Layout('127.0.0.1:1', count, i), last_step)
            for i in range(count)]


def test_a_request_from_process_1_stops_both_after_the_step_process_0_picks_with_one_lookup_a_step():
    store = _Store()
    chief, other = _stops(store)
    for step in (1, 2):
        assert not chief.stops_after(step, False) and not other.stops_after(step, False)
    assert store.calls == 4  # one lookup per process per step end
    assert not chief.stops_after(3, False)
    assert not other.stops_after(3, True)  # its request: process 0 reads it at its next step end
    assert not chief.stops_after(4, False) and (chief.step, chief.by) == (5, 1)
    assert not other.stops_after(4, False) and other.step == 5  # a step end behind process 0 is fine
    calls = store.calls
    assert chief.stops_after(5, False) and other.stops_after(5, False)
    assert store.calls == calls  # the stop known: no more lookups


def test_process_0s_own_sigterm_stops_every_process_after_its_next_step():
    store = _Store()
    chief, other = _stops(store)
    assert not other.stops_after(5, False)
    assert not chief.stops_after(5, True) and (chief.step, chief.by) == (6, 0)
    assert other.stops_after(6, False) and chief.stops_after(6, False)


def test_a_process_that_ran_past_the_stop_step_is_an_error_not_a_hang():
    store = _Store()
    other = _stops(store)[1]
    assert not other.stops_after(6, False)
    store.values['fastclassify-stop/stop'] = '6 0'  # too late for a process that already ended step 6
    with pytest.raises(RuntimeError, match="ended global step 6 before it read the job's stop step 6"):
        other.stops_after(7, False)


def test_a_sigterm_at_the_last_step_lets_the_run_finish():
    store = _Store()
    chief, other = _stops(store, last_step=12)
    assert not other.stops_after(12, True)
    assert not chief.stops_after(12, False) and chief.step == 13  # no step 13: no process stops
    assert not other.stops_after(12, False)


def _positions(record) -> list[int]:
    if not os.path.exists(record):
        return []
    with open(record) as f:
        return [json.loads(line)[0] for line in f if line.endswith('\n')]


@pytest.mark.slow
@long_test(180)
def test_a_sigterm_to_one_process_stops_the_whole_job_after_one_step_and_it_resumes_there(tmp_path):
    steps, epochs = 6, 2
    # No periodic backup: the one backup is the SIGTERM's (an epoch end's would come after it).
    args = ARGS + [f'--steps_per_epoch={steps}', f'--epochs={epochs}', '--checkpoint_every_steps=1000']
    # The job shares the cache (auto, new run): the uninterrupted reference draws its batches alike.
    reference = _launch(tmp_path / 'ref', tmp_path / 'ref.jsonl', args + ['--process_cache=share'],
                        processes=1, devices=4)
    job = _launch(tmp_path / 'run', tmp_path / 'first.jsonl', args, processes=2, devices=2)
    deadline = time.time() + TIMEOUT_S
    try:
        # A recorded batch means fit runs, so the SIGTERM handler is in place; position 3 (the stream
        # prefetches a few batches ahead) means training is under way.
        while max(_positions(f'{tmp_path / "first.jsonl"}.p1'), default=-1) < 3:
            assert all(p.poll() is None for p in job), 'the job ended before the signal'
            assert time.time() < deadline, 'the job never started training'
            time.sleep(0.05)
        job[1].send_signal(signal.SIGTERM)
        signalled_at = time.time()
        results = _finish(job, timeout=120)
        waited = time.time() - signalled_at
    finally:
        _finish(job)

    lines = []
    for rc, stdout, stderr in results:
        # Each ends as a preempted run ends (train.py: exit 143 and the line naming the shared folder).
        assert rc == 143, stdout[-2000:] + stderr[-3000:]
        assert f'preempted: state saved in {tmp_path / "run"}; rerun the same command to resume.' in stdout
        assert 'sent no heartbeat' not in stderr
        lines.append(re.findall(r'SIGTERM on process 1 of 2: every process stops after global step (\d+)',
                                stderr))
    assert waited < 60, waited  # one step, the save, the exit; no peer timeout
    stop = int(lines[0][0])
    assert lines == [[str(stop)], [str(stop)]]  # one line on each process, the same step
    backups = sorted(os.listdir(tmp_path / 'run' / 'backup'))
    assert backups == [f'step-{stop:010d}'] and 1 <= stop < steps * epochs, backups

    # The rerun: one process of four devices starts at the stop step and trains the uninterrupted run's ids.
    resumed = _finish(_launch(tmp_path / 'run', tmp_path / 'second.jsonl', args, processes=1, devices=4))
    _ok(resumed + _finish(reference))
    assert 'resuming from the backup' in resumed[0][1]
    expected = _batches(tmp_path / 'ref.jsonl', 1)
    first, second = _batches(tmp_path / 'first.jsonl', 2), _batches(tmp_path / 'second.jsonl', 1)
    assert all(first[p] == expected[p] for p in range(stop))
    assert min(second) == stop
    assert all(second[p] == expected[p] for p in range(stop, steps * epochs))
    _close(tmp_path / 'run', tmp_path / 'ref')
    assert json.load(open(tmp_path / 'run' / 'results.json'))['optimizer_iterations'] == steps * epochs
