"""Symmetry sensitivity: how far an encoder's embedding moves under correct and incorrect permutations.

  python -m experiments.analyses.permutation_analysis --workdir=DIR[,DIR...] [--outdir=DIR]

A *correct* permutation of an LSTM's hidden neurons (design §2: the rows of every gate block, the
columns of the recurrent matrix and of the next layer's input matrix or readout, all by the same
permutation) leaves its function unchanged. An *incorrect* one applies the permutation to only some of
those axes, which changes the function. The paper reports that a trained DWSNet becomes more sensitive
to incorrect permutations than an untrained one. For each run, and for its encoder both as
initialised and trained (best checkpoint), this measures on a seeded sample of held-out snapshots θ:

* the embedding change under each kind of permutation P (`KINDS`, every layer permuted at once, each
  by its own random permutation): mean ‖E(θ) - E(Pθ)‖ over the sample, relative to the mean distance
  between the embeddings of two different snapshots, ‖E(θ) - E(θ')‖ ("relative change": 0 for an
  invariant encoder, about 1 when P moves θ as far as another LSTM);
* the function change: the emulation loss (total variation) between θ's and Pθ's outputs on θ's
  stored sequences (0 for a correct permutation);
* the rank correlation, over the sample and every incorrect kind, between the two: does the
  embedding move more where the function changes more?

Writes `permutation_analysis.json` (every row, the kinds, the command and machine), `.md` (a row per
run and kind, rendered from the JSON by `experiments.report`) and `.png` (relative change per kind,
initialised against trained, for every run; and embedding change against function change) into
`--outdir` (default: the first workdir).
"""

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import flags

from experiments import report
from experiments.run import batches, context, workdirs
from weightspace import cli, losses, lstm, provenance, statistics, symmetry, zoo
from weightspace.types import Params, PRNGKey

matplotlib.use("Agg")
from matplotlib import pyplot as plt

# The gate block whose rows `one_gate_rows` permutes (i, f, g, o: the input gate).
GATE_BLOCK = 0
STATES = ("init", "trained")


def _own_rows(tensor: str, axis: int) -> bool:
    return axis == 0 and not tensor.endswith("_out")


def _recurrent_columns(tensor: str, axis: int) -> bool:
    return tensor.startswith("weight_hh") and axis == 1


def _next_columns(tensor: str, axis: int) -> bool:
    return (tensor.startswith("weight_ih") or tensor == "weight_out") and axis == 1


# Each kind of permutation keeps these axes of the LSTM's perm spec (tensor name, axis index -> kept).
SELECTIONS: dict[str, Callable[[str, int], bool]] = {
    "correct": lambda tensor, axis: True,
    "rows_only": _own_rows,
    "recurrent_columns": _recurrent_columns,
    "next_layer_columns": _next_columns,
    "all_but_recurrent_columns": lambda tensor, axis: not _recurrent_columns(tensor, axis),
    "all_but_next_layer_columns": lambda tensor, axis: not _next_columns(tensor, axis),
}
KINDS = (*SELECTIONS, "one_gate_rows")
DESCRIPTIONS = {
    "correct": "every axis of the symmetry (the function is unchanged)",
    "rows_only": "the rows of every gate block, not the columns",
    "recurrent_columns": "the columns of the recurrent matrices only",
    "next_layer_columns": "the columns of the next layer's input matrix and of the readout only",
    "all_but_recurrent_columns": "everything but the recurrent matrices' columns",
    "all_but_next_layer_columns": "everything but the next layer's and the readout's columns",
    "one_gate_rows": f"the rows of one gate block (gate {'ifgo'[GATE_BLOCK]}) only",
}


def partial_spec(spec: lstm.LSTMSpec, keep: Callable[[str, int], bool]) -> symmetry.PermSpec:
    """The LSTM's perm spec with only the axes `keep(tensor, axis)` selects (the others not permuted)."""
    return {
        tensor: tuple(axis if axis is not None and keep(tensor, i) else None for i, axis in enumerate(axes))
        for tensor, axes in lstm.perm_spec(spec).items()
    }


