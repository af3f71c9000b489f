"""Augmentation policies by name, run on the accelerator inside the train step, a whole batch at a time."""

from pipelines.augment.config import AugmentConfig
from pipelines.augment.config import cache_size_for
from pipelines.augment.config import POLICIES
from pipelines.augment.layer import Augmenter
from pipelines.augment.policies import augment_batch

__all__ = ['AugmentConfig', 'Augmenter', 'POLICIES', 'augment_batch', 'cache_size_for']
