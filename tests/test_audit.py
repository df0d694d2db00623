"""The attacker the audit plays: probing views, selection on held-out training videos, classical
attackers, identification over several clips, bootstrap intervals, and the settings' errors."""

import json

import numpy as np
import pytest
import torch

from audit_fixtures import write_people
from conftest import one_thread
from privacam.cli import main
from privacam.config import DataConfig, load_config
from privacam.data import TensorSampleDataset, make_splits
from privacam.errors import ConfigError
from privacam.evaluate import metrics, pooling, protocol
from privacam.evaluate.fitting import Attacker, FitConfig, fit_attacker, make_attacker
from privacam.evaluate.protocol import AuditSpec, encode_split
from privacam.evaluate.releases import ReleaseStore
from privacam.evaluate.selection import carve
from privacam.models.encoders import IdentityEncoder, MotionEncoder
from privacam.registry import create_attacker

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Weizmann-like splits: 4 persons x 2 actions, each recording cut into a train and a test part."""
    csv = write_people(tmp_path_factory.mktemp("people"))
    cfg = DataConfig(name="manifest", root=str(csv), size=16, clip_len=8)
    return make_splits(cfg, seed=0)


# ---------------------------------------------------------------------------------------- pooling
def _constant_signal(persons=5, videos=4, clips=5, strength=0.6, seed=0):
    """Log-probabilities carrying a weak constant signal of the person plus per-clip noise."""
    rng = np.random.default_rng(seed)
    labels, vids, scores = [], [], []
    for p in range(persons):
        for v in range(videos):
            for _ in range(clips):
                logits = rng.normal(0, 1, persons)
                logits[p] += strength
                scores.append(logits - np.logaddexp.reduce(logits))
                labels.append(p)
                vids.append(f"p{p}v{v}")
    return np.array(scores), np.array(labels), vids


def test_pooling_a_constant_person_signal_identifies_everyone():
    scores, labels, vids = _constant_signal()
    index = pooling.TestIndex.build(labels, vids)
    levels = pooling.available_levels(index, [1, 3, 5])
    plan = pooling.make_plan(index, levels, trials=200, bootstrap=200, seed=0)
    r = pooling.score(scores, plan)
    assert r["clip"]["value"] < 0.6
    assert r["video"]["value"] > r["clip"]["value"] + 0.15
    assert r["person@1"]["value"] == pytest.approx(r["clip"]["value"], abs=0.08)
    assert r["person@1"]["value"] < r["person@5"]["value"] < r["person@all"]["value"]
    assert r["person@all"]["value"] == 1.0


def test_intervals_contain_the_point_and_shrink_with_more_test_videos():
    widths = {}
    for videos in (2, 16):
        scores, labels, vids = _constant_signal(persons=4, videos=videos, clips=3, strength=1.0, seed=1)
        index = pooling.TestIndex.build(labels, vids)
        plan = pooling.make_plan(index, ["clip", "video", "person@3"], bootstrap=500, seed=0)
        r = pooling.score(scores, plan)
        for level, rec in r.items():
            lo, hi = rec["interval"]
            assert lo <= rec["value"] <= hi, (videos, level, rec)
        widths[videos] = {lv: rec["interval"][1] - rec["interval"][0] for lv, rec in r.items()}
    for level in ("clip", "video"):
        assert widths[16][level] < 0.6 * widths[2][level], widths


def test_intervals_resample_videos_not_clips():
    """Clips of one video share its outcome: the interval must be as wide as the number of videos says."""
    labels = np.repeat([0, 1, 0, 1], 25)  # 4 videos of 25 identical clips each
    vids = np.repeat(["a", "b", "c", "d"], 25)
    scores = np.log(np.full((100, 2), 0.5))
    scores[:50, :] = np.log([0.9, 0.1])  # videos a, b answer class 0: a right, b wrong
    scores[50:, :] = np.log([0.9, 0.1])
    plan = pooling.make_plan(pooling.TestIndex.build(labels, vids), ["clip"], bootstrap=1000, seed=0)
    lo, hi = pooling.score(scores, plan)["clip"]["interval"]
    assert hi - lo > 0.4  # resampling 100 clips would give about 0.2


def test_k_larger_than_a_persons_clips_skips_that_person():
    labels = np.array([0] * 6 + [1] * 2)
    vids = [f"v{i // 2}" for i in range(8)]
    plan = pooling.make_plan(pooling.TestIndex.build(labels, vids), ["person@1", "person@5", "person@all"], seed=0)
    assert plan.skipped["person@5"] == {"1": 2} and plan.skipped["person@1"] == {}
    r = pooling.score(np.log(np.full((8, 2), 0.5)), plan)
    assert r["person@5"]["units"] == 1 and r["person@all"]["units"] == 2


def test_best_of_interval_is_the_bootstrap_of_the_maximum():
    scores, labels, vids = _constant_signal(seed=3)
    plan = pooling.make_plan(pooling.TestIndex.build(labels, vids), ["clip"], bootstrap=300, seed=0)
    a, b = pooling.score(scores, plan), pooling.score(scores[:, ::-1].copy(), plan)
    best = pooling.best_of({"a": a, "b": b}, "clip")
    assert best["attacker"] == "a" and best["value"] == a["clip"]["value"]
    assert best["interval"][0] >= a["clip"]["interval"][0] - 1e-9


# ---------------------------------------------------------------------------------------- probing views
def test_probing_views_of_a_randomised_release_differ():
    torch.manual_seed(0)
    x = (torch.rand(6, 3, 8, 16, 16) * 255).to(torch.uint8)
    ds = TensorSampleDataset(x, torch.zeros(6), torch.arange(6))
    enc = MotionEncoder(jitter=0.5, dilate=2, threshold=0.3)
    e = encode_split(enc, ds, views=2, seed=0)
    assert len(e) == 12 and e.num_views == 2
    v0, v1 = e.view_rows(0), e.view_rows(1)
    assert torch.equal(v0.clip, v1.clip)
    for i in range(6):
        assert not torch.equal(v0.batch(torch.tensor([i]), CPU, raw=True), v1.batch(torch.tensor([i]), CPU, raw=True))
    # reproducible: the same seed gives the same releases
    again = encode_split(enc, ds, views=2, seed=0)
    assert torch.equal(again.dense(), e.dense())


def test_deterministic_release_of_fixed_clips_keeps_one_view(people):
    from privacam.evaluate.probing import effective_views

    x = torch.zeros(2, 3, 4, 8, 8, dtype=torch.uint8)
    fixed = TensorSampleDataset(x, torch.zeros(2), torch.arange(2))
    assert effective_views(IdentityEncoder(), fixed, 8) == 1
    assert effective_views(MotionEncoder(jitter=0.5), fixed, 8) == 8
    assert effective_views(IdentityEncoder(), people.train, 8) == 8  # random clip offsets


def test_offset_views_of_videos_differ_and_carry_video_ids(people):
    e = encode_split(IdentityEncoder(), people.train, views=2, seed=0)
    v0, v1 = e.view_rows(0), e.view_rows(1)
    assert v0.videos == v1.videos and len(set(v0.videos)) == 8
    assert not torch.equal(v0.dense(), v1.dense())


def test_binary_release_packs_to_bits():
    torch.manual_seed(0)
    x = (torch.rand(5, 1, 4, 8, 8) > 0.5).to(torch.uint8).mul(255).expand(-1, 3, -1, -1, -1).contiguous()
    store = ReleaseStore(x)
    assert store.packed and store.repeat == 3
    assert store.nbytes * 8 * 3 <= x.numel() + 64
    assert torch.equal(store[torch.tensor([4, 0, 2])], x[[4, 0, 2]])
    assert store.shape == x.shape and store.dim() == 5
    grey = (torch.rand(3, 3, 8, 8) * 255).to(torch.uint8)
    dense = ReleaseStore(grey)
    assert not dense.packed and torch.equal(dense[:], grey)


# ---------------------------------------------------------------------------------------- selection
def test_selection_holds_out_whole_training_videos(people):
    enc = IdentityEncoder()
    tr = encode_split(enc, people.train, views=2, seed=0)
    va = encode_split(enc, people.val, seed=1)
    assert set(va.videos) <= set(tr.videos)  # time-carved: the data's validation shares the videos
    split = carve(tr, va, fraction=0.25, seed=0)
    assert split.info["mode"] == "videos" and split.info["held_out_videos"] == 4  # one per person
    assert not set(split.train.videos) & set(split.val.videos)
    assert sorted(set(split.val.private.tolist())) == [0, 1, 2, 3]
    assert (split.val.view == 0).all()
    assert len(split.pool) == len(tr) + len(va)


def test_selection_keeps_a_validation_split_of_other_videos():
    x = torch.zeros(8, 3, 4, 8, 8, dtype=torch.uint8)
    ds = TensorSampleDataset(x, torch.zeros(8), torch.arange(8) % 2)
    tr, va = encode_split(IdentityEncoder(), ds.subset(range(6))), encode_split(IdentityEncoder(), ds.subset([6, 7]))
    tr.videos, va.videos = list(tr.ids), list(va.ids)
    split = carve(tr, va)
    assert split.info["mode"] == "data" and split.pool is None and split.val is va


def test_an_attacker_never_selects_before_the_minimum_epochs():
    """Train labels all 1, validation labels all 0: validation is best (or tied) at epoch 0."""
    torch.manual_seed(0)
    x = (torch.rand(32, 3, 4, 8, 8) * 255).to(torch.uint8)
    ds = TensorSampleDataset(x, torch.zeros(32), torch.ones(32))
    tr = encode_split(IdentityEncoder(), ds)
    va = encode_split(IdentityEncoder(), TensorSampleDataset(x[:8], torch.zeros(8), torch.zeros(8)))
    with one_thread():
        for minimum, first in ((1, 0), (3, 2)):
            model = create_attacker("linear_probe", in_channels=3, num_classes=2, size=8, clip_len=4)
            cfg = FitConfig(epochs=6, patience=2, batch_size=8, min_epochs=minimum)
            sel = protocol.fit_classifier(model, tr, va, "private", multilabel=False, cfg=cfg, device=CPU)
            assert sel["best_epoch"] == first, sel
            assert len(sel["curve"]) == sel["epochs_run"] >= minimum
            assert all("val" in p and "loss" in p for p in sel["curve"])


def test_still_rising_is_flagged():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 1, 8, 8)
    y = (x[:, 0].mean((1, 2, 3)) > 0.5).long()
    tr = encode_split(IdentityEncoder(), TensorSampleDataset((x * 255).to(torch.uint8), torch.zeros(64), y))
    with one_thread():
        model = create_attacker("linear_probe", in_channels=3, num_classes=2, size=8, clip_len=1)
        cfg = FitConfig(epochs=2, patience=5, batch_size=8, lr=1e-3, min_epochs=1)
        sel = protocol.fit_classifier(model, tr, tr, "private", multilabel=False, cfg=cfg, device=CPU)
    assert sel["still_rising"] == (sel["best_epoch"] == 1)


# ---------------------------------------------------------------------------------------- classical attackers
@pytest.mark.parametrize("name,bar", [("profile_logistic", 0.9), ("mhi_logistic", 0.9), ("combo_logistic", 0.9),
                                      ("profile_boosted", 0.6)])  # chance: 0.25; boosting on 128 releases is weaker
def test_classical_attacker_identifies_people_from_shape_and_motion(people, name, bar):
    enc = IdentityEncoder()
    tr = encode_split(enc, people.train, views=2, seed=0)
    va = encode_split(enc, people.val, seed=1)
    te = encode_split(enc, people.test, seed=2)
    split = carve(tr, va, fraction=0.25, seed=0)
    model = make_attacker(name, num_classes=people.num_private, shape=tr.shape_args(), cfg=FitConfig(), device=CPU)
    assert isinstance(model, Attacker) and model.level == "classical"
    sel = fit_attacker(model, split, multilabel=False)
    assert "refit" in sel and sel["curve"]
    scores = model.scores(te, multilabel=False)
    assert scores.shape == (len(te), people.num_private)
    assert metrics.accuracy(scores, te.private) >= bar


def test_classical_features_have_fixed_width_on_clips_and_images():
    from privacam.evaluate.classical import FEATURES

    for name, fn in FEATURES.items():
        a = fn(torch.rand(3, 3, 8, 16, 16), 3)
        b = fn(torch.rand(3, 3, 8, 16, 16), 3)
        assert a.shape == b.shape and a.dim() == 2 and torch.isfinite(a).all(), name
        assert fn(torch.rand(2, 3, 16, 16), 1).shape[0] == 2
        assert fn(torch.rand(2, 64, 4, 8, 8), 64).shape[0] == 2


# ---------------------------------------------------------------------------------------- the audit end to end
def test_audit_reports_every_level_with_intervals(people, tmp_path):
    spec = AuditSpec(attackers=["linear_probe", "profile_logistic", "hog_logistic"], views=3, person_k=[1, 3, 50],
                     fit=FitConfig(epochs=3, patience=2, batch_size=16, min_epochs=2),
                     utility_fit=FitConfig(epochs=2, batch_size=16), bootstrap=200, trials=50)
    with one_thread():
        s = protocol.audit(IdentityEncoder(), people, spec, out_dir=tmp_path / "eval").to_dict()
    p = s["privacy"]
    assert p["level"] == "video" and p["views"] == 3 and p["selection"]["mode"] == "videos"
    assert set(p["levels"]) == {"clip", "video", "person@1", "person@3", "person@50", "person@all"}
    for level, block in p["levels"].items():
        if level == "person@50":
            continue
        lo, hi = block["interval"]
        assert lo <= block["best"] <= hi and set(block["intervals"]) == set(spec.attackers)
    assert p["best"] == p["levels"]["video"]["best"] and p["attackers"] == p["levels"]["video"]["attackers"]
    assert p["levels"]["person@50"]["skipped"] == {f"person{i}": 8 for i in range(4)}
    assert any("person@50" in n and "skipped" in n for n in p["notes"])
    assert s["n_test_videos"] == 8 and "interval" in s["utility"]
    rec = json.loads((tmp_path / "eval" / "attackers" / "linear_probe.json").read_text())
    assert rec["selection"]["best_epoch"] >= 1 and rec["selection"]["refit"]["epochs_run"] == rec["selection"]["best_epoch"] + 1
    assert set(rec["levels"]) == set(p["levels"])


# ---------------------------------------------------------------------------------------- bad input
def test_views_below_one_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'eval.views' is 0; it must be >= 1"):  # checked when the config loads
        load_config("default", ["eval.views=0"])
    cfg = load_config("default")
    cfg.eval.views = 0  # set past the load-time check: the audit's own check holds too
    from privacam.evaluate.runner import audit_spec

    with pytest.raises(ConfigError, match="'eval.views' is 0; it must be >= 1"):  # the same rule, one place
        audit_spec(cfg)
    rc = main(["evaluate", "--encoder", "identity", "--data", "synthetic", "--out", str(tmp_path / "o"), "eval.views=0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "eval.views" in err


@pytest.mark.parametrize("pool,match", [("video", "needs video ids"), ("person@7", "not among eval.person_k"),
                                        ("frame", "'eval.pool' is 'frame'; use auto, clip, video, person@K")])
def test_pool_levels_the_data_cannot_give_are_one_line_errors(pool, match):
    with pytest.raises(ConfigError, match=match) as e:
        if pool == "frame":
            AuditSpec(attackers=[], pool=pool)
        else:
            pooling.headline_level(pool, has_videos=False, multilabel=False, person_k=[1, 3, 5])
    assert "\n" not in str(e.value) and "eval.pool" in str(e.value)
    assert pooling.headline_level("auto", False, False, [1]) == "clip"
    assert pooling.headline_level("auto", True, False, [1]) == "video"
    with pytest.raises(ConfigError, match="multi-label"):
        pooling.headline_level("person@1", True, True, [1])


def test_explicit_video_pool_on_images_fails_before_any_fit(tmp_path, monkeypatch):
    cfg = load_config("default", ["data.name=synthetic_image", "data.size=16",
                                  "data.params={num_actors: 3, clips_per_pair: 3, actions: [wave1, jump]}",
                                  "eval.pool=video"])
    splits = make_splits(cfg.data, seed=0)
    from privacam.evaluate.runner import audit_spec

    called = []
    monkeypatch.setattr(protocol, "fit_classifier", lambda *a, **k: called.append(1))
    with pytest.raises(ConfigError, match="eval.pool: video needs video ids"):
        protocol.audit(IdentityEncoder(), splits, audit_spec(cfg), out_dir=tmp_path / "e")
    assert not called


# ---------------------------------------------------------------------------------------- clip counts
def _release(rows, views=1):
    """An :class:`Encoded` split of ``(action, person, video, clips)`` rows; the release is empty
    (the labels and the clip counts are all there is to learn)."""
    base = [(a, p, v) for a, p, v, n in rows for _ in range(n)]
    u, q, vids, clip, view = [], [], [], [], []
    for w in range(views):
        for k, (a, p, v) in enumerate(base):
            u.append(a), q.append(p), vids.append(v), clip.append(k), view.append(w)
    n = len(u)
    return protocol.Encoded(ReleaseStore(torch.zeros(n, 1, 2, 2, dtype=torch.uint8)), torch.tensor(u), torch.tensor(q),
                            [f"{v}#{k}" for v, k in zip(vids, clip)], videos=vids, clip=torch.tensor(clip),
                            view=torch.tensor(view))


def _count_prior(train):
    """The best attacker of a release of the action alone: P(person | action) counted on its training rows."""
    table = np.zeros((3, 3))
    np.add.at(table, (train.utility.numpy(), train.private.numpy()), 1.0)
    prob = table / table.sum(1, keepdims=True)
    return lambda test: np.log(prob[test.utility.numpy()] + 1e-12)


def test_clip_counts_teach_no_prior_a_release_of_the_action_alone_scores_chance():
    """Person p records action p for long: more validation and test clips of that video. An attacker
    that counts clips would name the person from the action alone; the audit gives it the same number
    of clips from every training video, caps the test clips per video and weighs test videos the same."""
    tr = _release([(a, p, f"p{p}a{a}", 8) for p in range(3) for a in range(3)], views=2)
    va = _release([(a, p, f"p{p}a{a}", 4 if p == a else 1) for p in range(3) for a in range(3)])
    te = _release([(a, p, f"p{p}a{a}_test", 6 if p == a else 1) for p in range(3) for a in range(3)])
    split = carve(tr, va, fraction=0.34, seed=0)
    assert split.info["equal_clips"]["train"]["clips_per_video"] == 8
    assert split.info["equal_clips"]["val"] == {"clips_per_video": 1, "dropped_clips": 9}
    for part in (split.train, split.pool):
        for w in range(2):
            rows = part.view_rows(w)
            counts = {v: rows.videos.count(v) for v in set(rows.videos)}
            assert len(set(counts.values())) == 1, (w, counts)  # every video, every view: the same clips
    test, info = protocol.cap_test_clips(te, 4)
    assert info["clips_per_video"] == [1, 4] and info["dropped_clips"] == 6
    assert [i.split("#")[1] for i in test.ids if i.startswith("p0a0_test")] == ["0", "2", "3", "5"]  # evenly spaced
    index = pooling.TestIndex.build(test.private.numpy(), test.videos)
    plan = pooling.make_plan(index, ["clip", "video", "person@all"], bootstrap=50, seed=0)
    fair = pooling.score(_count_prior(split.pool)(test), plan)
    for level in ("clip", "video", "person@all"):
        assert fair[level]["value"] <= pooling.chance(plan, split.pool.private, level) + 1e-9, level
    # the same attacker on the clips as the data gives them learns who records long
    leaky = pooling.score(_count_prior(protocol.concat_encoded([tr, va]))(test), plan)
    assert leaky["person@all"]["value"] == 1.0
    assert metrics.accuracy(torch.from_numpy(_count_prior(protocol.concat_encoded([tr, va]))(te)), te.private) > 0.6


def test_per_clip_score_weighs_every_test_video_the_same():
    labels = np.array([0] * 4 + [1])  # video a: 4 clips of person 0, video b: 1 clip of person 1
    plan = pooling.make_plan(pooling.TestIndex.build(labels, ["a"] * 4 + ["b"]), ["clip"], bootstrap=100, seed=0)
    always_0 = np.log(np.tile([0.9, 0.1], (5, 1)))
    assert pooling.score(always_0, plan)["clip"]["value"] == pytest.approx(0.5)  # not 4 / 5
    assert pooling.chance(plan, torch.tensor([0, 1, 0]), "clip") == pytest.approx(0.5)


def test_test_clips_below_one_is_a_one_line_error():
    with pytest.raises(ConfigError, match="'eval.test_clips' is 0; it must be >= 1") as e:
        AuditSpec(attackers=[], test_clips=0)
    assert "\n" not in str(e.value)