def one_gate_rows(key: PRNGKey, params: Params, spec: lstm.LSTMSpec) -> Params:
    """Permutes the rows of gate block `GATE_BLOCK` of every layer (its own permutation per layer), nothing else."""
    out = dict(params)
    for layer, layer_key in enumerate(jax.random.split(key, spec.num_layers)):
        perm = jax.random.permutation(layer_key, spec.hidden_size)
        block = GATE_BLOCK * spec.hidden_size
        index = jnp.arange(4 * spec.hidden_size).at[block : block + spec.hidden_size].set(block + perm)
        for name in (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            out[name] = jnp.take(params[name], index, axis=0)
    return out


def permuter(kind: str, spec: lstm.LSTMSpec) -> Callable[[PRNGKey, Params], Params]:
    """One snapshot's params under a random permutation of `kind` (`KINDS`)."""
    if kind == "one_gate_rows":
        return lambda key, params: one_gate_rows(key, params, spec)
    kept = partial_spec(spec, SELECTIONS[kind])
    return lambda key, params: symmetry.random_permute(key, params, kept)


def permuted_params(kind: str, spec: lstm.LSTMSpec, seed: int, params: Params) -> Params:
    """Every snapshot of `params` [N, ...] under its own random permutation of `kind`."""
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), KINDS.index(kind)), len(params["weight_out"]))
    return jax.device_get(jax.jit(jax.vmap(permuter(kind, spec)))(keys, params))


@jax.jit
def function_change(params: Params, permuted: Params, inputs: jax.Array) -> jax.Array:
    """Total variation between the outputs of θ and Pθ on θ's inputs [N, S, T, in], per snapshot: [N]."""

    def one(p, q, x):
        target = jax.nn.log_softmax(lstm.apply(p, x)[0])
        return losses.total_variation(lstm.apply(q, x)[0], target)

    return jax.vmap(one)(params, permuted, inputs)


def sample_snapshots(run: context.RunContext, num: int, seed: int) -> np.ndarray:
    """A seeded sample of `num` held-out (eval and OOD) snapshots, sorted."""
    held_out = np.concatenate([run.split["eval"], run.split["ood"]])
    chosen = np.random.default_rng(seed).choice(held_out, min(num, len(held_out)), replace=False)
    return np.sort(chosen)


def analyse(workdir: str, num_snapshots: int, seed: int) -> dict:
    """The rows of one run: for each state (init, trained) and kind, the relative and function changes."""
    the_zoo = zoo.load(workdirs.run_zoo_path(workdir))
    run, trained = workdirs.load_run(workdir, the_zoo=the_zoo)
    models = {"init": workdirs.load_run(workdir, "init", the_zoo)[1], "trained": trained}
    if not run.objective.reads_weights:
        raise ValueError(
            f"{workdir} is an {run.objective.name} run: its embedding reads no weights, so nothing to permute."
        )
    config = run.config
    snapshots = sample_snapshots(run, num_snapshots, seed)
    params = jax.tree.map(lambda x: np.asarray(x[snapshots]), the_zoo.params)
    behaviour = jax.tree.map(lambda x: np.asarray(x[snapshots]), the_zoo.behaviour)
    inputs = run.family.emulation_data(behaviour)["inputs"]
    variants = {kind: permuted_params(kind, run.spec, seed, params) for kind in KINDS}
    changes = {kind: np.asarray(function_change(params, variants[kind], inputs)) for kind in KINDS}
    other = np.roll(np.arange(len(snapshots)), 1)  # θ' of snapshot i: the previous one in the sample
    rows, points, absolute = [], {}, {}
    for state in STATES:
        encoder = models[state].encoder
        embed = lambda p, encoder=encoder: batches.apply_in_batches(encoder, p)
        base = embed(params)
        scale = float(np.mean(np.linalg.norm(base - base[other], axis=1)))
        moved = {kind: np.linalg.norm(base - embed(variants[kind]), axis=1) for kind in KINDS}
        incorrect = [k for k in KINDS if k != "correct"]
        correlation = statistics.rank_correlation(
            np.concatenate([moved[k] for k in incorrect]), np.concatenate([changes[k] for k in incorrect])
        )
        for kind in KINDS:
            rows.append(
                dict(
                    encoder=config.encoder.name,
                    state=state,
                    kind=kind,
                    relative_change=float(np.mean(moved[kind])) / scale,
                    embedding_change=float(np.mean(moved[kind])),
                    function_change=float(np.mean(changes[kind])),
                    rank_correlation=correlation,
                    snapshots=len(snapshots),
                    objective=run.objective.name,
                    scale=scale,
                )
            )
        points[state] = {kind: (changes[kind].tolist(), (moved[kind] / scale).tolist()) for kind in KINDS}
        absolute[state] = {kind: moved[kind] for kind in KINDS}
    return {"rows": rows, "points": points, "absolute": absolute}


