"""Trees of class folders as TFDS datasets: importing this package registers the `class_folders` builder."""

from fastclassify.pipelines.folder.class_folders_dataset_builder import Builder
from fastclassify.pipelines.folder.class_folders_dataset_builder import FolderConfig
from fastclassify.pipelines.folder.class_folders_dataset_builder import config_for

__all__ = ['Builder', 'FolderConfig', 'config_for']
