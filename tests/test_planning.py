"""The cost model: counted work against independent counts, plans from shapes against real zoos."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import report
from experiments.benchmarks import plan as experiment_plan
from experiments.configs import flat
from experiments.run import layout, train
from weightspace import errors, files, metrics, planning, zoo
from zoo_builder import plan as zoo_plan
from zoo_builder.configs import formal_languages


def test_scanned_matmuls_count_once_per_step_and_kernels_once_per_iteration():
    def run(h, weights):  # 13 steps of [4, 16] @ [16, 16]
        return jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), h, weights)[0]

    cost = planning.step_cost(jax.jit(run), jnp.ones((4, 16)), jnp.ones((13, 16, 16)))
    assert cost.flops == 13 * 2 * 4 * 16 * 16
    double = planning.step_cost(jax.jit(run), jnp.ones((4, 16)), jnp.ones((26, 16, 16)))
    # Each iteration executes the same kernels: 13 more iterations add 13 times the per-iteration kernels.
    per_iteration = (double.kernels - cost.kernels) / 13
    assert per_iteration >= 1 and per_iteration == int(per_iteration)


def test_time_adds_matmuls_and_kernels():
    on = planning.Device("test", peak_tflops=1.0, kernel_us=1.0, memory_gb=1.0, source="test")
    cost = planning.StepCost(flops=4e12, kernels=1000, memory_bytes=0)
    # 4e12 FLOPs over 2 devices at 50 % of 1 TFLOPS, and 1000 kernels of 1 us.
    assert planning.seconds(cost, 2, on, 0.5) == pytest.approx(4.0 + 1e-3)
    with pytest.raises(ValueError, match="Unknown device kind 'tpu_v99'"):
        planning.device("tpu_v99", 1)


def test_the_abstract_zoo_has_the_built_zoos_shapes_and_columns(smoke_zoo):
    built, planned = zoo.describe(smoke_zoo), zoo_plan.abstract_zoo(formal_languages.get_config("smoke"))
    shapes = jax.tree.map(lambda x: (x.shape, x.dtype), (built.params, built.behaviour))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), (planned.params, planned.behaviour)) == shapes
    assert set(planned.metadata) == set(built.metadata)
    for column in ("run", "step", "task"):
        np.testing.assert_array_equal(planned.metadata[column], built.metadata[column])


@pytest.mark.slow
def test_zoo_and_training_plans(smoke_zoo):
    on = planning.DEVICES["h100"]
    text = zoo_plan.plan(formal_languages.get_config("smoke"), 8, on, 0.5)
    assert "1 (groups of 8 runs; 1 groups)" in text and "estimated wall time" in text
    config = flat.get_config("smoke")
    config.zoo.path = smoke_zoo
    text = experiment_plan.plan(config, on, 0.5)
    assert "1 x h100" in text and "30, evaluated 3 times" in text


@pytest.mark.slow
def test_a_sweep_plan_is_one_run_s_kernels_for_all_its_members(smoke_zoo, tmp_path):
    on = planning.DEVICES["h100"]
    config = flat.get_config("smoke")
    config.zoo.path = smoke_zoo
    text = experiment_plan.plan(config, on, 0.5, members=3)
    assert "a sweep of 3 seeds" in text and "3 members on each of 1" in text and "without the sweep" in text
    # A preset with a variant: the variant changes the runs, and the zoo is the preset's own.
    result = experiment_plan.table_plan("smoke,condition_every", ["formal_languages"], ["flat"], 3, on, 0.5)
    zoo_row, row = result["rows"]
    # The zoo is planned as its builder plans it, once whatever the seeds.
    build = zoo_plan.estimate(formal_languages.get_config("smoke"), 1, on, 0.5)
    assert zoo_row["run_s"] == pytest.approx(build["train_s"] + build["snapshot_s"]) and "sweep_s" not in zoo_row
    # Kernel-bound on an H100: three members cost about one run (vmap adds no kernels), not three.
    assert row["sweep_kernels"] <= 1.1 * row["run_kernels"]
    assert row["sweep_s"] < 0.5 * 3 * row["run_s"]
    markdown = report.table_plan_markdown(result)
    assert "| formal_languages | flat |" in markdown and "**all**" in markdown
    assert "| formal_languages | zoo: 4 runs x " in markdown
    assert result["preset"] == "smoke,condition_every"


@pytest.mark.slow
def test_the_check_plans_a_tables_directory_s_zoo_and_runs_against_their_own_times(smoke_zoo, tmp_path):
    with pytest.raises(errors.ConfigError, match="not a tables output directory"):
        experiment_plan.check(str(tmp_path), 0.2)
    config = flat.get_config("smoke")
    config.zoo.path = smoke_zoo
    run = layout.table_run(str(tmp_path), "formal_languages", ("emulation", "flat"), 0)
    train.train(config, run)
    result = experiment_plan.check(str(tmp_path), 0.2)
    zoo_row, run_row = result["rows"]
    assert (zoo_row["job"], run_row["job"]) == ("zoo", "flat")
    # Measured: the zoo's own build time, and the training loop's span scaled to all of its steps.
    built = os.path.dirname(smoke_zoo)
    assert zoo_row["measured_s"] == files.read_json(os.path.join(built, "zoo.json"))["wall_time_s"]
    # A resumed build's wall time is its last process's part, scaled to the whole; one that times nothing is refused.
    assert experiment_plan._build_seconds({"wall_time_s": 30.0, "trained_share": 0.25}, built) == 120.0
    with pytest.raises(errors.ConfigError, match="does not time any training of the zoo"):
        experiment_plan._build_seconds({"wall_time_s": 30.0}, built)
    timed = [row for row in metrics.read(os.path.join(run, "metrics.jsonl")) if "time" in row]
    span = (timed[-1]["time"] - timed[0]["time"]) / (timed[-1]["step"] - timed[0]["step"])
    assert run_row["measured_s"] == pytest.approx(span * config.train.num_steps)
    # Predicted: the plan of the same job, on this CPU at the rate the check measured.
    on = planning.cpu_device(result["cpu_gflops"] * 1e9, result["kernel_us"] * 1e-6, 1)
    costs = experiment_plan._costs([config], zoo.describe(smoke_zoo))
    assert run_row["predicted_s"] == pytest.approx(sum(experiment_plan._wall_seconds(*costs, on, 0.2)))
    assert all(row["predicted_s"] > 0 and row["reached"] > 0 for row in result["rows"])
    markdown = report.plan_check_markdown(result | {"command": "", "machine": "test"})
    assert "| formal_languages | flat | 1 |" in markdown and "| formal_languages | zoo |" in markdown
