"""Downstream evaluation of a trained encoder (design §5).

  python -m experiments.run.evaluate --workdir=/tmp/dwsnet_quick

The encoder is frozen at its best checkpoint and embeds every snapshot of the
zoo. For every downstream target (`weightspace.targets`) a linear and an MLP
probe are fitted on the train split's embeddings (early stopping on a held-out
part of them) and scored on the eval and OOD splits, LSTMs of tasks the
encoder never saw, and on their trained snapshots only (`SUBSETS`;
`TaskFamily.trained_snapshots`: the later half of the snapshot steps), whose
LSTMs have learnt their task. Also reported: the training objective's loss
per split, and what the objective adds (`Objective.evaluation`): a
supervised run's own head on its target (on the same subsets), and for
emulation and oracle runs, cloning (`experiments.run.cloning`: the emulator
conditioned on E(θ), scored on the task exactly like the original LSTM θ,
for a seeded sample of eval and OOD snapshots).

Writes into the workdir:
  evaluation.json   every number, with the checkpoint step they belong to
  evaluation.md     the same numbers as markdown tables
  embeddings.npy    embeddings [N, E] of every zoo snapshot (row i = snapshot i)
Rerunning reuses evaluation.json while the best checkpoint and the `evaluate.*` settings it records are
unchanged and it has every subset (older ones, without the trained subsets or the settings, are redone).
`python -m experiments.main` runs this when training ends.
"""

import json
import os

import jax
import numpy as np
from absl import flags, logging
from flax import nnx

from experiments import report, upgrade
from experiments.run import batches, layout, workdirs
from weightspace import cli, dataset, files, multihost, ownership, probes, sharding, targets, zoo

HELD_OUT = dataset.HELD_OUT
# What scores are reported on: each held-out split, and its trained snapshots only.
SUBSETS = (*HELD_OUT, *(f"{s}_trained" for s in HELD_OUT))


def held_out_subsets(split: dict[str, np.ndarray], trained: np.ndarray) -> dict[str, np.ndarray]:
    """Snapshot indices of every subset in `SUBSETS`, from the split and which snapshots are trained [N] (bool)."""
    return {**{s: split[s] for s in HELD_OUT}, **{f"{s}_trained": split[s][trained[split[s]]] for s in HELD_OUT}}


def probe_scores(
    all_targets: list,
    features: np.ndarray,
    train: np.ndarray,
    subsets: dict[str, np.ndarray],
    seed: int,
    probe_seeds: int = 1,
) -> dict[str, dict[str, dict[str, float]]]:
    """{predictor: {subset: {"<target>_<metric>": value}}} of the linear and MLP probes.

    Each probe reads `features` [N, F] (an encoder's embeddings, or any other
    features of every snapshot), is fitted on the snapshots `train` and scored on each subset; with
    `probe_seeds` > 1, one probe per seed `seed` .. `seed + probe_seeds - 1` (its initialisation and
    early-stopping split), each value the mean of theirs.
    """
    scores = {name: {s: {} for s in subsets} for name in probes.PREDICTORS}
    for target in all_targets:
        for name, hidden_sizes in probes.PREDICTORS.items():
            per_seed = [
                targets.subset_scores(
                    target, probes.fit(target, features, train, hidden_sizes=hidden_sizes, seed=s).predict(features),
                    subsets,
                )
                for s in range(seed, seed + probe_seeds)
            ]  # fmt: skip
            for s in subsets:
                scores[name][s].update({key: float(np.mean([v[s][key] for v in per_seed])) for key in per_seed[0][s]})
    return scores


def has_subsets(scores: dict[str, dict]) -> bool:
    """Whether scores {predictor: {subset: ...}} cover every subset (evaluations before the trained subsets do not)."""
    return all(set(SUBSETS) <= set(by_subset) for by_subset in scores.values())


def evaluate(workdir: str, *, force: bool = False) -> dict:
    """Evaluates the run in `workdir` (or reuses its saved evaluation of the same checkpoint).

    Returns the evaluation as saved in evaluation.json: undefined metrics (the R² of a target that is
    constant on a split) are None there. Each process of a multi-process job evaluates on its own
    devices (nothing is exchanged, so none waits for another); process 0 writes the files.
    """
    workdir = ownership.require(workdir, "run")
    lock = multihost.workdir_lock(workdir, "training or evaluation run", workdirs.TrainingError)
    with lock, workdirs.releasing_compiled_programs():
        return _evaluate_locked(workdir, force)


