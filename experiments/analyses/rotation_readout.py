"""Where a probing encoder loses the rotation: what reads an MNIST LSTM's angle, stage by stage.

  python -m experiments.analyses.rotation_readout --workdir=RUN[,RUN...] --outdir=DIR

Each RUN is a trained probing encoder (experiments.main workdir) on sequential MNIST with the
`probe_rotations` variant: probing sequence p starts as a digit of class p mod 10 rotated by 360 p / P
degrees (`sequential_mnist.prior_digits`). The angle of every held-out trained snapshot of the run's zoo is
read by the linear and MLP probes that score the encoders (`evaluate.probe_scores`: fitted on the train
split, the run's probe seed) from, per encoder:

* `embedding`: the encoder's embedding (what the tables score);
* `answers`: its probes' answers as the encoder reads them, averaged over the probing steps (what
  `pool_answers` gives its head);
* `answer_harmonics`: each sequence's logit of its digit's class averaged over the steps, as circular
  harmonics over the sequences' starting angles (`sequential_mnist.circular_harmonics`): the answers in the
  form in which a rotation is a turn;

and, with no encoder (the zoo LSTMs alone):

* `rotated_digits_<P>`: the LSTMs run on `prior_digits(P)` themselves (the variant's starting probes, no
  network), summarised as `answer_harmonics` is, for each P of `--digit_counts`: what a fixed probe of P
  rotated digits holds;
* `fixed_probe`: the reference row's features (10 digits of each class at every 30 degrees);
* `nearest_training_angle`: each snapshot given the train split's angle nearest its own, no probe: what a
  reader that recognises training runs, and places no angle between or beyond them, scores.

Errors are mean absolute angular errors in degrees on the eval and OOD splits' trained snapshots, averaged
over `--probe_seeds` probes per reading (their initialisation and early-stopping split: an MLP probe's OOD
error moves by degrees with them), with 95 % bootstrap intervals over the split's LSTMs (the independent
units) and the seeds (run seeds x probe seeds), and the range of the seeds' means. Writes
`rotation_readout.json`, `rotation_readout.md` (rendered from the JSON by `experiments.report`) and
`rotation_readout.png` (each reading's errors with their intervals) into DIR.
"""

import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import flags
from flax import nnx

from experiments import report
from experiments.analyses import references
from experiments.run import batches, evaluate, workdirs
from weightspace import cli, encoders, errors, lstm, probes, provenance, schema, statistics, targets, zoo
from weightspace.encoders import probing
from weightspace.tasks import sequential_mnist

matplotlib.use("Agg")
from matplotlib import pyplot as plt

# The subsets scored (of `evaluate.SUBSETS`): trained snapshots, where a reading of the angle is meaningful.
SUBSETS = ("ood_trained", "eval_trained")
ENCODER_ROWS = ("embedding", "answers", "answer_harmonics")
DIGIT_COUNTS = (24, 48, 120)


class RotationReadoutError(errors.UserError, ValueError):
    """A run this analysis cannot read (not a probing encoder of the probe_rotations variant on MNIST)."""


class _Readings(nnx.Module):
    """A probing encoder's readings of a batch of LSTMs, side by side: [batch, E + P * O + P] (`split`)."""

    def __init__(self, encoder: probing.ProbingEncoder):
        self.encoder = encoder

    def __call__(self, params) -> jax.Array:
        outputs = self.encoder.probe_answers(params)  # [time, batch, P, output]
        pooled = self.encoder.answer_vectors(outputs).mean(0)  # [batch, P * output]
        return jnp.concatenate([self.encoder(params), pooled, _class_logits(outputs)], -1)

    def split(self, readings: np.ndarray) -> dict[str, np.ndarray]:
        """{row: features [N, F]} of `ENCODER_ROWS` from the readings [N, ...] of `__call__`."""
        sequences = self.encoder.num_parallel
        embedding, pooled, logits = np.split(readings, [self.encoder.embedding_size, -sequences], axis=1)
        return {"embedding": embedding, "answers": pooled, "answer_harmonics": _harmonics(logits)}


def _class_logits(outputs: jax.Array) -> jax.Array:
    """Each sequence's logit of its digit's class (p mod 10), averaged over the steps: [time, batch, P, O] ->
    [batch, P]."""
    classes = jnp.arange(outputs.shape[2]) % sequential_mnist.NUM_CLASSES
    return jnp.take_along_axis(outputs, classes[None, None, :, None], -1)[..., 0].mean(0)


def _harmonics(per_sequence: np.ndarray) -> np.ndarray:
    """Features [N, 1 + 2 H] of per-sequence values [N, P] at the starting angles 360 p / P."""
    degrees = 360.0 * jnp.arange(per_sequence.shape[1]) / per_sequence.shape[1]
    return np.asarray(sequential_mnist.circular_harmonics(jnp.asarray(per_sequence), degrees))


