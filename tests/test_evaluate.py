"""The audit: chance for a constant release, NAG by definition, sealed test split, report, demo."""

import json

import pytest
import torch

from privacam.cli import main
from privacam.config import load_config
from privacam.data import make_splits
from privacam.evaluate import protocol
from privacam.evaluate.protocol import Sealed, audit
from privacam.evaluate.runner import audit_spec, evaluate_encoder, evaluate_named, parse_encoder_spec
from privacam.errors import PrivacamError
from privacam.models.common import Encoder
from privacam.models.encoders import IdentityEncoder

EVAL = ["eval.epochs=3", "eval.utility_epochs=3", "eval.patience=2", "eval.batch_size=8",
        "eval.attackers=[linear_probe, small_cnn_a, c3d_tiny]", "eval.reconstruction=false"]


class Constant(Encoder):
    trainable = False

    def forward(self, x):
        return torch.zeros_like(x)


@pytest.fixture
def tiny(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    ov = [o for o in tiny_overrides if not o.startswith("data.params")]
    ov.append("data.params={num_actors: 3, clips_per_pair: 6, actions: [wave1, jump, bend]}")
    cfg = load_config("default", ov + EVAL)
    return cfg, make_splits(cfg.data, seed=0)


def test_constant_encoder_gives_chance_and_zero_nag(tiny, tmp_path):
    cfg, splits = tiny
    s = evaluate_encoder(Constant(), cfg, splits, tmp_path / "const", encoder_info={"name": "constant", "params": {}}).to_dict()
    assert s == json.loads((tmp_path / "const" / "summary.json").read_text())  # what it returns is what it wrote
    p = s["privacy"]
    assert set(p["attackers"]) == {"linear_probe", "small_cnn_a", "c3d_tiny"}
    for v in p["attackers"].values():
        assert v <= p["chance"] + 1e-6
    assert p["nag"] == pytest.approx(0.0, abs=1e-6)
    assert s["utility"]["retrained"] <= s["utility"]["chance"] + 1e-6
    # the contract keys
    assert {"metric", "value", "retrained", "raw", "chance"} <= set(s["utility"])
    assert {"metric", "attackers", "best", "best_attacker", "raw", "chance", "nag", "training_adversaries"} <= set(p)
    assert json.loads((tmp_path / "const" / "attackers" / "small_cnn_a.json").read_text())["test"] == p["attackers"]["small_cnn_a"]


def test_identity_encoder_nag_is_one_by_definition(tiny, tmp_path):
    cfg, splits = tiny
    raw = evaluate_encoder(IdentityEncoder(), cfg, splits, tmp_path / "raw", encoder_info={"name": "identity", "params": {}}, raw=False)
    again = evaluate_encoder(IdentityEncoder(), cfg, splits, tmp_path / "raw2", encoder_info={"name": "identity", "params": {}}, raw=raw)
    assert again.privacy.raw == raw.privacy.best
    assert raw.privacy.best > raw.privacy.chance  # the tiny data identifies its actors
    assert again.privacy.nag == pytest.approx(1.0)


def test_selection_never_reads_test(tiny, tmp_path, monkeypatch):
    """Every model is fitted and selected on training-side data only; each unit opens the test split
    only once its own model is selected."""
    from privacam.evaluate import fitting

    cfg, splits = tiny
    events, seen = [], []
    orig_fit, orig_open = fitting.fit_classifier, Sealed.open

    def fit(model, train, val, *a, **k):
        events.append("fit")
        seen.extend(train.ids + (val.ids if val is not None else []))
        return orig_fit(model, train, val, *a, **k)

    def open_(self):
        events.append("open")
        return orig_open(self)

    monkeypatch.setattr(fitting, "fit_classifier", fit)
    monkeypatch.setattr(Sealed, "open", open_)
    audit(IdentityEncoder(), splits, audit_spec(cfg), out_dir=tmp_path / "e")
    # utility + 3 attackers, and the pool's 3 networks (c3d_grid, grid_probe, energy_probe) for the trained task
    # and each of the data's 3 tasks (position, speed, size); all selected on the data's validation: no refit
    assert set(splits.tasks) == {"position", "speed", "size"}
    assert events.count("fit") == 4 + 3 * (1 + 3)
    assert events[0] == "fit" and events.index("open") > 0  # the test split is opened after the first selection
    test_ids = {splits.test[i]["id"] for i in range(len(splits.test))}
    assert seen and not test_ids & set(seen)  # no fit ever got a test clip
    sealed = Sealed(object())
    with pytest.raises(PrivacamError, match="sealed"):
        sealed.x


def test_encoder_spec_parsing_and_cli_baseline(tiny_overrides, tmp_path, monkeypatch, capsys):
    assert parse_encoder_spec("downsample:factor=4,upsample=true") == ("downsample", {"factor": 4, "upsample": True})
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ds4"
    rc = main(["evaluate", "--encoder", "downsample:factor=4", "--data", "synthetic", "--out", str(out), *tiny_overrides, *EVAL])
    assert rc == 0
    s = json.loads((out / "eval" / "summary.json").read_text())
    assert s["encoder"] == {"name": "downsample", "params": {"factor": 4}} and s["dataset"] == "synthetic"
    for block in ("utility", "privacy"):
        for k, v in s[block].items():
            if isinstance(v, float):
                assert 0.0 <= v <= 1.0 or k == "nag", (block, k, v)
    printed = capsys.readouterr()
    assert f"wrote {out / 'eval' / 'summary.json'}" in printed.out
    assert "encoder downsample {'factor': 4} on synthetic" in printed.out and "  privacy  video: best " in printed.out  # the headline level (video ids: per video)
    assert "error" not in printed.err


def test_evaluate_run_reports_training_adversaries_and_report_renders(tiny, tmp_path):
    from privacam.evaluate.runner import evaluate_run
    from privacam.report import write_report
    from privacam.train import train

    cfg, splits = tiny
    run = train(cfg, tmp_path / "run", splits=splits)
    s = evaluate_run(run)
    assert set(s.privacy.training_adversaries) == {"small_cnn_0", "small_cnn_1"}
    assert s.utility.has("value") and s.encoder.run == str(run)
    html, png = write_report([run], tmp_path / "rep" / "report.html")
    text = html.read_text()
    assert png.exists() and png.stat().st_size > 1000
    assert "best attacker" in text and "small_conv entropy M=2 γ=1.0" in text  # the run, labelled by its training
    assert "<table>" in text and "Training curves" in text and "data:image/png" in text


def test_quick_demo_end_to_end(tiny_overrides, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    from privacam import demo

    # the demo lists three budget models; the tiny run builds the first two (budget.m=2), as before
    monkeypatch.setattr(demo, "QUICK_OVERRIDES", tiny_overrides + EVAL + ["budget.names=[small_cnn, clip3d]"])
    monkeypatch.setattr(demo, "QUICK_BASELINES", ["downsample:factor=4", "blur:sigma=2"])
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "| encoder |" in out and "downsample" in out and "blur" in out
    names = {json.loads(p.read_text())["encoder"]["name"] for p in (tmp_path / "demo").rglob("summary.json") if "attackers" not in p.parts}
    assert names == {"identity", "downsample", "blur", "small_conv"}
    assert (tmp_path / "demo" / "report.png").exists()
    # the summary README copies carries the table and the run's own wall time
    summary_md = (tmp_path / "demo" / "summary.md").read_text()
    assert summary_md.startswith("| encoder |") and "Wall time: " in summary_md and "Wall time: " in out
    # a killed demo resumes: finished audits are reused, not recomputed
    summaries = sorted(p for p in (tmp_path / "demo").rglob("summary.json") if "attackers" not in p.parts)
    before = {p: p.stat().st_mtime_ns for p in summaries}
    (summaries[0]).unlink()  # as if the demo had been killed during this audit
    assert main(["demo", "--quick", "--resume", "--out", str(tmp_path / "demo")]) == 0
    assert "| encoder |" in capsys.readouterr().out
    assert summaries[0].exists()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p != summaries[0])
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["resumed"] is True


class LowContrast(Encoder):
    trainable = False

    def forward(self, x):
        return 0.5 + 0.1 * (x - 0.5)


def test_low_contrast_release_is_not_mistaken_for_privacy(tiny, tmp_path):
    """Retrained models see standardised releases: shrinking the contrast hides nothing."""
    cfg, splits = tiny
    raw = evaluate_encoder(IdentityEncoder(), cfg, splits, tmp_path / "raw", encoder_info={"name": "identity", "params": {}}, raw=False)
    low = evaluate_encoder(LowContrast(), cfg, splits, tmp_path / "low", encoder_info={"name": "low", "params": {}}, raw=raw)
    assert raw.privacy.best > raw.privacy.chance + 0.2
    assert low.privacy.best >= raw.privacy.best - 0.1
    assert low.privacy.nag >= 0.85
