"""Hostile command lines, through every command: refused in one line, before anything is written.

The named cases below are the ones a round of hostile use found: a builder pointed at a training run
(which deleted its checkpoints), the silent ones (accepted though wrong), and the ugly ones (refused with
a traceback, a wrong message, or after writing). Most are refused as the flags are parsed and run in this
process (`command_line.refusal`); those refused later, by the command itself, run as processes. The fuzz
test then draws wrong values, types and names for every config field and flag of every command.
Refusals: exit status 2, one `Error (<type>): ...` line, no traceback, nothing created or changed.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.configs import common, flat
from experiments.configs import schema as experiment_schema
from experiments.run import train
from tests import command_line
from tests.command_line import ACCEPTED, REPO, assert_one_line, digests, refusal, tree
from weightspace import encoders, schema, zoo
from zoo_builder import build
from zoo_builder.configs import formal_languages
from zoo_builder.configs import schema as zoo_schema

TRAIN = ("experiments.main", "--config=configs/flat.py:smoke")
BUILD = ("zoo_builder.main", "--config=configs/formal_languages.py:smoke")


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """A smoke zoo's build, a finished smoke run on it, a tables output, a file, and room for new paths."""
    root = tmp_path_factory.mktemp("places")
    zoo_path = build.build(formal_languages.get_config("smoke"), str(root / "build"))
    config = flat.get_config("smoke")
    config.zoo.path = zoo_path
    config.train.num_steps, config.train.checkpoint_every_steps, config.eval.every_steps = 4, 2, 2
    train.train(config, str(root / "run"))
    (root / "tables").mkdir()
    (root / "tables" / "results.csv").write_text("dataset,kind\n")
    (root / "a_file").write_text("not a directory")
    return {
        "root": root, "build": root / "build", "zoo": zoo_path, "run": root / "run", "tables": root / "tables",
        "file": root / "a_file", "new": root / "new",
    }  # fmt: skip


def _refused_in_process(places, module, *args, message=""):
    before = tree(places["root"])
    status, stderr = refusal(module, *(str(a).format(**places) for a in args))
    last = assert_one_line(status, stderr)
    assert re.search(message, last), last
    assert tree(places["root"]) == before


def _process(*command, cwd=REPO, **environment):
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTSPACE_TRACEBACK"} | environment
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, capture_output=True, text=True, env=env)


def _refused_as_a_process(root, command, message):
    before = digests(root)
    result = _process(*command)
    last = assert_one_line(result.returncode, result.stderr)
    assert re.search(message, last), last
    assert digests(root) == before