def _digit_logits(family, model: lstm.Bound, _, data) -> jax.Array:
    """One LSTM's class logits on the rotated digits in `data` (`prior_digits`): [P]."""
    return _class_logits(jnp.moveaxis(model.apply(data["sequences"]), 1, 0)[:, None])[0]


def rotated_digit_features(family, the_zoo: zoo.Zoo, data, count: int) -> np.ndarray:
    """`rotated_digits_<count>`'s features of every snapshot, from the family's `data` (its eval images and
    labels): [N, 1 + 2 H]."""
    sequences, _ = sequential_mnist.prior_digits(data["eval_images"], data["eval_labels"], count)
    return _harmonics(np.asarray(references.map_snapshots(_digit_logits, family, the_zoo.params, None, {
        "sequences": sequences
    })))  # fmt: skip


def angle_errors(
    target: targets.Angle, features: np.ndarray, train: np.ndarray, probe_seeds: Sequence[int]
) -> dict[str, np.ndarray]:
    """{predictor: absolute angular error of every snapshot [probe seeds, N]} of the probes fitted on `train`,
    one per seed (its initialisation and early-stopping split)."""
    return {
        name: np.stack([
            targets.angular_distance(
                probes.fit(target, features, train, hidden_sizes=hidden_sizes, seed=seed).predict(features),
                target.values,
            )
            for seed in probe_seeds
        ])
        for name, hidden_sizes in probes.PREDICTORS.items()
    }  # fmt: skip


def nearest_training_angle_errors(angles: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Every snapshot's distance to the train split's angle nearest its own [N] (0 on the train split)."""
    return targets.angular_distance(angles[:, None], np.unique(angles[train])[None]).min(1)


def _check_run(workdir: str, config) -> None:
    name, dataset = config.encoder.name, config.zoo.dataset
    low, high = sequential_mnist.PIXEL_RANGE
    rotations = tuple(config.encoder.get("probe_range", ())) == (low, high) and config.encoder.get("prior_scale")
    if dataset != "sequential_mnist" or not encoders.probes(name) or not rotations:
        raise RotationReadoutError(
            f"{workdir} trains {name} on {dataset}; this analysis reads probing encoders on sequential_mnist "
            "whose probes start on rotated digits: train one with the probe_rotations variant."
        )


def _row(name: str, per_seed: np.ndarray, units: np.ndarray) -> dict:
    """A row's score on one subset and predictor from its per-snapshot errors [seeds, snapshots] (run seeds x
    probe seeds): the mean, its interval, and the range of the seeds' means."""
    per_unit = statistics.per_unit(per_seed, units)  # [seeds, LSTMs]
    low, high = statistics.bootstrap_interval(per_unit)
    means = per_seed.mean(1)
    return {"row": name, "mean": float(means.mean()), "interval": [low, high], "seeds": len(means),
            "seed_range": [float(means.min()), float(means.max())]}  # fmt: skip


