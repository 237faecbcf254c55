"""Renders stored input sequences of a sequential-MNIST zoo back into images (PNG).

  python -m zoo_builder.render_mnist --zoo=/tmp/zoo_mnist_quick/zoo --out=/tmp/mnist_inputs.png

One row per snapshot (angle, step), one column per stored sequence, titled
with the LSTM's prediction at the last step; a quick check by eye that the
rotation and tiling are right.
"""

import numpy as np
from absl import flags

from weightspace import cli, schema, zoo
from weightspace.tasks import sequential_mnist


def render(path: str, out: str, snapshots: list[int], columns: int) -> None:
    """Draws the stored input sequences of `snapshots` (rows) of the sequential-MNIST zoo at `path`, at most
    `columns` per snapshot, each titled with the LSTM's last-step prediction, and saves the figure to `out`."""
    import matplotlib  # heavy: slow to import, and only render() draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy too; and must follow the Agg backend's choice (no display)

    loaded = zoo.load(path)
    if loaded.family != sequential_mnist.SequentialMnist.name:
        raise ValueError(f"{path} is a {loaded.family!r} zoo, not a sequential-MNIST zoo.")
    columns = min(columns, loaded.sequences.shape[1])
    figure, axes = plt.subplots(len(snapshots), columns, figsize=(1.3 * columns, 1.5 * len(snapshots)), squeeze=False)
    for row, index in enumerate(snapshots):
        for column in range(columns):
            image = sequential_mnist.sequence_to_image(loaded.sequences[index, column])
            prediction = int(np.argmax(loaded.behaviour["logits"][index, column, -1]))
            axis = axes[row, column]
            axis.imshow(image, cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"pred {prediction}", fontsize=7)
        axes[row, 0].set_ylabel(
            f"{loaded.metadata['angle'][index]:.0f}°, step {loaded.metadata['step'][index]}", fontsize=7
        )
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def check_flags(flag_values) -> list[str]:
    """The snapshot indices and the column count."""
    problems = cli.list_problems("snapshots", flag_values.snapshots, schema.Int(0), nonempty=True)
    problems += cli.path_problems("zoo", flag_values.zoo, "zoo")
    return problems + ([] if flag_values.columns >= 1 else [f"--columns={flag_values.columns} must be >= 1"])


def main(argv):
    del argv
    render(flags.FLAGS.zoo, flags.FLAGS.out, [int(s) for s in flags.FLAGS.snapshots], flags.FLAGS.columns)
    print(f"Wrote {flags.FLAGS.out}")


if __name__ == "__main__":
    flags.DEFINE_string("zoo", None, "Path of a sequential-MNIST zoo.", required=True)
    flags.DEFINE_string("out", "mnist_inputs.png", "PNG file to write.")
    flags.DEFINE_list("snapshots", ["0", "1", "2", "3"], "Snapshot indices (rows).")
    flags.DEFINE_integer("columns", 8, "Stored sequences per snapshot (columns).")
    cli.run_command(main, check_flags)
