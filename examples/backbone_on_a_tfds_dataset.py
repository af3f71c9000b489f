"""A keras.applications backbone fine-tuned on any TFDS image dataset, with MixUp + CutMix in the step.

    python examples/backbone_on_a_tfds_dataset.py --dataset=oxford_flowers102 [--weights=imagenet]
"""
import argparse

import fastclassify
import keras

parser = argparse.ArgumentParser()
parser.add_argument('--dataset', default='oxford_flowers102')
parser.add_argument('--image_size', type=int, default=224)
parser.add_argument('--epochs', type=int, default=5)
parser.add_argument('--batch_size', type=int, default=64)
parser.add_argument('--weights', default='imagenet', help="'imagenet' or 'none'")
parser.add_argument('--data_dir', default=None)
args = parser.parse_args()

size = args.image_size
# Cached at 8/7 of the model's side so random-resized crops have real pixels to choose from.
data = fastclassify.load(args.dataset, image_size=size, cache_size=round(size / 0.875),
                         batch_size=args.batch_size, data_dir=args.data_dir)
print(data)
backbone = keras.applications.MobileNetV3Small(
    input_shape=(size, size, 3), include_top=False, pooling='avg', include_preprocessing=True,
    weights=None if args.weights == 'none' else args.weights)
inputs = keras.Input((data.cache_size, data.cache_size, 3))
x = fastclassify.Augment('rrc', image_size=size)(inputs)  # random crops in training, the centre otherwise
x = backbone(x)
outputs = keras.layers.Dense(data.num_classes, activation='softmax', dtype='float32')(keras.layers.Dropout(0.2)(x))
model = keras.Model(inputs, outputs)

trainer = fastclassify.AugmentedModel(model, augment='mixup+cutmix', data=data)
trainer.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05), metrics=['accuracy'])
trainer.fit(data, epochs=args.epochs, verbose=2)
loss, accuracy = trainer.evaluate(data, verbose=0)  # the test split, at the centre view
print(f'test accuracy {accuracy:.3f} on {data.num_test} images')
