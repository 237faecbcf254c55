"""A sweep: runs that differ in seed and learning rate trained together in one vmapped step, each member
the single run of its config up to floating-point rounding, in a single run's workdir."""

import importlib
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.run import layout, train, workdirs
from weightspace import checkpointing, encoders, errors

# Measured: members differ from their single runs by at most 2.2e-7 in any parameter after 20 smoke steps.
PARAMS_ATOL = 1e-5


def _config(name, zoo_path, seed=0, lr=None, **overrides):
    config = importlib.import_module(f"experiments.configs.{name}").get_config("smoke")
    config.zoo.path, config.seed, config.train.num_steps = zoo_path, seed, 20
    config.train.checkpoint_every_steps = 5
    if lr is not None:
        config.optim.lr = lr
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def _latest(workdir):
    manager = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
    step = manager.latest_step()
    manager.close()
    return checkpointing.restore_pytree(os.path.join(workdir, "checkpoints", "latest", str(step), "default"))


def _trained_params(workdir):
    """The parameters of a run's latest checkpoint, as its model holds them (dropout keys and all restored)."""
    return jax.tree.map(np.asarray, nnx.state(workdirs.load_run(workdir, "latest")[1], nnx.Param))


def _losses(workdir):
    with open(layout.run_file(workdir, layout.METRICS)) as f:
        return [{k: v for k, v in json.loads(line).items() if "loss" in k} for line in f]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [(name, {}) for name in encoders.NAMES]
    + [("flat", {"supervised.target": "performance"}), ("layerwise_statistics", {"oracle.target": "task"})],
)
def test_each_member_is_the_single_run_of_its_seed_and_learning_rate(name, overrides, smoke_zoo, tmp_path):
    configs = [_config(name, smoke_zoo, 0, **overrides), _config(name, smoke_zoo, 1, lr=1e-3, **overrides)]
    members = [str(tmp_path / "seed0"), str(tmp_path / "seed1_lr0.001")]
    finals = train.train_sweep(configs, members)
    train.train(configs[1], str(tmp_path / "single"))
    swept, single = (_trained_params(path) for path in (members[1], str(tmp_path / "single")))
    assert workdirs.checkpoint_step(members[1], "latest") == workdirs.checkpoint_step(
        str(tmp_path / "single"), "latest"
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=PARAMS_ATOL), swept, single)
    for a, b in zip(_losses(members[1]), _losses(str(tmp_path / "single")), strict=True):
        assert a.keys() == b.keys() and np.allclose(list(a.values()), list(b.values()), rtol=1e-5, atol=1e-6)
    # The members differ (another seed and rate), and each workdir is a single run's, with its own config.
    assert not np.allclose(*(jax.tree.leaves(_trained_params(m))[0] for m in members))
    assert json.loads(workdirs.read_config(members[1]).to_json()) == json.loads(configs[1].to_json())
    assert finals[1]["train_loss"] == pytest.approx(_losses(members[1])[-1]["train_loss"])


@pytest.mark.slow
def test_a_sweep_resumes_bit_for_bit_also_when_a_member_was_killed_behind(smoke_zoo, tmp_path):
    configs = [_config("flat", smoke_zoo, seed) for seed in (0, 1)]
    whole = [str(tmp_path / "whole" / f"seed{s}") for s in (0, 1)]
    parts = [str(tmp_path / "parts" / f"seed{s}") for s in (0, 1)]
    train.train_sweep(configs, whole)
    short = [_config("flat", smoke_zoo, seed) for seed in (0, 1)]
    for config in short:
        config.train.num_steps = 10
    train.train_sweep(short, parts)
    # Member 1 was killed before saving step 10: member 0 is ahead, and its step 10 is set aside on resume.
    member1_latest = os.path.join(parts[1], "checkpoints", "latest")
    checkpointing.set_aside_after(member1_latest, 5, "killed")
    train.train_sweep(configs, parts)
    assert any(name.startswith("10-") for name in os.listdir(os.path.join(parts[0], "checkpoints", "latest.ahead")))
    for a, b in zip(whole, parts, strict=True):
        jax.tree.map(np.testing.assert_array_equal, _latest(a), _latest(b))
        assert _losses(a) == _losses(b)


