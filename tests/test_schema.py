"""The declared rules of config fields: what fits, what each says, and that every field of every config has one."""

import itertools
import math
import re

import pytest

from experiments.configs import common
from experiments.configs import schema as experiment_schema
from weightspace import encoders, presets, schema, tasks
from zoo_builder import configs as zoo_configs
from zoo_builder.configs import schema as zoo_schema


@pytest.mark.parametrize(
    ("rule", "fits", "does_not"),
    [
        (schema.Int(1), [1, 7], [0, -1, 1.5, True, "1", None, math.nan]),
        (schema.Int(0, 3), [0, 3], [4, -1]),
        (schema.Float(0.0, open_low=True), [1e-9, 5, 2.5], [0.0, -1.0, math.nan, math.inf, -math.inf, "1", False]),
        (schema.Fraction(open_high=True), [0.0, 0.5], [1.0, -0.1, math.nan]),
        (schema.Choice("a", "b"), ["a", "b"], ["c", "", 1, None]),
        (schema.Bool(), [True, False], [0, 1, "true", None]),
        (schema.Text(), ["", "/a"], [None, 3]),
        (schema.Tuple(schema.Int(0), increasing=True), [(0, 1, 5), [2]], [(), (1, 1), (2, 1), (0, -1), "abc", 3]),
        (schema.Tuple(schema.Int(1), nonempty=False), [(), (3, 3)], [(0,), (1.5,)]),
    ],
)
def test_a_rule_fits_its_kind_and_range_only(rule, fits, does_not):
    assert all(rule.fits(value) for value in fits)
    assert not any(rule.fits(value) for value in does_not)


def test_a_rule_says_what_it_wants():
    assert schema.Int(1).describe() == "an integer >= 1"
    assert schema.Float(0.0, 1.0, open_low=True).describe() == "a finite number > 0 and <= 1"
    assert schema.Choice("x", "y").describe() == "one of ['x', 'y']"
    assert schema.Tuple(schema.Int(0), words="steps").describe() == "steps"


# Variants that fit sequential MNIST only (probe_rotations changes only the probing encoders).
MNIST_ONLY = ("probe_rotations", "emulate_rotations")
# Variants whose probes are drawn tokens (the probing encoders on token families only).
TOKENS_ONLY = ("probe_curiosity", "curiosity_teacher")


def _experiment_configs():
    for encoder, dataset in itertools.product(encoders.NAMES, tasks.FAMILIES):
        probing = encoders.probes(encoder)
        for preset, variant in itertools.product(presets.PRESETS, ("", *common.VARIANTS)):
            if variant in MNIST_ONLY and dataset != "sequential_mnist" and (variant != "probe_rotations" or probing):
                continue  # refused, as the tests below show
            if variant in ("probe_policy", "curiosity_teacher") and dataset != "combination_lock":
                continue  # refused, as the next tests show
            if variant in TOKENS_ONLY and dataset == "sequential_mnist" and probing:
                continue  # refused, as the test below shows
            yield common.experiment(encoder, ",".join(filter(None, (preset, variant))), dataset)


def test_every_field_of_every_experiment_config_has_a_rule_that_its_defaults_fit():
    checked = 0
    for config in _experiment_configs():
        assert experiment_schema.problems(config) == []  # raises on a field without a rule
        checked += 1
    assert checked > 200


def test_every_field_of_every_zoo_config_has_a_rule_that_its_defaults_fit():
    for family, preset in itertools.product(tasks.FAMILIES, presets.PRESETS):
        assert zoo_schema.problems(zoo_configs.get_config(family, preset)) == []


def test_a_field_without_a_rule_is_the_code_s_mistake():
    config = common.experiment("flat", "smoke", "formal_languages")
    config.unlock()
    config.train.new_field = 3
    with pytest.raises(KeyError, match=r"'train.new_field' has no declared rule"):
        experiment_schema.problems(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split.ood_fraction": 0.6, "split.eval_fraction": 0.5}, "must be < 1 .tasks must be left to train on"),
        ({"split.ood_fold": 6}, r"split.ood_fold=6 is past the last fold of split.ood_fraction=0.15 \(at most 5\)"),
        ({"oracle.target": "task", "supervised.target": "task"}, "exclude each other"),
        ({"zoo.dataset": "parity"}, r"zoo.dataset='parity' must be one of \['combination_lock'"),
        ({"loss": "hinge"}, r"loss='hinge' must be one of \['total_variation'"),
        ({"optim.lr": math.inf}, "optim.lr=inf must be a finite number > 0"),
    ],
)
def test_fields_out_of_range_or_against_each_other_are_named(change, message):
    config = common.experiment("flat", "smoke", "formal_languages")
    config.update_from_flattened_dict(change)
    assert any(re.search(message, p) for p in experiment_schema.problems(config))


