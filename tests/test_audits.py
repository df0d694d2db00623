"""The audit directory's contract (privacam.audits): summary.json as a typed AuditSummary that reads and
writes back every earlier file as it was, the formatters, and the identity of an audit directory."""

import json

import pytest

from privacam.audits import (SCHEMA_VERSION, AuditSummary, Level, audit_identity, claim_audit_dir, interval_text,
                             nag_text, pct, read_summary, write_summary)
from privacam.errors import PrivacamError

#: a summary as the audit of earlier versions wrote it: nulls, nested levels, a key this version does not know
OLD = {
    "encoder": {"name": "downsample", "params": {"factor": 4}, "future_key": [1, 2]},
    "dataset": "synthetic",
    "utility": {"metric": "accuracy", "chance": 0.25, "retrained": 0.5, "retrained_interval": [0.4, 0.6],
                "value": 0.5, "interval": [0.4, 0.6], "raw": 0.9},
    "privacy": {"metric": "accuracy", "attackers": {"a": 0.5, "b": 0.25}, "best": 0.5, "best_attacker": "a",
                "chance": 0.2, "per_frame": {}, "training_adversaries": {}, "level": "video", "interval": [0.3, 0.7],
                "intervals": {"a": [0.3, 0.7], "b": [0.1, 0.4]},
                "levels": {"clip": {"attackers": {"a": 0.4}, "intervals": {"a": [0.3, 0.5]}, "best": 0.4,
                                    "best_attacker": "a", "interval": [0.3, 0.5], "chance": 0.2, "units": 12,
                                    "raw": 0.8, "nag": 0.33},
                           "video": {"attackers": {"a": 0.5}, "best": 0.5, "best_attacker": "a", "chance": 0.2,
                                     "units": 4, "raw": 0.9, "nag": None}},
                "views": 1, "selection": {"mode": "data"}, "warnings": [], "notes": [],
                "raw": 0.9, "nag": None, "nag_refused": "NAG not computed: ..."},
    "n_test": 12, "n_test_videos": None, "encoded_shape": [3, 4, 8, 8], "cache_bytes": {"train": 10},
    "seconds": None, "data": {"name": "synthetic", "root": None}, "provenance": {"command": None},
}


def test_an_earlier_summary_reads_and_writes_back_byte_identical():
    s = AuditSummary.from_dict(OLD)
    assert json.dumps(s.to_dict()) == json.dumps(OLD)  # same keys, same order, nulls kept, nothing added
    assert s.version == 1 and s.privacy.levels["video"].nag is None and s.privacy.nag_refused.startswith("NAG")
    assert isinstance(s.privacy.levels["clip"], Level) and s.privacy.levels["clip"].units == 12
    assert s.encoder.get("future_key") == [1, 2] and s.utility.shown == 0.5
    assert not s.has("reconstruction") and s.reconstruction is None  # absent stays absent
    assert s.privacy.levels["clip"].raw == 0.8 and s.privacy.levels["clip"].skipped is None


def test_fields_set_later_are_written_and_timings_are_not_results(tmp_path):
    s = AuditSummary.from_dict(OLD)
    s.unit_seconds = {"attacker_a": 3.0}
    s.privacy.reference = "the unprotected network"
    write_summary(tmp_path, s)
    back = read_summary(tmp_path)
    d = json.loads((tmp_path / "summary.json").read_text())
    assert d["schema_version"] == SCHEMA_VERSION and back.version == SCHEMA_VERSION
    assert d["unit_seconds"] == {"attacker_a": 3.0} and d["privacy"]["reference"] == "the unprotected network"
    assert back.path == str(tmp_path / "summary.json")
    results = back.results()
    assert "unit_seconds" not in results and "seconds" not in results and "provenance" not in results
    assert results["privacy"] == d["privacy"]


