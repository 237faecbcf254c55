"""The declared type and range of every field of an experiment config (`weightspace.schema`).

`problems(config)` is what `experiments.main` checks as it parses its flags, and what
`experiments.run.train` checks again for a config built in Python: nothing is written before it passes.
The names that only a zoo knows (a supervised or oracle target) are checked against the zoo once it is
loaded, still before the run writes a file.
"""

import ml_collections

from weightspace import emulator, encoders, losses, schema, tasks
from weightspace.presets import PRESETS

# What emulation is scored on (`config.emulate_on`): the zoo's stored sequences and outputs (the paper), or the
# family's probe set (`TaskFamily.emulation_probes`), the LSTM's outputs on it computed from its weights.
EMULATE_ON = ("stored", "probe_set")
# What the best checkpoint is chosen by (`config.eval.select_by`; experiments/configs/common.py).
SELECT_BY = ("loss", "novelty")

RULES: dict[str, schema.Rule] = {
    "seed": schema.Int(0),
    "zoo.dataset": schema.Text(),  # a registered family (`_known_family`: families may register late)
    "zoo.path": schema.Text(),
    "zoo.preset": schema.Choice(*PRESETS),
    **{f"encoder.{key}": rule for key, rule in encoders.FIELD_RULES.items()},
    **{f"emulator.{key}": rule for key, rule in emulator.FIELD_RULES.items()},
    "loss": schema.Choice(*losses.LOSSES),
    "emulate_on": schema.Choice(*EMULATE_ON),
    "supervised.target": schema.Text(),
    "supervised.hidden_sizes": schema.Tuple(schema.Int(1), nonempty=False),
    "oracle.target": schema.Text(),
    "optim.lr": schema.Float(0.0, open_low=True),
    "optim.weight_decay": schema.Float(0.0),
    "optim.clip_norm": schema.Float(0.0, open_low=True),
    "train.num_steps": schema.Int(1),
    "train.batch_size": schema.Int(1),
    "train.log_every_steps": schema.Int(1),
    "train.checkpoint_every_steps": schema.Int(1),
    "train.min_step": schema.Int(0),
    "train.data_parallel": schema.Bool(),
    "train.zoo_on_disk": schema.Bool(),
    "eval.every_steps": schema.Int(1),
    "eval.batch_size": schema.Int(1),
    "eval.select_by": schema.Choice(*SELECT_BY),
    "evaluate.after_training": schema.Bool(),
    "evaluate.seed": schema.Int(0),
    "evaluate.probe_seeds": schema.Int(1),
    "evaluate.num_cloned": schema.Int(0),
    "split.seed": schema.Int(0),
    "split.ood_fold": schema.Int(0),
    "split.ood_fraction": schema.Fraction(open_high=True),
    "split.eval_fraction": schema.Fraction(open_high=True),
}


def _known_family(config: ml_collections.ConfigDict) -> list[str]:
    if config.zoo.dataset not in tasks.FAMILIES:
        return [f"zoo.dataset={config.zoo.dataset!r} must be one of {sorted(tasks.FAMILIES)}"]
    return []


def _tasks_left_to_train_on(config: ml_collections.ConfigDict) -> list[str]:
    split = config.split
    total = split.ood_fraction + split.eval_fraction
    problems = []
    if total >= 1:
        problems.append(
            f"split.ood_fraction + split.eval_fraction = {total!r} must be < 1 (tasks must be left to train on)"
        )
    if (split.ood_fold + 1) * split.ood_fraction > 1:
        problems.append(
            f"split.ood_fold={split.ood_fold} is past the last fold of split.ood_fraction={split.ood_fraction!r} "
            f"(at most {int(1 / split.ood_fraction) - 1})"
        )
    return problems


def _one_objective(config: ml_collections.ConfigDict) -> list[str]:
    if config.oracle.target and config.supervised.target:
        return ["oracle.target and supervised.target exclude each other (an oracle run trains by emulation)"]
    return []


def _policy_exists(config: ml_collections.ConfigDict) -> list[str]:
    """A prior policy or a teacher needs a family that has a hand-written prober (the combination locks)."""
    prior = config.encoder.get("prior_policy") and config.encoder.get("prior_scale")
    teacher = config.encoder.get("teacher_steps")
    if not (prior or teacher) or config.zoo.dataset not in tasks.FAMILIES:
        return []
    try:
        tasks.FAMILIES[config.zoo.dataset]().probe_policy()
    except ValueError as error:
        if prior:
            return [f"encoder.prior_policy=True (the probe_policy variant) does not fit zoo.dataset: {error}"]
        return [
            f"encoder.teacher_steps={teacher} needs a family with a probing policy to teach "
            f"(combination_lock), not zoo.dataset={config.zoo.dataset!r} (keep teacher_steps 0)"
        ]
    return []


