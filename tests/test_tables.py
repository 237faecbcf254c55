"""The results tables: every file from a smoke-preset run, reruns reuse finished work."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from experiments import report
from experiments.analyses import loss_correlation, references, tables
from experiments.configs import common as config_common
from experiments.run import evaluate, train, workdirs
from weightspace import files
from zoo_builder import build
from zoo_builder.configs import formal_languages


@pytest.mark.slow
def test_tables_on_the_smoke_preset_write_every_file_and_reuse_runs(tmp_path, monkeypatch):
    zoos = tmp_path / "zoos"
    build.build(formal_languages.get_config("smoke"), str(zoos / "formal_languages_smoke"))
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(zoos))
    encoders = ("layerwise_statistics", "noninteractive")
    outdir = tmp_path / "tables"
    result = tables.make_tables(
        str(outdir), "smoke", ("formal_languages",), 2, encoders, ("performance",), oracle=True, sweep=True
    )
    names = {p.name for p in outdir.iterdir()}
    expected = {f"{f}_formal_languages.png" for f in ("pca", "probing", "emulation", "curves")}
    assert {"tables.md", "results.csv", "results.json", "runs"} | expected <= names
    text = (outdir / "tables.md").read_text()
    assert text.count("### formal_languages") == 8  # OOD / eval, all / trained snapshots x MLP / linear
    for encoder in encoders:
        assert f"| mechanistic | {encoder} |" in text or f"| functionalist | {encoder} |" in text
        assert "| supervised, " in text
    # Cells are means over the two seeds of the runs' own evaluation files.
    runs = [json.loads((outdir / "runs" / "formal_languages" / "emulation" / "noninteractive" / f"seed{s}" /
                        "evaluation.json").read_text()) for s in range(2)]  # fmt: skip
    cell = result["cells"]["formal_languages/ood/mlp/emulation/noninteractive/step_accuracy"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(np.mean([r["probes"]["mlp"]["ood"]["step_accuracy"] for r in runs]))
    # The smoke zoo's performance is constant, so its R² is undefined: n/a in the table, null in strict JSON.
    assert "n/a" in text
    json.loads((outdir / "results.json").read_text(), parse_constant=_reject)
    supervised = result["cells"]["formal_languages/ood/mlp/supervised/noninteractive/performance_mae"]
    assert supervised["n"] == 2
    with open(outdir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["kind"] for r in rows} == {"emulation", "supervised", "oracle", "reference"}
    supervised_runs = {r["run"] for r in rows if r["kind"] == "supervised"}
    expected_runs = {f"runs/formal_languages/supervised_performance/{e}/seed{s}" for e in encoders for s in (0, 1)}
    assert supervised_runs == expected_runs
    # tables.md is rendered from results.json alone: the same tables as the records give, in the same row order.
    saved = files.read_json(outdir / "results.json")
    assert (saved["preset"], saved["seeds"], saved["command"]) == ("smoke", 2, "")
    assert saved["figures"] == [os.path.basename(p) for p in result["figures"]] and saved["wall_s"] > 0
    # Where the time went: the zoo, each row's seeds (all trained here), the reference rows.
    rows = [(t["row"], t["seeds"], t["done"]) for t in saved["timings"]]
    trained = [(f"{kind}/{e}", [0, 1], [0, 1]) for kind in ("emulation", "supervised") for e in encoders]
    oracles = [("oracle/task", [0, 1], [0, 1]), ("oracle/constant", [0, 1], [0, 1])]
    assert rows == [("zoo", [], []), *trained, *oracles, ("reference", [], [])]
    assert sum(t["wall_s"] for t in saved["timings"]) <= saved["wall_s"]
    assert text == report.render(str(outdir / "results.json"))
    records = loss_correlation.read_records(str(outdir))
    cells = tables.build_cells(records)
    assert json.dumps(files.strict(cells)) == json.dumps(saved["cells"])
    assert "\n".join(report.table_lines(saved["cells"])) in text
    emulated = ["mechanistic | layerwise_statistics", "functionalist | noninteractive"]
    expected = [*emulated, *(f"supervised, {row}" for row in emulated), "reference | readout"]
    expected += ["reference | fixed_probe", "oracle | task", "oracle | constant"]
    for table in text.split("### ")[1:]:
        lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| group |")]
        assert [" | ".join(line.removeprefix("| ").split(" | ")[:2]) for line in lines] == expected
    # The oracles (the exact task, a constant embedding): each its own row in every table, from its two seeds'
    # runs, never marked best.
    for target in ("task", "constant"):
        oracle_rows = [line for line in text.splitlines() if line.startswith(f"| oracle | {target} |")]
        assert len(oracle_rows) == 8 and not any("**" in line for line in oracle_rows)
        assert result["cells"][f"formal_languages/ood/mlp/oracle/{target}/cloning"]["n"] == 2
    # The reference rows: one evaluation per seed, in every table (trained snapshots too), never marked best.
    for row in ("readout", "fixed_probe"):
        lines = [line for line in text.splitlines() if line.startswith(f"| reference | {row} |")]
        assert len(lines) == 8 and not any("**" in line for line in lines)
    assert result["cells"]["formal_languages/ood_trained/linear/reference/fixed_probe/step_accuracy"]["n"] == 2
    assert (outdir / "runs" / "formal_languages" / "reference" / "seed1" / "evaluation.json").exists()
    # Beside the tables: the emulation loss against each score, over the four emulation runs.
    assert {"loss_correlation.md", "loss_correlation_formal_languages.png"} <= {p.name for p in outdir.iterdir()}
    correlations = json.loads((outdir / "loss_correlation.json").read_text())["formal_languages"]
    assert correlations["runs"] == 4
    evaluations = [
        json.loads(
            (outdir / "runs" / "formal_languages" / "emulation" / e / f"seed{s}" / "evaluation.json").read_text()
        )
        for e in encoders
        for s in range(2)
    ]
    loss = np.array([r["loss"]["eval"] for r in evaluations])
    score = np.array([r["probes"]["mlp"]["ood"]["step_accuracy"] for r in evaluations])
    ranks = lambda v: np.array([np.flatnonzero(np.sort(v) == x).mean() for x in v])  # ties: their mean rank
    row = next(
        r
        for r in correlations["rows"]
        if (r["split"], r["metric"], r["loss_split"]) == ("ood", "step_accuracy", "eval")
    )
    expected = -np.corrcoef(ranks(loss), ranks(score))[0, 1]  # negated: a higher accuracy is better
    assert row["rho"] == pytest.approx(expected) or (np.isnan(row["rho"]) and np.isnan(expected))
    # Beside each correlation: its interval and p-value, across runs and within encoders, all rendered.
    assert {"rho_interval", "p_value", "within_rho", "within_interval", "within_p_value"} <= set(row)
    rendered = (outdir / "loss_correlation.md").read_text()
    assert "rho within with OOD loss" in rendered and "An interval that holds 0 is no evidence" in rendered

    # A rerun trains nothing and only re-aggregates.
    monkeypatch.setattr(train, "train_sweep", lambda *a, **k: pytest.fail("retrained a finished run"))
    monkeypatch.setattr(references, "compute", lambda *a, **k: pytest.fail("recomputed the reference rows"))
    again = tables.make_tables(str(outdir), "smoke", ("formal_languages",), 2, encoders, ("performance",), oracle=True)
    assert json.dumps(again["cells"]) == json.dumps(result["cells"])
    assert all(not t["done"] for t in files.read_json(outdir / "results.json")["timings"])
    # Runs made with another preset variant are not reused under its name: the differing keys are named,
    # and nothing in the output directory changes.
    contents = lambda: {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file() and ".lock" not in p.name}
    before = contents()
    with pytest.raises(workdirs.TrainingError, match=r"holds a run with another config.*emulator\.condition"):
        tables.make_tables(str(outdir), "smoke,condition_every", ("formal_languages",), 2, encoders)
    assert contents() == before


def test_unknown_encoder_is_named(tmp_path):
    with pytest.raises(ValueError, match="dwsnett"):
        tables.make_tables(str(tmp_path), "smoke", ("formal_languages",), 1, ("dwsnett",))


def _reject(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_undefined_metrics_are_null_in_json_and_n_a_in_tables(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"r2": float("nan"), "values": [1.0, float("inf")]})
    json.loads(path.read_text(), parse_constant=_reject)
    assert files.read_json(path) == {"r2": None, "values": [1.0, None]}
    record = dict(dataset="d", encoder="e", kind="emulation", split="ood", predictor="mlp", metric="r2")
    records = [dict(record, value=None), dict(record, value=0.5)]
    values = tables.cell_values(records, "d", "e", "emulation", "ood", "mlp", "r2")
    assert report.format_cell(tables.summary(values)) == "n/a"
    assert report.format_cell(tables.summary(values[1:])) == "0.500"


@pytest.mark.parametrize("sweep", [None, True, False])
def test_a_row_s_seeds_train_as_one_sweep_where_it_pays(sweep, tmp_path, monkeypatch):
    """--sweep=true trains a row's seeds as one sweep, false one after another, and auto (None) as one sweep
    only where each seed gets a device of its own on a CPU (always on an accelerator)."""
    trained = []
    monkeypatch.setattr(train, "train_sweep", lambda configs, paths: trained.append([c.seed for c in configs]))
    monkeypatch.setattr(evaluate, "evaluate", lambda path: {})
    configs = [config_common.experiment("flat", "smoke", "formal_languages", seed) for seed in range(3)]
    tables.ensure_sweep(configs, [str(tmp_path / f"seed{seed}") for seed in range(3)], sweep)
    together = sweep if sweep is not None else jax.default_backend() != "cpu" or len(jax.devices()) >= 3
    assert trained == ([[0, 1, 2]] if together else [[0], [1], [2]])
