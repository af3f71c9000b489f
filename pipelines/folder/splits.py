"""Deterministic, stratified train/test assignment from file contents alone."""

import collections
import dataclasses
from typing import Iterable


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A decodable image: its path below the archive root, its label index and the sha256 of its bytes."""

    path: str
    label: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Split per path, and the groups of byte-identical files (each group sorted, all in one split)."""

    split_of: dict[str, str]
    duplicates: list[list[str]]


def assign_splits(
        candidates: Iterable[Candidate], *, train_percent: int | None = None,
        train_per_class: int | None = None) -> Assignment:
    """Assigns each candidate to 'train' or 'test', per class.

    Within a class, files are ranked by the sha256 of their bytes and fill the train quota in that order,
    so membership depends on content only: not on archive order, the file system or any RNG. Files with
    identical bytes form one unit that lands in a single split; a unit shared by several classes takes the
    split chosen in the lowest label and counts towards every class's quota.

    Args:
        candidates: every decodable image.
        train_percent: train share per class, in percent (rounded half up).
        train_per_class: fixed train count per class (the rest is test).

    Returns:
        The assignment.

    Raises:
        ValueError: not exactly one of `train_percent` / `train_per_class`, or out of range.
    """
    if (train_percent is None) == (train_per_class is None):
        raise ValueError('give exactly one of train_percent or train_per_class')
    if train_percent is not None and not 0 <= train_percent <= 100:
        raise ValueError(f'train_percent={train_percent} must be in 0..100')
    if train_per_class is not None and train_per_class < 0:
        raise ValueError(f'train_per_class={train_per_class} must be >= 0')

    by_class: dict[int, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    classes_of_hash: dict[str, set[int]] = collections.defaultdict(set)
    for c in candidates:
        by_class[c.label][c.sha256].append(c.path)
        classes_of_hash[c.sha256].add(c.label)

    split_of_hash: dict[str, str] = {}
    split_of: dict[str, str] = {}
    for label in sorted(by_class):
        groups = by_class[label]
        size = sum(len(paths) for paths in groups.values())
        quota = train_per_class if train_per_class is not None else (size * train_percent + 50) // 100
        # Units already placed by a lower label count first, so the free ones only fill what is left.
        taken = sum(len(groups[h]) for h in groups if split_of_hash.get(h) == 'train')
        for sha256 in sorted(groups):
            if sha256 not in split_of_hash:
                # A unit that would overshoot the quota goes to test; later single files fill the gap.
                fits = taken + len(groups[sha256]) <= quota
                split_of_hash[sha256] = 'train' if fits else 'test'
                taken += len(groups[sha256]) if fits else 0
            for path in groups[sha256]:
                split_of[path] = split_of_hash[sha256]

    duplicates = sorted(
            sorted(p for label in sorted(labels) for p in by_class[label][h])
            for h, labels in classes_of_hash.items()
            if sum(len(by_class[label][h]) for label in labels) > 1)
    return Assignment(split_of=split_of, duplicates=duplicates)
