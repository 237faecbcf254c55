"""The probing gap: interactive probing against any fixed probing sequence, on combination locks.

  python -m experiments.analyses.probing_gap --preset=quick --outdir=/tmp/probing_gap    # m = 1..4, 128 LSTMs a zoo
  python -m experiments.analyses.probing_gap --preset=medium --outdir=/tmp/probing_gap   # m = 2..4, 1024 LSTMs a zoo

The paper proves that a prober which chooses its next input after seeing the last answer can need
exponentially fewer probing steps than any fixed probing sequence. A combination lock
(`weightspace.tasks.combination_lock`) is such a case: its label shows only once its code has been
entered, so a fixed sequence of L symbols reads the label of the locks whose code it contains (at most
L - m + 1 of the |Σ|^m codes), while a prober that reads the progress after each symbol finds any code
of m symbols in (|Σ| - 1) m (m + 1) / 2 + m.

For every code length m of the preset this builds (or finds) a zoo of LSTMs trained on their locks
(`<outdir>/zoos/m<m>`), trains the interactive and non-interactive probing encoders (same sizes, same
probe budget L, same training; by default each started on and held to the best prober of its kind,
`DEFAULT_VARIANTS` and `DEFAULT_OVERRIDES`) and DWSNet on it (`<outdir>/runs/...`, each an
`experiments.main` run with its downstream evaluation), and reads the label and the code of LSTMs of
held-out codes (the OOD split) that implement their lock. Beside the encoders, two references with no
learning read the same LSTMs within the same budget: the adaptive search
(`combination_lock.adaptive_search`) and the best fixed sequence (a de Bruijn prefix,
`combination_lock.fixed_read`). Between the two: the fixed sequence's answers read by the downstream
probe the encoders are scored with, fitted on the training codes (`READERS`): what a learned reader of
the best fixed probe reads of held-out codes. The same is done for several budgets L at one m.
`--encoders=interactive,noninteractive` trains only those.

A learned encoder always answers (an MLP probe on its embedding); a reference reads a label or
nothing, and is scored as if it guessed uniformly where it read nothing (read + (1 - read) / K), so
every row is on the same accuracy scale, with chance at 1 / K. The bounds drawn beside them hold for
any LSTM that implements its lock: the fraction of codes the budget covers (exactly, over all codes:
every code the adaptive search finds within L symbols; the codes a de Bruijn prefix of L holds),
guess-adjusted the same way.

Writes into `outdir`: `probing_gap.json` (every row, and the command, machine and wall time),
`probing_gap.md` (the tables, rendered from it by `experiments.report`), `probing_gap_m.png`
(accuracy against m) and `probing_gap_budget.png` (accuracy against L). Runs and zoos are reused
when finished, so an interrupted invocation resumes.
"""

import ast
import dataclasses
import importlib
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
from absl import flags

from experiments import report
from experiments.analyses import tables
from experiments.configs import common as config_common
from experiments.configs import schema as config_schema
from experiments.run import context, evaluate, layout, workdirs
from experiments.run import model as model_lib
from weightspace import cli, encoders, lstm, ownership, probes, provenance, schema, statistics, zoo
from weightspace.tasks import combination_lock as cl
from zoo_builder import build
from zoo_builder.configs import common as zoo_common

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib import ticker