def make(
    workdir_list: Sequence[str], outdir: str, digit_counts: Sequence[int], probe_seeds: Sequence[int], command: str
) -> dict:
    """Reads every row (module docstring) and writes rotation_readout.json and .md into `outdir`."""
    start = time.time()
    configs = [workdirs.read_config(w) for w in workdir_list]
    for workdir, config in zip(workdir_list, configs, strict=True):
        _check_run(workdir, config)
    zoo_paths = {workdirs.run_zoo_path(w) for w in workdir_list}
    splits = {repr(sorted(c.split.to_dict().items())) for c in configs}
    if len(zoo_paths) > 1 or len(splits) > 1:
        raise RotationReadoutError(
            f"The runs read different zoos or splits ({sorted(zoo_paths)}); give runs of one zoo and split."
        )
    zoo_path = os.path.abspath(zoo_paths.pop())
    the_zoo = zoo.load(zoo_path, on_disk=True)
    by_encoder: dict[str, dict[str, list]] = {}
    runs = []
    for workdir, config in zip(workdir_list, configs, strict=True):
        run, model = workdirs.load_run(workdir, the_zoo=the_zoo)
        readings = _Readings(model.encoder)
        features = readings.split(batches.apply_in_batches(readings, run.objective.encoder_inputs(the_zoo), 64))
        target = next(t for t in run.targets if t.name == "angle")
        rows = by_encoder.setdefault(config.encoder.name, {})
        for name, values in features.items():
            rows.setdefault(name, []).append(angle_errors(target, values, run.split["train"], probe_seeds))
        runs.append({
            "encoder": config.encoder.name,
            "seed": int(config.seed),
            "num_parallel": int(config.encoder.num_parallel),
            "checkpoint_step": workdirs.checkpoint_step(workdir),
        })  # fmt: skip
    family, split = run.family, run.split
    angles = np.asarray(the_zoo.metadata["angle"], np.float64)
    data = jax.device_put(family.data()[0])
    zoo_features = {
        f"rotated_digits_{count}": rotated_digit_features(family, the_zoo, data, count) for count in digit_counts
    }
    zoo_features["fixed_probe"] = references.fixed_probe_features(family, the_zoo, data)
    zoo_rows = {name: [angle_errors(target, f, split["train"], probe_seeds)] for name, f in zoo_features.items()}
    nearest = nearest_training_angle_errors(angles, split["train"])
    zoo_rows["nearest_training_angle"] = [{name: nearest[None] for name in probes.PREDICTORS}]
    subsets = evaluate.held_out_subsets(split, family.trained_snapshots(the_zoo.metadata))
    units = np.asarray(the_zoo.metadata["run"])
    scores = []
    for group, rows in [*by_encoder.items(), ("zoo", zoo_rows)]:
        for name, per_seed in rows.items():
            for predictor in probes.PREDICTORS:
                for subset in SUBSETS:
                    index = subsets[subset]
                    values = np.concatenate([errors_by[predictor][:, index] for errors_by in per_seed])
                    scores.append({"group": group, "predictor": predictor, "subset": subset,
                                   **_row(name, values, units[index])})  # fmt: skip
    result = {
        "dataset": the_zoo.family,
        "zoo": os.path.basename(zoo_path.removesuffix(f"{os.sep}zoo")),  # a name: no path of this machine
        "runs": runs,
        "train_angles": [float(angles[split["train"]].min()), float(angles[split["train"]].max())],
        "subsets": {
            s: {
                "snapshots": len(subsets[s]),
                "lstms": len(np.unique(units[subsets[s]])),
                "angles": [float(angles[subsets[s]].min()), float(angles[subsets[s]].max())],
            }
            for s in SUBSETS
        },
        "probe_seeds": list(probe_seeds),
        "rows": scores,
        "command": command,
        "machine": provenance.machine(),
        "wall_s": time.time() - start,
    }
    os.makedirs(outdir, exist_ok=True)
    plot(scores, os.path.join(outdir, "rotation_readout.png"))
    report.write(os.path.join(outdir, "rotation_readout.json"), result)
    return result


def plot(rows: list[dict], path: str) -> None:
    """A panel per subset: each reading's error (bars, linear and MLP probe) with its interval (whiskers)."""
    figure, axes = plt.subplots(1, len(SUBSETS), figsize=(12, 5), sharey=True)
    names = list(dict.fromkeys((r["group"], r["row"]) for r in rows))
    for axis, subset in zip(axes, SUBSETS, strict=True):
        by = {(r["group"], r["row"], r["predictor"]): r for r in rows if r["subset"] == subset}
        for k, predictor in enumerate(probes.PREDICTORS):
            cells = [by[(group, row, predictor)] for group, row in names]
            means = np.array([c["mean"] for c in cells])
            whiskers = np.abs(np.array([c["interval"] for c in cells]).T - means)
            y = np.arange(len(names)) + 0.4 * k - 0.2
            axis.barh(y, means, 0.4, xerr=whiskers, color=f"C{k}", label=f"{predictor} probe")
        axis.set(xlabel="mean angular error (degrees)", title=subset.replace("_", ", "))
    axes[0].invert_yaxis()  # the axes share it: the first reading on top
    axes[0].set_yticks(np.arange(len(names)), [f"{group}: {row}" for group, row in names], fontsize=8)
    axes[0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def check_flags(flag_values) -> list[str]:
    """Every workdir must be a training run, every digit count a positive whole number."""
    return [
        *cli.workdir_list_problems(flag_values),
        *cli.list_problems("digit_counts", flag_values.digit_counts, schema.Int(1), nonempty=True),
    ]


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    workdir_list = list(flags.FLAGS.workdir)
    outdir = flags.FLAGS.outdir or workdir_list[0]
    digit_counts = [int(c) for c in flags.FLAGS.digit_counts]
    make(workdir_list, outdir, digit_counts, range(flags.FLAGS.probe_seeds), provenance.command())
    with open(os.path.join(outdir, "rotation_readout.md")) as markdown:
        print(markdown.read())


if __name__ == "__main__":
    flags.DEFINE_list("workdir", None, "Trained probing-encoder runs on one MNIST zoo, comma-separated.", required=True)
    flags.DEFINE_string("outdir", "", "Where rotation_readout.json and .md go (default: the first workdir).")
    flags.DEFINE_list("digit_counts", [str(c) for c in DIGIT_COUNTS], "Rotated-digit probe sizes P to read.")
    flags.DEFINE_integer("probe_seeds", 5, "Probe seeds per reading (0 .. probe_seeds - 1).", lower_bound=1)
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
