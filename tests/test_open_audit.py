"""The audit open to any anonymiser: released data (--released), a user's factory and ONNX files
(--encoder file.py:make / model.onnx)."""

import json
import shlex
import shutil
import subprocess

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from conftest_data import write_csv
from privacam.cli import main
from privacam.config import load_config
from privacam.data import apply_data_spec, make_splits
from privacam.data.released import pair_manifests, released_splits
from privacam.errors import DataError, PrivacamError
from privacam.evaluate.external import ExternalEncoder, OnnxModule, external_kind, load_external_encoder
from privacam.evaluate.protocol import encode_split

EVAL = ["eval.epochs=2", "eval.utility_epochs=2", "eval.patience=1", "eval.batch_size=8",
        "eval.attackers=[linear_probe, small_cnn_a]", "eval.reconstruction=false"]
#: TINY without the synthetic data's own params (the manifest has none of them)
TINY_M = [o for o in TINY if not o.startswith("data.params")]


# ----------------------------------------------------------------------------------------- data
def _clip(folder, n, actor, action, h=24, w=32, released=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(hash((actor, action)) % 2**32)
    for i in range(n):
        a = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        a[..., 0] += np.uint8(60 * actor)  # who: the colour
        a[:, (i * (action + 1)) % w, 1] = 250  # what: a moving bar
        if released:
            a[..., 0] = 0  # the "tool" removes the colour (the identity cue)
        Image.fromarray(a).save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """RAW.csv: 3 actors x 2 actions, a train and a test part each (frame folders);
    RELEASED.csv: the same rows, pointing at released copies (another folder, another order)."""
    root = tmp_path_factory.mktemp("released")
    rows, rel_rows = [], []
    for actor in range(3):
        for action in range(2):
            for split, n in (("train", 12), ("test", 6)):
                name = f"a{actor}_{action}_{split}"
                _clip(root / "raw" / name, n, actor, action)
                _clip(root / "out" / "frames" / name, n, actor, action, released=True)
                rows.append([f"raw/{name}", f"act{action}", f"actor{actor}", split])
                rel_rows.append([f"out/frames/{name}", f"act{action}", f"actor{actor}", split])
    header = ["path", "utility", "private", "split"]
    write_csv(root / "RAW.csv", header, rows)
    write_csv(root / "RELEASED.csv", header, rel_rows[::-1])  # rows pair by file name, not by order
    return root, header, rows, rel_rows


def _write_released(root, header, rows, name="bad.csv"):
    return write_csv(root / name, header, rows)


def test_pairing_by_name_and_released_splits_read_the_release(manifests):
    root, *_ = manifests
    pairing = pair_manifests(root / "RAW.csv", root / "RELEASED.csv")
    assert pairing["rows"] == 12 and pairing["paired_by"] == "name"
    cfg = load_config("default", TINY_M + EVAL)
    cfg.data = apply_data_spec(cfg.data, str(root / "RAW.csv"))
    raw = make_splits(cfg.data, seed=0)
    rel = released_splits(raw, root / "RELEASED.csv", pairing)
    for k in ("train", "val", "test"):  # the same items: same ids, labels, clips
        a, b = getattr(raw, k), getattr(rel, k)
        assert len(a) == len(b) > 0
        for i in (0, len(a) - 1):
            xa, xb = a[i], b[i]
            assert xa["id"] == xb["id"] and int(xa["utility"]) == int(xb["utility"]) and int(xa["private"]) == int(xb["private"])
            assert xa["input"].shape == xb["input"].shape
            assert xb["input"][0].abs().max() == 0 and xa["input"][0].abs().max() > 0  # released: red removed
            assert torch.equal(xa["input"][2], xb["input"][2])  # the rest is the raw clip
        assert all("out/frames" in r.path for r in b.records)


@pytest.mark.parametrize("change, message", [
    ("missing", "RELEASED.csv: no row for RAW.csv row 4 (file name 'a0_1_train')"),
    ("label", "row 3 (file name 'a0_0_test'): private is 'actor2' but RAW.csv row 3 says 'actor0'"),
    ("split", "row 2 (file name 'a0_0_train'): split is 'test' but RAW.csv row 2 says 'train'"),
    ("extra", "row 14 (file name 'zzz') is not in RAW.csv"),
    ("length", "row 5 (file name 'a0_1_test'): 5 frames but RAW.csv row 5 has 6; a release keeps every frame"),
])
def test_mismatched_release_is_refused_naming_the_row(manifests, change, message, capsys):
    root, header, rows, rel_rows = manifests
    bad = [list(r) for r in rel_rows]
    if change == "missing":
        del bad[2]
    elif change == "label":
        bad[1][2] = "actor2"
    elif change == "split":
        bad[0][3] = "test"
    elif change == "extra":
        bad.append(["out/frames/a0_0_train", "act0", "actor0", "train"])
        bad[-1][0] = "out/zzz"
        (root / "out" / "zzz").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "out" / "zzz" / "0000.png")
    elif change == "length":
        short = root / "out" / "short" / "a0_1_test"
        _clip(short, 5, 0, 1, released=True)
        bad[3][0] = "out/short/a0_1_test"
    csv = _write_released(root, header, bad, f"RELEASED.csv.{change}")
    with pytest.raises(DataError) as e:
        pair_manifests(root / "RAW.csv", csv)
    msg = str(e.value).replace(csv.name, "RELEASED.csv")
    assert message in msg and "\n" not in msg
    # the CLI: one line on stderr, exit status 2
    rc = main(["evaluate", "--released", str(csv), "--data", str(root / "RAW.csv"), "--out", str(root / "o"), *TINY_M, *EVAL])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err.replace(csv.name, "RELEASED.csv")