def test_a_zoo_build_pointed_at_a_training_run_is_refused_and_the_run_is_kept(places, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(places["run"], run)
    assert (run / "checkpoints" / "best").is_dir()
    _refused_as_a_process(tmp_path, [*BUILD, f"--workdir={run}"], r"holds a training run .* not a zoo build")


# (case, module, args, what the line says); {name} is a path of `places`.
IN_PROCESS = [
    (
        "silent 2: a lock code longer than its stream",
        "zoo_builder.main",
        [
            "--config=configs/family.py:combination_lock,smoke",
            "--config.task.settings.code_length=99",
            "--workdir={new}",
        ],
        "code_length=99 must be less than length=32",
    ),
    (
        "silent 3: a sweep inside a run",
        "experiments.main",
        [*TRAIN[1:], "--workdir={run}", "--seeds=0,1"],
        "holds a training run .* not a sweep",
    ),
    (
        "silent 4: a run inside its zoo",
        "experiments.main",
        [*TRAIN[1:], "--workdir={zoo}", "--config.zoo.path={zoo}"],
        "inside .*which holds a zoo build",
    ),
    (
        "silent 5: negative CPU devices",
        "experiments.main",
        [*TRAIN[1:], "--workdir={new}", "--cpu_devices=-1"],
        "--cpu_devices=-1: -1 is not a non-negative integer",
    ),
    (
        "silent 6: an encoder named twice",
        "experiments.analyses.tables",
        ["--preset=smoke", "--encoders=flat,flat", "--seeds=1", "--outdir={new}"],
        "names a value twice",
    ),
    (
        "silent 7: an override no run has",
        "experiments.analyses.probing_gap",
        ["--preset=smoke", "--overrides=encoder.nonsense=3", "--outdir={new}"],
        "no run's config has the key",
    ),
    ("silent 8: upgrading a file", "experiments.upgrade", ["--path={file}"], "is not a directory"),
    ("silent 8: upgrading a missing folder", "experiments.upgrade", ["--path={new}"], "is not a directory"),
    (
        "ugly: a NaN learning rate",
        "zoo_builder.main",
        [*BUILD[1:], "--workdir={new}", "--config.train.lr_points=((0,nan),)"],
        "train.lr_points=.* must be \\(step, learning rate > 0\\) pairs",
    ),
    (
        "ugly: an unknown zoo dataset",
        "experiments.main",
        [*TRAIN[1:], "--workdir={new}", "--config.zoo.dataset=nonsense"],
        "zoo.dataset='nonsense' must be one of",
    ),
    (
        "ugly: a policy prior without a policy",
        "experiments.main",
        ["--config=configs/interactive.py:smoke,probe_policy", "--workdir={new}"],
        "have no probing policy",
    ),
    (
        "ugly: a missing config file",
        "experiments.main",
        ["--config=configs/missing.py", "--workdir={new}"],
        "there is no such file",
    ),
    (
        "ugly: tables with an unknown variant",
        "experiments.analyses.tables",
        ["--preset=smoke,nonsense", "--outdir={new}"],
        "'nonsense' is neither a preset .* nor a variant",
    ),
    (
        "ugly: an unknown probing-gap encoder",
        "experiments.analyses.probing_gap",
        ["--encoders=nonsense", "--outdir={new}"],
        "must each be one of \\['interactive'",
    ),
    (
        "ugly: an override that is not key=value",
        "experiments.analyses.probing_gap",
        ["--overrides=justtext", "--outdir={new}"],
        "is not key=value",
    ),
    (
        "ugly: a learned budget outside the sweep",
        "experiments.analyses.probing_gap",
        ["--preset=smoke", "--learned_budgets=4", "--outdir={new}"],
        "--learned_budgets=4: 4 must each be one of \\['3', '6', '11'\\]",
    ),
    (
        "ugly: an unknown probing-gap variant",
        "experiments.analyses.probing_gap",
        ["--variants=nonsense", "--outdir={new}"],
        "must each be one of \\['condition_every'",
    ),
    (
        "ugly: planning unknown tables",
        "experiments.benchmarks.plan",
        ["--tables=nonsense"],
        "'nonsense' is neither a preset",
    ),
    (
        "ugly: training in a builder's workdir",
        "experiments.main",
        [*TRAIN[1:], "--workdir={build}"],
        "holds a zoo build .* not a training run",
    ),
    (
        "ugly: permutations of a builder's workdir",
        "experiments.analyses.permutation_analysis",
        ["--workdir={build}"],
        "holds a zoo build .* not a training run",
    ),
    (
        "written: an unknown loss",
        "experiments.main",
        [*TRAIN[1:], "--workdir={new}", "--config.loss=nonsense"],
        "loss='nonsense' must be one of",
    ),
    (
        "written: an infinite learning rate",
        "experiments.main",
        [*TRAIN[1:], "--workdir={new}", "--config.optim.lr=inf"],
        "optim.lr=inf must be a finite number > 0",
    ),
    (
        "message: an unknown variant",
        "experiments.main",
        ["--config=configs/interactive.py:smoke,nonsense", "--workdir={new}"],
        "'nonsense' is neither a preset",
    ),
    (
        "message: a preset in capitals",
        "experiments.main",
        ["--config=configs/flat.py:SMOKE", "--workdir={new}"],
        "'SMOKE' is neither a preset",
    ),
    (
        "message: two presets",
        "experiments.main",
        ["--config=configs/flat.py:smoke,quick", "--workdir={new}"],
        "at most one preset",
    ),
    (
        "message: an unknown family",
        "zoo_builder.main",
        ["--config=configs/family.py:nonexistent,smoke", "--workdir={new}"],
        "needs a task family name; known: \\[",
    ),
    ("form: a disk benchmark on no zoo", "experiments.benchmarks.disk", ["--zoo={new}"], "is not a complete zoo"),
    ("form: a disk benchmark on a run", "experiments.benchmarks.disk", ["--zoo={run}"], "is not a complete zoo"),
    (
        "form: a disk benchmark of no steps",
        "experiments.benchmarks.disk",
        ["--zoo={zoo}", "--steps=0"],
        "--steps=0: 0 is not a positive integer",
    ),
    ("form: no local processes", "zoo_builder.launch_local", ["--processes=0"], "--processes=0: 0 is not a positive"),
]


@pytest.mark.parametrize(("case", "module", "args", "message"), IN_PROCESS, ids=[c[0] for c in IN_PROCESS])
def test_hostile_command_lines_are_refused_as_they_are_parsed(case, module, args, message, places):
    _refused_in_process(places, module, *args, message=message)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "override", "message"),
    [
        ("ugly: an unknown supervised target", "--config.supervised.target=nonsense", "Unknown supervised.target"),
        ("ugly: an unknown oracle target", "--config.oracle.target=nonsense", "Unknown oracle.target"),
        ("written: a zoo that is not there", "--config.zoo.path={new}/zoo", "No complete zoo at zoo.path"),
    ],
)
def test_a_trainer_refused_after_parsing_leaves_no_workdir(case, override, message, places, tmp_path):
    """Refused once the zoo is known (its targets) or looked for: the new workdir, its owner record and its
    lock are gone again."""
    override = override.format(new=tmp_path)
    zoo_path = override if "zoo.path" in override else f"--config.zoo.path={places['zoo']}"
    result = _process(*TRAIN, f"--workdir={tmp_path / 'a' / 'run'}", override, zoo_path)
    last = assert_one_line(result.returncode, result.stderr)
    assert re.search(message, last), last
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_tables_with_an_unknown_supervised_target_are_refused_before_any_row_trains(places, tmp_path):
    cache = tmp_path / "zoos"
    shutil.copytree(places["build"], cache / "formal_languages_smoke")
    command = ["experiments.analyses.tables", "--preset=smoke", "--encoders=flat", "--seeds=1"]
    command += ["--supervised_targets=nonsense", f"--outdir={tmp_path / 'tables'}"]
    result = _process(*command, WEIGHTSPACE_ZOOS=str(cache))
    last = assert_one_line(result.returncode, result.stderr)
    assert "Unknown supervised.target 'nonsense'; this zoo's targets are" in last
    assert not (tmp_path / "tables").exists()


