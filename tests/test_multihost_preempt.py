"""The shared SIGTERM stop of a multi-process JAX job (issue 21), `SharedStop` against a stand-in store: who
asks, who decides, when each process stops. The real job (2 processes, SIGTERM to one, then a resume) is
tests/test_multihost_jax.py's fault test.
"""

import pytest


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
