"""Settings shared by every encoder-training experiment.

An experiment file calls `get_config(encoder, arg, quick=..., smoke=...)`
with the encoder's size overrides for the two small presets; everything else
is common. Presets: "paper" (default), "medium" (the quick sizes, 6,000 steps,
on the medium zoo: the paper's comparison at a scale a CPU runs in hours),
"quick" (a few CPU minutes), "smoke" (seconds, tests); named variants
(`VARIANTS`, departures from the paper) may follow the preset, comma-separated.

How "quick" differs from the paper setting, for every encoder: the quick
formal-language zoo (128 runs, 5 snapshots up to step 1000; see
zoo_builder/configs), an emulator of width 64 instead of 256, batches of 32
snapshots instead of 64, 2,000 steps instead of 100,000 with evaluation
every 250 steps, learning rate 1e-3 instead of 1e-4 (so that the loss falls
within the short run), and the encoder's own shrinkage (its config file says
which). For sequential MNIST (--config.zoo.dataset=sequential_mnist) the quick
MNIST zoo (64 runs) is used the same way.
"""

import importlib

import ml_collections

from weightspace import emulator, encoders
from weightspace.presets import PRESETS, parse_preset
from weightspace.tasks import sequential_mnist

# The experiment config that runs with no weight encoder of their own (oracles, reference rows) take their
# zoo, split, emulator and training from: every encoder's config has the same ones.
HOST = "layerwise_statistics"


def experiment(encoder: str, arg: str, dataset: str, seed: int = 0) -> ml_collections.ConfigDict:
    """The config of `experiments/configs/<encoder>.py` with `arg` (preset and variants), on the zoo `dataset`."""
    config = importlib.import_module(f"experiments.configs.{encoder}").get_config(arg)
    config.zoo.dataset = dataset
    config.seed = seed
    return config


def get_config(encoder: str, arg: str | None, quick: dict, smoke: dict) -> ml_collections.ConfigDict:
    """The experiment config of `encoder` for `arg` (preset and variants); `quick` and `smoke`: the encoder's
    own sizes at those presets (medium takes the quick ones)."""
    preset, variants = parse_arg(arg)
    config = ml_collections.ConfigDict()
    # Seeds the encoder and emulator init and every batch.
    config.seed = 0
    _add_zoo(config, preset)
    _add_model(config, encoder)
    _add_objectives(config)
    _add_training(config)
    _shrink(config, preset, quick, smoke)
    for name, apply in VARIANTS.items():  # in the table's order, whatever the argument's
        if name in variants:
            apply(config)
    return config


def _add_zoo(config: ml_collections.ConfigDict, preset: str) -> None:
    """Which zoo the run reads (`zoo`)."""
    config.zoo = ml_collections.ConfigDict()
    # Zoo family/config name (zoo_builder/configs/<dataset>.py): formal_languages or sequential_mnist.
    config.zoo.dataset = "formal_languages"
    # Path of the zoo; "" means <zoo cache>/<dataset>_<preset>/zoo (env WEIGHTSPACE_ZOOS, else
    # ~/.cache/weightspace/zoos), built with the zoo builder's matching preset when missing.
    config.zoo.path = ""
    # Zoo-builder preset used when the zoo has to be built.
    config.zoo.preset = preset


def _add_model(config: ml_collections.ConfigDict, encoder: str) -> None:
    """The weight encoder, the emulator and what the emulation loss compares (`encoder`, `emulator`, `loss`,
    `emulate_on`)."""
    # The encoder (fields documented in weightspace/encoders). Probing encoders: probe_length 0 and
    # probe_activation "auto" take the dataset's defaults (22 token distributions; 50 sigmoid tiles).
    config.encoder = encoders.default_config(encoder)
    if encoders.probes(encoder):
        config.encoder.probe_length = 0
        config.encoder.probe_activation = "auto"
    # The emulator (fields documented in weightspace/emulator.py).
    config.emulator = emulator.default_config()
    # Emulation loss (weightspace.losses): total_variation, kl, reverse_kl, jensen_shannon, cross_entropy, l2.
    config.loss = "total_variation"
    # What the emulation loss is scored on: "stored" (the paper), the zoo's stored sequences and the LSTM's
    # outputs on them; "probe_set", the family's probe set (sequential MNIST: 10 eval digits of each class at
    # every 30 degrees; `TaskFamily.emulation_probes`), the LSTM's outputs computed from its weights in the step.
    # A run's stored MNIST sequences are rotated by its own angle, so the emulator reads the rotation from them.
    config.emulate_on = "stored"


