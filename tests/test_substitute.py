"""Substitution releases: a real bank clip drawn by a learned softmax (PASS carried to video)."""

import itertools

import numpy as np
import pytest
import torch

from conftest import one_thread
from privacam.builders import build_game
from privacam.config import load_config
from privacam.errors import ConfigError
from privacam.evaluate.probing import reseed
from privacam.game import AdversarialGame, BudgetEnsemble
from privacam.models.substitute import SubstituteEncoder, block_mean, clip_descriptor
from privacam.players import Shapes
from privacam.registry import create_adversary, create_utility
from privacam.runs import load_encoder
from privacam.train import train

#: the substitute config at test size (one second on a CPU)
SUB = ["data.size=16", "data.clip_len=4", "data.params={num_actors: 3, clips_per_pair: 3, actions: [wave1, jump, bend]}",
       "utility.params={width: 4}", "encoder.params={tau: 0.1, dim: 8, width: 4, internal: 8}", "train.steps=4",
       "train.final_utility_steps=2", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=2",
       "train.device=cpu", "train.select=last"]


def _bank(n=12, people=3, actions=2, t=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    clips = (torch.rand(n, 3, t, size, size, generator=g) * 255).to(torch.uint8)
    return clips, torch.arange(n) % actions, (torch.arange(n) // actions) % people


def _encoder(tau=0.1, stratify=False, seed=0, **kw):
    enc = SubstituteEncoder(3, clip_len=4, tau=tau, dim=8, width=4, internal=8, stratify=stratify, seed=seed, **kw)
    enc.set_bank(*_bank())
    return enc


def test_two_releases_of_one_clip_draw_different_substitutes_and_a_seed_repeats_them():
    enc = _encoder(tau=5.0).eval()  # a warm softmax: the draw is far from the argmax
    x = torch.rand(1, 3, 4, 16, 16).repeat(16, 1, 1, 1, 1)  # one clip, 16 releases
    a, b = enc.draw(x), enc.draw(x)
    assert len(set(a.tolist())) > 1 and not torch.equal(a, b)  # fresh draws
    reseed(enc, 3, 1)
    c = enc.draw(x)
    reseed(enc, 3, 1)
    assert torch.equal(c, enc.draw(x))  # the same seed draws the same substitutes
    z = enc(x)
    assert z.shape == x.shape and bool(((z * 255).round() == z * 255).all())  # a bank clip, stored as 8-bit frames


def test_tau_zero_releases_the_most_likely_clip_every_time():
    enc = _encoder(tau=5.0).eval()
    det = enc.deterministic()
    assert not det.randomised and enc.randomised
    x = torch.rand(6, 3, 4, 16, 16)
    assert torch.equal(det.draw(x), det.draw(x))
    assert torch.equal(det.draw(x), enc.log_probs(x).argmax(1))


def test_stratified_draw_shows_every_person_equally_whatever_the_input():
    x = torch.rand(5, 3, 4, 16, 16)
    for stratify in (True, False):
        enc = _encoder(tau=0.05, stratify=stratify).eval()
        with torch.no_grad():  # person 0's clips look exactly like the first input
            enc.bank_embed[enc.bank_private == 0] = enc.embed(x[:1])
            enc.bank_embed[enc.bank_private != 0] = -enc.embed(x[:1])
        p = enc.log_probs(x).exp()
        assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-5)
        per_person = torch.stack([p[:, enc.bank_private == s].sum(1) for s in range(3)], 1)
        if stratify:  # whoever the input looks like, every person is shown a third of the time
            assert torch.allclose(per_person, torch.full_like(per_person, 1 / 3), atol=1e-5)
        else:  # PASS's single softmax shows the look-alike
            assert per_person[0, 0] > 0.99


def _game(enc, **substitute):
    substitute.setdefault("posterior", 0.0)  # each test reads the terms it names
    util = create_utility("small3d", in_channels=3, num_classes=2, size=16, width=4)
    budget = BudgetEnsemble([create_adversary("probe", in_channels=3, num_classes=3, size=16)])
    opts = {n: torch.optim.Adam(m.parameters(), 1e-2) for n, m in (("encoder", enc), ("utility", util), ("budget", budget))}
    return AdversarialGame(encoder=enc, utility=util, budget=budget, optimizers=opts, gamma=0.0, substitute=substitute)


def test_the_encoder_reads_expected_losses_and_the_gradient_reaches_the_bank_embeddings():
    with one_thread():
        enc = _encoder(tau=0.5)
        game = _game(enc, task=1.0, spread=0.0, general=0.0)
        x = torch.rand(4, 3, 4, 16, 16)
        batch = {"input": x, "utility": torch.tensor([0, 1, 0, 1]), "private": torch.tensor([0, 1, 2, 0])}
        p = enc.log_probs(x).exp().detach()
        match = (p * (enc.bank_utility[None] == batch["utility"][:, None]).float()).sum(1)
        loss, logs = game.substitution.encoder_loss(game, batch)
        assert loss.item() == pytest.approx(float(-torch.log(match).mean()), rel=1e-5)  # the expectation over the softmax
        before = enc.bank_embed.detach().clone()
        game.encoder_move(itertools.repeat(batch))
        assert enc.bank_embed.grad is not None and enc.bank_embed.grad.abs().sum() > 0
        assert not torch.equal(before, enc.bank_embed.detach())
        after = (enc.log_probs(x).exp() * (enc.bank_utility[None] == batch["utility"][:, None]).float()).sum(1)
        assert after.mean() > match.mean()  # one step raised the chance that the substitute shows the task label


def _train_one_term(term: str, steps: int = 30):
    """The encoder trained by one substitution term alone: (encoder, input, the term before, the term after)."""
    torch.manual_seed(0)
    enc = _encoder(tau=0.2)
    game = _game(enc, **{k: float(k == term) for k in ("task", "spread", "general")})
    x = torch.rand(6, 3, 4, 16, 16)
    batch = {"input": x, "utility": torch.tensor([0, 1] * 3), "private": torch.tensor([0, 1, 2] * 2)}
    first = game.substitution.encoder_loss(game, batch)[1][f"loss/substitute_{term}"]
    for _ in range(steps):
        game.encoder_move(itertools.repeat(batch))
    return enc, x, first, game.substitution.encoder_loss(game, batch)[1][f"loss/substitute_{term}"]


def test_spread_term_moves_the_identities_the_substitutes_show_towards_the_prior():
    with one_thread():
        _, _, first, last = _train_one_term("spread")
    assert last < 0.5 * first


def test_general_term_brings_the_substitute_s_motion_towards_the_input_s():
    with one_thread():
        enc, x, first, last = _train_one_term("general")
        best = float(enc.descriptor_distance(x).min(1).values.mean())  # the nearest bank clip each
        assert last - best < 0.5 * (first - best)  # more than half way to the nearest substitutes


def _flicker(side: str, n: int = 1, t: int = 4, size: int = 16) -> torch.Tensor:
    """Clips ``[n, 3, t, size, size]`` where a block flickers on the left or the right."""
    x = torch.zeros(n, 3, t, size, size)
    cols = slice(1, 4) if side == "left" else slice(size - 4, size - 1)
    x[:, :, ::2, 4:8, cols] = 1.0
    return x


def test_clip_descriptor_sees_where_things_move_and_not_the_colours():
    from privacam.models.common import luminance

    x = torch.cat([_flicker("left"), _flicker("right")])
    d = clip_descriptor(luminance(x))
    assert not torch.allclose(d[0], d[1])
    tinted = x * 0.5 + torch.tensor([0.3, 0.0, 0.1]).reshape(1, 3, 1, 1, 1)  # another colour, the same motion
    assert torch.allclose(clip_descriptor(luminance(tinted))[:, :16], d[:, :16], atol=1e-5)  # where: normalised energy


def test_match_draws_the_bank_clips_that_move_like_the_input():
    bank = torch.cat([_flicker("left", 6), _flicker("right", 6)])
    clips = (bank * 255).to(torch.uint8)
    enc = SubstituteEncoder(3, clip_len=4, tau=0.05, dim=8, width=4, internal=8, match=0.0).eval()
    enc.set_bank(clips, torch.zeros(12), torch.arange(12) % 3)
    with torch.no_grad():  # the learned part says nothing: every bank clip is as similar as any other
        enc.bank_embed.copy_(enc.embed(_flicker("left"))[0].expand(12, -1))
    x = _flicker("left", 8)
    left = lambda e: float(e.log_probs(x).detach().exp()[:, :6].sum(1).mean())  # noqa: E731
    assert left(enc) == pytest.approx(0.5, abs=1e-3)
    enc.match = 1.0
    assert left(enc) > 0.99  # the draw now prefers the clips that move where the input moves


def test_block_mean_takes_any_frame_size():
    g = torch.rand(2, 1, 3, 37, 70)
    assert block_mean(g, 8).shape == (2, 1, 3, 8, 8)
    assert block_mean(torch.rand(1, 1, 2, 5, 5), 8).shape == (1, 1, 2, 8, 8)


def test_a_trained_run_ships_its_bank_and_the_audit_draws_from_it(tmp_path):
    with one_thread():
        run = train(load_config("substitute", SUB), tmp_path / "run")
    enc, cfg, meta = load_encoder(run)
    assert enc.bank_size > 0 and enc.bank.dtype == torch.uint8 and enc.bank_embed.shape == (enc.bank_size, 8)
    x = torch.rand(3, 3, 4, 16, 16)
    z, j = enc.release(x)
    assert torch.equal(z, enc.bank[j].float() / 255)  # the release is a bank clip


def test_the_shipped_utility_model_trains_on_the_shipped_release(tmp_path, monkeypatch):
    """train.select=val_probe with final utility steps: the best candidate is shipped first, then f_T trains."""
    from privacam.train import Trainer

    scores = iter([1.0, 0.0, 0.0])
    monkeypatch.setattr(Trainer, "validation_score", lambda self: {"val_utility": 0.0, "val_probe_identity": 0.0,
                                                                    "val_probe_nag": 0.0, "score": next(scores)})
    with one_thread():
        run = train(load_config("substitute", SUB + ["train.select=val_probe", "train.select_every=2"]), tmp_path / "run")
    from privacam.runs import read_metrics

    stages = [r["stage"] for r in read_metrics(run)]
    assert stages[-2:] == ["final_utility", "final_utility"]
    import json

    sel = json.loads((run / "selection.json").read_text())
    assert sel["chosen"]["at"] == "step 2"
    final = torch.load(run / "checkpoints" / "final.pt", weights_only=True)["game"]
    assert final["step_count"] == 2  # the shipped game state is the chosen candidate's


def test_substitute_settings_are_refused_where_they_have_no_effect():
    with pytest.raises(ConfigError, match="game.substitute.general is read only by the substitute encoder"):
        build_game(load_config("decision", ["game.substitute.general=1.0"]), Shapes(3, 16, 4, 3, 3), torch.device("cpu"))
    with pytest.raises(ConfigError, match="data.bank is read only by the substitute encoder"):
        build_game(load_config("decision", ["data.bank=synthetic"]), Shapes(3, 16, 4, 3, 3), torch.device("cpu"))
    with pytest.raises(ConfigError, match="tau > 0"):
        build_game(load_config("substitute", ["encoder.params.tau=0"]), Shapes(3, 16, 4, 3, 3), torch.device("cpu"))


def test_a_missing_donor_bank_is_one_line_naming_data_bank(tmp_path, capsys):
    from privacam.cli import main

    assert main(["train", *SUB, "data.bank=/nonexistent/donors.csv", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.bank: manifest /nonexistent/donors.csv does not exist" in err[0] and "--data" not in err[0]
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_images_are_substituted_by_bank_images(tmp_path):
    """PASS's own setting: the bank holds images, and an image releases another image of the bank."""
    with one_thread():
        run = train(load_config("substitute", SUB + ["data.name=synthetic_image", "data.size=16"]), tmp_path / "img")
    enc, _, _ = load_encoder(run)
    x = torch.rand(3, 3, 16, 16)
    z, j = enc.release(x)
    assert z.shape == x.shape and torch.equal(z, enc.bank[j, :, 0].float() / 255)


def test_export_keeps_the_draw_and_the_index_release_names_the_bank_clip(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from privacam.deploy import export_onnx

    enc = _encoder(tau=5.0).eval()
    with torch.no_grad():  # bank embeddings far apart: no near-ties for float rounding to flip
        enc.bank_embed.copy_(torch.randn(enc.bank_embed.shape, generator=torch.Generator().manual_seed(1)))
    assert export_onnx(enc, tmp_path / "clip.onnx", in_channels=3, size=16, clip_len=4) <= 1e-4
    x = np.random.default_rng(0).random((1, 3, 4, 24, 24)).astype(np.float32).repeat(32, 0)
    sess = ort.InferenceSession(str(tmp_path / "clip.onnx"))
    out = sess.run(None, {"input": x})[0]
    bank = enc.bank.float().numpy() / 255
    picked = [int(np.argmin(np.abs(bank - o[None]).reshape(len(bank), -1).max(1))) for o in out]
    assert all(np.abs(bank[k] - o).max() < 1e-6 for k, o in zip(picked, out))  # every release is a bank clip
    assert len(set(picked)) > 1  # and the exported graph still draws
    idx = enc.with_emit("index")
    export_onnx(idx, tmp_path / "index.onnx", in_channels=3, size=16, clip_len=4)
    j = ort.InferenceSession(str(tmp_path / "index.onnx")).run(None, {"input": x[:4]})[0]
    assert j.shape == (4,) and j.dtype == np.int64 and ((0 <= j) & (j < enc.bank_size)).all()


@pytest.fixture(scope="module")
def substitute_run(tmp_path_factory):
    with one_thread():
        return train(load_config("substitute", SUB), tmp_path_factory.mktemp("sub") / "run")


def _write_video(path, n, h, w, fps):
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for _ in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_anonymize_writes_substitutes_at_the_input_size_and_rate(substitute_run, tmp_path):
    import cv2

    from privacam.deploy import anonymize
    from privacam.deploy.stream import _to_frame

    src = _write_video(tmp_path / "in.mp4", n=10, h=30, w=40, fps=12)
    res = anonymize(substitute_run, str(src), tmp_path / "frames")  # PNG frames: no codec in the way
    assert res["frames"] == 10 and res["size"] == [30, 40] and res["fps"] == 12
    enc, _, _ = load_encoder(substitute_run)
    bank_frames = [_to_frame(c[:, t].numpy() / 255.0, (30, 40)) for c in enc.bank for t in range(c.shape[1])]
    for f in sorted((tmp_path / "frames").iterdir()):
        got = cv2.imread(str(f))[:, :, ::-1]
        assert got.shape == (30, 40, 3)
        assert any(np.array_equal(got, b) for b in bank_frames)  # every frame written is a bank frame, upsampled


def test_anonymize_index_and_export_index_give_a_cloud_the_bank(substitute_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from privacam.cli import main

    src = _write_video(tmp_path / "in.mp4", n=9, h=16, w=16, fps=10)
    assert main(["anonymize", str(substitute_run), str(src), "-o", str(tmp_path / "idx.csv"), "--emit", "index"]) == 0
    rows = (tmp_path / "idx.csv").read_text().splitlines()
    enc, _, _ = load_encoder(substitute_run)
    assert rows[0] == "frame,bank_index" and len(rows) == 10
    assert all(0 <= int(r.split(",")[1]) < enc.bank_size for r in rows[1:])
    assert main(["export", str(substitute_run), "-o", str(tmp_path / "e.onnx"), "--emit", "index"]) == 0
    bank = np.load(tmp_path / "e.onnx.bank.npy")
    assert bank.shape == tuple(enc.bank.shape) and bank.dtype == np.uint8
    capsys.readouterr()
    assert main(["anonymize", str(substitute_run), str(src), "-o", str(tmp_path / "x.mp4"), "--emit", "index"]) == 2
    assert "give an output ending in .csv" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