def summary(results: list[dict]) -> list[dict]:
    """Trained against initialised, pooled over the runs of one encoder and objective (its seeds), per incorrect
    kind: the ratio of the mean absolute embedding change and of the mean relative change (each over the
    spread between snapshots of its own state), each with its 95 % bootstrap interval over seeds and snapshots
    (`statistics.ratio_interval`), and the ratio of the spreads, which is what separates the two."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        first = result["rows"][0]
        groups.setdefault((first["encoder"], first["objective"]), []).append(result)
    out = []
    for (encoder, objective), members in groups.items():
        scales = {state: np.array([_row(m, state, "correct")["scale"] for m in members]) for state in STATES}
        for kind in KINDS[1:]:
            moved = {state: np.stack([m["absolute"][state][kind] for m in members]) for state in STATES}  # [seeds, n]
            relative = {state: moved[state] / scales[state][:, None] for state in STATES}
            row = dict(encoder=encoder, objective=objective, kind=kind, runs=len(members))
            for name, values in (("absolute", moved), ("relative", relative)):
                row[f"{name}_ratio"] = float(values["trained"].mean() / values["init"].mean())
                row[f"{name}_interval"] = list(statistics.ratio_interval(values["trained"], values["init"]))
            row["spread_ratio"] = float(scales["trained"].mean() / scales["init"].mean())
            out.append(row)
    return out


def _row(result: dict, state: str, kind: str) -> dict:
    """A run's row of one state and kind."""
    return next(r for r in result["rows"] if (r["state"], r["kind"]) == (state, kind))


def _label(workdir: str, encoder: str, labels: list[str]) -> str:
    """The run's name in figures and tables: its encoder, with its workdir's last part when two share one."""
    return encoder if labels.count(encoder) == 1 else f"{encoder} ({os.path.basename(os.path.normpath(workdir))})"


def plot(results: list[dict], names: list[str], path: str) -> None:
    """Relative change per kind (init hatched, trained solid) for every run; embedding vs function change."""
    figure, (bars, scatter) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / (2 * len(results))
    for r, (result, name) in enumerate(zip(results, names, strict=True)):
        for s, state in enumerate(STATES):
            values = [_row(result, state, k)["relative_change"] for k in KINDS]
            x = np.arange(len(KINDS)) + (2 * r + s) * width - 0.4 + width / 2
            bars.bar(
                x,
                values,
                width,
                color=f"C{r}",
                alpha=1.0 if state == "trained" else 0.45,
                hatch=None if state == "trained" else "//",
                label=f"{name}, {state}",
            )
        for kind in KINDS[1:]:
            change, moved = result["points"]["trained"][kind]
            scatter.scatter(change, moved, s=6, color=f"C{r}", alpha=0.5, label=name if kind == KINDS[1] else None)
    bars.set_xticks(np.arange(len(KINDS)), [k.replace("_", "\n") for k in KINDS], fontsize=7)
    bars.set_yscale("symlog", linthresh=1e-3)
    bars.set(ylabel="‖E(θ) - E(Pθ)‖ / ‖E(θ) - E(θ')‖", title="Embedding change per kind of permutation")
    bars.legend(fontsize=6, ncol=2)
    scatter.set(
        xlabel="function change (total variation between θ and Pθ)",
        ylabel="relative embedding change",
        title="Trained encoders, incorrect permutations",
    )
    scatter.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def make(workdirs: list[str], outdir: str, num_snapshots: int, seed: int, command: str = "") -> dict:
    """Analyses every run; writes the figure, the JSON and its markdown into `outdir`."""
    results = [analyse(w, num_snapshots, seed) for w in workdirs]
    encoders = [result["rows"][0]["encoder"] for result in results]
    names = [_label(w, e, encoders) for w, e in zip(workdirs, encoders, strict=True)]
    os.makedirs(outdir, exist_ok=True)
    figure = os.path.join(outdir, "permutation_analysis.png")
    plot(results, names, figure)
    rows = [{**row, "run": name} for result, name in zip(results, names, strict=True) for row in result["rows"]]
    result = dict(
        rows=rows,
        summary=summary(results),
        seed=seed,
        command=command,
        machine=provenance.machine(),
        kinds={kind: DESCRIPTIONS[kind] for kind in KINDS},
    )
    report.write(os.path.join(outdir, "permutation_analysis.json"), result)
    return {"rows": rows, "figure": figure}


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    workdirs = list(flags.FLAGS.workdir)
    make(
        workdirs,
        flags.FLAGS.outdir or workdirs[0],
        flags.FLAGS.num_snapshots,
        flags.FLAGS.seed,
        command=provenance.command(),
    )


if __name__ == "__main__":
    flags.DEFINE_list("workdir", None, "Trained runs (experiments.main workdirs), comma-separated.", required=True)
    flags.DEFINE_string("outdir", "", "Where the table and figure go (default: the first workdir).")
    flags.DEFINE_integer("num_snapshots", 64, "Held-out snapshots sampled per run.", lower_bound=2)
    flags.DEFINE_integer("seed", 0, "Seeds the sample and the permutations.")
    cli.define_cpu_devices_flag()
    cli.run_command(main, cli.workdir_list_problems)
