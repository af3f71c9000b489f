"""The multi-process job's layout from Keras' variables, and each process's rows of the global batches."""

import os

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


def _share_stream(count, index, num_examples=103, batch=8, start_step=0, steps=30):
    """Process `index` of `count`'s batches in row-block order, as example ids (its share's offset added)."""
    share = ProcessShare(index, count, cache_share=True)
    first = share.train_examples(num_examples, batch).start
    return np.stack([b.numpy() + first for b in pipeline.epoch_index_batches(
        num_examples, batch, seed=5, start_step=start_step, share=share).take(steps)])


def test_row_block_order_is_the_same_for_any_process_count_and_each_reads_only_its_share():
    whole = _share_stream(1, 0)
    for count in (2, 8):
        for start in (0, 13):  # the start, and mid-epoch in the second (12 steps of 8 out of 103)
            parts = [_share_stream(count, i, start_step=start, steps=10) for i in range(count)]
            np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole[start:start + 10])
            for i, part in enumerate(parts):
                mine = ProcessShare(i, count, cache_share=True).train_examples(103, 8)
                assert all(j in mine for j in part.ravel()), (count, i)
    # The shares tile the split, contiguous, in process order.
    shares = [ProcessShare(i, 4, cache_share=True).train_examples(103, 8) for i in range(4)]
    assert [(r.start, r.stop) for r in shares] == [(0, 25), (25, 51), (51, 77), (77, 103)]


def test_row_block_epochs_draw_each_row_from_its_block_at_most_once_and_reshuffle():
    batches = _share_stream(1, 0, steps=24)  # two epochs of 103 // 8 = 12 steps
    epochs = batches[:12], batches[12:]
    for epoch in epochs:
        assert len(set(epoch.ravel())) == epoch.size  # no example twice in an epoch
        for row in range(8):
            block = range(row * 103 // 8, (row + 1) * 103 // 8)
            assert all(j in block for j in epoch[:, row])
    assert not np.array_equal(*epochs)
    # A block one longer than 12 leaves out one example, a different one in some epoch.
    seen = [set(e[:, 7]) for e in (_share_stream(1, 0, steps=12 * 6)[12 * k:12 * (k + 1)] for k in range(6))]
    assert len(set.union(*seen)) > 12


def test_evaluation_parts_count_every_example_once_in_equal_numbers_of_batches():
    from fastclassify.pipelines import cache as cache_lib
    num_examples, batch = 21, 8
    labels, batches = [], []
    for i in range(4):
        share = ProcessShare(i, 4)
        part = share.eval_examples(num_examples)
        host = cache_lib.host_cache_from_arrays(np.zeros((len(part), 2, 2, 3), np.uint8),
                                                np.arange(part.start, part.stop, dtype=np.int32))
        got = list(pipeline.eval_share_batches(host, batch, share, num_examples))
        batches.append(len(got))
        for images, batch_labels, weights in got:
            assert images.shape == (2, 2, 2, 3)  # batch / processes rows, always
            labels += [int(x) for x, w in zip(batch_labels.numpy(), weights.numpy()) if w > 0]
    assert sorted(labels) == list(range(num_examples))
    assert len(set(batches)) == 1
    # A split smaller than the processes: the process with no part feeds weight-0 rows only.
    share = ProcessShare(2, 4)
    empty = cache_lib.host_cache_from_arrays(np.zeros((0, 2, 2, 3), np.uint8), np.zeros((0,), np.int32))
    (only,) = list(pipeline.eval_share_batches(empty, 8, share, 2))
    assert only[2].numpy().sum() == 0 and share.eval_batches(2, 8) == 1


def test_process_cache_auto_shares_a_new_job_and_a_resume_keeps_the_order_it_started_with(tmp_path):
    import dataclasses
    import json
    from absl import flags
    from absl.testing import flagsaver

    import train
    from fastclassify.training import loop
    from fastclassify.training.run_dir import RunDir, config_differences

    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(['train.py', '--dataset=cifar100', '--synthetic_data', f'--model_dir={tmp_path / "run"}'])
        cfg = train.config_from_flags()
    run_dir = RunDir(str(tmp_path / 'run'))
    resolved = lambda cfg, share: loop._process_cache(cfg, share, run_dir)  # noqa: E731
    assert cfg.pipeline.process_cache == 'auto'
    new, share, why = resolved(cfg, ProcessShare(1, 2))
    assert (new.pipeline.process_cache, share.cache_share) == ('share', True) and 'new run on 2' in why
    assert resolved(cfg, ProcessShare())[0].pipeline.process_cache == 'whole'
    # A run recorded as share resumes as share on one process; one recorded before the field, as whole.
    os.makedirs(run_dir.path)
    with open(run_dir.config, 'w') as f:
        json.dump(new.to_dict(), f)
    again, share, why = resolved(cfg, ProcessShare())
    assert share.cache_share and 'keeps its batch order' in why
    old = new.to_dict()
    del old['pipeline']['process_cache']
    with open(run_dir.config, 'w') as f:
        json.dump(old, f)
    assert resolved(cfg, ProcessShare(0, 2))[0].pipeline.process_cache == 'whole'
    whole = dataclasses.replace(new, pipeline=dataclasses.replace(new.pipeline, process_cache='whole'))
    assert config_differences(old, whole.to_dict()) == []  # the old run resumes
    assert config_differences(old, new.to_dict()) == ["pipeline.process_cache: 'whole' -> 'share'"]
