"""What a probing-gap invocation runs: the presets' plans (zoos, code lengths, budgets, training), the options
every run shares, and each run's config."""

import ast
import dataclasses
import importlib
from collections.abc import Sequence

import ml_collections

from experiments.configs import common as config_common
from weightspace import encoders
from weightspace.tasks import combination_lock as cl
from zoo_builder.configs import common as zoo_common

# The learned encoders a point may train.
ENCODERS = ("interactive", "noninteractive", "dwsnet")


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
      heldout_locks: the distinct held-out locks a point pools OOD folds to reach (`points.heldout_folds`; 0:
        one fold, the paper's split).
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
    heldout_locks: int = 0


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
    # Code length 5 at the paper's budget (adaptive worst case 50 symbols; a fixed sequence covers 60 of 1,024
    # codes): where a learned prober must find the adaptive strategy to read most locks.
    "m5": Plan((5,), 64, 5, (16, 32, 48, 64, 96), (64,), "medium", "medium", 1024, (0, 100, 200, 500)),
    # The m5 point's training at every code length 1..5: the learned probers' curve against m at L = 64.
    "m1to5": Plan((1, 2, 3, 4, 5), 64, 5, (16, 32, 48, 64, 96), (64,), "medium", "medium", 1024, (0, 100, 200, 500)),
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
            if has_key(config, key):
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


def run_config(encoder: str, plan: Plan, options: Options, zoo_path: str, budget: int, seed: int, fold: int = 0):
    """An encoder's experiment config on the zoo at `zoo_path`, holding out the codes of OOD fold `fold`; a probing
    encoder probes `budget` symbols."""
    arg = ",".join((plan.experiment_preset, *options.variants))
    config = importlib.import_module(f"experiments.configs.{encoder}").get_config(arg)
    config.zoo.dataset = cl.CombinationLock.name
    config.zoo.path = zoo_path
    config.seed = seed
    config.split.ood_fold = fold
    if encoders.probes(encoder):
        config.encoder.probe_length = budget
    options.apply(config)
    return config


def has_key(config: ml_collections.ConfigDict, key: str) -> bool:
    *parents, leaf = key.split(".")
    for part in parents:
        config = config.get(part)
        if not isinstance(config, ml_collections.ConfigDict):
            return False
    return leaf in config