ENCODERS = ("interactive", "noninteractive", "dwsnet")
REFERENCES = ("adaptive", "fixed")
# The references' answers read by the downstream probe the encoders are scored with (fitted on the training
# codes): the fixed sequence's as the sequence of answers and pooled (how often each answer class occurs), the
# adaptive search's pooled. What a learned reader of each best prober reads of held-out codes, with no
# encoder: what the learned reader loses, apart from what the prober finds.
READERS = ("fixed_read_by_probe", "fixed_pooled_by_probe", "adaptive_pooled_by_probe")
# The subset every number is read on: LSTMs of held-out codes that implement their lock.
SUBSET = "ood_trained"
PREDICTOR = "mlp"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one preset runs.

    Attributes:
      code_lengths: the m of every zoo.
      budget: the probe budget L of the accuracy-against-m curves.
      sweep_code_length: the m of the accuracy-against-L curves, and `sweep_budgets` their L (references);
        `learned_budgets` the L at which the probing encoders are trained for it too.
      zoo_preset, experiment_preset: the zoo builder's and the encoders' presets.
      num_runs, snapshot_steps: the zoos' size and snapshots.
    """

    code_lengths: tuple[int, ...]
    budget: int
    sweep_code_length: int
    sweep_budgets: tuple[int, ...]
    learned_budgets: tuple[int, ...]
    zoo_preset: str
    experiment_preset: str
    num_runs: int
    snapshot_steps: tuple[int, ...]
    alphabet_size: int = 4
    num_labels: int = 4


PLANS = {
    "paper": Plan(
        (1, 2, 3, 4, 5, 6),
        64,
        5,
        (8, 16, 32, 48, 64, 96),
        (16, 32, 64, 96),
        "paper",
        "paper",
        1000,
        (0, 100, 200, 500, 1000, 2000, 5000, 10000, 20000),
    ),
    "medium": Plan((2, 3, 4), 36, 4, (6, 12, 18, 24, 30, 36, 48), (36,), "medium", "medium", 1024, (0, 100, 200, 500)),
    "quick": Plan((1, 2, 3, 4), 36, 4, (6, 12, 18, 24, 30, 36, 48), (36,), "quick", "quick", 128, (0, 100, 200, 500)),
    "smoke": Plan((2,), 6, 2, (3, 6, 11), (6,), "smoke", "smoke", 16, (0, 50, 100)),
}


def zoo_config(plan: Plan, code_length: int):
    """The zoo builder's config of the zoo of code length m."""
    config = zoo_common.family_config(cl.CombinationLock, plan.zoo_preset)
    config.task.settings.update(code_length=code_length, alphabet_size=plan.alphabet_size, num_labels=plan.num_labels)
    config.num_runs = plan.num_runs
    config.train.snapshot_steps = plan.snapshot_steps
    return config


@dataclasses.dataclass(frozen=True)
class Options:
    """What every run of an invocation shares beyond the preset.

    Attributes:
      variants: named departures (experiments/configs/common.py VARIANTS).
      overrides: (config key, value) pairs, each set on every run whose config has the key (e.g.
        ("encoder.answers", "logits") reaches the probing encoders only).
    """

    variants: tuple[str, ...] = ()
    overrides: tuple[tuple[str, object], ...] = ()

    @classmethod
    def parse(cls, variants: Sequence[str], overrides: Sequence[str]) -> "Options":
        """From variant names and "key=value" strings (values read as Python literals, else strings)."""
        pairs = []
        for text in overrides:
            key, separator, value = text.partition("=")
            if not separator or not key:
                raise ValueError(f"Override {text!r} is not key=value (e.g. train.num_steps=6000).")
            try:
                pairs.append((key, ast.literal_eval(value)))
            except (ValueError, SyntaxError):
                pairs.append((key, value))
        config_common.parse_arg(",".join(("smoke", *variants)))  # a bad variant fails here, before any run
        return cls(tuple(variants), tuple(pairs))

    @property
    def tag(self) -> str:
        """The options as a directory name, so runs with other options never share a workdir."""
        return ",".join((*self.variants, *(f"{k}={v}" for k, v in self.overrides))) or "paper"

    def apply(self, config: ml_collections.ConfigDict) -> None:
        """Sets each override on `config` where it has the key (a TypeError for a value of another type)."""
        for key, value in self.overrides:
            if _has_key(config, key):
                config.update_from_flattened_dict({key: value})


# Each kind of probing encoder starts on its best prober (the adaptive search; the de Bruijn prefix), held
# there by a prior that outweighs what the probe MLP learns: emulation alone neither finds the adaptive
# strategy nor keeps it (experiments/RESULTS.md, "The probing gap with the probes started on each kind's
# best prober").
DEFAULT_VARIANTS = ("condition_every", "probe_policy")
# Probing encoders read only the answers (the bounds are about what a lock outputs, and a trained LSTM's
# logits lean towards its label before its code is entered), pooled as well as in order (a lock shows its
# label at a step that depends on its code); the prior scale that holds the probes on their prober.
DEFAULT_OVERRIDES = ("encoder.answers=argmax", "encoder.pool_answers=True", "encoder.prior_scale=30.0")


