"""The reference rows of the results tables: what an LSTM's behaviour reveals with no learned encoder.

  python -m experiments.analyses.references --dataset=formal_languages --preset=quick --outdir=/tmp/references

Two rows per dataset, beside the encoders (never marked best):

* `readout`: every downstream target that has a definition in terms of
  behaviour, read off each snapshot by that definition with no learning at all
  (`TaskFamily.readout`). Formal languages: the task from the words the LSTM
  writes greedily after BOS a^n (n = 3, 4, 5, majority vote), the performance
  by sampling; MNIST: the angle as the rotation of a 10° grid at which the LSTM
  classifies 200 fixed eval digits best, the accuracy and generalisation gap
  on the run's own angle. Targets without such a definition (training step,
  weight decay) have no readout ("-" in the tables). A ceiling: what running
  the LSTM on its task shows.
* `fixed_probe`: the LSTM run on its family's fixed, hand-written probing
  inputs (`TaskFamily.fixed_probe_features`: formal languages' one-hot
  strings; MNIST: digits rotated by every angle of a grid, summarised as circular
  harmonics of the LSTM's per-angle answers), its outputs along them as features, read
  by the same linear and MLP probes that read the encoders' embeddings
  (`evaluate.probe_scores`, fitted on the train split). What a fixed probing
  set gives without learning to probe.

Both use the zoo and split of the experiment configs (`config.split`
defaults) and are scored on the same subsets as a run's evaluation: eval and
OOD, each also on its trained snapshots only (`evaluate.SUBSETS`). The probe
seed is the table's seed. Results are saved like a run's evaluation, in
`<outdir>/runs/<dataset>/reference/seed<k>/evaluation.json` (and .md), and
reused when present; the seeds computed together share what does not depend on
the seed (the fixed probe's features; MNIST's readout). Every snapshot is run
in one jitted `lax.map`, `CHUNK` snapshots vmapped at a time.
"""

import functools
import os
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import flags, logging

from experiments import report
from experiments.configs import common as config_common
from experiments.run import context, evaluate, layout, objectives, workdirs
from weightspace import cli, files, lstm, ownership, presets, targets, tasks, zoo
from weightspace.types import PyTree

DATASETS = tuple(tasks.FAMILIES)
# The rows' kind in the tables, and the rows, as the tables name them (their "encoder").
KIND = objectives.REFERENCE
ROWS = ("readout", "fixed_probe")
# Snapshots vmapped at once (bounds memory: an MNIST readout runs 200 images at 36 angles per snapshot).
CHUNK = 8


def reference_config(dataset: str, preset: str) -> ml_collections.ConfigDict:
    """The experiment config of `dataset` and `preset` whose zoo and split the references use."""
    return config_common.experiment(config_common.HOST, preset, dataset)


def workdir(outdir: str, dataset: str, seed: int) -> str:
    """Where the reference rows of one seed are saved in a tables output directory (`layout.table_run`)."""
    return layout.table_run(outdir, dataset, (KIND,), seed)


@functools.partial(jax.jit, static_argnums=(0, 1))
def map_snapshots(fn: Callable, family: tasks.TaskFamily, params: PyTree, per_snapshot: PyTree, data: PyTree):
    """`fn(family, lstm.Bound(params[i]), per_snapshot[i], data)` for every snapshot i: [N, ...].

    One jitted `lax.map` over the snapshots (leading axis [N] of `params` and
    `per_snapshot`), `CHUNK` of them vmapped at a time; `data` (the family's,
    e.g. images) is passed whole to every call. `fn` and `family` are static:
    module-level functions and frozen families compile once per zoo shape.
    """
    one = lambda inputs: fn(family, lstm.Bound(inputs[0]), inputs[1], data)
    return jax.lax.map(one, (params, per_snapshot), batch_size=CHUNK)


def _readout(family: tasks.TaskFamily, model: lstm.Bound, task_and_key: tuple, data: PyTree) -> dict:
    task, key = task_and_key
    return family.readout(key, model, task, data)


def _fixed_probe_features(family: tasks.TaskFamily, model: lstm.Bound, _, data: PyTree) -> jax.Array:
    return family.fixed_probe_features(model, data)


def readouts(family: tasks.TaskFamily, the_zoo: zoo.Zoo, data: PyTree, seed: int) -> dict[str, np.ndarray]:
    """Every snapshot's readout (`TaskFamily.readout`): {target name: predictions [N, ...]}.

    Snapshot i gets key `split(key(seed), N)[i]` and its run's task (every task field).
    """
    task = tasks.task_columns(family, the_zoo.metadata)
    keys = jax.random.split(jax.random.key(seed), len(the_zoo))
    return jax.device_get(map_snapshots(_readout, family, the_zoo.params, (task, keys), data))


def fixed_probe_features(family: tasks.TaskFamily, the_zoo: zoo.Zoo, data: PyTree) -> np.ndarray:
    """Every snapshot's outputs on the family's fixed probing inputs: features [N, F]."""
    return np.asarray(map_snapshots(_fixed_probe_features, family, the_zoo.params, None, data))