@pytest.fixture(scope="module")
def released_audit(manifests, tmp_path_factory):
    """``privacam evaluate --released`` of the fixture release (once for the module)."""
    root, *_ = manifests
    out = tmp_path_factory.mktemp("aud") / "deface-like"
    (root / "tool.json").write_text(json.dumps({"tool": "redcut", "version": "0.0", "args": ["--red"],
                                                        "frames": 108, "frames_changed": 108, "command": "redcut raw"}))
    argv = ["evaluate", "--released", str(root / "RELEASED.csv"), "--data", str(root / "RAW.csv"), "--out", str(out),
            "--label", "red removed", *TINY_M, *EVAL]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVACAM_CACHE", str(out.parent / "cache"))
        rc = main(argv)
    assert rc == 0
    return out, argv


def test_evaluate_released_cli_writes_summary(released_audit):
    out, argv = released_audit
    s = json.loads((out / "eval" / "summary.json").read_text())
    e = s["encoder"]
    assert e["name"] == "released" and e["rows"] == 12 and e["probing"].startswith("off") and e["label"] == "red removed"
    assert e["release_size"] == [24, 32] and e["audit_size"] == [16, 16]
    assert "raw" in s["privacy"] and "nag" in s["privacy"]  # the raw reference from RAW.csv
    assert s["provenance"]["command"] == shlex.join(["privacam", *argv]) and "torch" in s["provenance"]["versions"]
    assert s["data"]["name"] == "manifest" and s["data"]["root"].endswith("RAW.csv") and s["data"]["size"] == 16
    ex = torch.load(out / "eval" / "examples.pt", weights_only=True)
    assert ex["input"][:, 0].abs().max() > 0 and ex["released"][:, 0].abs().max() == 0  # raw beside released
    from privacam.evaluate.tables import summary_lines

    from privacam.audits import AuditSummary

    printed = "\n".join(summary_lines(AuditSummary.from_dict(s)))  # what `privacam evaluate` prints
    assert printed.startswith("encoder red removed {} on RAW\n  probing off: the tool that made the release")
    assert "probing view" not in printed and "set(s) of clip offsets of the one release" in printed