def run_config(encoder: str, plan: Plan, options: Options, zoo_path: str, budget: int, seed: int):
    """An encoder's experiment config on the zoo at `zoo_path`; a probing encoder probes `budget` symbols."""
    arg = ",".join((plan.experiment_preset, *options.variants))
    config = importlib.import_module(f"experiments.configs.{encoder}").get_config(arg)
    config.zoo.dataset = cl.CombinationLock.name
    config.zoo.path = zoo_path
    config.seed = seed
    if encoders.probes(encoder):
        config.encoder.probe_length = budget
    options.apply(config)
    return config


def guessed(read: float, num_labels: int) -> float:
    """Accuracy of a reader that guesses uniformly where it read nothing."""
    return read + (1.0 - read) / num_labels


def reference_rows(the_zoo: zoo.Zoo, snapshots: np.ndarray, budget: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The adaptive and fixed references and their bounds on `snapshots` within `budget` symbols, and the label
    each read of each snapshot ({row: [len(snapshots)]}, -1 where it read none)."""
    family = context.zoo_family(the_zoo)
    m, size, labels = family.code_length, family.alphabet_size, family.num_labels
    params = jax.tree.map(lambda x: jnp.asarray(x[snapshots]), the_zoo.params)
    true_code, true_label = the_zoo.metadata["code"][snapshots], the_zoo.metadata["label"][snapshots]
    probe = cl.fixed_probe(size, m, budget)
    codes, code_outputs = map(jnp.asarray, cl.consistent_codes(probe, m, size, labels))

    @jax.jit
    @jax.vmap
    def read(params):
        model = lstm.Bound(params)
        adaptive_code, adaptive_label, _ = cl.adaptive_search(model, m, size, budget)
        answers = jnp.argmax(model.apply(jax.nn.one_hot(probe, size)), axis=-1)
        return {"adaptive": (adaptive_code, adaptive_label), "fixed": cl.fixed_read(answers, codes, code_outputs)}

    @jax.jit
    @jax.vmap
    def found_by_adaptive_search(code):
        return cl.adaptive_search(cl.LockAutomaton(code, jnp.int32(0), size, labels), m, size, budget)[1] == 0

    bounds = {
        "adaptive": float(np.mean(found_by_adaptive_search(codes))),
        "fixed": cl.fixed_coverage(m, size, budget),
    }
    results = jax.device_get(read(params)) if len(snapshots) else {}
    rows, predicted = [], {}
    for name in REFERENCES:
        row = dict(row=name, bound=guessed(bounds[name], labels), n=len(snapshots))
        if len(snapshots):
            code, label = results[name]
            predicted[name] = np.asarray(label)
            row["label_read"] = float(np.mean(label == true_label))
            row["label_accuracy"] = guessed(row["label_read"], labels)
            row["code_accuracy"] = float(np.mean(np.all(code == true_code, axis=1)))
        rows.append(row)
    return rows, predicted


def probe_labels(run_context: context.RunContext, features: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """The labels the downstream probe (`PREDICTOR`, fitted on the train split with the evaluation's seed) reads off
    `features` [N, F] for the snapshots `subset`: [len(subset)]."""
    target = next(t for t in run_context.targets if t.name == "label")
    hidden = probes.PREDICTORS[PREDICTOR]
    probe = probes.fit(target, features, run_context.split["train"], hidden_sizes=hidden, seed=0)
    return np.asarray(probe.predict(features[subset])).reshape(len(subset))


def adaptive_answers(params, code_length: int, alphabet_size: int, budget: int) -> jax.Array:
    """Every LSTM's answers (its most likely output) along the adaptive search's `budget` symbols: [N, budget]."""
    policy = cl.AdaptiveSearch(code_length, alphabet_size)

    def answers(params):
        model = lstm.Bound(params)

        def step(carry, _):
            state, search = carry
            logits, state = model.step(policy.propose(search), state)
            return (state, policy.update(search, logits)), jnp.argmax(logits)

        start = (model.initial_state(), policy.initial_state())
        return jax.lax.scan(step, start, None, length=budget)[1]

    return jax.jit(jax.vmap(answers))(params)


def reader_rows(
    run_context: context.RunContext, the_zoo: zoo.Zoo, subset: np.ndarray, budget: int
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The `READERS`: the answers of every LSTM along the fixed sequence of `budget` symbols, and along the
    adaptive search's, read by the downstream probe (`PREDICTOR`) fitted on the train split and scored on
    `subset`; and the label each read of each snapshot of `subset`."""
    family = run_context.family
    m, size = family.code_length, family.alphabet_size
    probe = jax.nn.one_hot(cl.fixed_probe(size, m, budget), size)
    answer = jax.jit(jax.vmap(lambda params: jnp.argmax(lstm.Bound(params).apply(probe), axis=-1)))
    answers = jax.nn.one_hot(np.asarray(answer(the_zoo.params)), family.output_size)  # [N, L, m + K]
    adaptive = jax.nn.one_hot(np.asarray(adaptive_answers(the_zoo.params, m, size, budget)), family.output_size)
    features = dict(zip(READERS, (answers.reshape(len(answers), -1), answers.sum(1), adaptive.sum(1)), strict=True))
    code = [t for t in run_context.targets if t.name == "code"]
    rows, predicted = [], {}
    for name, values in features.items():
        values = np.asarray(values)
        code_scores = evaluate.probe_scores(code, values, run_context.split["train"], {SUBSET: subset}, seed=0)
        predicted[name] = probe_labels(run_context, values, subset)
        label_accuracy = float(np.mean(predicted[name] == the_zoo.metadata["label"][subset]))
        code_accuracy = code_scores[PREDICTOR][SUBSET]["code_accuracy"]
        rows.append(dict(row=name, n=len(subset), label_accuracy=label_accuracy, code_accuracy=code_accuracy))
    return rows, predicted


def label_statistics(predicted: np.ndarray, labels: np.ndarray, runs: np.ndarray, num_labels: int) -> dict:
    """The interval and the shuffled null of a row's label accuracy, from the labels it read [seeds, n] of
    snapshots of true `labels` [n] and `runs` [n] (-1: none read, a uniform guess).

    The runs are the independent units (each an LSTM trained on its own lock; its snapshots are not): the
    95 % interval resamples runs, and seeds too where there are several.
    """
    predicted = np.atleast_2d(predicted)
    hits = (predicted == labels) + (predicted < 0) / num_labels  # [seeds, n]: expected score of each read
    low, high = statistics.bootstrap_interval(statistics.per_unit(hits, runs))
    nulls = np.array([statistics.shuffled_null(p, labels) for p in predicted])  # [seeds, 2]
    return dict(label_interval=[low, high], null_mean=float(nulls[:, 0].mean()), null_q95=float(nulls[:, 1].mean()))


def point_statistics(the_zoo: zoo.Zoo, subset: np.ndarray) -> dict:
    """How many independent units stand behind a point: its runs and their distinct locks (code and label), and
    the score of always answering their commonest label."""
    runs = the_zoo.metadata["run"][subset]
    first = np.unique(runs, return_index=True)[1]  # one snapshot of each run
    locks = np.concatenate([the_zoo.metadata["code"][subset][first], the_zoo.metadata["label"][subset][first, None]], 1)
    return dict(
        n_runs=len(first),
        n_locks=len(np.unique(locks, axis=0)),
        majority=statistics.majority_baseline(the_zoo.metadata["label"][subset][first]),
    )


def opened_fraction(encoder, params, code_length: int) -> float:
    """Fraction of the LSTMs of `params` (every tensor [batch, ...]) whose lock the probing `encoder`'s probes
    open: their answers show a label.

    The probing inputs are replayed through each LSTM from its initial state (as in the dialogue), so
    this is what the encoder was shown, whatever it made of it.
    """
    probes = jnp.transpose(encoder.probing_inputs(params), (1, 2, 0, 3))  # [batch, parallel, time, input]
    logits = jax.vmap(lambda p, x: lstm.Bound(p).apply(x))(params, probes)  # [batch, parallel, time, output]
    return float(np.mean(np.any(np.asarray(jnp.argmax(logits, axis=-1)) >= code_length, axis=(1, 2))))


def encoder_row(result: dict, encoder: str, seed: int) -> dict:
    scores = result["probes"][PREDICTOR][SUBSET]
    return dict(
        row=encoder,
        seed=seed,
        label_accuracy=scores.get("label_accuracy"),
        code_accuracy=scores.get("code_accuracy"),
        loss=result["loss"]["ood"],
    )


def run_point(
    plan: Plan, outdir: str, options: Options, seeds: int, m: int, budget: int, learned: tuple[str, ...]
) -> tuple[list[dict], dict]:
    """Every row at one (m, L): the references, and the `learned` encoders over seeds."""
    zoo_path = build.build(zoo_config(plan, m), layout.gap_zoo(outdir, m))
    the_zoo = zoo.load(zoo_path)
    run_context = context.RunContext.of(run_config("interactive", plan, options, zoo_path, budget, 0), the_zoo)
    trained = run_context.family.trained_snapshots(the_zoo.metadata)
    ood = run_context.split["ood"]
    point = dict(code_length=m, budget=budget)
    subset = ood[trained[ood]]
    subset_params = jax.tree.map(lambda x: jnp.asarray(x[subset]), the_zoo.params)
    point.update(point_statistics(the_zoo, subset))
    references, predicted = reference_rows(the_zoo, subset, budget)
    readers, read = reader_rows(run_context, the_zoo, subset, budget)
    rows, predicted = [{**point, **row} for row in (*references, *readers)], {**predicted, **read}
    for encoder in learned:  # its seeds as one sweep where that is faster (tables.ensure_sweep)
        configs = [run_config(encoder, plan, options, zoo_path, budget, seed) for seed in range(seeds)]
        reads = budget if encoders.probes(encoder) else None  # an encoder of the weights reads no budget
        paths = [layout.gap_run(outdir, options.tag, m, reads, encoder, s) for s in range(seeds)]
        for seed, result in enumerate(tables.ensure_sweep(configs, paths)):
            row = {**point, **encoder_row(result, encoder, seed)}
            if encoders.probes(encoder):  # which locks its probes open
                initial = model_lib.make_encoder(configs[seed], run_context.family, run_context.spec)
                row["opened_at_init"] = opened_fraction(initial, subset_params, m)
                row["opened"] = opened_fraction(workdirs.load_model(paths[seed]).encoder, subset_params, m)
            rows.append(row)
        embeddings = [np.load(layout.run_file(path, layout.EMBEDDINGS)) for path in paths]  # what was evaluated
        predicted[encoder] = np.stack([probe_labels(run_context, e, subset) for e in embeddings])
    labels, runs = the_zoo.metadata["label"][subset], the_zoo.metadata["run"][subset]
    for row in rows:
        if len(subset) and row["row"] in predicted:
            row.update(label_statistics(predicted[row["row"]], labels, runs, run_context.family.num_labels))
    implements = float(np.mean(trained[the_zoo.metadata["step"] > 0]))
    return rows, dict(
        code_length=m, implements=implements, num_snapshots=len(the_zoo), ood_trained=int(trained[ood].sum())
    )


# The per-seed numbers of a row that `mean_rows` averages.
_MEANS = ("label_accuracy", "code_accuracy", "loss", "opened_at_init", "opened")


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per (m, L, row): the mean and std over seeds of the accuracies."""
    grouped: dict[tuple, list[dict]] = {}
    for r in rows:
        grouped.setdefault((r["code_length"], r["budget"], r["row"]), []).append(r)
    out = []
    for group in grouped.values():
        row = {k: v for k, v in group[0].items() if k not in ("seed", *_MEANS)}
        for metric in _MEANS:
            values = [g[metric] for g in group if g.get(metric) is not None]
            if values:
                row[metric], row[f"{metric}_std"] = float(np.mean(values)), float(np.std(values))
        out.append(row | {"seeds": len(group)})
    return out


STYLE = {
    "interactive": dict(color="C0", marker="o"),
    "noninteractive": dict(color="C1", marker="s"),
    "dwsnet": dict(color="C2", marker="^"),
    "adaptive": dict(color="C0", marker="o", linestyle="--", markerfacecolor="none"),
    "fixed": dict(color="C1", marker="s", linestyle="--", markerfacecolor="none"),
    "fixed_read_by_probe": dict(color="C3", marker="x", linestyle=":"),
    "fixed_pooled_by_probe": dict(color="C4", marker="+", linestyle=":"),
    "adaptive_pooled_by_probe": dict(color="C5", marker="*", linestyle=":"),
}


def _error_bar(row: dict) -> tuple[float, float]:
    """How far below and above its label accuracy a row's error bar reaches: its 95 % interval, or (results from
    before intervals) the std over seeds."""
    if "label_interval" in row:
        low, high = row["label_interval"]
        return max(0.0, row["label_accuracy"] - low), max(0.0, high - row["label_accuracy"])
    std = row.get("label_accuracy_std", 0.0)
    return std, std


def plot(rows: list[dict], key: str, xlabel: str, title: str, num_labels: int, path: str) -> None:
    """Label accuracy of every row against `key` (m or L), with chance and both bounds."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name in (*ENCODERS, *READERS, *REFERENCES):
        points = sorted((r[key], r) for r in rows if r["row"] == name and "label_accuracy" in r)
        if points:
            x = [p for p, _ in points]
            y = [r["label_accuracy"] for _, r in points]
            error = np.array([_error_bar(r) for _, r in points]).T  # [2, points]: below, above
            label = f"{name} reference (no learning)" if name in REFERENCES else name
            axis.errorbar(x, y, yerr=error, label=label, capsize=3, **STYLE[name])
    for name, style in (("adaptive", ":"), ("fixed", "-.")):
        points = sorted({(r[key], r["bound"]) for r in rows if r["row"] == name})
        axis.plot(*zip(*points, strict=True), style, color="grey", label=f"{name} coverage bound")
    axis.axhline(1.0 / num_labels, color="black", linewidth=0.8, label="chance")
    majority = sorted({(r[key], r["majority"]) for r in rows if "majority" in r})
    if majority:
        axis.plot(*zip(*majority, strict=True), "k:", linewidth=1.0, label="commonest label of these runs")
    axis.set(xlabel=xlabel, ylabel="label accuracy", title=f"{title}\nheld-out codes, LSTMs that implement their lock")
    axis.set_ylim(0, 1.05)
    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # m and L are whole numbers
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def make(
    outdir: str, preset: str, options: Options, seeds: int, command: str = "", encoders: Sequence[str] = ENCODERS
) -> dict:
    """Runs or reuses every zoo, run (of `encoders`) and reference of `preset`; writes the figures, the JSON and
    its markdown."""
    if preset not in PLANS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PLANS)}.")
    unknown = sorted(set(encoders) - set(ENCODERS))
    if unknown:
        raise ValueError(f"Unknown encoder(s) {unknown}; choose from {list(ENCODERS)}.")
    encoders = tuple(e for e in ENCODERS if e in encoders)
    plan = PLANS[preset]
    ownership.claim(outdir, "probing_gap")
    start = time.time()
    rows, zoos = [], []
    for m in plan.code_lengths:
        point_rows, zoo_row = run_point(plan, outdir, options, seeds, m, plan.budget, encoders)
        rows += point_rows
        zoos.append(zoo_row)
    for budget in plan.sweep_budgets:
        if budget != plan.budget or plan.sweep_code_length not in plan.code_lengths:
            learned = encoders if budget in plan.learned_budgets else ()
            rows += run_point(plan, outdir, options, seeds, plan.sweep_code_length, budget, learned)[0]
    by_m = mean_rows([r for r in rows if r["budget"] == plan.budget])
    by_budget = mean_rows([r for r in rows if r["code_length"] == plan.sweep_code_length])
    wall = time.time() - start
    figures = {
        "m": os.path.join(outdir, "probing_gap_m.png"),
        "budget": os.path.join(outdir, "probing_gap_budget.png"),
    }
    size, labels = plan.alphabet_size, plan.num_labels
    plot(
        by_m,
        "code_length",
        "code length m",
        f"|Σ| = {size}, K = {labels}, budget L = {plan.budget}",
        labels,
        figures["m"],
    )
    plot(
        by_budget,
        "budget",
        "probe budget L (symbols)",
        f"|Σ| = {size}, K = {labels}, m = {plan.sweep_code_length}",
        labels,
        figures["budget"],
    )
    result = dict(
        preset=preset,
        options=options.tag,
        seeds=seeds,
        plan=dataclasses.asdict(plan),
        zoos=zoos,
        rows=rows,
        by_code_length=by_m,
        by_budget=by_budget,
        wall_s=wall,
        command=command,
        machine=provenance.machine(),
        encoders=encoders,
        readers=READERS,
        references=REFERENCES,
        subset=SUBSET,
        predictor=PREDICTOR,
    )
    report.write(os.path.join(outdir, "probing_gap.json"), result)
    return result


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line, before anything is written: the names, each override against the
    configs of the runs it reaches (a key no run has, a value out of its field's range), the outdir."""
    problems = [
        *cli.list_problems("variants", flag_values.variants, schema.Choice(*config_common.VARIANTS)),
        *cli.list_problems("encoders", flag_values.encoders, schema.Choice(*ENCODERS)),
        *cli.directory_problems("outdir", flag_values.outdir, "probing_gap"),
    ]
    if problems:
        return problems
    try:
        options = Options.parse(flag_values.variants, flag_values.overrides)
    except ValueError as error:
        return [str(error)]
    configs = [run_config(e, PLANS[flag_values.preset], Options(options.variants), "", 1, 0) for e in ENCODERS]
    for key, _ in options.overrides:
        if not any(_has_key(config, key) for config in configs):
            return [f"--overrides: no run's config has the key {key!r} (e.g. encoder.prior_scale, train.num_steps)"]
    for config in configs:
        try:
            options.apply(config)
        except (TypeError, ValueError) as error:
            return [f"--overrides: {' '.join(str(error).split())}"]
        problems += config_schema.problems(config)
    return sorted(set(problems))


def _has_key(config: ml_collections.ConfigDict, key: str) -> bool:
    *parents, leaf = key.split(".")
    for part in parents:
        config = config.get(part)
        if not isinstance(config, ml_collections.ConfigDict):
            return False
    return leaf in config


def main(argv):
    del argv
    cli.use_cpu_cores_as_devices(flags.FLAGS.cpu_devices)
    cli.quiet_library_logs()
    make(
        flags.FLAGS.outdir,
        flags.FLAGS.preset,
        Options.parse(flags.FLAGS.variants, flags.FLAGS.overrides),
        flags.FLAGS.seeds,
        command=provenance.command(),
        encoders=flags.FLAGS.encoders,
    )


if __name__ == "__main__":
    flags.DEFINE_enum("preset", "quick", list(PLANS), "Size: zoos, code lengths, budgets and training.")
    flags.DEFINE_list("variants", list(DEFAULT_VARIANTS), "Named departures of every run (see configs).")
    flags.DEFINE_list("overrides", list(DEFAULT_OVERRIDES), "key=value config overrides of every run that has the key.")
    flags.DEFINE_integer("seeds", 1, "Seeds per encoder.", lower_bound=1)
    flags.DEFINE_list("encoders", list(ENCODERS), "The learned encoders to train (default: all three).")
    flags.DEFINE_string("outdir", None, "Where zoos, runs, tables and figures go.", required=True)
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