def _add_objectives(config: ml_collections.ConfigDict) -> None:
    """The objectives other than emulation, off by default (`supervised`, `oracle`)."""
    config.supervised = ml_collections.ConfigDict()
    # "" trains the encoder by emulation (the paper's method). A downstream target's name (formal
    # languages: task, performance, step, log_step; MNIST: angle, accuracy, generalisation_gap,
    # weight_decay, step, log_step) instead trains it end to end with an MLP head on that target:
    # the supervised baseline. `loss` and `emulator` are then unused.
    config.supervised.target = ""
    # Hidden layer sizes of the supervised head (embedding -> ... -> target).
    config.supervised.hidden_sizes = (128,)

    config.oracle = ml_collections.ConfigDict()
    # "" embeds the LSTM's weights with the encoder. A downstream target's name (as for `supervised`)
    # instead embeds that target's true value by a learned linear map (model.TargetOracle), trained by
    # emulation like an encoder: an upper bound for what the emulator can do with an embedding that
    # knows the target (e.g. the exact task). The encoder config is then unused but for embedding_size.
    # "constant" embeds nothing (a learned constant): the level an embedding must beat to matter at all.
    config.oracle.target = ""


def _add_training(config: ml_collections.ConfigDict) -> None:
    """Optimisation, evaluation and the task split (`optim`, `train`, `eval`, `evaluate`, `split`)."""
    config.optim = ml_collections.ConfigDict()
    # AdamW learning rate and weight decay; gradients are clipped to this global norm.
    config.optim.lr = 1e-4
    config.optim.weight_decay = 0.01
    config.optim.clip_norm = 0.1

    config.train = ml_collections.ConfigDict()
    # Optimisation steps; snapshots per batch (one stored sequence each).
    config.train.num_steps = 100_000
    config.train.batch_size = 64
    # Print progress and append train metrics every this many steps.
    config.train.log_every_steps = 100
    # Save the latest state every this many steps.
    config.train.checkpoint_every_steps = 1000
    # Train only on snapshots from this training step on (0: all, the paper). Early snapshots have not
    # learned their task yet, so their behaviour carries none of it.
    config.train.min_step = 0
    # Shard the batch over all devices (data parallel); same result as one device up to rounding.
    config.train.data_parallel = False
    # Leave the zoo in its files and read each step's batch from them on a thread, ahead of the step,
    # instead of placing the whole zoo on the devices: for zoos larger than host or device memory. Same
    # batches, same result. Needs a zoo stored as .npy files (python -m experiments.upgrade).
    config.train.zoo_on_disk = False

    config.eval = ml_collections.ConfigDict()
    # Evaluate the emulation loss on the eval and OOD splits every this many steps (and keep the best).
    config.eval.every_steps = 1000
    # Snapshots per evaluation batch.
    config.eval.batch_size = 64
    # Which checkpoint is kept as the best (and evaluated): 'loss', the lowest eval emulation loss; 'novelty'
    # (probing encoders), the most answers its probes find on the eval split's LSTMs (`dialogue_novelty`,
    # label-free), for probes learned as a policy, whose emulation loss need not follow what they find.
    config.eval.select_by = "loss"

    config.evaluate = ml_collections.ConfigDict()
    # Run the downstream evaluation (python -m experiments.run.evaluate) when training ends.
    config.evaluate.after_training = True
    # Seeds the probes (held-out part, init) and the choice of cloned snapshots.
    config.evaluate.seed = 0
    # Probes fitted per target and predictor, seeded seed .. seed + probe_seeds - 1; each score is their mean.
    # An MLP probe reading beyond its training range (OOD angles) can move by degrees with its seed.
    config.evaluate.probe_seeds = 1
    # Held-out snapshots per split (eval, OOD) whose emulator clone is scored on the task.
    config.evaluate.num_cloned = 32

    config.split = ml_collections.ConfigDict()
    # Whole tasks are split: the highest-scoring `ood_fraction` are OOD, a seeded `eval_fraction` eval.
    config.split.seed = 0
    # Which `ood_fraction` of the tasks, counted down from the highest score, is OOD (0: the highest, the paper's);
    # folds hold out disjoint tasks, so several can be pooled (experiments.analyses.probing_gap --heldout_locks).
    config.split.ood_fold = 0
    config.split.ood_fraction = 0.15
    config.split.eval_fraction = 0.15


