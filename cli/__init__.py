"""Command-line tools besides train.py: `python -m cli.prepare`, `python -m cli.tfds_build`, `python -m cli.data_service`."""