@pytest.mark.slow
def test_a_diverging_member_is_named(smoke_zoo, tmp_path):
    configs = [_config("layerwise_statistics", smoke_zoo, 0), _config("layerwise_statistics", smoke_zoo, 1, lr=1e30)]
    for config in configs:
        config.train.log_every_steps = 1
    paths = [str(tmp_path / "seed0"), str(tmp_path / "seed1")]
    with pytest.raises(workdirs.TrainingError, match=r"Non-finite .* before step \d+, member 1 \(.*seed1\)"):
        train.train_sweep(configs, paths)


def test_members_may_differ_only_in_seed_and_learning_rate(smoke_zoo, tmp_path):
    configs = [_config("flat", smoke_zoo, 0), _config("flat", smoke_zoo, 1, **{"train.batch_size": 3})]
    with pytest.raises(errors.ConfigError, match=r"differ only in seed, optim\.lr.*train\.batch_size"):
        train.train_sweep(configs, [str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(errors.ConfigError, match="one learning rate per seed"):
        train.sweep_members(configs[0], str(tmp_path), [0, 1], [1e-3])
    members, paths = train.sweep_members(configs[0], str(tmp_path), [3, 4], [1e-3, 3e-4])
    assert [(c.seed, c.optim.lr) for c in members] == [(3, 1e-3), (4, 3e-4)]
    assert paths == [str(tmp_path / "seed3_lr0.001"), str(tmp_path / "seed4_lr0.0003")]
    assert train.sweep_members(configs[0], str(tmp_path)) == ([configs[0]], [str(tmp_path)])


@pytest.mark.slow
def test_a_sweep_reading_the_zoo_from_disk_matches_the_sweep_in_memory(smoke_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_DRAW_BLOCK", 7)  # several blocks of host-side draws in 20 steps
    runs = {}
    for on_disk in (False, True):
        configs = [_config("flat", smoke_zoo, seed, **{"train.zoo_on_disk": on_disk}) for seed in (0, 1)]
        runs[on_disk] = [str(tmp_path / str(on_disk) / f"seed{seed}") for seed in (0, 1)]
        train.train_sweep(configs, runs[on_disk])
    for memory, disk in zip(runs[False], runs[True], strict=True):
        jax.tree.map(np.testing.assert_array_equal, _latest(memory), _latest(disk))
        assert _losses(memory) == _losses(disk)


@pytest.mark.slow
def test_main_trains_the_seeds_given_as_one_sweep_members_split_over_the_devices(smoke_zoo, tmp_path):
    """Two members on two forced host devices (one each) give what they give on one device."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for devices in (1, 2):
        command = [
            sys.executable, "-m", "experiments.main", "--config=experiments/configs/flat.py:smoke",
            f"--config.zoo.path={smoke_zoo}", "--config.train.num_steps=10",
            "--config.evaluate.after_training=false", f"--workdir={tmp_path / str(devices)}",
            "--seeds=3,4", "--learning_rates=1e-3,3e-4", f"--cpu_devices={devices}",
        ]  # fmt: skip
        subprocess.run(command, cwd=repo, check=True, capture_output=True, timeout=600)
    for seed, rate in ((3, 1e-3), (4, 3e-4)):
        one, two = (str(tmp_path / str(devices) / f"seed{seed}_lr{rate:g}") for devices in (1, 2))
        config = workdirs.read_config(two)
        assert (config.seed, config.optim.lr) == (seed, rate)
        assert workdirs.checkpoint_step(two, "latest") == 10
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        jax.tree.map(close, _trained_params(one), _trained_params(two))
        for a, b in zip(_losses(one), _losses(two), strict=True):
            assert a.keys() == b.keys() and np.allclose(list(a.values()), list(b.values()), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds=a,b"], r"--seeds=a,b must be a comma-separated list, each an integer >= 0"),
        (["--seeds=0,1", "--learning_rates=1e-3"], r"one learning rate per seed"),
    ],
)
def test_bad_sweep_flags_get_one_line_and_write_nothing(flags, message, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "experiments.main", "--config=experiments/configs/flat.py:smoke",
               f"--workdir={tmp_path / 'run'}", *flags]  # fmt: skip
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error (ConfigError)") and re.search(message, last)
    assert not (tmp_path / "run").exists()
