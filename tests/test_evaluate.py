"""Downstream evaluation: the end-to-end report, its reuse, cloning, and the supervised baseline."""

import importlib
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.run import cloning, context, evaluate, objectives, train, workdirs
from experiments.run.model import Model, SupervisedModel, TargetOracle
from weightspace import emulator, lstm, probes, targets, zoo
from weightspace.tasks import formal_languages as fl


def _config(name, zoo_path, **overrides):
    config = importlib.import_module(f"experiments.configs.{name}").get_config("smoke")
    config.zoo.path = zoo_path
    config.update_from_flattened_dict(overrides)
    return config


def _reject_constant(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


@pytest.mark.slow
def test_evaluation_reports_every_target_and_is_reused(smoke_zoo, tmp_path, monkeypatch):
    train.train(_config("interactive", smoke_zoo, **{"train.num_steps": 10}), str(tmp_path))
    result = evaluate.evaluate(str(tmp_path))
    metrics = {"task_accuracy", "task_d1_accuracy", "task_d2_accuracy", "task_d3_accuracy", "performance_r2",
               "performance_mae", "step_accuracy", "log_step_r2", "log_step_mae"}  # fmt: skip
    for predictor in probes.PREDICTORS:
        for split in evaluate.SUBSETS:  # eval, OOD, and each on its trained snapshots only
            assert set(result["probes"][predictor][split]) == metrics
    trained = result["num_snapshots"]["ood_trained"]
    assert 0 < trained < result["num_snapshots"]["ood"] and trained == result["num_snapshots"]["eval_trained"]
    splits = {"train", "eval", "ood"}
    assert set(result["loss"]) == splits | {f"{s}_boundary" for s in splits}
    assert all(np.isfinite(list(result["loss"].values())))
    assert set(result["novelty"]) == splits and all(v >= 1 for v in result["novelty"].values())  # a probing encoder
    assert result["checkpoint_step"] == workdirs.checkpoint_step(str(tmp_path))
    for split in ("eval", "ood"):
        cloning = result["cloning"][split]
        assert cloning["abs_difference"] >= abs(cloning["original"] - cloning["clone"]) - 1e-9
    # evaluation.json is strict JSON (no NaN constants), and evaluate() returns what it holds.
    saved = json.loads((tmp_path / "evaluation.json").read_text(), parse_constant=_reject_constant)
    assert saved["probes"] == result["probes"]
    assert "| task_accuracy |" in (tmp_path / "evaluation.md").read_text()
    # The smoke zoo's LSTMs never produce a correct word: R² of the constant performance is undefined.
    assert result["probes"]["mlp"]["ood"]["performance_r2"] is None
    assert "| performance_r2 | n/a |" in (tmp_path / "evaluation.md").read_text()
    embeddings = np.load(tmp_path / "embeddings.npy")
    np.testing.assert_allclose(embeddings, workdirs.embed(str(tmp_path), smoke_zoo), atol=1e-6)

    # Same checkpoint: nothing is refitted.
    monkeypatch.setattr(probes, "fit", lambda *a, **k: pytest.fail("refitted a probe"))
    assert json.dumps(evaluate.evaluate(str(tmp_path))["probes"]) == json.dumps(result["probes"])
    # One saved before evaluate.probe_seeds existed was made with one probe per target: reused as well.
    older = {**saved, "evaluate": {k: v for k, v in saved["evaluate"].items() if k != "probe_seeds"}}
    (tmp_path / "evaluation.json").write_text(json.dumps(older))
    assert json.dumps(evaluate.evaluate(str(tmp_path))["probes"]) == json.dumps(result["probes"])
    # An evaluation from before the trained subsets is done again.
    for by_subset in saved["probes"].values():
        del by_subset["eval_trained"], by_subset["ood_trained"]
    (tmp_path / "evaluation.json").write_text(json.dumps(saved))
    with pytest.raises(pytest.fail.Exception, match="refitted a probe"):
        evaluate.evaluate(str(tmp_path))
    # A finished run rerun with other evaluate.* settings is evaluated again with them, not reused.
    monkeypatch.undo()
    config = _config("interactive", smoke_zoo, **{"train.num_steps": 10, "evaluate.seed": 1})
    train.train(config, str(tmp_path))  # records the new config; nothing to train
    evaluate.evaluate(str(tmp_path))
    again = json.loads((tmp_path / "evaluation.json").read_text())
    assert again["evaluate"]["seed"] == 1 and again["checkpoint_step"] == result["checkpoint_step"]
    # The tables record the evaluate.* settings they ask for in a trained run, which is evaluated again.
    config.evaluate.probe_seeds = 2
    workdirs.record_evaluate_settings(config, str(tmp_path))
    assert workdirs.read_config(str(tmp_path)).evaluate.probe_seeds == 2
    assert evaluate.evaluate(str(tmp_path))["evaluate"]["probe_seeds"] == 2


def test_several_probe_seeds_score_the_mean_of_each_seeds_probe():
    rng = np.random.default_rng(0)
    angles = rng.uniform(0.0, 360.0, 60)
    radians = np.deg2rad(angles)
    features = np.stack([np.sin(radians), np.cos(radians), *rng.normal(size=(4, 60))], 1).astype(np.float32)
    angle = targets.Angle("angle", angles)
    train, subsets = np.arange(40), {"eval": np.arange(40, 60)}
    together = evaluate.probe_scores([angle], features, train, subsets, seed=3, probe_seeds=2)
    alone = [evaluate.probe_scores([angle], features, train, subsets, seed=s) for s in (3, 4)]
    error = lambda scores, p: scores[p]["eval"]["angle_error_degrees"]
    for predictor in probes.PREDICTORS:
        expected = np.mean([error(a, predictor) for a in alone])
        assert error(together, predictor) == pytest.approx(expected, rel=1e-6)
    assert error(alone[0], "mlp") != error(alone[1], "mlp")  # the seeds' probes differ: the mean is of both


def _exact_emulator(params: dict, embedding_size: int) -> emulator.Emulator:
    """An emulator that computes exactly the zoo LSTM `params` (and ignores its embedding)."""
    spec = lstm.spec_of(params)
    hidden = spec.hidden_size
    model = emulator.Emulator(
        spec.input_size, spec.output_size, embedding_size=embedding_size, hidden_size=hidden,
        num_layers=spec.num_layers, rngs=nnx.Rngs(0),
    )  # fmt: skip
    model.input_projection.kernel[...] = jnp.eye(spec.input_size, hidden)
    model.input_projection.bias[...] = jnp.zeros(hidden)
    model.embedding_projection.kernel[...] = jnp.zeros((embedding_size, hidden))
    for k, layer in enumerate(model.layers):
        w_ih = params[f"weight_ih_l{k}"]
        layer.weight_ih[...] = jnp.pad(w_ih, ((0, 0), (0, hidden - w_ih.shape[1])))
        layer.weight_hh[...] = params[f"weight_hh_l{k}"]
        layer.bias_ih[...] = params[f"bias_ih_l{k}"]
        layer.bias_hh[...] = params[f"bias_hh_l{k}"]
    model.output_projection.kernel[...] = params["weight_out"].T
    model.output_projection.bias[...] = params["bias_out"]
    return model


@pytest.mark.slow
def test_an_exact_clone_scores_like_the_original():
    """Cloning runs the clone through the family's own scoring: an emulator equal to the LSTM matches it."""
    spec = lstm.LSTMSpec(fl.VOCAB_SIZE, 8, 2, fl.VOCAB_SIZE)
    params = jax.vmap(lambda k: lstm.init(k, spec))(jax.random.split(jax.random.key(0), 3))
    params["bias_out"] = params["bias_out"].at[:, fl.EOS].add(2.0)  # an early EOS is often correct for task 0
    tasks = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]])
    the_zoo = zoo.Zoo(params, {}, {"task": tasks}, spec, {"family": fl.FormalLanguages.name})
    family = fl.FormalLanguages(num_scored_sequences=200)
    scores = {}
    for index in range(3):
        one = jax.tree.map(lambda x, index=index: x[index], params)
        model = types.SimpleNamespace(emulator=_exact_emulator(one, embedding_size=4))
        embeddings = np.random.default_rng(index).normal(size=(3, 4))
        scores[index] = cloning.clone_scores(model, family, the_zoo, np.array([index]), embeddings, seed=5)
    original = np.array([scores[i][0][0] for i in range(3)])
    clone = np.array([scores[i][1][0] for i in range(3)])
    assert np.all(original[:2] > 0.1)  # a meaningful score, not 0 = 0
    np.testing.assert_allclose(clone, original, atol=0.02)
    # The original score is the family's own metric for that key.
    key = jax.random.split(jax.random.key(5), 1)[0]
    direct = family.performance(key, lstm.Bound(jax.tree.map(lambda x: x[0], params)), {"task": tasks[0]})
    assert float(direct) == pytest.approx(original[0])


