"""CPGAN: code players, reconstructors, the multiple-adversary schedule, a sweep and the datasets."""

import gzip
import itertools
import json
import math
import pickle

import numpy as np
import pytest
import torch

from privacam.cli import main
from privacam.config import load_config, read_config_text
from privacam.data import make_splits
from privacam.game import AdversarialGame
from privacam.game.schedules import MultiAdversarySchedule, pick_strongest
from privacam.models.reconstructors import is_closed_form
from privacam.players import Shapes, build_budget_models, is_reconstruction
from privacam.registry import create_encoder, create_utility

TINY = ["train.steps=3", "init.utility_steps=2", "init.budget_steps=1", "train.batch_size=16", "train.log_every=1",
        "train.checkpoint_every=0", "encoder.params={code_dim: 4, hidden: 16}", "utility.params={hidden: 8}",
        "budget.params={hidden: 16, rff_features: 32}"]


def test_pick_strongest_is_the_lowest_validation_error():
    assert pick_strongest([0.3, 0.1, 0.2]) == 1
    assert pick_strongest([float("nan"), 0.5, 0.5]) == 1  # NaN never wins, ties go first
    assert pick_strongest([0.02]) == 0
    with pytest.raises(ValueError):
        pick_strongest([])


@pytest.mark.parametrize("name,shape", [("cpgan_mlp", (2, 8, 1, 1)), ("cpgan_conv", (2, 3, 4, 4))])
def test_code_encoders_release_4d_codes(name, shape):
    params = {"code_dim": 8} if name == "cpgan_mlp" else {"code_channels": 3}
    enc = create_encoder(name, in_channels=1, **params)
    assert enc.releases == "code"
    z = enc(torch.rand(2, 1, 16, 16))
    assert z.shape == shape
    assert enc(torch.rand(2, 1, 5, 16, 16)).shape == (2, shape[1], 5, *shape[2:])  # clips: one code per frame
    util = create_utility("code_mlp", in_channels=shape[1], num_classes=3, size=shape[-1])
    assert util(z).shape == (2, 3)


def _cfg(*extra):
    return load_config("cpgan_digits", TINY + list(extra))


def test_reconstructors_follow_budget_names():
    shapes = Shapes(in_channels=1, size=8, clip_len=0, num_utility=10, num_private=10)
    cfg = _cfg()
    models = build_budget_models(cfg, shapes, (4, 1, 1))
    assert is_reconstruction(cfg) and len(models) == 3
    assert [is_closed_form(m) for m in models] == [False, True, True]
    assert models[0](torch.randn(5, 4, 1, 1)).shape == (5, 1, 8, 8)
    # each reconstructor takes its own keys of the shared budget.params
    assert models[0].net[0].out_features == 16 and models[2].num_features == 32 and models[1].alpha == 1.0
    assert len(build_budget_models(_cfg("budget.names=[ridge]", "budget.m=1"), shapes, (4, 1, 1))) == 1


def _game(encoder_steps=1, decoder_steps=1, utility_steps=1, gamma=0.5):
    from privacam.builders import build_game

    torch.manual_seed(0)
    shapes = Shapes(in_channels=1, size=8, clip_len=0, num_utility=3, num_private=3)
    g = build_game(_cfg(f"game.gamma={gamma}"), shapes, torch.device("cpu"))
    g.schedule = MultiAdversarySchedule(encoder_steps, decoder_steps, utility_steps, buffer_size=64)
    return g


def _batches(seed=0, n=16):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    return itertools.cycle([{"input": x, "utility": torch.arange(n) % 3, "private": torch.arange(n) % 3}])


def _snap(m):
    return [t.detach().clone() for t in itertools.chain(m.parameters(), m.buffers())]


def _moved(before, m):
    return any(not torch.equal(a, b) for a, b in zip(before, itertools.chain(m.parameters(), m.buffers())))


def test_multi_adversary_step_moves_every_player_and_reports_val_errors():
    g = _game()
    before = {n: _snap(getattr(g, n)) for n in ("encoder", "utility")}
    adv = [_snap(m) for m in g.budget.models]
    logs = g.step(_batches(), _batches(seed=1))
    assert g.step_count == 1
    assert _moved(before["encoder"], g.encoder) and _moved(before["utility"], g.utility)
    assert all(_moved(b, m) for b, m in zip(adv, g.budget.models))  # decoder trained, closed-form fitted
    assert logs["strongest"] == pick_strongest([logs[f"mse/val_{i}"] for i in range(3)])
    assert all(isinstance(v, (int, float)) for v in logs.values())


def test_multi_adversary_budget_phase_leaves_encoder_and_utility_alone():
    g = _game(encoder_steps=0, utility_steps=0)
    e, u = _snap(g.encoder), _snap(g.utility)
    g.step(_batches(), _batches(seed=1))
    assert not _moved(e, g.encoder) and not _moved(u, g.utility)


