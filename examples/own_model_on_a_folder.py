"""Your own Keras model on a folder of class folders, augmented on the accelerator from a device cache.

    python examples/own_model_on_a_folder.py PATH_TO_FOLDER_TAR_OR_ZIP [--epochs=10] [--image_size=64]
"""
import argparse

import fastclassify
import keras

parser = argparse.ArgumentParser()
parser.add_argument('folder')
parser.add_argument('--epochs', type=int, default=10)
parser.add_argument('--image_size', type=int, default=64)
parser.add_argument('--data_dir', default=None)
args = parser.parse_args()

# Decoded once into a uint8 cache that lives on the accelerator; batches are gathered there by index.
data = fastclassify.load(args.folder, image_size=args.image_size, batch_size=32, cache='device',
                         data_dir=args.data_dir)
print(data)
model = keras.Sequential([
    keras.Input((args.image_size, args.image_size, 3)),
    fastclassify.Augment('flip_crop'),  # images only: a layer like any other, off at inference
    keras.layers.Rescaling(1 / 255),
    keras.layers.Conv2D(32, 3, activation='relu'), keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(64, 3, activation='relu'), keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(data.num_classes, activation='softmax'),
])
# MixUp needs the labels: the wrapper gathers from the device cache and mixes inside the compiled step.
trainer = fastclassify.AugmentedModel(model, augment='mixup', data=data)
trainer.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=['accuracy'])
trainer.fit(data, epochs=args.epochs, verbose=2)

model.compile(loss='sparse_categorical_crossentropy', metrics=['accuracy'])  # your model, as usual
loss, accuracy = model.evaluate(data.test, verbose=0)
print(f'test accuracy {accuracy:.3f} on {data.num_test} images (fastclassify from {fastclassify.__file__})')
