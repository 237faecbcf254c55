"""Owner records: a command writes only into a directory of its own kind, and a refusal leaves nothing."""

import json

import pytest

from weightspace import ownership


def test_a_claim_records_its_kind_and_a_second_claim_of_that_kind_reuses_the_directory(tmp_path):
    directory = ownership.claim(str(tmp_path / "a" / "run"), "run")
    assert json.loads((tmp_path / "a" / "run" / ownership.OWNER_FILE).read_text())["kind"] == "run"
    (tmp_path / "a" / "run" / "metrics.jsonl").write_text("{}\n")
    assert ownership.claim(directory, "run") == directory
    assert ownership.read_kind(directory) == "run"


@pytest.mark.parametrize("other", ["zoo_build", "sweep", "tables", "probing_gap"])
def test_a_directory_of_another_kind_is_refused_and_left_as_it_was(other, tmp_path):
    ownership.claim(str(tmp_path / "d"), "run")
    (tmp_path / "d" / "config.json").write_text("{}")
    before = sorted(p.name for p in (tmp_path / "d").iterdir())
    with pytest.raises(ownership.OwnershipError, match=r"holds a training run .* not .* nothing there is changed"):
        ownership.claim(str(tmp_path / "d"), other)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == before


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        (("build_config.json", "layout.json", "zoo"), "zoo_build"),
        (("config.json", "metrics.jsonl", "checkpoints"), "run"),
        (("metadata.json", "COMPLETE", "npy"), "zoo"),
        (("results.json", "runs"), "tables"),
        (("probing_gap.json", "zoos"), "probing_gap"),
    ],
)
def test_directories_written_before_owner_records_are_recognised_by_their_files(files, kind, tmp_path):
    for name in files:
        (tmp_path / name).mkdir() if "." not in name and name != "COMPLETE" else (tmp_path / name).write_text("")
    assert ownership.infer_kind(str(tmp_path)) == kind
    ownership.claim(str(tmp_path), kind)  # adopted, without a record: the files stay as they were
    assert not (tmp_path / ownership.OWNER_FILE).exists()
    others = [k for k in ownership.KINDS if k not in (kind, "zoo")]
    with pytest.raises(ownership.OwnershipError):
        ownership.claim(str(tmp_path), others[0])


def test_unknown_files_are_refused_naming_them(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ownership.OwnershipError, match=r"files none of these commands wrote \(notes.txt\)"):
        ownership.claim(str(tmp_path), "zoo_build")


def test_nothing_goes_inside_a_zoo_a_run_or_a_build_but_runs_go_inside_sweeps_and_tables(tmp_path):
    (tmp_path / "zoo").mkdir()
    for name in ("metadata.json", "COMPLETE"):
        (tmp_path / "zoo" / name).write_text("")
    with pytest.raises(ownership.OwnershipError, match=r"inside .*zoo, which holds a zoo"):
        ownership.check(str(tmp_path / "zoo" / "run"), "run")
    ownership.claim(str(tmp_path / "run"), "run")
    with pytest.raises(ownership.OwnershipError, match=r"inside .*run, which holds a training run"):
        ownership.check(str(tmp_path / "run" / "seed0"), "run")
    ownership.claim(str(tmp_path / "build"), "zoo_build")
    with pytest.raises(ownership.OwnershipError, match=r"inside .*build, which holds a zoo build"):
        ownership.check(str(tmp_path / "build" / "tables"), "tables")
    ownership.claim(str(tmp_path / "sweep"), "sweep")
    ownership.claim(str(tmp_path / "sweep" / "seed0"), "run")
    ownership.claim(str(tmp_path / "tables"), "tables")
    ownership.claim(str(tmp_path / "tables" / "runs" / "d" / "row" / "seed0"), "run")
    ownership.claim(str(tmp_path / "gap"), "probing_gap")
    ownership.claim(str(tmp_path / "gap" / "zoos" / "m2"), "zoo_build")


def test_a_file_is_no_directory(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ownership.OwnershipError, match="is a file, not a directory"):
        ownership.claim(str(tmp_path / "f"), "run")


def test_require_names_what_a_directory_holds(tmp_path):
    ownership.claim(str(tmp_path / "build"), "zoo_build")
    with pytest.raises(ownership.OwnershipError, match=r"holds a zoo build .*, not a training run"):
        ownership.require(str(tmp_path / "build"), "run")
    with pytest.raises(ownership.OwnershipError, match="is not a directory"):
        ownership.require(str(tmp_path / "missing"), "run")
    assert ownership.require(str(tmp_path / "build"), "zoo_build") == str(tmp_path / "build")


def test_discarding_removes_what_a_claim_made_while_it_holds_only_bookkeeping(tmp_path):
    ownership.discard_created()  # nothing left over from another test
    ownership.claim(str(tmp_path / "new" / "deeper" / "run"), "run")
    (tmp_path / "new" / "deeper" / "run" / ".lock").write_text("")
    (tmp_path / "empty").mkdir()
    ownership.claim(str(tmp_path / "empty"), "tables")
    ownership.claim(str(tmp_path / "kept"), "run")
    (tmp_path / "kept" / "config.json").write_text("{}")  # real work: kept
    ownership.discard_created()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "kept"]
    assert list((tmp_path / "empty").iterdir()) == []  # it existed before the claim: only the record went
    assert (tmp_path / "kept" / ownership.OWNER_FILE).exists()


def test_a_damaged_owner_record_is_one_line(tmp_path):
    (tmp_path / ownership.OWNER_FILE).write_text('{"kind": ')
    with pytest.raises(ownership.files.DamagedFileError, match="is not valid JSON"):
        ownership.claim(str(tmp_path), "run")
    (tmp_path / ownership.OWNER_FILE).write_text('{"kind": "mine"}')
    with pytest.raises(ownership.OwnershipError, match="names no known kind"):
        ownership.claim(str(tmp_path), "run")