def test_encoder_step_targets_the_strongest_adversary_with_gamma(monkeypatch):
    g = _game(utility_steps=0)
    monkeypatch.setattr(g.schedule, "validation_errors", lambda game, batch: [0.5, 0.3, 0.1])
    calls = []
    orig = AdversarialGame.encoder_move

    def spy(self, batches, *, strongest=None):
        calls.append(strongest)
        return orig(self, batches, strongest=strongest)

    monkeypatch.setattr(AdversarialGame, "encoder_move", spy)
    adv = [_snap(m) for m in g.budget.models]
    g.schedule.fit_closed_form(g)  # (the step refits anyway; snapshot after a first fit)
    adv = [_snap(m) for m in g.budget.models]
    logs = g.step(_batches(), _batches(seed=1))
    assert calls == [2] and logs["strongest"] == 2
    # encoder objective: L_T + gamma * neg_mse(strongest), so the privacy log is minus its MSE
    assert logs["loss/privacy"] < 0
    assert logs["loss/encoder"] == pytest.approx(logs["loss/utility"] + 0.5 * logs["loss/privacy"], rel=1e-4)
    del adv


def test_cpgan_training_run_logs_the_trade_off(tmp_path):
    from privacam.runs import read_metrics
    from privacam.train import train

    run = train(_cfg(), tmp_path / "run")
    recs = [r for r in read_metrics(run) if r["stage"] == "game"]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert {"mse/val_0", "mse/val_1", "mse/val_2", "strongest", "acc/utility_val"} <= set(recs[0])


