"""The input side's named choices, importable before TensorFlow so the command line checks them at once."""

CACHE_CHOICES = ('auto', 'memory', 'disk', 'device', 'none')
# Canonical order in which the parts of a '+'-joined policy run: geometry first (it decides which
# pixels exist), then photometric RandAugment, then erasing, then batch mixing (it mixes labels too).
POLICIES = ('none', 'seed', 'flip_crop', 'rrc', 'randaugment', 'erasing', 'mixup', 'cutmix')
# Each of these replaces the whole geometry of the image, so at most one may be chosen.
GEOMETRIC_POLICIES = ('seed', 'flip_crop', 'rrc')
DATA_SERVICE_MODES = ('distributed_epoch', 'parallel_epochs')
# `--folder_format`: how a folder's images are stored once prepared (pipelines/folder/images.py).
FOLDER_FORMATS = ('jpeg', 'png')
# `--process_cache`, several JAX processes: each caches only its share of the training split, or all of it.
PROCESS_CACHE_CHOICES = ('auto', 'share', 'whole')
