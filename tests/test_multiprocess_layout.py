"""The multi-process job's layout from Keras' variables, and each process's rows of the global batches."""

import numpy as np
import pytest

from fastclassify.pipelines import pipeline
from fastclassify.pipelines.sharding import ProcessShare
from fastclassify.training import multiprocess


def _env(count, pid, addresses='10.0.0.1:1234'):
    return {'KERAS_DISTRIBUTION_NUM_PROCESSES': str(count), 'KERAS_DISTRIBUTION_PROCESS_ID': str(pid),
            'KERAS_DISTRIBUTION_JOB_ADDRESSES': addresses}


def test_layout_comes_from_keras_variables():
    assert multiprocess.layout_from_env({}) is None
    assert multiprocess.layout_from_env(_env(1, 0)) is None  # one process: a plain run
    assert multiprocess.layout_from_env(_env(2, 1)) == multiprocess.Layout('10.0.0.1:1234', 2, 1)
    # Keras also accepts every process's address; the first is the coordinator.
    assert multiprocess.layout_from_env(_env(2, 0, 'a:1,b:2')).coordinator == 'a:1'


@pytest.mark.parametrize('env, message', [
    (_env(2, 2), r'KERAS_DISTRIBUTION_PROCESS_ID=2 must be in \[0, KERAS_DISTRIBUTION_NUM_PROCESSES=2\)'),
    (_env(2, 0, ''), 'needs KERAS_DISTRIBUTION_JOB_ADDRESSES=HOST:PORT of process 0'),
    (_env(3, 0, 'a:1,b:2'), 'names 2 processes, KERAS_DISTRIBUTION_NUM_PROCESSES=3'),
    (_env('two', 0), 'must both be integers'),
])
def test_a_bad_layout_is_one_line(env, message):
    with pytest.raises(multiprocess.LayoutError, match=message):
        multiprocess.layout_from_env(env)


def test_process_rows_split_the_global_batch_in_order():
    assert ProcessShare(1, 4).rows(16) == slice(4, 8)
    with pytest.raises(ValueError, match=r'--batch_size=10 \(global\) must be a multiple of the 4 processes'):
        ProcessShare(0, 4).rows(10)


def test_the_processes_streams_are_the_global_stream_cut_in_rows():
    # Any process count gives the same global batches at every position, from any start step.
    whole = [b.numpy() for b in pipeline.epoch_index_batches(50, 8, seed=5, start_step=3).take(9)]
    for count in (2, 4):
        parts = [[b.numpy() for b in pipeline.epoch_index_batches(
            50, 8, seed=5, start_step=3, share=ProcessShare(i, count)).take(9)] for i in range(count)]
        for step, batch in enumerate(whole):
            np.testing.assert_array_equal(np.concatenate([p[step] for p in parts]), batch)