def test_sweep_trains_evaluates_and_reports_each_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    audit = ["eval.epochs=1", "eval.utility_epochs=1", "eval.raw_reference=false"]
    rc = main(["sweep", "cpgan_digits", *TINY, *audit, "--key", "game.gamma", "--values", "1,0.01", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "sweep.json").read_text())
    assert res["key"] == "game.gamma" and [p["value"] for p in res["points"]] == ["1", "0.01"]
    for p, gamma in zip(res["points"], (1.0, 0.01)):
        run = out / p["run"]
        assert load_config(run / "config.yaml").game.gamma == gamma  # the value reached the run
        s = json.loads((out / p["summary"]).read_text())  # audited by `privacam evaluate`'s protocol
        assert s["encoder"]["run"] == str(run) and s["encoder"]["gamma"] == gamma and s["encoder"]["task"] == "cpgan"
        assert s["reconstruction"]["mse"] > 0 and s["reconstruction"]["best_attacker"] in ("ridge", "kernel_ridge", "decoder")
    assert (out / "report.html").exists() and (out / "report.png").stat().st_size > 0
    assert "| encoder |" in capsys.readouterr().out
    # an unknown key is refused before any training
    assert main(["sweep", "cpgan_digits", "--key", "game.gama", "--values", "1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["cpgan_digits", "cpgan_gaussian"])
def test_shipped_cpgan_configs_load_and_name_their_command(name):
    cfg = load_config(name)
    assert is_reconstruction(cfg) and cfg.schedule.name == "multi_adversary" and cfg.game.privacy_loss == "neg_mse"
    assert cfg.init.encoder_steps == 0
    assert read_config_text(name).splitlines()[0].startswith(f"# privacam train {name}")


# ------------------------------------------------------------------------------------------ datasets
def _data(name, root=None, **kw):
    from privacam.config import DataConfig

    return make_splits(DataConfig(name=name, root=str(root) if root else None, **kw))


def _check(s, n_classes, shape):
    assert s.kind == "image" and s.num_utility == n_classes
    x = s.train[0]["input"]
    assert tuple(x.shape) == shape and x.dtype == torch.float32
    assert len(s.train) and len(s.val) and len(s.test)
    ids = lambda d: {d[i]["id"] for i in range(len(d))}  # noqa: E731
    assert not ids(s.val) & ids(s.train)


def test_digits_dataset():
    s = _data("digits", size=8)
    _check(s, 10, (1, 8, 8))
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert 0.0 <= float(s.train[0]["input"].min()) and float(s.train[0]["input"].max()) <= 1.0
    assert _data("digits", size=16).train[0]["input"].shape == (1, 16, 16)


def test_gaussian_mixture_and_its_analytic_optimum():
    from privacam.data.toy import gaussian_mixture_optimum

    s = _data("gaussian_mixture", params={"dim": 4, "separation": 3.0, "n": 4000})
    _check(s, 2, (4, 1, 1))
    opt = s.meta["optimum"]
    x = torch.stack([s.test[i]["input"].flatten() for i in range(len(s.test))])
    y = torch.stack([torch.as_tensor(s.test[i]["utility"]) for i in range(len(s.test))])
    bayes = float(((x[:, 0] > 0).long() == y).float().mean())  # the Bayes rule: sign of x_1
    assert bayes == pytest.approx(opt["bayes_accuracy"], abs=0.03)
    assert float(x.var(0).mean()) == pytest.approx(opt["total_mse"], rel=0.1)
    assert opt["pca_mse"][-1] == 0 and opt["pca_mse"] == sorted(opt["pca_mse"], reverse=True)
    fr = opt["linear_frontier"]
    assert fr[0]["accuracy"] == pytest.approx(opt["bayes_accuracy"]) and fr[-1]["accuracy"] == pytest.approx(0.5)
    assert fr[0]["mse"] == pytest.approx(opt["pca_mse"][1])  # releasing x_1 only = rank-1 PCA
    assert opt["bit_code"]["mse"] > fr[0]["mse"]  # a non-linear code beats every linear one at Bayes accuracy
    assert gaussian_mixture_optimum(dim=2, separation=0.0)["bayes_accuracy"] == pytest.approx(0.5)


def _idx(path, arr, gz=False):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_mnist_idx_loader(tmp_path):
    g = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        _idx(tmp_path / f"{split}-images-idx3-ubyte.gz", g.integers(0, 256, (n, 28, 28)), gz=True)
        _idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    s = _data("mnist", tmp_path, size=14)
    _check(s, 10, (1, 14, 14))
    assert len(s.test) == 10 and len(s.train) + len(s.val) == 40


@pytest.mark.parametrize("fmt", ["bin", "py"])
def test_cifar10_loader(tmp_path, fmt):
    g = np.random.default_rng(0)
    for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = 10
        labels = np.arange(n) % 10
        img = g.integers(0, 256, (n, 3072)).astype(np.uint8)
        if fmt == "bin":
            d = tmp_path / "cifar-10-batches-bin"
            d.mkdir(exist_ok=True)
            np.concatenate([labels[:, None].astype(np.uint8), img], 1).tofile(d / f"{stem}.bin")
        else:
            d = tmp_path / "cifar-10-batches-py"
            d.mkdir(exist_ok=True)
            (d / stem).write_bytes(pickle.dumps({b"data": img, b"labels": labels.tolist()}))
    s = _data("cifar10", tmp_path, size=32)
    _check(s, 10, (3, 32, 32))
    assert len(s.test) == 10 and len(s.train) + len(s.val) == 50
    first = img[0].reshape(3, 32, 32)  # the last batch written is test_batch
    assert torch.allclose(s.test[0]["input"], torch.as_tensor(first).float() / 255)


def test_cifar10_python_loader_refuses_foreign_pickles(tmp_path):
    from privacam.errors import DataError

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / stem).write_bytes(pickle.dumps({b"data": math.pi, b"labels": [print]}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        _data("cifar10", tmp_path)


def test_svhn_loader(tmp_path):
    from scipy.io import savemat

    g = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 10)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": g.integers(0, 256, (32, 32, 3, n)).astype(np.uint8),
                                                  "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    s = _data("svhn", tmp_path, size=16)
    _check(s, 10, (3, 16, 16))
    assert sorted({int(s.test[i]["utility"]) for i in range(len(s.test))}) == list(range(10))  # 10 -> 0


def test_genki4k_loader(tmp_path):
    import cv2

    (tmp_path / "files").mkdir()
    lines = []
    for i in range(1, 21):
        cv2.imwrite(str(tmp_path / "files" / f"file{i:04d}.jpg"), np.full((40, 30, 3), i * 10, np.uint8))
        lines.append(f"{i % 2} 0.1 -0.2 0.0")
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    s = _data("genki4k", tmp_path, size=16)
    _check(s, 2, (3, 16, 16))
    assert s.utility_classes == ["no_smile", "smile"] and s.private_classes == ["none"]


def test_uci_har_loader(tmp_path):
    g = np.random.default_rng(0)
    for split, subjects in (("train", [1, 3]), ("test", [2, 4])):
        d = tmp_path / "UCI HAR Dataset" / split
        d.mkdir(parents=True)
        n = 48
        np.savetxt(d / f"X_{split}.txt", g.uniform(-1, 1, (n, 561)))
        np.savetxt(d / f"y_{split}.txt", np.arange(n) % 6 + 1, fmt="%d")
        np.savetxt(d / f"subject_{split}.txt", np.repeat(subjects, n // 2), fmt="%d")
    s = _data("uci_har", tmp_path / "UCI HAR Dataset")
    _check(s, 6, (561, 1, 1))
    assert s.num_private == 4  # subjects re-split so that test subjects are seen in train
    x = s.train[0]["input"]
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert _data("uci_har", tmp_path / "UCI HAR Dataset", params={"private": "none"}).num_private == 1
