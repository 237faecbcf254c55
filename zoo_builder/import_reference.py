"""Imports a zoo in the paper's released `.npy` layout into this codebase's zoo format.

  python -m zoo_builder.import_reference --src=/data/formal_languages --dst=/tmp/zoo_fl_reference

See `zoo_builder.reference_format` for the layout and its quirks.
"""

from absl import app, flags, logging

from weightspace import cli
from zoo_builder import reference_format

_SRC = flags.DEFINE_string("src", None, "Directory in the reference layout (parameters.npy, ...).", required=True)
_DST = flags.DEFINE_string("dst", None, "Path of the new zoo (must not exist).", required=True)


def main(argv):
    del argv
    cli.quiet_library_logs()
    path = reference_format.import_reference(_SRC.value, _DST.value)
    logging.info("Imported %s into the zoo %s", _SRC.value, path)


if __name__ == "__main__":
    app.run(main)
