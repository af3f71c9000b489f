"""`python -m benchmarks.data_service`: input images/s with 0, 1 and 2 local tf.data service workers.

A dispatcher and the workers run in this process on loopback, so on one machine this is a function check
and a per-worker cost (gRPC transfer of uint8 batches), not a scaling figure: the workers share its cores.
"""

import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def run(examples: int, image_size: int, batch_size: int, workers=(0, 1, 2)) -> list[dict]:
    """Rows `data_service_<mode>_<k>_workers` in the pipeline benchmark's schema."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from benchmarks.timing import time_batches  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.service_servers import start_dispatcher, start_worker  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines import data_service, synthetic  # pylint: disable=import-outside-toplevel

    blobs, labels = synthetic.encoded_examples(examples, 257, size_range=(200, 500))
    records = synthetic.records_dataset(blobs, labels)
    rows = []
    for mode in data_service.MODES:
        for k in workers:
            pipeline = data_service.worker_pipeline(records, mode=mode, batch_size=batch_size,
                                                    image_size=image_size, num_examples=examples)
            servers = []
            if k == 0:
                dataset = pipeline
                if mode == 'distributed_epoch':
                    dataset = dataset.repeat().rebatch(batch_size, drop_remainder=True)
            else:
                dispatcher = start_dispatcher(0)
                port = dispatcher.target.rsplit(':', 1)[1]
                servers = [dispatcher] + [start_worker(f'localhost:{port}', 0) for _ in range(k)]
                cfg = data_service.ServiceConfig(f'grpc://localhost:{port}', mode=mode, job_name=f'bench-{mode}-{k}',
                                                 batch_size=batch_size, image_size=image_size)
                dataset = data_service.distribute(pipeline, cfg)
            # The warm-up batch carries the job registration and the first decode.
            result = time_batches(dataset, name=f'data_service_{mode}_{k}_workers', min_images=2 * examples)
            rows.append(result)
            print(f'{mode:18s} workers={k}: {result["images_per_sec"]:10,.0f} images/s ({result["images"]} images, '
                  f'{result["seconds"]:.2f} s)', flush=True)
            for server in reversed(servers):
                server.stop()
    del tf
    return rows


def main(argv):
    del argv
    rows = run(FLAGS.examples, FLAGS.image_size, FLAGS.batch_size)
    if FLAGS.json:
        with open(FLAGS.json, 'w') as f:
            json.dump({'image_size': FLAGS.image_size, 'batch_size': FLAGS.batch_size,
                       'cpu_count': os.cpu_count(), 'results': rows}, f, indent=2)
    return 0


if __name__ == '__main__':
    flags.DEFINE_integer('examples', 768, 'Generated JPEGs (200-500 px) per epoch.')
    flags.DEFINE_integer('image_size', 224, 'Decoded side in pixels.')
    flags.DEFINE_integer('batch_size', 64, 'Batch size.')
    flags.DEFINE_string('json', None, 'Write the rows as JSON to this path.')
    sys.exit(app.run(main))
