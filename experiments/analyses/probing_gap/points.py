"""Every row of a probing-gap invocation: each point's references, readers and learned encoders (trained or
reused), their means over seeds, the figures and `probing_gap.json`."""

import dataclasses
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments import report
from experiments.analyses import tables
from experiments.analyses.probing_gap import figures
from experiments.analyses.probing_gap.plans import ENCODERS, PLANS, Options, Plan, run_config, zoo_config
from experiments.analyses.probing_gap.readers import (
    LEARNED_READER,
    PREDICTOR,
    READERS,
    REFERENCES,
    SUBSET,
    encoder_answers,
    label_statistics,
    opened_fraction,
    point_statistics,
    pooled,
    probe_labels,
    read_features,
    reader_rows,
    reference_rows,
)
from experiments.run import context, layout, workdirs
from experiments.run import model as model_lib
from weightspace import encoders, errors, ownership, provenance, zoo
from zoo_builder import build


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
    plan: Plan,
    outdir: str,
    options: Options,
    seeds: int,
    m: int,
    budget: int,
    learned: tuple[str, ...],
    runs: dict[str, bool],
) -> tuple[list[dict], dict]:
    """Every row at one (m, L): the references, the readers and the `learned` encoders over seeds, in each OOD
    fold the point pools (`heldout_folds`; a row per fold and seed, its statistics over all of them). `runs`
    gains each learned run's path (relative to `outdir`) and whether this command trains it."""
    zoo_path = build.build(zoo_config(plan, m), layout.gap_zoo(outdir, m))
    the_zoo = zoo.load(zoo_path)
    trained = context.zoo_family(the_zoo).trained_snapshots(the_zoo.metadata)
    folds = heldout_folds(plan, options, the_zoo, zoo_path, budget, trained)
    subsets, train_subsets = heldout(folds, trained)
    subset = np.concatenate(subsets)  # the folds hold out disjoint codes
    point = dict(code_length=m, budget=budget, folds=len(folds), **point_statistics(the_zoo, subsets, train_subsets))
    references, predicted = reference_rows(the_zoo, subset, budget)
    rows, by_fold = [{**point, **row} for row in references], []  # by_fold: {row: labels read [seeds?, fold's n]}
    for fold, (run_context, fold_subset, train_subset) in enumerate(zip(folds, subsets, train_subsets, strict=True)):
        readers, read = reader_rows(run_context, the_zoo, fold_subset, budget)
        rows += [{**point, **row, "ood_fold": fold} for row in readers]
        for encoder in learned:  # its seeds as one sweep where that is faster (tables.ensure_sweep)
            configs = [run_config(encoder, plan, options, zoo_path, budget, seed, fold) for seed in range(seeds)]
            reads = budget if encoders.probes(encoder) else None  # an encoder of the weights reads no budget
            paths = [layout.gap_run(outdir, options.tag, m, reads, encoder, s, fold) for s in range(seeds)]
            for path in paths:  # whether this command trains it (a run two points share is counted once)
                runs.setdefault(os.path.relpath(path, outdir), not tables.has_evaluation(path))
            learned_reads = []
            for seed, result in enumerate(tables.ensure_sweep(configs, paths)):
                row = {**point, **encoder_row(result, encoder, seed), "ood_fold": fold}
                if encoders.probes(encoder):
                    opened, reader_row, labels_read = probed_rows(
                        run_context, the_zoo, fold_subset, train_subset, configs[seed], paths[seed]
                    )
                    row.update(opened)
                    rows.append({**point, **reader_row, "seed": seed, "ood_fold": fold})
                    learned_reads.append(labels_read)
                rows.append(row)
            if learned_reads:
                read[LEARNED_READER.format(encoder)] = np.stack(learned_reads)
            embeddings = [np.load(layout.run_file(path, layout.EMBEDDINGS)) for path in paths]  # what was evaluated
            read[encoder] = np.stack([probe_labels(run_context, e, fold_subset) for e in embeddings])
        by_fold.append(read)
    predicted |= {name: np.concatenate([read[name] for read in by_fold], axis=-1) for name in by_fold[0]}
    labels, units = the_zoo.metadata["label"][subset], the_zoo.metadata["run"][subset]
    for row in rows:
        if len(subset) and row["row"] in predicted:
            row.update(label_statistics(predicted[row["row"]], labels, units, folds[0].family.num_labels))
    implements = float(np.mean(trained[the_zoo.metadata["step"] > 0]))
    return rows, dict(code_length=m, implements=implements, num_snapshots=len(the_zoo), ood_trained=len(subset))


