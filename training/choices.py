"""The training side's named choices, importable before TensorFlow so the command line checks them at once."""

TF_STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker', 'tpu')
JAX_STRATEGIES = ('auto', 'one_device', 'data_parallel')
STRATEGIES = tuple(dict.fromkeys(TF_STRATEGIES + JAX_STRATEGIES))
OPTIMIZERS = ('nadam', 'rmsprop', 'adamw', 'sgd')
SCHEDULES = ('cosine', 'constant')
