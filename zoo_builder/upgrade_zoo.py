"""Moves a zoo's arrays from one Orbax checkpoint (zoos built before `npy/`) to one `.npy` file per array.

  python -m zoo_builder.upgrade_zoo --zoo=/tmp/zoo_fl_quick/zoo

In place, and the zoo stays complete throughout (`weightspace.zoo.upgrade`); its metadata is unchanged,
so runs that recorded it still resume on it. Only such a zoo can be trained on from disk
(`--config.train.zoo_on_disk=true`). Nothing may read the zoo meanwhile.
"""

from absl import flags, logging

from weightspace import cli, zoo


def main(argv):
    del argv
    if zoo.upgrade(flags.FLAGS.zoo):
        logging.info("Upgraded %s: its arrays are now .npy files in npy/.", flags.FLAGS.zoo)
    else:
        logging.info("%s already stores its arrays as .npy files; nothing to do.", flags.FLAGS.zoo)


if __name__ == "__main__":
    flags.DEFINE_string("zoo", None, "The zoo directory (the one holding metadata.json).", required=True)
    cli.run_command(main, lambda flag_values: cli.path_problems("zoo", flag_values.zoo, "zoo"))