def _shrink(config: ml_collections.ConfigDict, preset: str, quick: dict, smoke: dict) -> None:
    """The small presets' sizes: quick and medium (a CPU's minutes and hours) and smoke (tests' seconds)."""
    if preset in ("quick", "medium"):
        config.encoder.update(quick)
        config.emulator.hidden_size = 64
        config.optim.lr = 1e-3
        config.train.num_steps = 2000 if preset == "quick" else 6000
        config.train.batch_size = 32
        config.train.log_every_steps = 50
        config.train.checkpoint_every_steps = 500
        config.eval.every_steps = 250 if preset == "quick" else 500
    elif preset == "smoke":
        config.encoder.update(smoke)
        config.emulator.hidden_size = 8
        config.emulator.num_layers = 1
        config.optim.lr = 3e-3
        config.train.num_steps = 30
        config.train.batch_size = 8
        config.train.log_every_steps = 5
        config.train.checkpoint_every_steps = 10
        config.eval.every_steps = 10
        config.eval.batch_size = 8
        config.supervised.hidden_sizes = (8,)
        config.evaluate.num_cloned = 4


def _condition_every(config: ml_collections.ConfigDict) -> None:
    config.emulator.condition = "every"


def _probe_prior(config: ml_collections.ConfigDict) -> None:
    if encoders.probes(config.encoder.name):  # the others are unchanged
        config.encoder.prior_scale = 3.0


# Parallel probing sequences of `probe_rotations`: sequence p is a digit of class p mod 10 at 360 p / 24 degrees.
ROTATION_PROBES = 24


def _probe_rotations(config: ml_collections.ConfigDict) -> None:
    if encoders.probes(config.encoder.name):  # the others are unchanged
        config.encoder.prior_scale = 1.0
        config.encoder.num_parallel = ROTATION_PROBES
        config.encoder.probe_range = sequential_mnist.PIXEL_RANGE


def _emulate_rotations(config: ml_collections.ConfigDict) -> None:
    config.emulate_on = "probe_set"


def _pool_answers(config: ml_collections.ConfigDict) -> None:
    if encoders.probes(config.encoder.name):  # the others are unchanged
        config.encoder.pool_answers = True


def _probe_policy(config: ml_collections.ConfigDict) -> None:
    _probe_prior(config)
    if encoders.chooses_probes(config.encoder.name):
        config.encoder.prior_policy = True


def _probe_curiosity(config: ml_collections.ConfigDict) -> None:
    if encoders.probes(config.encoder.name):  # the others are unchanged
        config.encoder.prior_scale = 0.0
        config.encoder.probe_learning = "reinforce"


# The share of the training steps over which `curiosity_teacher`'s teacher is annealed away.
TEACHER_SHARE = 2 / 3


def _curiosity_teacher(config: ml_collections.ConfigDict) -> None:
    _probe_curiosity(config)
    if encoders.chooses_probes(config.encoder.name):
        config.encoder.teacher_steps = int(config.train.num_steps * TEACHER_SHARE)


def _answer_recall(config: ml_collections.ConfigDict) -> None:
    _pool_answers(config)
    if encoders.probes(config.encoder.name):  # the others are unchanged
        config.encoder.answers = "argmax"
        config.encoder.answer_recall_weight = 1.0
        if config.encoder.probe_learning == "reinforce":  # the policy's loss alone shapes the LSTM
            config.encoder.reader_trains_lstm = False


