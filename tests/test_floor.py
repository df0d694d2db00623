"""The task-label floor (evaluate/floor.py): what knowing only each clip's task labels identifies, pooled
like an attacker."""

from __future__ import annotations

import numpy as np
import pytest

from privacam.errors import ConfigError
from privacam.evaluate import pooling
from privacam.evaluate.floor import TaskFloor, joint_labels, task_floor

LEVELS = ["clip", "video", "person@1", "person@5", "person@all"]


def clips(actions_of: dict[int, list[int]], per_video: int = 4, videos_per_pair: int = 2, seed: int = 0):
    """Clips of persons doing actions: ``actions_of[person]`` lists the actions that person records
    (one entry per video pair, repeats weigh more). Returns action, person and video per clip."""
    a, p, v = [], [], []
    vid = 0
    for person, acts in actions_of.items():
        for act in acts:
            for _ in range(videos_per_pair):
                a += [act] * per_video
                p += [person] * per_video
                v += [f"v{vid}"] * per_video
                vid += 1
    return np.array(a), np.array(p), v


def floor_levels(train, test, **kw):
    (ta, tp, _), (ea, ep, ev) = train, test
    scores = task_floor(ta, tp, ea, int(max(tp.max(), ep.max())) + 1, **kw)
    plan = pooling.make_plan(pooling.TestIndex.build(ep, ev), LEVELS, trials=50, bootstrap=50, person_bootstrap=20)
    out = pooling.score(scores, plan)
    chance = {lv: pooling.chance(plan, tp, lv) for lv in LEVELS}
    return {lv: out[lv]["value"] for lv in LEVELS}, chance, scores


def test_floor_is_chance_where_actions_are_balanced_over_people():
    balanced = {p: [0, 1, 2] for p in range(4)}  # every person does every action equally often
    values, chance, scores = floor_levels(clips(balanced), clips(balanced, per_video=3))
    assert np.allclose(np.exp(scores).sum(1), 1.0)
    for lv in LEVELS:
        assert values[lv] == pytest.approx(chance[lv], abs=1e-12), lv


def test_floor_is_above_chance_where_actions_follow_people():
    # person 0 mostly bends (0), person 1 mostly waves (1), persons 2 and 3 do both
    skewed = {0: [0, 0, 0, 1], 1: [1, 1, 1, 0], 2: [0, 1], 3: [0, 1]}
    values, chance, _ = floor_levels(clips(skewed), clips(skewed, per_video=3))
    for lv in LEVELS:
        assert values[lv] > chance[lv] + 0.1, (lv, values[lv], chance[lv])
    # pooling clips of one person helps the floor as it helps an attacker
    assert values["person@5"] >= values["person@1"]


def test_joint_tasks_identify_where_each_alone_cannot():
    """Two tasks, each balanced over the people, whose combination names them: the floor of the
    trained task alone is chance, that of every task together is not."""
    rng = np.random.default_rng(0)
    persons = np.repeat(np.arange(4), 40)
    a = persons % 2  # task a: persons 1, 3
    b = persons // 2  # task b: persons 2, 3
    flip = rng.random(len(persons)) < 0.1
    b = np.where(flip, 1 - b, b)
    videos = [f"v{i // 5}" for i in range(len(persons))]
    test_idx = np.arange(len(persons)) % 4 == 0
    tr = ~test_idx
    plan = pooling.make_plan(pooling.TestIndex.build(persons[test_idx], [v for v, t in zip(videos, test_idx) if t]),
                             ["clip"], bootstrap=20)
    both = pooling.score(task_floor({"a": a[tr], "b": b[tr]}, persons[tr], {"a": a[test_idx], "b": b[test_idx]}, 4), plan)
    alone = pooling.score(task_floor(a[tr], persons[tr], a[test_idx], 4), plan)
    assert both["clip"]["value"] > 0.8
    assert alone["clip"]["value"] < 0.6  # a alone: two persons per value, at most half of them named


def test_unseen_labels_get_the_prior_and_smoothing_pulls_towards_it():
    f = TaskFloor(3, alpha=1.0).fit(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2]))
    assert np.allclose(f.prior, np.array([3, 2, 2]) / 7)
    q = f.proba(np.array([0, 1, 5]))
    assert np.allclose(q[2], f.prior)  # a label never seen in training: the prior
    assert np.allclose(q[0], (np.array([2, 1, 0]) + f.prior) / 4)
    strong = TaskFloor(3, alpha=1000.0).fit(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2]))
    assert np.allclose(strong.proba(np.array([0]))[0], strong.prior, atol=1e-2)


def test_unlabelled_is_a_value_and_multilabel_gives_attribute_probabilities():
    t = np.array([[0, -1], [0, -1], [1, 0], [1, 1]])
    s = task_floor(t, np.array([0, 0, 1, 1]), np.array([[0, -1], [1, 1]]), 2)
    assert s[0].argmax() == 0 and s[1].argmax() == 1
    m = task_floor(np.array([0, 0, 1, 1]), np.array([[1, 0], [1, 0], [0, 1], [0, 0]]), np.array([0, 1]), 2, multilabel=True)
    assert m.shape == (2, 2) and m[0, 0] > 0.5 > m[1, 0] and m[1, 1] > m[0, 1]


def test_joint_labels_and_errors():
    assert joint_labels({"a": [0, 1], "b": [2, 3]}, ["b", "a"]).tolist() == [[2, 0], [3, 1]]
    with pytest.raises(ConfigError, match="no labels for task 'c'"):
        joint_labels({"a": [0]}, ["c"])
    with pytest.raises(ConfigError, match="alpha must be above 0"):
        TaskFloor(2, alpha=0)
    with pytest.raises(ConfigError, match="give one of each per training clip"):
        TaskFloor(2).fit(np.array([0, 1]), np.array([0]))
    with pytest.raises(ConfigError, match="fitted on 1 task"):
        TaskFloor(2).fit(np.array([0, 1]), np.array([0, 1])).scores(np.array([[0, 1]]))
