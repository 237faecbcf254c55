"""Exports a formal-language or sequential-MNIST zoo in the paper's released `.npy` layout.

  python -m zoo_builder.export_reference --src=/tmp/zoo_fl/zoo --dst=/tmp/zoo_fl_reference
  python -m zoo_builder.export_reference --src=/tmp/zoo_mnist/zoo --dst=/tmp/zoo_mnist_reference

The layout follows from the zoo's family. See `zoo_builder.reference_format`
for the layouts and their quirks.
"""

from absl import flags, logging

from weightspace import cli
from zoo_builder import reference_format


def main(argv):
    del argv
    cli.quiet_library_logs()
    path = reference_format.export_reference(flags.FLAGS.src, flags.FLAGS.dst)
    logging.info("Exported the zoo %s to %s", flags.FLAGS.src, path)


if __name__ == "__main__":
    flags.DEFINE_string("src", None, "Path of the zoo to export.", required=True)
    flags.DEFINE_string("dst", None, "Directory to write (must not exist).", required=True)
    cli.run_command(
        main, lambda flags_: cli.path_problems("src", flags_.src, "zoo") + cli.path_problems("dst", flags_.dst, "new")
    )