def heldout_folds(
    plan: Plan, options: Options, the_zoo: zoo.Zoo, zoo_path: str, budget: int, trained: np.ndarray
) -> list[context.RunContext]:
    """The OOD folds a point pools (`split.ood_fold` 0, 1, ..., each holding out other codes), as run contexts:
    the fewest whose held-out LSTMs that implement their lock (`trained` [N]) hold `plan.heldout_locks`
    distinct locks; fold 0 alone where no number of folds holds that many (a lock space too small for it)."""
    folds = []
    while True:
        config = run_config("interactive", plan, options, zoo_path, budget, 0, len(folds))
        try:
            folds.append(context.RunContext.of(config, the_zoo))
        except errors.ConfigError:
            if not folds:
                raise
            return folds[:1]  # past the last fold
        if point_statistics(the_zoo, *heldout(folds, trained))["n_locks"] >= plan.heldout_locks:
            return folds


def heldout(folds: Sequence[context.RunContext], trained: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each fold's held-out (OOD) and training snapshots of LSTMs that implement their lock (`trained` [N])."""
    return [f.split["ood"][trained[f.split["ood"]]] for f in folds], [
        f.split["train"][trained[f.split["train"]]] for f in folds
    ]


def probed_rows(
    run_context: context.RunContext,
    the_zoo: zoo.Zoo,
    subset: np.ndarray,
    train_subset: np.ndarray,
    config,
    path: str,
) -> tuple[dict, dict, np.ndarray]:
    """What a probing encoder's probes (in eval mode) show: the fraction of `subset` whose lock they open,
    untrained and trained, and of `train_subset` (the codes it was trained on) trained, so a prober that
    learned only the training codes' locks shows apart from one that learned to search; and its trained
    probes' answers, counted, read by the downstream probe (`LEARNED_READER`): what its prober found, apart
    from what its learned reader made of it.

    Returns:
      ({"opened_at_init", "opened", "opened_train"}, the reader's row, the labels it read of `subset`
      [len(subset)]).
    """
    m, family = run_context.family.code_length, run_context.family
    initial = model_lib.make_encoder(config, family, run_context.spec)
    initial.eval()  # as the trained one is read: probes drawn while training are argmaxes here
    every_lstm = jax.tree.map(jnp.asarray, the_zoo.params)
    answers = encoder_answers(workdirs.load_model(path).encoder, every_lstm)  # [N, parallel, time]
    at_init = encoder_answers(initial, jax.tree.map(lambda x: x[subset], every_lstm))
    opened = dict(
        opened_at_init=opened_fraction(at_init, m),
        opened=opened_fraction(answers[subset], m),
        opened_train=opened_fraction(answers[train_subset], m),
    )
    name = LEARNED_READER.format(config.encoder.name)
    row, labels_read = read_features(run_context, the_zoo, subset, name, pooled(answers, family.output_size))
    return opened, row, labels_read


def learned_readers(names: Sequence[str]) -> tuple[str, ...]:
    """The rows reading the trained probes' answers of the probing encoders among `names`."""
    return tuple(LEARNED_READER.format(name) for name in names if encoders.probes(name))


# The per-seed numbers of a row that `mean_rows` averages.
_MEANS = ("label_accuracy", "code_accuracy", "loss", "opened_at_init", "opened", "opened_train")


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per (m, L, row): the mean and std over seeds (and OOD folds) of the accuracies."""
    grouped: dict[tuple, list[dict]] = {}
    for r in rows:
        grouped.setdefault((r["code_length"], r["budget"], r["row"]), []).append(r)
    out = []
    for group in grouped.values():
        row = {k: v for k, v in group[0].items() if k not in ("seed", "ood_fold", *_MEANS)}
        for metric in _MEANS:
            values = [g[metric] for g in group if g.get(metric) is not None]
            if values:
                row[metric], row[f"{metric}_std"] = float(np.mean(values)), float(np.std(values))
        out.append(row | {"seeds": len(group)})
    return out


def make(
    outdir: str,
    preset: str,
    options: Options,
    seeds: int,
    command: str = "",
    encoders: Sequence[str] = ENCODERS,
    zoo_runs: int | None = None,
    learned_budgets: Sequence[int] | None = None,
    heldout_locks: int | None = None,
) -> dict:
    """Runs or reuses every zoo, run (of `encoders`) and reference of `preset` (its zoos of `zoo_runs` LSTMs,
    the encoders trained at `learned_budgets` of its budget sweep, and OOD folds pooled until each point holds
    out `heldout_locks` distinct locks, where given); writes the figures, the JSON and its markdown."""
    if preset not in PLANS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PLANS)}.")
    unknown = sorted(set(encoders) - set(ENCODERS))
    if unknown:
        raise ValueError(f"Unknown encoder(s) {unknown}; choose from {list(ENCODERS)}.")
    encoders = tuple(e for e in ENCODERS if e in encoders)
    plan = PLANS[preset] if zoo_runs is None else dataclasses.replace(PLANS[preset], num_runs=zoo_runs)
    if heldout_locks is not None:
        plan = dataclasses.replace(plan, heldout_locks=heldout_locks)
    if learned_budgets is not None:
        outside = sorted(set(learned_budgets) - set(plan.sweep_budgets))
        if outside:
            raise ValueError(f"learned budgets {outside} are not in the {preset} sweep's {list(plan.sweep_budgets)}.")
        plan = dataclasses.replace(plan, learned_budgets=tuple(sorted(learned_budgets)))
    ownership.claim(outdir, "probing_gap")
    start = time.time()
    rows, zoos, runs = all_rows(plan, outdir, options, seeds, encoders)
    by_m = mean_rows([r for r in rows if r["budget"] == plan.budget])
    by_budget = mean_rows([r for r in rows if r["code_length"] == plan.sweep_code_length])
    wall = time.time() - start
    plot_both(plan, by_m, by_budget, outdir)
    result = dict(
        preset=preset,
        options=options.tag,
        seeds=seeds,
        plan=dataclasses.asdict(plan),
        zoos=zoos,
        learned_runs=[dict(run=path, trained=fresh) for path, fresh in runs.items()],
        rows=rows,
        by_code_length=by_m,
        by_budget=by_budget,
        wall_s=wall,
        command=command,
        machine=provenance.machine(),
        encoders=encoders,
        readers=(*READERS, *learned_readers(encoders)),
        references=REFERENCES,
        subset=SUBSET,
        predictor=PREDICTOR,
    )
    report.write(layout.gap_file(outdir, layout.GAP_JSON), result)
    return result


def all_rows(
    plan: Plan, outdir: str, options: Options, seeds: int, encoders: tuple[str, ...]
) -> tuple[list[dict], list[dict], dict[str, bool]]:
    """Every row of the plan's points (each m at its budget, then each budget at the sweep's m), each zoo's
    facts, and each learned run's path with whether this command trained it."""
    rows, zoos, runs = [], [], {}
    for m in plan.code_lengths:
        point_rows, zoo_row = run_point(plan, outdir, options, seeds, m, plan.budget, encoders, runs)
        rows += point_rows
        zoos.append(zoo_row)
    for budget in plan.sweep_budgets:
        if budget != plan.budget or plan.sweep_code_length not in plan.code_lengths:
            learned = encoders if budget in plan.learned_budgets else ()
            rows += run_point(plan, outdir, options, seeds, plan.sweep_code_length, budget, learned, runs)[0]
    return rows, zoos, runs


def plot_both(plan: Plan, by_m: list[dict], by_budget: list[dict], outdir: str) -> None:
    """The figures against m (at the plan's budget) and against L (at the sweep's m)."""
    size, labels = plan.alphabet_size, plan.num_labels
    title = f"|Σ| = {size}, K = {labels}, budget L = {plan.budget}"
    figures.plot(by_m, "code_length", "code length m", title, labels, layout.gap_figure(outdir, "m"))
    title = f"|Σ| = {size}, K = {labels}, m = {plan.sweep_code_length}"
    figures.plot(by_budget, "budget", "probe budget L (symbols)", title, labels, layout.gap_figure(outdir, "budget"))