def test_report_of_one_audit_writes_the_privacy_card(released_audit, capsys):
    out, argv = released_audit
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote the privacy card {out / 'card.html'} and {out / 'card.json'}" in printed
    card = json.loads((out / "card.json").read_text())
    s = json.loads((out / "eval" / "summary.json").read_text())
    r, p, u = card["released"], card["privacy"], card["utility"]
    assert card["title"] == f"Privacy card: red removed on {Path(s['data']['root']).parent.name} (RAW.csv)"  # a manifest: its folder
    assert r["kind"] == "data released by another tool" and r["tool"]["tool"] == "redcut" and r["rows"] == 12
    assert r["audited_size"] == [16, 16] and r["sent_size"] == [24, 32] and "resized to 16x16" in r["size_note"]
    assert u["value"] == s["utility"]["value"] and u["raw"] == s["utility"]["raw"] and u["chance"] == s["utility"]["chance"]
    assert p["best"] == s["privacy"]["best"] and p["best_attacker"] == s["privacy"]["best_attacker"]
    assert p["raw"] == s["privacy"]["raw"] and p["chance"] == s["privacy"]["chance"]
    assert [lv["level"] for lv in p["levels"]] == list(s["privacy"].get("levels") or ["clip"])
    assert any("Probing is off" in t for t in card["threat_model"])
    assert card["provenance"]["audit_command"] == shlex.join(["privacam", *argv])
    assert card["provenance"]["card_command"] == shlex.join(["privacam", "report", str(out)])
    assert (out / card["examples"]).stat().st_size > 1000
    page = (out / "card.html").read_text()
    assert "red removed" in page and "Threat model" in page and "data:image/png;base64," in page and "<script" not in page
    assert f"{100 * s['privacy']['best']:.1f} %" in page and "redcut 0.0 --red" in page


