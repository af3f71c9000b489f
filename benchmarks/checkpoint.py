"""`python -m benchmarks.checkpoint --model=cifar_resnet9 --image_size=32`: the cost of a backup.

Times `BackupCallback.save()` (the whole training state: weights, optimizer slots, augmentation RNG)
against one train step, and prints the overhead at a few `--checkpoint_every_steps` values.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def measure(model: str, image_size: int, batch_size: int, saves: int, steps: int) -> dict:
    """Returns the backup size (bytes), median save seconds and mean train-step seconds."""
    import keras
    import numpy as np
    import tensorflow as tf

    from fastclassify.models.builder import build_model
    from fastclassify.models.config import ModelConfig
    from fastclassify.pipelines.augment import AugmentConfig, Augmenter
    from fastclassify.training import backup
    from fastclassify.training.trainer import Trainer

    classifier = build_model(ModelConfig(model, 100, image_size))
    trainer = Trainer(classifier, Augmenter(AugmentConfig('none', image_size=image_size, num_classes=100)), 100)
    trainer.compile(keras.optimizers.AdamW(1e-3), keras.losses.CategoricalCrossentropy())
    trainer.optimizer.build(trainer.trainable_variables)
    trainer.build()
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8),
             rng.integers(0, 100, batch_size).astype(np.int32))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    trainer.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing excluded from the step time
    start = time.perf_counter()
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    step_seconds = (time.perf_counter() - start) / steps
    with tempfile.TemporaryDirectory() as tmp:
        callback = backup.BackupCallback(tmp, every_steps=1, initial_global_step=0)
        callback.set_model(trainer)
        times = []
        for i in range(saves):
            callback.global_step = i + 1
            start = time.perf_counter()
            callback.save()
            times.append(time.perf_counter() - start)
        latest = os.path.join(tmp, sorted(os.listdir(tmp))[-1])
        size = sum(os.path.getsize(os.path.join(latest, f)) for f in os.listdir(latest))
    return {'backup_bytes': size, 'save_seconds': float(np.median(times)), 'step_seconds': step_seconds}


def main(argv):
    del argv
    r = measure(FLAGS.model, FLAGS.image_size, FLAGS.batch_size, FLAGS.saves, FLAGS.steps)
    print(f'{FLAGS.model} at {FLAGS.image_size} px, batch {FLAGS.batch_size}: backup '
          f'{r["backup_bytes"] / 1e6:.1f} MB, one save {1000 * r["save_seconds"]:.0f} ms, one train step '
          f'{1000 * r["step_seconds"]:.0f} ms')
    for every in (10, 100, 1000):
        print(f'  --checkpoint_every_steps={every}: overhead '
              f'{100 * r["save_seconds"] / (every * r["step_seconds"]):.2f}% of training time')
    return 0


if __name__ == '__main__':
    flags.DEFINE_string('model', 'cifar_resnet9', 'Registry name.')
    flags.DEFINE_integer('image_size', 32, 'Input side in pixels.')
    flags.DEFINE_integer('batch_size', 32, 'Batch of the timed train steps.')
    flags.DEFINE_integer('saves', 5, 'Backups timed (median reported).')
    flags.DEFINE_integer('steps', 10, 'Train steps timed.')
    sys.exit(app.run(main))
