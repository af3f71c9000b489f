"""Augmentation policies by name, run on the accelerator inside the train step, a whole batch at a time."""

from fastclassify.pipelines.augment.config import AugmentConfig
from fastclassify.pipelines.augment.config import cache_size_for
from fastclassify.pipelines.augment.config import POLICIES
from fastclassify.pipelines.augment.layer import Augmenter
from fastclassify.pipelines.augment.policies import augment_batch

__all__ = ['AugmentConfig', 'Augmenter', 'POLICIES', 'augment_batch', 'cache_size_for']
