"""`python -m cli.tfds_build pipelines/caltech256 [tfds build flags]`: TFDS's own `build` command.

The `tfds` CLI of tensorflow-datasets 4.9.10 imports apache-beam at start-up (for its
`convert_format` command) and fails without it, before looking at the folder. This runs the same
`build` command (same flags, same code) without the commands that need Beam.
"""

from absl import app
from tensorflow_datasets.scripts.cli import build, cli_utils

import tensorflow_datasets as tfds


def main(args: build.Args) -> None:
    tfds.core.visibility.set_availables([tfds.core.visibility.DatasetType.TFDS_PUBLIC,
                                         tfds.core.visibility.DatasetType.COMMUNITY_PUBLIC])
    args.execute()


if __name__ == '__main__':
    app.run(main, flags_parser=cli_utils.make_flags_parser(build.Args, description=__doc__))
