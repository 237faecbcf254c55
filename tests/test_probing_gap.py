"""The probing-gap and permutation-analysis commands end to end on their smoke presets."""

import dataclasses
import json
import os
import types

import pytest

from experiments import report
from experiments.analyses import permutation_analysis, probing_gap
from experiments.run import layout
from weightspace import encoders, files


def test_options_are_parsed_and_named():
    options = probing_gap.Options.parse(["condition_every"], ["encoder.answers=argmax", "train.num_steps=60"])
    assert options.overrides == (("encoder.answers", "argmax"), ("train.num_steps", 60))
    assert options.tag == "condition_every,encoder.answers=argmax,train.num_steps=60"
    plan = probing_gap.PLANS["smoke"]
    probing = probing_gap.run_config("interactive", plan, options, "/zoo", 5, 1)
    assert (probing.encoder.answers, probing.encoder.probe_length, probing.train.num_steps) == ("argmax", 5, 60)
    assert probing.emulator.condition == "every" and probing.seed == 1
    assert "answers" not in probing_gap.run_config("dwsnet", plan, options, "/zoo", 5, 0).encoder
    with pytest.raises(ValueError, match="not key=value"):
        probing_gap.Options.parse([], ["train.num_steps"])
    with pytest.raises(ValueError, match=r"'no_such_variant' is neither a preset .* nor a variant"):
        probing_gap.Options.parse(["no_such_variant"], [])


def test_the_m1to5_curve_reuses_the_m5_runs():
    """The m1to5 preset's m = 5 runs have the m5 preset's configs, so an outdir that holds them reuses them."""
    options = probing_gap.Options.parse(["condition_every", "curiosity_teacher"], ["eval.select_by=novelty"])
    plans = [probing_gap.PLANS[name] for name in ("m5", "m1to5")]
    assert all(5 in plan.code_lengths and plan.budget == 64 for plan in plans)
    for encoder in ("interactive", "noninteractive"):
        first, second = (probing_gap.run_config(encoder, plan, options, "/zoos/m5/zoo", 64, 2) for plan in plans)
        assert first.to_dict() == second.to_dict()