def _chromium():
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium: install it (apt-get install chromium) to check the card renders")
def test_privacy_card_renders_in_headless_chromium(released_audit, tmp_path):
    """The card in a real browser: the DOM holds the numbers, and the page paints (not blank), the
    example frames included."""
    out, _ = released_audit
    if not (out / "card.html").exists():
        assert main(["report", str(out)]) == 0
    url = (out / "card.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    s = json.loads((out / "eval" / "summary.json").read_text())
    assert "Privacy card: red removed" in dom and f"{100 * s['privacy']['best']:.1f} %" in dom and "Every attack level" in dom
    shot = tmp_path / "card.png"
    subprocess.run([_chromium(), *flags, "--window-size=900,2600", f"--screenshot={shot}", url], capture_output=True,
                   timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[0] == 2600 and (img.sum(-1) < 600).mean() > 0.01  # text and pictures painted, not a blank page
    colour = (img.max(-1) - img.min(-1)) > 60
    assert colour.sum() > 200  # the example frames (coloured) rendered


def test_released_needs_raw_manifest(manifests, tmp_path, capsys):
    root, *_ = manifests
    rc = main(["evaluate", "--released", str(root / "RELEASED.csv"), "--data", "synthetic", "--out", str(tmp_path / "o"), *TINY])
    assert rc == 2 and "--released needs --data RAW.csv" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- encoders
def test_external_kind():
    assert external_kind("downsample:factor=4") is None and external_kind("blur") is None
    assert external_kind("model.onnx") == "onnx" and external_kind("dir/M.ONNX") == "onnx"
    assert external_kind("my_encoder.py:make") == "factory" and external_kind("pkg.mod:make") == "factory"
    assert external_kind("./enc:make") == "factory"
    assert external_kind("downsample:x") is None  # a registered name stays the registry's


USER = '''
import torch
from torch import nn


class Halve(nn.Module):
    """A frame-wise encoder: 2x2 average pooling then back to [0, 1]."""

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)


def make(in_channels):
    assert in_channels == 3
    return Halve()


def flat(in_channels):
    return nn.Flatten()


def broken():
    raise RuntimeError("weights file missing")


def not_a_module():
    return 42
'''


@pytest.fixture
def user_file(tmp_path):
    f = tmp_path / "my_encoder.py"
    f.write_text(USER)
    return f


def test_user_factory_frame_wise_module_runs_on_clips(user_file):
    enc, info = load_external_encoder(f"{user_file}:make", (3, 4, 16, 16))
    assert info["takes"] == "frames" and info["release_shape"] == [3, 4, 8, 8] and info["called_with"] == {"in_channels": 3}
    x = torch.rand(2, 3, 4, 16, 16)
    y = enc(x)
    assert torch.allclose(y[:, :, 1], torch.nn.functional.avg_pool2d(x[:, :, 1], 2))


@pytest.mark.parametrize("factory, message", [
    ("flat", "returned shape [2, 3072]; expected a release [N, C', T', H', W'] with N=2 (one per input clip [N, C, T, H, W] = [2, 3, 4, 16, 16])"),
    ("broken", "broken() failed (RuntimeError: weights file missing); the factory must return a torch.nn.Module"),
    ("not_a_module", "not_a_module() returned a int, not a torch.nn.Module"),
    ("missing", "has no function 'missing'"),
])
def test_bad_user_factory_is_one_line_error(user_file, tmp_path, factory, message, capsys, monkeypatch):
    with pytest.raises(PrivacamError) as e:
        load_external_encoder(f"{user_file}:{factory}", (3, 4, 16, 16))
    assert message in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    rc = main(["evaluate", "--encoder", f"{user_file}:{factory}", "--data", "synthetic", "--out", str(tmp_path / "o"), *TINY, *EVAL])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("privacam evaluate: error: --encoder")


def test_user_factory_audited_like_a_registered_encoder(user_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "user"
    rc = main(["evaluate", "--encoder", f"{user_file}:make", "--data", "synthetic", "--out", str(out), *TINY, *EVAL])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "eval" / "summary.json").read_text())
    assert s["encoder"]["name"] == "user" and s["encoder"]["source"]["file"] == str(user_file)
    assert len(s["encoder"]["source"]["sha256"]) == 64 and s["encoded_shape"] == [3, 4, 8, 8]
    assert 0 <= s["privacy"]["best"] <= 1 and "raw" in s["privacy"]


def test_onnx_encoder_and_its_pytorch_source_give_identical_caches(tmp_path):
    """The same encoder through onnxruntime and through PyTorch releases the same 8-bit cache.

    Bitwise equal on this fixture: both compute in float32 and the cache is the release rounded
    to 8 bits, so a float difference (< 1e-6 here) would change a byte only if a value fell within
    it of a rounding boundary; the test would then show it."""
    from privacam.deploy import export_onnx
    from privacam.models.encoders import SmallConvEncoder

    torch.manual_seed(0)
    enc = SmallConvEncoder(3, width=4, depth=2).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.4)
    path = tmp_path / "enc.onnx"
    export_onnx(enc, path, in_channels=3, size=16)
    cfg = load_config("default", TINY + EVAL)
    splits = make_splits(cfg.data, seed=0)
    onnx_enc, info = load_external_encoder(str(path), splits.train[0]["input"].shape)
    assert info["kind"] == "onnx" and info["takes"] == "frames" and not info["randomised"]
    for k in ("train", "test"):
        a = encode_split(enc, getattr(splits, k), batch_size=8)
        b = encode_split(onnx_enc, getattr(splits, k), batch_size=8)
        xa, xb = a.dense(), b.dense()  # the release store as the attackers read it
        assert xa.dtype == torch.uint8 and xa.shape == xb.shape and 0 < xa.float().std()
        assert torch.equal(xa, xb) and a.ids == b.ids


def test_onnx_of_a_randomised_encoder_is_randomised(tmp_path):
    from privacam.deploy import export_onnx
    from privacam.registry import create_encoder

    enc = create_encoder("motion", in_channels=3, width=4, jitter=0.5).eval()
    path = tmp_path / "motion.onnx"
    export_onnx(enc, path, in_channels=3, size=16, clip_len=4)
    m = OnnxModule(path)
    assert m.randomised and m.input_rank == 5
    wrapped = ExternalEncoder(m, str(path), m.info)
    assert wrapped.check((3, 4, 16, 16)) == [3, 4, 16, 16] and wrapped.framewise is False