def test_a_policy_prior_needs_a_family_with_a_policy():
    config = common.experiment("interactive", "smoke,probe_policy", "formal_languages")
    assert experiment_schema.problems(config) == [
        "encoder.prior_policy=True (the probe_policy variant) does not fit zoo.dataset: Formal languages have no "
        "probing policy to start probes from: keep prior_policy False."
    ]


def test_learned_policy_probes_need_tokens_and_a_teacher_needs_a_policy():
    (mnist,) = experiment_schema.problems(
        common.experiment("noninteractive", "smoke,probe_curiosity", "sequential_mnist")
    )
    assert "probe_learning='reinforce' draws tokens" in mnist and "keep probe_learning='gradient'" in mnist
    config = common.experiment("interactive", "smoke,curiosity_teacher", "formal_languages")
    (problem,) = experiment_schema.problems(config)
    assert "teacher_steps=20 needs a family with a probing policy" in problem and "keep teacher_steps 0" in problem
    config = common.experiment("noninteractive", "smoke,probe_curiosity", "combination_lock")
    config.encoder.teacher_steps = 20
    assert experiment_schema.problems(config) == [
        "encoder.teacher_steps=20 needs encoder.probe_learning='reinforce' and the interactive encoder"
    ]
    config = common.experiment("interactive", "smoke,curiosity_teacher", "combination_lock")
    assert experiment_schema.problems(config) == []
    config.encoder.teacher_entry_steps = 21
    assert experiment_schema.problems(config) == [
        "encoder.teacher_entry_steps=21 must lie in [0, encoder.teacher_steps=20]"
    ]
    config = common.experiment("noninteractive", "smoke,curiosity_teacher", "combination_lock")
    config.encoder.teacher_entry_steps = 21  # no teacher: no effect, so one override can reach both encoders
    assert experiment_schema.problems(config) == []


def test_answer_recall_needs_argmax_answers():
    config = common.experiment("interactive", "smoke", "combination_lock")
    config.encoder.answer_recall_weight = 1.0
    assert experiment_schema.problems(config) == [
        "encoder.answer_recall_weight=1.0 recalls the drawn answers: it needs encoder.answers='argmax'"
    ]
    config.encoder.answers = "argmax"
    assert experiment_schema.problems(config) == []


@pytest.mark.parametrize("dataset", ["formal_languages", "combination_lock"])
def test_the_mnist_variants_are_refused_on_other_families(dataset):
    rotations = experiment_schema.problems(common.experiment("interactive", "smoke,probe_rotations", dataset))
    assert len(rotations) == 1 and "needs sigmoid probes" in rotations[0]
    emulation = experiment_schema.problems(common.experiment("flat", "smoke,emulate_rotations", dataset))
    assert len(emulation) == 1 and "needs a family with a probe set" in emulation[0]
    for variant in MNIST_ONLY:
        assert (
            experiment_schema.problems(common.experiment("interactive", f"smoke,{variant}", "sequential_mnist")) == []
        )


def test_a_lock_code_longer_than_its_stream_is_refused():
    config = zoo_configs.get_config("combination_lock", "smoke")
    config.task.settings.code_length = 99
    (problem,) = zoo_schema.problems(config)
    assert "code_length=99 must be less than length=32" in problem


def test_selecting_by_novelty_needs_a_probing_encoder_trained_by_emulation():
    config = common.experiment("interactive", "smoke", "combination_lock")
    config.eval.select_by = "novelty"
    assert experiment_schema.problems(config) == []
    for name, target in (("dwsnet", ""), ("interactive", "task")):
        config = common.experiment(name, "smoke", "formal_languages")
        config.eval.select_by, config.supervised.target = "novelty", target
        assert experiment_schema.problems(config) == [
            "eval.select_by='novelty' needs a probing encoder trained by emulation (it counts the answers its "
            f"probes find), not this {name} run (keep eval.select_by='loss')"
        ]
    config.eval.select_by = "best"
    assert any("eval.select_by" in p and "'best'" in p for p in experiment_schema.problems(config))