@pytest.mark.slow
def test_smoke_presets_write_their_tables_and_figures(tmp_path):
    outdir = str(tmp_path / "gap")
    options = probing_gap.Options.parse(probing_gap.DEFAULT_VARIANTS, probing_gap.DEFAULT_OVERRIDES)
    # The preset's 16 LSTMs and its learned budget (6) overridden.
    result = probing_gap.make(outdir, "smoke", options, seeds=1, zoo_runs=20, learned_budgets=[6, 11])
    for name in ("probing_gap.json", "probing_gap.md", "probing_gap_m.png", "probing_gap_budget.png"):
        assert os.path.getsize(os.path.join(outdir, name)) > 0
    saved = json.loads((tmp_path / "gap" / "probing_gap.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    plan = probing_gap.PLANS["smoke"]
    assert saved["plan"]["num_runs"] == 20 and saved["zoos"][0]["num_snapshots"] == 20 * len(plan.snapshot_steps)
    rows = {(r["row"], r["budget"]) for r in saved["rows"]}
    assert {(e, b) for e in probing_gap.ENCODERS for b in (plan.budget, 11)} <= rows
    assert saved["plan"]["learned_budgets"] == [6, 11] and ("interactive", 3) not in rows
    # Each learned run once, every one trained by this command: a probing encoder's at each learned budget, an
    # encoder of the weights' one run for both (it reads no budget).
    probing = [e for e in probing_gap.ENCODERS if encoders.probes(e)]
    assert len(saved["learned_runs"]) == 2 * len(probing) + len(probing_gap.ENCODERS) - len(probing)
    assert all(run["trained"] for run in saved["learned_runs"])
    with pytest.raises(ValueError, match=r"learned budgets \[4\] are not in the smoke sweep's \[3, 6, 11\]"):
        probing_gap.make(outdir, "smoke", options, seeds=1, learned_budgets=[4])
    assert {(r, b) for r in probing_gap.REFERENCES for b in plan.sweep_budgets} <= rows
    # The fixed sequence read by the encoders' probe, at every budget, on the same held-out LSTMs.
    assert {(r, b) for r in probing_gap.READERS for b in plan.sweep_budgets} <= rows
    readers = [r for r in saved["rows"] if r["row"] in probing_gap.READERS]
    adaptive_n = {r["budget"]: r["n"] for r in saved["rows"] if r["row"] == "adaptive"}
    assert all(0 <= r["label_accuracy"] <= 1 and r["n"] == adaptive_n[r["budget"]] for r in readers)
    bounds = {(r["row"], r["budget"]): r["bound"] for r in saved["rows"] if r["row"] in probing_gap.REFERENCES}
    # Enough symbols for the adaptive search (11 for m = 2) cover every lock; a fixed sequence needs 17.
    assert bounds[("adaptive", 11)] == 1.0 and bounds[("fixed", 11)] < 1.0
    assert bounds[("fixed", 3)] <= bounds[("fixed", 6)] <= bounds[("fixed", 11)]
    # The interactive encoder's probes are the adaptive search's (its policy prior outweighs the probe MLP's
    # logits), untrained and trained, so they open exactly the locks whose label the adaptive reference reads.
    at_budget = {r["row"]: r for r in saved["rows"] if r["budget"] == plan.budget}
    opened = at_budget["interactive"]["opened_at_init"], at_budget["interactive"]["opened"]
    assert opened == (at_budget["adaptive"]["label_read"],) * 2
    assert all(0 <= at_budget[e]["opened"] <= 1 for e in ("interactive", "noninteractive"))
    # Within 11 symbols the adaptive search opens every lock, so the interactive encoder's probes open every
    # lock of the training codes' LSTMs that implement theirs.
    assert {r["row"]: r for r in saved["rows"] if r["budget"] == 11}["interactive"]["opened_train"] == 1.0
    # Its own probes' answers, counted and read by the downstream probe, are the adaptive search's read so.
    own, adaptive = at_budget["interactive_pooled_by_probe"], at_budget["adaptive_pooled_by_probe"]
    assert own["label_accuracy"] == adaptive["label_accuracy"] and own["code_accuracy"] == adaptive["code_accuracy"]
    assert "noninteractive_pooled_by_probe" in at_budget and "dwsnet_pooled_by_probe" not in at_budget
    assert "opened" not in at_budget["dwsnet"]
    # Statistics: every row read on the held-out LSTMs has its interval around its accuracy, the point says how
    # many runs and distinct locks stand behind it and what always answering their commonest label scores.
    for row in (r for r in saved["rows"] if r["budget"] == plan.budget):
        low, high = row["label_interval"]
        assert low <= row["label_accuracy"] <= high and 0 <= row["null_mean"] <= row["null_q95"] <= 1
        assert 1 <= row["n_locks"] <= row["n_runs"] <= adaptive_n[row["budget"]]  # runs hold >= 1 snapshot
        assert 1 / plan.num_labels <= row["majority"] <= 1
        # Held-out codes are distinct from the training ones: together no more than the alphabet spells.
        assert 1 <= row["heldout_codes"] <= row["n_locks"]
        assert row["train_codes"] + row["heldout_codes"] <= plan.alphabet_size ** row["code_length"]
    # The encoders' intervals are of the accuracy their evaluation reports: the same probe reads the same labels.
    interactive = at_budget["interactive"]
    assert interactive["label_interval"][0] <= interactive["label_accuracy"] <= interactive["label_interval"][1]
    text = (tmp_path / "gap" / "probing_gap.md").read_text()
    assert "## Intervals and baselines" in text and "| adaptive_pooled_by_probe |" in text
    assert "## Locks the probes open" in text
    assert "## Against the code length m" in text and "## Against the budget L" in text
    assert "fixed_pooled_by_probe: label / code" in text and "interactive_pooled_by_probe: label / code" in text
    # The markdown is rendered from the JSON alone, which records what its header shows.
    assert text == report.render(os.path.join(outdir, "probing_gap.json"))
    assert saved["machine"] in text and saved["command"] == "" and "Command:" not in text

    runs = os.path.join(outdir, "runs", options.tag, "m2")
    workdirs = [os.path.join(runs, "any_L", "dwsnet", "seed0"), os.path.join(runs, "L6", "interactive", "seed0")]
    analysis = permutation_analysis.make(workdirs, str(tmp_path / "perm"), num_snapshots=6, seed=0)
    for name in ("permutation_analysis.json", "permutation_analysis.md", "permutation_analysis.png"):
        assert os.path.getsize(tmp_path / "perm" / name) > 0
    rendered = report.render(str(tmp_path / "perm" / "permutation_analysis.json"))
    assert (tmp_path / "perm" / "permutation_analysis.md").read_text() == rendered
    assert "| dwsnet | one_gate_rows |" in rendered and "| interactive | rank correlation |" in rendered
    correct = [r for r in analysis["rows"] if r["kind"] == "correct"]
    assert len(correct) == 4 and all(r["relative_change"] <= 1e-5 for r in correct)
    assert all(r["function_change"] < 1e-6 for r in correct)
    assert all(r["function_change"] > 1e-4 for r in analysis["rows"] if r["kind"] != "correct")
    # Trained against initialised in both measures, pooled over each encoder's runs (one each here): the absolute
    # ratio is the ratio of the rows' embedding changes, the relative one of their relative changes.
    summary = json.loads((tmp_path / "perm" / "permutation_analysis.json").read_text())["summary"]
    assert {(r["encoder"], r["kind"]) for r in summary} == {
        (e, k) for e in ("dwsnet", "interactive") for k in permutation_analysis.KINDS[1:]
    }
    by = {(r["encoder"], r["state"], r["kind"]): r for r in analysis["rows"]}
    for row in summary:
        init, trained = by[(row["encoder"], "init", row["kind"])], by[(row["encoder"], "trained", row["kind"])]
        if init["embedding_change"] == 0:  # an encoder invariant to this kind at initialisation: no ratio
            assert row["absolute_ratio"] is None
            continue
        assert row["absolute_ratio"] == pytest.approx(trained["embedding_change"] / init["embedding_change"], rel=1e-5)
        assert row["relative_ratio"] == pytest.approx(trained["relative_change"] / init["relative_change"], rel=1e-5)
        assert row["spread_ratio"] == pytest.approx(trained["scale"] / init["scale"], rel=1e-5)
        for measure in ("absolute", "relative"):
            low, high = row[f"{measure}_interval"]
            rounding = 1e-6 * max(1.0, abs(row[f"{measure}_ratio"]))  # float rounding of the means
            assert low - rounding <= row[f"{measure}_ratio"] <= high + rounding
    assert "## Trained against initialised, pooled over seeds" in rendered


@pytest.mark.slow
def test_a_point_pools_ood_folds_until_it_holds_out_enough_locks(tmp_path):
    """With `heldout_locks` above what fold 0 holds out, a point trains each encoder on further OOD folds (each
    holding out other codes) and pools their held-out LSTMs: its counts are of the union, its intervals of
    every fold's reads."""
    options = probing_gap.Options.parse(probing_gap.DEFAULT_VARIANTS, probing_gap.DEFAULT_OVERRIDES)
    plan = dataclasses.replace(probing_gap.PLANS["smoke"], num_runs=40)
    outdir, m, budget = str(tmp_path / "gap"), plan.code_lengths[0], plan.budget
    alone = probing_gap.run_point(plan, outdir, options, 1, m, budget, (), {})[0][0]
    assert alone["folds"] == 1
    plan = dataclasses.replace(plan, heldout_locks=alone["n_locks"] + 1)
    runs = {}
    rows, zoo_row = probing_gap.run_point(plan, outdir, options, 1, m, budget, ("noninteractive",), runs)
    point = rows[0]
    folds = point["folds"]
    assert folds >= 2 and point["n_locks"] >= plan.heldout_locks and point["n"] == zoo_row["ood_trained"]
    assert point["n"] > alone["n"] and point["heldout_codes"] > alone["heldout_codes"]
    # A run per fold, the later ones beside fold 0's, each holding out its own fold's codes.
    assert len(runs) == folds and all(runs.values())
    heldout_codes = []
    for fold in range(folds):
        path = layout.gap_run(outdir, options.tag, m, budget, "noninteractive", 0, fold)
        assert os.path.relpath(path, outdir) in runs
        assert files.read_json(layout.run_file(path, layout.CONFIG))["split"]["ood_fold"] == fold
        codes = files.read_json(layout.run_file(path, layout.SPLIT))["ood"]["tasks"]["code"]
        heldout_codes.append({tuple(c) for c in codes})
    assert sum(map(len, heldout_codes)) == len(set().union(*heldout_codes))  # disjoint
    learned = [r for r in rows if r["row"] == "noninteractive"]
    assert sorted(r["ood_fold"] for r in learned) == list(range(folds))
    assert all(r["label_interval"] == learned[0]["label_interval"] for r in learned)  # the point's, over folds
    (mean,) = [r for r in probing_gap.mean_rows(rows) if r["row"] == "noninteractive"]
    assert mean["seeds"] == folds and "ood_fold" not in mean
    assert mean["label_accuracy"] == pytest.approx(sum(r["label_accuracy"] for r in learned) / folds)


def test_overrides_are_checked_against_the_encoders_that_run(tmp_path):
    """A teacher (interactive only) is refused for the non-interactive encoder, accepted where only the
    interactive one runs."""
    from experiments.analyses.probing_gap.__main__ import check_flags

    def problems(encoders):
        return check_flags(
            types.SimpleNamespace(
                preset="smoke",
                variants=["condition_every", "curiosity_teacher"],
                overrides=["encoder.teacher_steps=10"],
                encoders=encoders,
                learned_budgets=None,
                outdir=str(tmp_path / "gap"),
            )
        )

    assert problems(["interactive"]) == []
    assert any("teacher_steps=10 needs" in p for p in problems(["interactive", "noninteractive"]))
