"""The pipeline alone, feeding a hand-written training loop (TensorFlow backend: tf.GradientTape).

    python examples/custom_training_loop.py --dataset=cifar100 [--epochs=2]
"""
import argparse

import fastclassify
import keras
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument('--dataset', default='cifar100')
parser.add_argument('--epochs', type=int, default=2)
parser.add_argument('--batch_size', type=int, default=128)
parser.add_argument('--data_dir', default=None)
args = parser.parse_args()

data = fastclassify.load(args.dataset, image_size=32, batch_size=args.batch_size, data_dir=args.data_dir)
model = fastclassify.build_model('cifar_resnet9', num_classes=data.num_classes, image_size=32)
augment = fastclassify.Augment('flip_crop')
optimizer = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
loss_fn = keras.losses.SparseCategoricalCrossentropy()


@tf.function(jit_compile=True)
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(augment(images, training=True), training=True))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss


for epoch in range(args.epochs):
    for images, labels in data.train:  # one epoch, freshly shuffled each time
        loss = train_step(images, labels)
    correct = sum(int(tf.reduce_sum(tf.cast(tf.argmax(model(x), -1, output_type=tf.int32) == y, tf.int32)))
                  for x, y in data.test)
    print(f'epoch {epoch + 1}: loss {float(loss):.3f}, test accuracy {correct / data.num_test:.3f}')