@pytest.mark.slow
def test_supervised_baseline_learns_its_target_and_reports_its_head(smoke_zoo, tmp_path):
    config = _config("flat", smoke_zoo, **{"supervised.target": "log_step", "train.num_steps": 40})
    train.train(config, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    eval_losses = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert eval_losses[-1] < 0.8 * eval_losses[0]  # held-out tasks: it learns the target, not the batch
    model = workdirs.load_model(str(tmp_path))
    assert isinstance(model, SupervisedModel)
    result = evaluate.evaluate(str(tmp_path))
    assert result["supervised_target"] == "log_step" and "cloning" not in result
    assert set(result["probes"]["head"]["eval"]) == {"log_step_r2", "log_step_mae"}
    assert os.path.exists(tmp_path / "evaluation.md")


@pytest.mark.slow
def test_task_oracle_embeds_the_task_and_is_evaluated_like_an_encoder(smoke_zoo, tmp_path):
    config = _config("dwsnet", smoke_zoo, **{"oracle.target": "task", "train.num_steps": 40})
    train.train(config, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    model = workdirs.load_model(str(tmp_path))
    assert isinstance(model.encoder, TargetOracle) and isinstance(model, Model)
    the_zoo = zoo.load(smoke_zoo)
    embeddings = workdirs.embed(str(tmp_path), the_zoo)
    # One embedding per task: equal for the snapshots of a task, different across tasks.
    task = np.asarray(the_zoo.metadata["task"])
    _, first, which = np.unique(task, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_allclose(embeddings, embeddings[first][which.ravel()], atol=1e-6)
    assert len(np.unique(embeddings[first].round(4), axis=0)) == len(first)
    result = evaluate.evaluate(str(tmp_path))
    assert result["oracle_target"] == "task" and "cloning" in result
    assert (tmp_path / "evaluation.md").read_text().startswith("# Evaluation: oracle of task on formal_languages")


def test_oracle_and_supervised_targets_exclude_each_other(smoke_zoo):
    config = _config("flat", smoke_zoo, **{"oracle.target": "task", "supervised.target": "task"})
    with pytest.raises(ValueError, match="exclude each other"):
        context.RunContext.of(config, zoo.load(smoke_zoo))
    with pytest.raises(ValueError, match=r"Unknown oracle\.target 'angle'"):
        context.RunContext.of(_config("flat", smoke_zoo, **{"oracle.target": "angle"}), zoo.load(smoke_zoo))


@pytest.mark.parametrize(
    "overrides, kind, reads_weights, table_row",
    [
        ({}, "emulation", True, ("emulation", "flat")),
        ({"supervised.target": "task"}, "supervised", True, ("supervised_task", "flat")),
        ({"oracle.target": "task"}, "oracle", False, ("oracle", "task")),
    ],
)
def test_the_config_picks_one_objective(overrides, kind, reads_weights, table_row, smoke_zoo):
    run = context.RunContext.of(_config("flat", smoke_zoo, **overrides), zoo.load(smoke_zoo))
    assert (run.objective.name, run.objective.reads_weights) == (kind, reads_weights)
    assert objectives.kind_of(run.config) is type(run.objective) is objectives.KINDS[kind]
    assert type(run.objective).table_row(run.config) == table_row
    model = run.objective.make_model(run.config, run.spec)
    assert isinstance(model, SupervisedModel if kind == "supervised" else Model)
    assert isinstance(model.encoder, TargetOracle) == (kind == "oracle")


def test_cloning_summary_counts_the_clones_of_originals_that_do_their_task():
    summary = cloning.summary(np.array([0.9, 0.2, 0.7, 0.5]), np.array([0.6, 0.9, 0.1, 0.5]))
    assert summary["num_good_originals"] == 3 and summary["good_clones"] == 2 / 3
    np.testing.assert_allclose(summary["abs_difference"], np.mean([0.3, 0.7, 0.6, 0.0]))
    assert cloning.summary(np.zeros(3), np.ones(3))["good_clones"] is None
