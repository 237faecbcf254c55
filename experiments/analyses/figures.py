"""The results figures, from finished runs (one per encoder) on one zoo.

* `pca_<dataset>.png`: the eval and OOD snapshots' embeddings in their first
  two principal components, one panel per encoder, coloured by the task's
  split score (formal languages: task entropy; MNIST: angle) and by performance;
* `probing_<dataset>.png`: the probing inputs the non-interactive and the
  interactive encoder give a few held-out LSTMs (token probabilities over
  probing steps; MNIST: the probing tiles, step by step), with their probe
  diversity (`ProbingEncoder.probe_diversity`: 0 when all get the same probes);
* `emulation_<dataset>.png`: next-step distributions of a few held-out LSTMs
  on one stored sequence, and the emulator's, conditioned on their embedding;
* `curves_<dataset>.png`: train / eval / OOD loss of every encoder.
"""

import json
import os

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.run import context, layout, workdirs
from weightspace import encoders, metrics, zoo

NUM_SHOWN = 3


def _held_out_last_step(the_zoo: zoo.Zoo, split: dict[str, np.ndarray], num: int) -> np.ndarray:
    """`num` OOD snapshots taken at the zoo's last snapshot step (fully trained LSTMs), spread over tasks."""
    steps = np.asarray(the_zoo.metadata["step"])
    candidates = split["ood"][steps[split["ood"]] == steps.max()]
    return np.unique(candidates[np.linspace(0, len(candidates) - 1, num).astype(int)])


def _pca(embeddings: np.ndarray) -> np.ndarray:
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def pca_figure(name: str, runs: dict[str, str], the_zoo, family, split, path: str) -> str:
    held = np.concatenate([split["eval"], split["ood"]])
    is_ood = np.isin(held, split["ood"])
    score_label, performance_column, performance_label = family.pca_colours
    score = family.split_score({f: np.asarray(the_zoo.metadata[f]) for f in family.split_fields})
    colours = ((score, score_label), (np.asarray(the_zoo.metadata[performance_column]), performance_label))
    fig, axes = plt.subplots(2, len(runs), figsize=(3.2 * len(runs), 6.2), squeeze=False)
    for column, (encoder, workdir) in enumerate(runs.items()):
        points = _pca(np.load(layout.run_file(workdir, layout.EMBEDDINGS))[held])
        for row, (values, label) in enumerate(colours):
            ax = axes[row, column]
            for ood, marker in ((False, "o"), (True, "x")):
                chosen = is_ood == ood
                scatter = ax.scatter(
                    points[chosen, 0], points[chosen, 1], c=values[held][chosen], s=10, marker=marker,
                    cmap="viridis", vmin=values[held].min(), vmax=values[held].max(),
                )  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(encoder, fontsize=9)
            if column == len(runs) - 1:
                fig.colorbar(scatter, ax=ax, label=label)
    fig.suptitle(f"{name}: embedding PCA of eval (o) and OOD (x) snapshots")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def probing_figure(name: str, runs: dict[str, str], the_zoo, family, snapshots, path: str) -> str | None:
    probing = [e for e in runs if encoders.probes(e)]
    if not probing:
        return None
    params = jax.tree.map(lambda x: x[snapshots], the_zoo.params)
    fig, axes = plt.subplots(len(probing), len(snapshots), figsize=(3.6 * len(snapshots), 2.6 * len(probing)))
    axes = np.asarray(axes).reshape(len(probing), len(snapshots))
    for row, encoder in enumerate(probing):
        model = workdirs.load_run(runs[encoder], the_zoo=the_zoo)[1]
        inputs = np.asarray(model.encoder.probing_inputs(params))[:, :, 0]  # [steps, LSTMs, input] (first sequence)
        # How differently the shown LSTMs are probed: 0 means every LSTM is asked the same questions.
        diversity = float(model.encoder.probe_diversity(params))
        for column, snapshot in enumerate(snapshots):
            ax = axes[row, column]
            image, row_labels = family.probe_image(inputs[:, column])
            ax.imshow(
                image, aspect="auto" if row_labels else "equal", cmap="magma" if row_labels else "gray", vmin=0, vmax=1
            )
            if row_labels:
                ax.set_yticks(range(len(row_labels)), row_labels)
                ax.set_xlabel("probing step")
            else:
                ax.set_xticks([])
                ax.set_yticks([])
            task = {f: np.round(the_zoo.metadata[f][snapshot], 1).tolist() for f in family.split_fields}
            title = f"{encoder}, snapshot {snapshot} {json.dumps(task)}"
            ax.set_title(title + (f"\nprobe diversity {diversity:.3f}" if column == 0 else ""), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def emulation_figure(name: str, workdir: str, the_zoo, family, snapshots, path: str) -> str:
    model = workdirs.load_run(workdir, the_zoo=the_zoo)[1]
    behaviour = jax.tree.map(lambda x: np.asarray(x)[snapshots, 0], the_zoo.behaviour)
    data = family.emulation_data(behaviour)
    params = jax.tree.map(lambda x: x[snapshots], the_zoo.params)
    emulated = jax.nn.softmax(model(params, data["inputs"])[0], axis=-1)
    original = jax.nn.softmax(data["targets"], axis=-1)
    labels = family.output_labels
    fig, axes = plt.subplots(2, len(snapshots), figsize=(4.2 * len(snapshots), 4.6), squeeze=False)
    for column, snapshot in enumerate(snapshots):
        for row, (probabilities, title) in enumerate(((original, "original LSTM"), (emulated, "emulator | E(θ)"))):
            ax = axes[row, column]
            ax.imshow(np.asarray(probabilities[column]).T, aspect="auto", cmap="magma", vmin=0, vmax=1)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            ax.set_title(f"snapshot {snapshot}: {title}", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time step")
    fig.suptitle(f"{name}: next-step distributions on a stored sequence ({os.path.basename(os.path.dirname(workdir))})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_figure(name: str, runs: dict[str, str], path: str) -> str:
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.0), squeeze=False, sharey=True)
    for ax, (encoder, workdir) in zip(axes[0], runs.items(), strict=True):
        records = metrics.read(layout.run_file(workdir, layout.METRICS))
        for key in ("train_loss", "eval_loss", "ood_loss"):
            points = [(r["step"], r[key]) for r in records if key in r]
            ax.plot(*zip(*points, strict=True), label=key.removesuffix("_loss"))
        ax.set_yscale("log")
        ax.set_title(encoder, fontsize=9)
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{name}: training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_figures(name: str, runs: dict[str, str], outdir: str) -> list[str]:
    """Every figure for the zoo `name` from `runs` ({encoder: workdir}, emulation runs); returns their paths."""
    first = next(iter(runs.values()))
    config = workdirs.read_config(first)
    the_zoo = zoo.load(workdirs.run_zoo_path(first))
    run = context.RunContext.of(config, the_zoo)
    family, split = run.family, run.split
    snapshots = _held_out_last_step(the_zoo, split, NUM_SHOWN)
    # The emulator of an encoder that chooses its probes (the interactive one) where the table has one.
    shown = next((e for e in runs if encoders.chooses_probes(e)), next(iter(runs)))
    paths = [
        pca_figure(name, runs, the_zoo, family, split, os.path.join(outdir, f"pca_{name}.png")),
        probing_figure(name, runs, the_zoo, family, snapshots, os.path.join(outdir, f"probing_{name}.png")),
        emulation_figure(name, runs[shown], the_zoo, family, snapshots, os.path.join(outdir, f"emulation_{name}.png")),
        curves_figure(name, runs, os.path.join(outdir, f"curves_{name}.png")),
    ]
    return [p for p in paths if p]