@pytest.mark.slow
def test_a_resume_on_a_damaged_metrics_file_is_refused_before_the_config_is_rewritten(places, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(places["run"], run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("garbage\n{}\n")
    command = [*TRAIN, f"--workdir={run}", f"--config.zoo.path={places['zoo']}", "--config.train.num_steps=8"]
    command += ["--config.train.checkpoint_every_steps=2", "--config.eval.every_steps=2"]
    _refused_as_a_process(tmp_path, command, r"metrics.jsonl line \d+ is not JSON")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["evaluation.json", "config.json"])
def test_a_run_file_holding_invalid_json_is_one_line(name, places, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(places["run"], run)
    (run / name).write_text('{"cut": ')
    _refused_as_a_process(tmp_path, ["experiments.run.evaluate", f"--workdir={run}"], f"{name} is not valid JSON")


def test_a_complete_zoo_without_its_arrays_names_them(places, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(places["zoo"], copy)
    shutil.rmtree(copy / "npy")
    with pytest.raises(zoo.ZooError, match="has lost its arrays: neither npy/ nor arrays/ is there"):
        zoo.load(copy)


# --- The fuzz test: wrong values for every config field and flag of every command. ---------------------------


def _below(rule: schema.Rule) -> list[st.SearchStrategy[str]]:
    """Numbers just outside a rule's range, as the command line writes them."""
    number = st.integers if rule.kind == "int" else lambda **k: st.floats(**k, allow_nan=False, allow_infinity=False)
    strategies = []
    if rule.low is not None:
        low = int(rule.low) if rule.kind == "int" else rule.low
        bound = {"max_value": low if rule.open_low else low - 1} if rule.kind == "int" else {"max_value": low}
        if rule.kind != "int" and not rule.open_low:
            bound["exclude_max"] = True
        strategies.append(number(min_value=-(10**6), **bound).map(repr))
    if rule.high is not None:
        high = int(rule.high) if rule.kind == "int" else rule.high
        bound = {"min_value": high if rule.open_high else high + 1} if rule.kind == "int" else {"min_value": high}
        if rule.kind != "int" and not rule.open_high:
            bound["exclude_min"] = True
        strategies.append(number(max_value=10**6, **bound).map(repr))
    return strategies


def bad_values(rule: schema.Rule) -> st.SearchStrategy[str] | None:
    """Command-line texts a field of `rule` must refuse (None: a free text, checked elsewhere)."""
    words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
    if rule.kind == "tuple":
        element = bad_values(rule.element)
        element = st.just("'x'") if element is None else element
        options = [st.just("abc"), element.map(lambda v: f"({v},)")]
        if rule.nonempty:
            options.append(st.just("()"))
        if rule.increasing:
            options.append(st.just("(5, 3)"))
        return st.one_of(options)
    if rule.kind == "bool":
        return st.sampled_from(["maybe", "yes please", "2"])
    if rule.kind == "str":
        return None if rule.choices is None else words.filter(lambda w: w not in rule.choices)
    if rule.choices is not None:
        return st.sampled_from(["abc", "-99"])
    texts = ["abc", "1e"] + (["1.5"] if rule.kind == "int" else ["nan", "inf", "-inf"])
    return st.one_of(st.sampled_from(texts), *_below(rule))


def _config_fields(rules: dict[str, schema.Rule], config) -> list[tuple[str, st.SearchStrategy[str]]]:
    present = {key for key, _ in schema.leaves(config)}
    return [(key, bad) for key, rule in rules.items() if key in present and (bad := bad_values(rule)) is not None]


def _experiment_mutations():
    """(base args, [(flag or config key, bad values)]) of experiments.main for each encoder."""
    cases = []
    for name in encoders.NAMES:
        config = common.experiment(name, "smoke", "formal_languages")
        fields = _config_fields(experiment_schema.RULES, config)
        cases.append(
            ((f"--config=configs/{name}.py:smoke", "--workdir={new}"), [(f"--config.{k}", v) for k, v in fields])
        )
    return cases


PLACES_REFUSED = {"workdir": ["{file}", "{zoo}", "{build}", "{tables}", ""]}
COMMANDS = {
    # module: (base args, {flag: bad values (strings, or a strategy)})
    "experiments.main": [
        *_experiment_mutations(),
        (
            (*TRAIN[1:],),
            {
                "--workdir": ["{file}", "{zoo}", "{build}", "{tables}", "", "{run}/seed0"],
                "--seeds": ["-1", "x", "0,0", "1.5"],
                "--cpu_devices": ["-1", "x"],
                "--config": ["configs/flat.py:nonsense", "configs/flat.py:smoke,smoke", "configs/none.py"],
            },
        ),
        ((*TRAIN[1:], "--workdir={new}", "--seeds=0,1"), {"--learning_rates": ["0,1e-3", "nan,1e-3", "-1,1", "1e-3"]}),
        ((*TRAIN[1:], "--workdir={run}"), {"--seeds": ["0", "0,1"]}),
    ],
    "zoo_builder.main": [
        (
            (*BUILD[1:], "--workdir={new}"),
            {f"--config.{k}": v for k, v in _config_fields(zoo_schema.RULES, formal_languages.get_config("smoke"))},
        ),
        (
            (*BUILD[1:],),
            {
                "--workdir": ["{file}", "{run}", "{zoo}", "{tables}", "{zoo}/inside", "{run}/inside", ""],
                "--cpu_devices": ["-2", "x"],
            },
        ),
    ],
    "experiments.analyses.tables": [
        (
            ("--preset=smoke", "--outdir={new}"),
            {
                "--preset": ["nonsense", "smoke,quick", "smoke,probe_prior,probe_prior"],
                "--encoders": ["nonsense", "flat,flat", ""],
                "--seeds": ["0", "-1", "x"],
                "--dataset": ["nonsense"],
                "--sweep": ["maybe"],
                "--cpu_devices": ["-1"],
                "--outdir": ["{file}", "{run}", "{zoo}", "{build}", ""],
                "--supervised_targets": ["task,task"],
                "--probe_seeds": ["0", "x"],
            },
        )
    ],
    "experiments.analyses.probing_gap": [
        (
            ("--preset=smoke", "--outdir={new}"),
            {
                "--preset": ["nonsense", "QUICK"],
                "--variants": ["nonsense", "probe_prior,probe_prior"],
                "--overrides": [
                    "justtext",
                    "=3",
                    "encoder.nonsense=3",
                    "encoder.prior_scale=abc",
                    "train.num_steps=-3",
                    "optim.lr=nan",
                    "encoder.answers=nonsense",
                ],
                "--encoders": ["nonsense", "dwsnet,dwsnet"],
                "--learned_budgets": ["4", "x", "6,6"],
                "--seeds": ["0", "x"],
                "--outdir": ["{file}", "{run}", "{build}", ""],
            },
        )
    ],
    "experiments.analyses.references": [
        (
            ("--outdir={new}",),
            {
                "--preset": ["nonsense"],
                "--dataset": ["nonsense"],
                "--seeds": ["0"],
                "--probe_seeds": ["0"],
                "--outdir": ["{file}", "{run}", "{build}"],
            },
        )
    ],
    "experiments.run.evaluate": [((), {"--workdir": ["{file}", "{new}", "{build}", "{zoo}", "{tables}"]})],
    "experiments.analyses.permutation_analysis": [
        ((), {"--workdir": ["{file}", "{new}", "{build}", "{zoo}"]}),
        (("--workdir={run}",), {"--num_snapshots": ["1", "x"], "--cpu_devices": ["-1"]}),
    ],
    "experiments.analyses.rotation_readout": [
        ((), {"--workdir": ["{file}", "{new}", "{build}", "{zoo}"]}),
        (
            ("--workdir={run}",),
            {"--digit_counts": ["0", "x", "24,24", ""], "--probe_seeds": ["0", "x"], "--cpu_devices": ["-1"]},
        ),
    ],
    "experiments.analyses.loss_correlation": [((), {"--outdir": ["{file}", "{new}", "{run}", "{build}"]})],
    "experiments.upgrade": [((), {"--path": ["{file}", "{new}", ""]})],
    "experiments.benchmarks.plan": [
        (
            ("--tables=quick",),
            {
                "--devices": ["0", "x"],
                "--device_kind": ["tpu9", ""],
                "--fraction": ["0", "2", "nan"],
                "--members": ["0"],
                "--tables": ["nonsense"],
                "--datasets": ["nonsense", "formal_languages,formal_languages"],
                "--encoders": ["nonsense", ""],
                "--check": ["{new}", "{run}", "{file}"],
            },
        ),
        (
            ("--config=configs/flat.py:smoke",),
            {f"--config.{k}": v for k, v in _config_fields(experiment_schema.RULES, flat.get_config("smoke"))},
        ),
    ],
    "zoo_builder.plan": [
        (
            ("--config=configs/formal_languages.py:smoke",),
            {
                "--devices": ["0"],
                "--device_kind": ["tpu9"],
                "--fraction": ["-1", "inf"],
                **{
                    f"--config.{k}": v
                    for k, v in _config_fields(zoo_schema.RULES, formal_languages.get_config("smoke"))
                },
            },
        )
    ],
    "experiments.benchmarks.encoder": [
        (
            (),
            {
                "--encoders": ["nonsense", "flat,flat", ""],
                "--preset": ["nonsense"],
                "--seconds": ["-1", "nan", "inf"],
                "--members": ["0", "x", ""],
                "--cpu_devices": ["-1"],
            },
        )
    ],
    "zoo_builder.benchmark": [
        (
            (),
            {
                "--devices": ["0", "x"],
                "--runs_per_device": ["0"],
                "--steps_per_call": ["-1"],
                "--seconds": ["nan", "-2"],
                "--zoos": ["nonsense", ""],
            },
        )
    ],
    "experiments.benchmarks.disk": [
        (
            ("--zoo={zoo}",),
            {
                "--zoo": ["{new}", "{run}", "{file}"],
                "--steps": ["0"],
                "--log_every": ["0"],
                "--repeats": ["0"],
                "--memory_cap_mb": ["-1", "nan"],
                "--config": ["configs/none.py:quick"],
            },
        )
    ],
    "experiments.benchmarks.sweep": [
        (
            ("--outdir={new}",),
            {
                "--preset": ["nonsense"],
                "--dataset": ["nonsense"],
                "--encoders": ["nonsense", ""],
                "--seeds": ["0"],
                "--outdir": ["{run}", "{file}"],
            },
        )
    ],
    "experiments.report": [((), {"--check": ["true"], "--outdir": [""]})],
    "zoo_builder.launch_local": [((), {"--processes": ["0", "-1", "x"], "--devices_per_process": ["0"]})],
    "zoo_builder.render_mnist": [
        (("--zoo={zoo}",), {"--snapshots": ["-1", "x", ""], "--columns": ["0"], "--zoo": ["{new}", "{run}"]})
    ],
    "zoo_builder.import_reference": [
        (("--dst={new}",), {"--src": ["{new}", "{file}"]}),
        (("--src={run}",), {"--dst": ["{run}", "{file}"]}),
    ],
    "zoo_builder.export_reference": [
        (("--dst={new}",), {"--src": ["{new}", "{run}"]}),
        (("--src={zoo}",), {"--dst": ["{run}"]}),
    ],
}


def _strategy(values) -> st.SearchStrategy[str]:
    return values if isinstance(values, st.SearchStrategy) else st.sampled_from(values)


@st.composite
def hostile_command_lines(draw):
    """(module, args): one command's valid base arguments with one flag or config field made wrong."""
    module = draw(st.sampled_from(sorted(COMMANDS)))
    base, mutations = draw(st.sampled_from(COMMANDS[module]))
    flag, values = draw(st.sampled_from(sorted(mutations.items()) if isinstance(mutations, dict) else mutations))
    value = draw(_strategy(values))
    kept = [arg for arg in base if arg.split("=")[0] != flag]
    return module, [*kept, f"{flag}={value}"]


def test_every_command_and_config_field_is_fuzzed():
    """Every command of both packages is in the fuzz table, and every ruled config field of both entry points."""
    sources = [p for package in ("experiments", "zoo_builder") for p in pathlib.Path(REPO, package).rglob("*.py")]
    commands = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__main__")
        for p in sources
        if "cli.run_command(" in p.read_text()
    }
    assert commands == set(COMMANDS)
    fuzzed = {key for _, mutations in COMMANDS["experiments.main"][: len(encoders.NAMES)] for key, _ in mutations}
    free = {f"--config.{k}" for k, rule in experiment_schema.RULES.items() if bad_values(rule) is None}
    assert {f"--config.{k}" for k in experiment_schema.RULES} - fuzzed == free


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(case=hostile_command_lines())
@pytest.mark.slow
def test_fuzzed_command_lines_are_refused_in_one_line_and_change_nothing(case, places):
    module, args = case
    before = tree(places["root"])
    status, stderr = command_line.refusal(module, *(arg.format(**places) for arg in args))
    assert status != ACCEPTED, (module, args)
    assert_one_line(status, stderr)
    assert tree(places["root"]) == before, (module, args)
    assert json.loads((places["run"] / "owner.json").read_text())["kind"] == "run"