def test_a_damaged_or_missing_summary_is_one_line(tmp_path):
    with pytest.raises(PrivacamError, match="no such audit summary"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(PrivacamError, match="is not an audit summary") as e:
        read_summary(tmp_path)
    assert "\n" not in str(e.value)


def test_one_set_of_formatters():
    assert pct(0.4123) == "41.2" and pct(None) == "–" and pct(float("nan"), missing="-") == "-"
    assert interval_text([0.382, 0.521]) == "[38.2, 52.1]" and interval_text([0.382, 0.521], digits=0, sep="-") == "[38-52]"
    assert interval_text(None) == "" and interval_text([None, 0.5], missing="not measured") == "not measured"
    assert nag_text(0.333) == "0.33" and nag_text(None) == "–"


def test_an_audit_directory_refuses_another_audit_and_overwrite_moves_it_aside(tmp_path):
    a = audit_identity({"name": "downsample", "params": {"factor": 4}}, "synthetic")
    b = audit_identity({"name": "blur", "params": {"sigma": 2}}, "synthetic")
    out = tmp_path / "out"
    claim_audit_dir(out / "eval", a, owner=out)
    (out / "eval" / "units").mkdir()
    claim_audit_dir(out / "eval", a, owner=out)  # the same audit: taken again (it resumes)
    assert (out / "eval" / "units").is_dir()
    run_a = audit_identity({"name": "small_conv", "run": "runs/a", "stamp": {"run_id": "1"}}, "synthetic")
    assert audit_identity({"name": "small_conv", "run": "runs/a", "stamp": {"run_id": "2"}}, "synthetic") == run_a
    with pytest.raises(PrivacamError, match="holds another audit .*downsample factor=4 on synthetic.*--overwrite") as e:
        claim_audit_dir(out / "eval", b, owner=out)
    assert "\n" not in str(e.value) and (out / "eval" / "units").is_dir()
    claim_audit_dir(out / "eval", b, owner=out, overwrite=True)
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.replaced-")]
    assert (aside / "eval" / "units").is_dir() and not (out / "eval" / "units").exists()


# ---------------------------------------------------------------------------------------------- privacam evaluate --out
def test_evaluate_out_refuses_another_audit_resumes_its_own_and_never_replaces_a_run(tmp_path, monkeypatch, capsys):
    from conftest import TINY
    from privacam import runs
    from privacam.cli import main
    from privacam.train import train
    from privacam.config import load_config

    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    ev = ["eval.epochs=1", "eval.utility_epochs=1", "eval.min_epochs=1", "eval.attackers=[linear_probe]", "eval.views=1",
          "eval.bootstrap=10", "eval.trials=5", "eval.reconstruction=false", "--no-raw"]
    out = tmp_path / "out"
    first = ["evaluate", "--encoder", "downsample:factor=2", "--data", "synthetic", "--out", str(out), *TINY, *ev]
    assert main(first) == 0
    unit = out / "eval" / "units" / "attacker.linear_probe.json"
    stamp = unit.stat().st_mtime_ns
    capsys.readouterr()
    assert main(first) == 0  # the same audit into its own folder: resumed, every unit reused
    assert unit.stat().st_mtime_ns == stamp and "error" not in capsys.readouterr().err
    other = ["evaluate", "--encoder", "blur:sigma=2", "--data", "synthetic", "--out", str(out), *TINY, *ev]
    assert main(other) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds another audit (downsample factor=2 on synthetic" in err and "--overwrite" in err
    assert unit.stat().st_mtime_ns == stamp  # nothing was written
    assert main(other + ["--overwrite"]) == 0
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.replaced-")]
    assert (aside / "eval" / "units" / "attacker.linear_probe.json").stat().st_mtime_ns == stamp  # moved, not deleted
    # --encoder ... --out RUN on a trained run: never, not even with --overwrite
    run = train(load_config("default", TINY), tmp_path / "run")
    assert main(["evaluate", str(run), *TINY, *ev]) == 0
    config, summary = (run / runs.CONFIG).read_bytes(), (run / "eval" / "summary.json").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["evaluate", "--encoder", "downsample:factor=2", "--data", "synthetic", "--out", str(run), *TINY,
                     *ev, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "holds a trained run" in err
    assert (run / runs.CONFIG).read_bytes() == config and (run / "eval" / "summary.json").read_bytes() == summary
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