def readout_scores(
    all_targets: list, predictions: dict[str, np.ndarray], subsets: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """{subset: {"<target>_<metric>": value}} of the readout, for the targets it reads."""
    scores = {s: {} for s in subsets}
    for target in all_targets:
        if target.name in predictions:
            for s, values in targets.subset_scores(target, predictions[target.name], subsets).items():
                scores[s].update(values)
    return scores


def compute(config: ml_collections.ConfigDict, seeds: Sequence[int]) -> dict[int, dict]:
    """The reference rows of each seed on the zoo and split of `config` (the zoo is built if missing).

    What does not depend on the seed is computed once: the fixed probe's features, and the readout
    of a family whose readout draws no random numbers (`TaskFamily.readout_uses_key`).
    """
    path = workdirs.ensure_zoo(config)
    the_zoo = zoo.load(path)
    run = context.RunContext.of(config, the_zoo)
    family, split, all_targets = run.family, run.split, run.targets
    subsets = evaluate.held_out_subsets(split, family.trained_snapshots(the_zoo.metadata))
    data = jax.device_put(family.data()[0])
    logging.info(
        "Reference rows of %s, seeds %s: the fixed probe's features of %d snapshots.",
        the_zoo.family,
        list(seeds),
        len(the_zoo),
    )
    start = time.time()
    features = fixed_probe_features(family, the_zoo, data)
    if not np.all(np.isfinite(features)):
        raise ValueError(f"The fixed probe gives non-finite features on the zoo at {path}.")
    features_s, results, predictions = time.time() - start, {}, None
    probe_seeds = config.evaluate.probe_seeds
    logging.info("Fixed probe's features in %.0f s.", features_s)
    for seed in seeds:
        if predictions is None or family.readout_uses_key:
            logging.info("The readout of every snapshot (seed %d).", seed)
            start = time.time()
            predictions = readouts(family, the_zoo, data, seed)
            readout_s = time.time() - start
        start = time.time()
        probe = evaluate.probe_scores(all_targets, features, split["train"], subsets, seed, probe_seeds)
        results[seed] = {
            "dataset": the_zoo.family,
            "zoo": path,
            "seed": seed,
            "split": config.split.to_dict(),
            "num_snapshots": {"train": len(split["train"]), **{s: len(i) for s, i in subsets.items()}},
            "readout": readout_scores(all_targets, predictions, subsets),
            "fixed_probe": probe,
            "num_features": int(features.shape[1]),
            "probe_seeds": probe_seeds,
            # The readout's and the features' times are shared by the seeds computed together.
            "wall_s": {"readout": readout_s, "fixed_probe": features_s + time.time() - start},
        }
    return results


def ensure(outdir: str, dataset: str, preset: str, seeds: Sequence[int], probe_seeds: int = 1) -> list[dict]:
    """The reference rows of one dataset for each seed, the fixed probe scored by `probe_seeds` probes per
    target: reused from a saved evaluation.json made so, or computed (the missing seeds together, `compute`)
    and saved."""
    paths = {seed: layout.run_file(workdir(outdir, dataset, seed), layout.EVALUATION_JSON) for seed in seeds}
    results = {}
    for seed, path in paths.items():
        if os.path.exists(path):
            saved = files.read_json(path)
            same_probes = saved.get("probe_seeds", 1) == probe_seeds
            if evaluate.has_subsets({"readout": saved["readout"], **saved["fixed_probe"]}) and same_probes:
                results[seed] = saved
    missing = [seed for seed in seeds if seed not in results]
    config = reference_config(dataset, preset)
    config.evaluate.probe_seeds = probe_seeds
    computed = compute(config, missing) if missing else {}
    for seed, result in computed.items():
        directory = workdir(outdir, dataset, seed)
        os.makedirs(directory, exist_ok=True)
        files.write_text(layout.run_file(directory, layout.EVALUATION_MD), report.references_markdown(result))
        files.write_json(paths[seed], result)  # last: its presence marks a finished evaluation
        logging.info("Reference rows of %s, seed %d: %s", dataset, seed, paths[seed])
        results[seed] = files.read_json(paths[seed])  # as a reuse returns it: undefined metrics are None
    return [results[seed] for seed in seeds]


def records(result: dict) -> list[dict]:
    """The flat (encoder, split, predictor, metric, value) rows of a reference evaluation, for the tables.

    The encoder is the row ("readout" or "fixed_probe"); the readout's predictor
    is "", as it is the same in every probe's table.
    """
    by_row = dict(zip(ROWS, ({"": result["readout"]}, result["fixed_probe"]), strict=True))
    return [
        dict(encoder=row, split=s, predictor=p, metric=m, value=v)
        for row, by_predictor in by_row.items()
        for p, by_subset in by_predictor.items()
        for s, metrics in by_subset.items()
        for m, v in metrics.items()
    ]


def check_flags(flag_values) -> list[str]:
    """The outdir must be free for a tables output (or be one)."""
    return cli.directory_problems("outdir", flag_values.outdir, "tables")


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    datasets = DATASETS if flags.FLAGS.dataset == "all" else (flags.FLAGS.dataset,)
    ownership.claim(flags.FLAGS.outdir, "tables")  # the reference rows of a tables output, alone
    for dataset in datasets:
        seeds = range(flags.FLAGS.seeds)
        for result in ensure(flags.FLAGS.outdir, dataset, flags.FLAGS.preset, seeds, flags.FLAGS.probe_seeds):
            print(report.references_markdown(result))


if __name__ == "__main__":
    flags.DEFINE_enum("preset", "quick", list(presets.PRESETS), "Config preset (which zoo).")
    flags.DEFINE_enum("dataset", "formal_languages", [*DATASETS, "all"], "Zoo(s) to read.")
    flags.DEFINE_integer("seeds", 1, "Probe seeds (0 .. seeds - 1).", lower_bound=1)
    flags.DEFINE_integer("probe_seeds", 1, "Probes per target of each seed, each score their mean.", lower_bound=1)
    flags.DEFINE_string("outdir", None, "Where runs/<dataset>/reference/seed<k> go.", required=True)
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