def _policy_learning_fits(config: ml_collections.ConfigDict) -> list[str]:
    """Probes learned as a policy are drawn tokens (not sigmoid values); only the interactive encoder, which
    reads the answers while probing, can follow a teacher."""
    learning, teacher = config.encoder.get("probe_learning"), config.encoder.get("teacher_steps")
    if teacher and (learning != "reinforce" or not encoders.chooses_probes(config.encoder.name)):
        return [f"encoder.teacher_steps={teacher} needs encoder.probe_learning='reinforce' and the interactive encoder"]
    entry = config.encoder.get("teacher_entry_steps")
    if teacher and entry and not 0 <= entry <= teacher:
        return [f"encoder.teacher_entry_steps={entry} must lie in [0, encoder.teacher_steps={teacher}]"]
    if config.encoder.get("reader_trains_lstm") is False and learning != "reinforce":
        return [
            "encoder.reader_trains_lstm=False needs encoder.probe_learning='reinforce' (else nothing trains the LSTM)"
        ]
    if learning != "reinforce" or config.zoo.dataset not in tasks.FAMILIES:
        return []
    activation = _probe_activation(config)
    if activation == "sigmoid":
        return [
            f"encoder.probe_learning='reinforce' draws tokens, but zoo.dataset={config.zoo.dataset!r} probes with "
            f"sigmoid values (keep probe_learning='gradient')"
        ]
    return []


def _selection_fits(config: ml_collections.ConfigDict) -> list[str]:
    """Selecting by novelty counts the answers a probing encoder's probes find: only those encoders have them,
    and only runs trained by emulation (a supervised run keeps its lowest loss)."""
    if config.eval.get("select_by") != "novelty":
        return []
    if not encoders.probes(config.encoder.name) or config.oracle.target or config.supervised.target:
        return [
            "eval.select_by='novelty' needs a probing encoder trained by emulation (it counts the answers its "
            f"probes find), not this {config.encoder.name} run (keep eval.select_by='loss')"
        ]
    return []


def _answer_recall_fits(config: ml_collections.ConfigDict) -> list[str]:
    """Recalling which answers were drawn needs answers that are drawn classes (argmax), not distributions."""
    weight, answers = config.encoder.get("answer_recall_weight"), config.encoder.get("answers")
    if weight and answers != "argmax":
        return [f"encoder.answer_recall_weight={weight} recalls the drawn answers: it needs encoder.answers='argmax'"]
    return []


def _probe_activation(config: ml_collections.ConfigDict) -> str:
    """The probing encoder's activation, "auto" resolved to its (known) family's."""
    activation = config.encoder.probe_activation
    return tasks.FAMILIES[config.zoo.dataset].probe_activation if activation == "auto" else activation


def _probe_range_used(config: ml_collections.ConfigDict) -> list[str]:
    """A probe range other than (0, 1) (the probe_rotations variant) applies to sigmoid probes only."""
    probe_range = config.encoder.get("probe_range")
    if probe_range is None or tuple(probe_range) == (0.0, 1.0) or config.zoo.dataset not in tasks.FAMILIES:
        return []
    activation = _probe_activation(config)
    if activation == "sigmoid":
        return []
    return [
        f"encoder.probe_range={tuple(probe_range)} (the probe_rotations variant) needs sigmoid probes, but "
        f"zoo.dataset={config.zoo.dataset!r} probes with {activation!r} (keep probe_range at (0.0, 1.0))"
    ]


def _probe_set_exists(config: ml_collections.ConfigDict) -> list[str]:
    """Emulation on a probe set needs a family that has one (sequential MNIST) and a loss on outputs."""
    if config.emulate_on != "probe_set" or config.zoo.dataset not in tasks.FAMILIES:
        return []
    if not hasattr(tasks.FAMILIES[config.zoo.dataset], "emulation_probes"):
        return [
            f"emulate_on='probe_set' (the emulate_rotations variant) needs a family with a probe set "
            f"(sequential_mnist); zoo.dataset={config.zoo.dataset!r} has none (keep emulate_on='stored')"
        ]
    if config.loss in losses.TOKEN_LOSSES:
        return [f"emulate_on='probe_set' compares outputs; loss={config.loss!r} compares next tokens"]
    return []


RELATIONS = (
    _known_family,
    _tasks_left_to_train_on,
    _one_objective,
    _policy_exists,
    _policy_learning_fits,
    _answer_recall_fits,
    _selection_fits,
    _probe_range_used,
    _probe_set_exists,
)


def problems(config: ml_collections.ConfigDict) -> list[str]:
    """Every field of `config` out of its declared range, then the fields that do not fit each other."""
    return schema.problems(config, RULES, RELATIONS)
