"""Cross-dataset training (Wu et al.'s UCF101 + VISPR setting): the utility labels come from one data
source, the private labels from another (``data.privacy_source``), and one encoder serves both.

Tiny stand-ins: the embedded synthetic clips (3 actions, 3 actors) are the utility source; a manifest
of images with two binary private attributes (multi-label, like VISPR) is the privacy source.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, one_thread
from conftest_data import write_csv, write_image
from privacam.config import load_config
from privacam.data import make_splits
from privacam.evaluate import metrics
from privacam.evaluate.runner import evaluate_run
from privacam.train import train

ATTRIBUTES = ["face", "gender"]


def _privacy_manifest(root, variant: int = 0):
    """30 images (18 train / 6 val / 6 test) whose flat colour carries two binary attributes;
    no utility labels (one class ``none``). ``variant`` 1 changes every image and the face labels."""
    rows = []
    for i in range(30):
        face, gender = (i + variant) % 2, (i // 2) % 2
        value = 40 + 100 * face + 50 * gender + 2 * (i % 5) + 30 * variant
        f = write_image(root / "img" / f"{i}.png", "RGB", size=(20, 20), value=value)
        split = "train" if i < 18 else "val" if i < 24 else "test"
        rows.append([f"img/{f.name}", "none", face, gender, split])
    header = ["path", "utility"] + [f"private:{a}" for a in ATTRIBUTES] + ["split"]
    return write_csv(root / "private.csv", header, rows)


def _cfg(csv, gamma: float):
    return load_config(None, TINY + [
        # the paper's frame-wise f_d (instance norm: no running statistics that other data could move)
        "encoder.name=transform_net", "encoder.params={width: 4, blocks: 1}",
        f"data.privacy_source={{name: manifest, root: '{csv}', params: {{}}}}",
        f"game.gamma={gamma}", "train.steps=3", "budget.restart_every=2",
        "eval.attackers=[linear_probe]", "eval.epochs=2", "eval.utility_epochs=2", "eval.reconstruction=false",
    ])


def _params(run) -> dict:
    return torch.load(run / "encoder.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four short runs, same seed: gamma 1 and 0, each with two different privacy sources."""
    base = tmp_path_factory.mktemp("cross")
    csv = {v: _privacy_manifest(base / f"p{v}", v) for v in (0, 1)}
    out = {}
    with one_thread():
        for gamma in (1.0, 0.0):
            for v in (0, 1):
                out[gamma, v] = train(_cfg(csv[v], gamma), base / f"run_g{gamma}_p{v}")
    return out, csv


def test_utility_on_utility_source_privacy_on_privacy_source(runs):
    out, csv = runs
    run = out[1.0, 0]
    meta = json.loads((run / "run.json").read_text())
    assert meta["dataset"] == "synthetic" and meta["utility_classes"] == ["wave1", "jump", "bend"]
    assert meta["private_classes"] == ATTRIBUTES
    assert meta["shapes"]["num_private"] == 2 and meta["shapes"]["multilabel"] is True
    assert meta["shapes"]["clip_len"] == 4  # players sized for the utility source's clips
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    game = [r for r in records if r["stage"] == "game"]
    assert game and all("loss/privacy" in r and "acc/budget_train_min" in r for r in game)

    with one_thread():
        s = evaluate_run(run, raw=False, device="cpu").to_dict()
    splits = make_splits(load_config(run / "config.yaml").data, seed=0)
    assert splits.privacy is not None and splits.privacy.multilabel and splits.privacy.kind == "image"
    # utility: f_T scored on the encoded synthetic clips (the privacy source has a single dummy class,
    # on which no utility would be reported at all)
    assert s["dataset"] == "synthetic" and s["encoded_shape"] == [3, 4, 16, 16]
    u = s["utility"]
    assert 0 <= u["value"] <= 1 and 0 <= u["retrained"] <= 1
    util_test = torch.stack([torch.as_tensor(splits.test[i]["utility"]) for i in range(len(splits.test))])
    util_train = torch.stack([torch.as_tensor(splits.train[i]["utility"]) for i in range(len(splits.train))])
    assert u["chance"] == pytest.approx(metrics.chance_accuracy(util_train, util_test))
    # privacy: attackers trained and tested on the encoded privacy-source images, multi-label cMAP
    p = s["privacy"]
    assert p["metric"] == "cmap" and set(p["attackers"]) == {"linear_probe"}
    assert s["n_test"] == len(splits.privacy.test) == 6 != len(splits.test)
    priv_test = torch.stack([splits.privacy.test[i]["private"] for i in range(6)])
    assert priv_test.shape == (6, 2)
    assert p["chance"] == pytest.approx(metrics.chance_cmap(priv_test))
    rec = json.loads((run / "eval" / "attackers" / "linear_probe.json").read_text())
    assert set(rec["per_attribute_f1"]) == set(ATTRIBUTES)
    assert len(p["training_adversaries"]) == 2 and all(0 <= v <= 1 for v in p["training_adversaries"].values())


def test_encoder_learns_from_the_privacy_term(runs):
    out, _ = runs
    g1, g0 = _params(out[1.0, 0]), _params(out[0.0, 0])
    g0_other, g1_other = _params(out[0.0, 1]), _params(out[1.0, 1])
    assert g1.keys() == g0.keys()
    # gamma = 0: the privacy source cannot reach f_d (same seed, other privacy data: identical weights)
    assert all(torch.equal(g0[k], g0_other[k]) for k in g0)
    # gamma = 1: the privacy term moved f_d, and through it the privacy source's data did
    assert any(not torch.equal(g1[k], g0[k]) for k in g1)
    assert any(not torch.equal(g1[k], g1_other[k]) for k in g1)
