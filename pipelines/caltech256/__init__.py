"""Caltech-256 as a TFDS dataset: importing this package registers the `caltech256` builder."""

from fastclassify.pipelines.caltech256.caltech256_dataset_builder import Builder
from fastclassify.pipelines.caltech256.caltech256_dataset_builder import Caltech256Config

__all__ = ['Builder', 'Caltech256Config']
