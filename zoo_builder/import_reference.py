"""Imports a zoo in one of the paper's released `.npy` layouts into this codebase's zoo format.

  python -m zoo_builder.import_reference --src=/data/formal_languages --dst=/tmp/zoo_fl_reference
  python -m zoo_builder.import_reference --src=/data/sequential_mnist --dst=/tmp/zoo_mnist_reference

The family (formal languages or sequential MNIST) follows from the files in
`--src`. See `zoo_builder.reference_format` for the layouts and their quirks.
"""

from absl import flags, logging

from weightspace import cli, zoo
from zoo_builder import reference_format


def main(argv):
    del argv
    cli.quiet_library_logs()
    path = reference_format.import_reference(flags.FLAGS.src, flags.FLAGS.dst)
    logging.info("Imported %s into the %s zoo %s", flags.FLAGS.src, zoo.read_metadata(path)["family"], path)


if __name__ == "__main__":
    flags.DEFINE_string("src", None, "Directory in a reference layout (parameters.npy, ...).", required=True)
    flags.DEFINE_string("dst", None, "Path of the new zoo (must not exist).", required=True)
    cli.run_command(
        main,
        lambda flags_: cli.path_problems("src", flags_.src, "directory") + cli.path_problems("dst", flags_.dst, "new"),
    )