def test_missing_onnx_file_is_one_line(tmp_path, capsys):
    rc = main(["evaluate", "--encoder", str(tmp_path / "nope.onnx"), "--data", "synthetic", "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no such ONNX file" in err and len(err.splitlines()) == 1


def test_shipped_example_encoder_loads():
    """examples/my_encoder.py (the README's example) keeps working."""
    from pathlib import Path

    f = Path(__file__).resolve().parents[1] / "examples" / "my_encoder.py"
    enc, info = load_external_encoder(f"{f}:make", (3, 4, 16, 16))
    assert info["takes"] == "frames" and info["release_shape"] == [1, 4, 16, 16] and info["called_with"] == {"in_channels": 3, "size": 16}
    y = enc(torch.rand(2, 3, 4, 16, 16))
    assert 0 <= float(y.min()) and float(y.max()) <= 1 and len(torch.unique(y)) <= 8


def test_external_rows_for_the_weizmann_page(released_audit, tmp_path):
    """scripts/external_rows.py: other tools' audits become rows (read from their files), and an audit
    with another attacker set than the page's is left out, by name."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        from external_rows import external_rows
    finally:
        sys.path.pop(0)
    out, _ = released_audit
    root = tmp_path / "weizmann_external"
    shutil.copytree(out, root / "redcut" / "audit")
    (root / "redcut" / "tool.json").write_text(json.dumps({"tool": "redcut", "version": "0.0", "args": ["--red"],
                                                          "frames": 108, "frames_changed": 54}))
    from privacam.audits import read_summary

    s = read_summary(out / "eval")
    points, text = external_rows(root, like=s)
    assert [p.label for p in points] == ["red removed"]
    assert "**red removed**: `redcut` (0.0) run as its command line is used, with --red" in text and "changed 54 of 108 frames" in text
    s.privacy.attackers = {"mlp_probe": 1.0}
    points, text = external_rows(root, like=s)
    assert points == [] and "Left out (audited with another attacker set than this page): redcut." in text
    assert external_rows(tmp_path / "none") == ([], "")


def test_card_examples_show_each_release_beside_its_own_raw_clip(tmp_path, monkeypatch):
    """The card's example strip: the raw frame above every release is the same clip's. With
    eval.test_clips capping the clips of test videos of different lengths, the clips shown are not
    the first clips of the test split: raw frames of other clips must not stand beside the releases.
    The release here is a copy of the raw frames, so every column must show the same frame twice."""
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    rows, rel_rows = [], []
    for actor in range(3):
        for action in range(2):
            for split, n in (("train", 10), ("test", 5 + 2 * actor + action)):  # test videos of 5 to 10 frames
                name = f"a{actor}_{action}_{split}"
                for kind, rows_ in (("raw", rows), ("copy", rel_rows)):
                    folder = tmp_path / kind / name
                    folder.mkdir(parents=True)
                    for i in range(n):  # every frame of every video differs from all others
                        a = np.full((8, 8, 3), 10 * (6 * actor + 2 * action) % 250, np.uint8)
                        a[..., 1] = 20 * i
                        a[0, :, 2] = 40 * actor + 5 * action
                        Image.fromarray(a).save(folder / f"{i:04d}.png")
                    rows_.append([f"{kind}/{name}", f"act{action}", f"actor{actor}", split])
    header = ["path", "utility", "private", "split"]
    write_csv(tmp_path / "RAW.csv", header, rows)
    write_csv(tmp_path / "COPY.csv", header, rel_rows)
    out = tmp_path / "audit"
    ov = [*TINY_M, *EVAL, "data.size=8", "eval.test_clips=2", "eval.attackers=[linear_probe]"]
    assert main(["evaluate", "--released", str(tmp_path / "COPY.csv"), "--data", str(tmp_path / "RAW.csv"),
                 "--out", str(out), "--no-raw", *ov]) == 0
    s = json.loads((out / "eval" / "summary.json").read_text())
    assert s["privacy"]["test_clips"]["dropped_clips"] > 0  # the cap dropped clips: shown clips are not the first ones
    ex = torch.load(out / "eval" / "examples.pt", weights_only=True)
    raw, rel = ex["input"].float(), ex["released"].float()
    assert len(raw) == len(rel) >= 4 and len(set(ex["items"].tolist())) == len(raw)
    for i in range(len(raw)):
        assert torch.allclose(raw[i], rel[i], atol=1 / 255 + 1e-3), f"column {i}: a raw frame of another clip"
    assert main(["report", str(out)]) == 0  # the card draws them
    assert (out / "card_examples.png").stat().st_size > 500