def recorded_settings(saved: dict) -> dict | None:
    """The `evaluate` settings a saved evaluation was made with, a setting added since at the value in effect
    before it (`upgrade.ADDED_FIELDS`: the evaluation is what it would give); None when it recorded none."""
    if "evaluate" not in saved:
        return None
    added = {path[1]: value for path, value in upgrade.ADDED_FIELDS.items() if path[0] == "evaluate"}
    return {**added, **saved["evaluate"]}


def _evaluate_locked(workdir: str, force: bool) -> dict:
    config = workdirs.read_config(workdir)
    step = workdirs.checkpoint_step(workdir)
    path = layout.run_file(workdir, layout.EVALUATION_JSON)
    if os.path.exists(path) and not force:
        saved = files.read_json(path)
        same_settings = recorded_settings(saved) == config.evaluate.to_dict()
        if saved.get("checkpoint_step") == step and has_subsets(saved["probes"]) and same_settings:
            logging.info("Reusing %s (best checkpoint, step %d).", path, step)
            return saved
        if not same_settings:
            logging.info("%s was made with other evaluate.* settings (or before they were recorded); redoing it.", path)
    the_zoo = zoo.load(workdirs.run_zoo_path(workdir), on_disk=config.train.zoo_on_disk)
    run, model = workdirs.load_run(workdir, the_zoo=the_zoo)
    embeddings = batches.apply_in_batches(model.encoder, run.objective.encoder_inputs(the_zoo))
    if not np.all(np.isfinite(embeddings)):
        raise workdirs.TrainingError(f"The encoder of {workdir} gives non-finite embeddings.")
    subsets = held_out_subsets(run.split, run.family.trained_snapshots(the_zoo.metadata))
    mesh = run.mesh(local=True)
    graphdef, params, other = nnx.split(model, nnx.Param, ...)
    state = jax.device_put({"params": params, "other": other}, sharding.replicated(mesh))
    on_disk = config.train.zoo_on_disk
    arrays = batches.run_arrays(run.objective, the_zoo, mesh, on_disk)
    read_rows = batches.row_reader(arrays, sharding.split(mesh, name="data"), on_disk)
    fixed = batches.fixed_batches(run.split, run.config, the_zoo.sequences.shape[1], ("train", *HELD_OUT))
    one_member = jax.tree.map(lambda x: x[None], state)  # the member axis of `batches.split_losses`
    (losses,) = batches.split_losses(run.objective, graphdef, mesh, one_member, read_rows, fixed)
    result = {
        "checkpoint_step": step,
        "evaluate": config.evaluate.to_dict(),
        "encoder": config.encoder.name,
        "dataset": the_zoo.family,
        "supervised_target": config.supervised.target,
        "oracle_target": config.oracle.target,
        "num_snapshots": {"train": len(run.split["train"]), **{s: len(i) for s, i in subsets.items()}},
        "loss": {name.removesuffix("_loss"): value for name, value in losses.items() if name.endswith("_loss")},
        "probes": probe_scores(
            run.targets, embeddings, run.split["train"], subsets, config.evaluate.seed, config.evaluate.probe_seeds
        ),
    }
    novelty = {name.removesuffix("_novelty"): value for name, value in losses.items() if name.endswith("_novelty")}
    if novelty:  # a probing encoder: the answers its probes find per split (`dialogue_novelty`)
        result["novelty"] = novelty
    extras = run.objective.evaluation(model, the_zoo, run.split, embeddings, subsets, run.config.evaluate)
    result["probes"].update(extras.pop("probes", {}))
    result.update(extras)
    if not multihost.is_primary():
        return json.loads(json.dumps(files.strict(result)))  # as process 0 reads it back
    with files.atomic_path(layout.run_file(workdir, layout.EMBEDDINGS)) as temporary:
        np.save(temporary, embeddings)
    markdown = report.evaluation_markdown(result, run.objective.describe(config.encoder.name))
    files.write_text(layout.run_file(workdir, layout.EVALUATION_MD), markdown)
    files.write_json(path, result)  # last: its presence marks a finished evaluation
    logging.info("Evaluation of %s:\n%s", workdir, markdown)
    return files.read_json(path)  # as a reuse returns it: undefined metrics are None


def check_flags(flag_values) -> list[str]:
    """The workdir must be a training run."""
    return cli.directory_problems("workdir", flag_values.workdir, "run", existing=True)


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    evaluate(flags.FLAGS.workdir, force=flags.FLAGS.force)


if __name__ == "__main__":
    # Defined here, not on import: experiments.main imports this module and has its own --workdir.
    flags.DEFINE_string("workdir", None, "Training workdir to evaluate.", required=True)
    flags.DEFINE_bool("force", False, "Evaluate again even if evaluation.json matches the best checkpoint.")
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
