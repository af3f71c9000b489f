"""Split assignment: stratified quotas, content-only membership, duplicates kept together."""

import hashlib
import random

import pytest

from fastclassify.pipelines.folder.splits import Candidate
from fastclassify.pipelines.folder.splits import assign_splits


def _candidates(per_class: dict[int, int]) -> list[Candidate]:
    # Hex digests derived from the path: distinct, and unrelated to the listing order.
    return [Candidate(f'{label:03d}/{i:04d}.jpg', label, hashlib.sha256(f'{label}-{i}'.encode()).hexdigest())
            for label, count in per_class.items() for i in range(count)]


def _counts(assignment, candidates):
    counts = {}
    for c in candidates:
        key = (c.label, assignment.split_of[c.path])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_percent_quota_is_per_class_and_rounds_half_up():
    candidates = _candidates({0: 80, 1: 81, 2: 5, 3: 1})
    counts = _counts(assign_splits(candidates, train_percent=80), candidates)
    assert counts == {(0, 'train'): 64, (0, 'test'): 16, (1, 'train'): 65, (1, 'test'): 16,
                      (2, 'train'): 4, (2, 'test'): 1, (3, 'train'): 1}


def test_fixed_train_count_per_class():
    candidates = _candidates({0: 80, 1: 117})
    counts = _counts(assign_splits(candidates, train_per_class=60), candidates)
    assert counts == {(0, 'train'): 60, (0, 'test'): 20, (1, 'train'): 60, (1, 'test'): 57}


def test_membership_does_not_depend_on_listing_order():
    candidates = _candidates({0: 50, 1: 30, 2: 90})
    expected = assign_splits(candidates, train_percent=80)
    for seed in range(3):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_splits(shuffled, train_percent=80) == expected


def test_membership_follows_content_not_names():
    # Renaming every file keeps each digest's split: the split is a function of the bytes.
    candidates = _candidates({0: 40})
    renamed = [Candidate('x' + c.path, c.label, c.sha256) for c in candidates]
    first = assign_splits(candidates, train_percent=80).split_of
    second = assign_splits(renamed, train_percent=80).split_of
    assert {c.sha256: first[c.path] for c in candidates} == {c.sha256: second['x' + c.path] for c in candidates}


def test_byte_identical_files_share_a_split_within_and_across_classes():
    candidates = _candidates({0: 20, 1: 20})
    twin = candidates[3].sha256
    candidates += [Candidate('000/dup_a.jpg', 0, twin), Candidate('001/dup_b.jpg', 1, twin)]
    for percent in (0, 30, 80, 100):
        assignment = assign_splits(candidates, train_percent=percent)
        group = sorted([candidates[3].path, '000/dup_a.jpg', '001/dup_b.jpg'])
        assert group in assignment.duplicates
        assert len({assignment.split_of[p] for p in group}) == 1


def test_a_duplicate_unit_never_overshoots_the_quota():
    candidates = _candidates({0: 9})
    candidates.append(Candidate('000/copy.jpg', 0, candidates[0].sha256))  # 10 files, one unit of 2
    counts = _counts(assign_splits(candidates, train_percent=50), candidates)
    assert counts == {(0, 'train'): 5, (0, 'test'): 5}


@pytest.mark.parametrize('kwargs', [{}, {'train_percent': 80, 'train_per_class': 60},
                                    {'train_percent': 101}, {'train_per_class': -1}])
def test_invalid_quota_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        assign_splits(_candidates({0: 3}), **kwargs)
