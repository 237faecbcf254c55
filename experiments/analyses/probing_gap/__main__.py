"""The probing-gap command (see the package's docstring):

python -m experiments.analyses.probing_gap --preset=quick --outdir=DIR
"""

from absl import flags

from experiments.analyses.probing_gap.plans import (
    DEFAULT_OVERRIDES,
    DEFAULT_VARIANTS,
    ENCODERS,
    PLANS,
    Options,
    has_key,
    run_config,
)
from experiments.analyses.probing_gap.points import make
from experiments.configs import common as config_common
from experiments.configs import schema as config_schema
from weightspace import cli, provenance, schema


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line, before anything is written: the names, each override against the
    configs of the runs it reaches (a key none of `--encoders` has, a value out of its field's range), the
    outdir."""
    problems = [
        *cli.list_problems("variants", flag_values.variants, schema.Choice(*config_common.VARIANTS)),
        *cli.list_problems("encoders", flag_values.encoders, schema.Choice(*ENCODERS)),
        *cli.directory_problems("outdir", flag_values.outdir, "probing_gap"),
    ]
    if flag_values.learned_budgets is not None:
        sweep = PLANS[flag_values.preset].sweep_budgets
        problems += cli.list_problems("learned_budgets", flag_values.learned_budgets, schema.Choice(*map(str, sweep)))
    if problems:
        return problems
    try:
        options = Options.parse(flag_values.variants, flag_values.overrides)
    except ValueError as error:
        return [str(error)]
    plan, variants = PLANS[flag_values.preset], Options(options.variants)
    configs = [run_config(e, plan, variants, "", 1, 0) for e in flag_values.encoders]  # the runs it makes
    for key, _ in options.overrides:
        if not any(has_key(config, key) for config in configs):
            return [f"--overrides: no run's config has the key {key!r} (e.g. encoder.prior_scale, train.num_steps)"]
    for config in configs:
        try:
            options.apply(config)
        except (TypeError, ValueError) as error:
            return [f"--overrides: {' '.join(str(error).split())}"]
        problems += config_schema.problems(config)
    return sorted(set(problems))


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    make(
        flags.FLAGS.outdir,
        flags.FLAGS.preset,
        Options.parse(flags.FLAGS.variants, flags.FLAGS.overrides),
        flags.FLAGS.seeds,
        command=provenance.command(),
        encoders=flags.FLAGS.encoders,
        zoo_runs=flags.FLAGS.zoo_runs,
        learned_budgets=None
        if flags.FLAGS.learned_budgets is None
        else cli.parse_list("learned_budgets", flags.FLAGS.learned_budgets, int),
        heldout_locks=flags.FLAGS.heldout_locks,
    )


if __name__ == "__main__":
    flags.DEFINE_enum("preset", "quick", list(PLANS), "Size: zoos, code lengths, budgets and training.")
    flags.DEFINE_list("variants", list(DEFAULT_VARIANTS), "Named departures of every run (see configs).")
    flags.DEFINE_list("overrides", list(DEFAULT_OVERRIDES), "key=value config overrides of every run that has the key.")
    flags.DEFINE_integer(
        "zoo_runs", None, "LSTMs per zoo (default: the preset's); more hold out more distinct locks.", lower_bound=1
    )
    flags.DEFINE_list(
        "learned_budgets", None, "Budgets L of the sweep the encoders are trained at too (default: the preset's)."
    )
    flags.DEFINE_integer(
        "heldout_locks",
        0,
        "Distinct held-out locks each point pools OOD folds (split.ood_fold 0, 1, ...) to reach; a point that no "
        "number of folds brings there keeps fold 0 (default: fold 0 only).",
        lower_bound=0,
    )
    flags.DEFINE_integer("seeds", 1, "Seeds per encoder (per OOD fold).", lower_bound=1)
    flags.DEFINE_list("encoders", list(ENCODERS), "The learned encoders to train (default: all three).")
    flags.DEFINE_string("outdir", None, "Where zoos, runs, tables and figures go.", required=True)
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