# Named departures from the paper, added to a preset in the config argument
# (`configs/interactive.py:quick,condition_every,probe_prior`); experiments/RESULTS.md, "Reading the exact task":
# * condition_every: the emulator gets the embedding at every step, not only the first (every encoder);
# * probe_prior (formal languages): the probing encoders' probes start on the family's real strings
#   (`prior_scale` 3) instead of random token mixtures.
# * probe_rotations (sequential MNIST): the probing encoders' probes start on real digits rotated by angles
#   spanning the circle (`SequentialMnist.probe_prior`: `ROTATION_PROBES` parallel sequences, every class,
#   15 degrees apart), as normalised pixels (`probe_range`), instead of random tiles in (0, 1).
# * emulate_rotations (sequential MNIST): emulation is scored on digits at every angle of a grid, not on the
#   run's stored digits at its own angle (`emulate_on="probe_set"`).
# * pool_answers: the probing encoders' embedding also reads each probing sequence's answers averaged over the
#   probing steps (`pool_answers`), beside the encoder LSTM's last output: with `probe_rotations` a profile of
#   how the LSTM answers digits at each angle, as the fixed probe reads it.
# * probe_policy (combination locks; experiments/RESULTS.md, "The probing gap"): as probe_prior, but the
#   interactive encoder's probes start on the family's hand-written adaptive prober (`prior_policy`), the
#   non-interactive one's on its best fixed strings.
# * probe_curiosity (token families): the probing encoders learn their probes as a policy, by REINFORCE on a
#   label-free reward (answers the LSTM has not given before in the dialogue; `probe_learning="reinforce"`),
#   drawing tokens while training and taking the argmax when evaluated; no prior.
# * curiosity_teacher (combination locks): as probe_curiosity, with the family's hand-written prober as the
#   interactive encoder's teacher over the first two thirds of training (`teacher_steps`), annealed away; it is
#   never in the forward pass when evaluated.
# * answer_recall: the probing encoders read only the answers (`answers="argmax"`, also pooled), and a linear
#   map from the embedding must recall which answers each probing sequence drew (`answer_recall_weight` 1); after
#   probe_curiosity or curiosity_teacher, the embedding reads the encoder LSTM without training it
#   (`reader_trains_lstm=False`). experiments/RESULTS.md, "Learned probing at m = 5".
# Variants apply in this table's order, whatever the config argument's.
VARIANTS = {
    "condition_every": _condition_every,
    "probe_prior": _probe_prior,
    "probe_rotations": _probe_rotations,
    "emulate_rotations": _emulate_rotations,
    "pool_answers": _pool_answers,
    "probe_policy": _probe_policy,
    "probe_curiosity": _probe_curiosity,
    "curiosity_teacher": _curiosity_teacher,
    "answer_recall": _answer_recall,
}


def arg_problems(flag: str, arg: str) -> list[str]:
    """What is wrong with a flag holding a config argument (`parse_arg`), as lines (none: fine)."""
    try:
        parse_arg(arg)
    except ValueError as error:
        return [f"--{flag}={arg}: {error}"]
    return []


def parse_arg(arg: str | None) -> tuple[str, tuple[str, ...]]:
    """(preset, variants) from a config argument such as "quick" or "quick,condition_every,probe_prior"."""
    parts = [part for part in (arg or "").split(",") if part]
    presets = [part for part in parts if part in PRESETS]
    variants = tuple(part for part in parts if part not in PRESETS)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(
            f"config argument {arg!r}: {', '.join(map(repr, unknown))} is neither a preset ({', '.join(PRESETS)}) "
            f"nor a variant ({', '.join(sorted(VARIANTS))})."
        )
    if len(presets) > 1 or len(set(variants)) != len(variants):
        raise ValueError(f"config argument {arg!r}: name at most one preset, then each variant once.")
    return parse_preset(presets[0] if presets else None), variants
