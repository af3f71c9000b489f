"""Picks the tf.distribute strategy: TensorFlow's own engines, no distributed layer of ours."""

import json
import os

import tensorflow as tf
from absl import logging


def build_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy`.

    `auto`: a TPU when one is found, MirroredStrategy when more than one GPU is visible,
    MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else one device.
    """
    if name == 'auto':
        name = _auto_name()
    if name == 'tpu':
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == 'multi_worker':
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    gpus = tf.config.list_logical_devices('GPU')
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')


def _auto_name() -> str:
    if os.environ.get('TPU_NAME') or os.environ.get('COLAB_TPU_ADDR'):
        return 'tpu'
    cluster = json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster', {})
    if sum(len(v) for k, v in cluster.items() if k in ('chief', 'worker')) > 1:
        return 'multi_worker'
    if len(tf.config.list_logical_devices('GPU')) > 1:
        return 'mirrored'
    return 'one_device'


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes plots, results and the exported model."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == 'chief':
        return True
    has_chief = 'chief' in resolver.cluster_spec().as_dict()
    chief = task_type in (None, 'worker') and task_id == 0 and not has_chief
    logging.debug('task %s/%s chief=%s', task_type, task_id, chief)
    return chief
