"""Decoding, clip sampling, resizing, the memmap cache and the generic datasets of data/video/."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from conftest_data import frame_index, level, write_frames, write_image, write_video
from privacam.data import video
from privacam.data.video import store as video_store
from privacam.data.video import (
    FrameStore,
    ImageDataset,
    Record,
    VideoClipDataset,
    count_frames,
    decode_frames,
    resize_frames,
    sample_indices,
)
from privacam.errors import DataError


# ------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("ext,codec", [(".mp4", "mpeg4"), (".avi", "mjpeg"), (".webm", "libvpx")])
def test_decode_video_all_and_subset(tmp_path, ext, codec):
    p = write_video(tmp_path / f"v{ext}", 12, codec=codec) if codec != "mjpeg" else None
    if codec == "mjpeg":  # mjpeg needs a full-range pixel format
        import av

        p = tmp_path / "v.avi"
        with av.open(str(p), "w") as c:
            s = c.add_stream("mjpeg", rate=10)
            s.width, s.height, s.pix_fmt = 32, 24, "yuvj420p"
            from conftest_data import frame

            for i in range(12):
                for pkt in s.encode(av.VideoFrame.from_ndarray(frame(i), format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
    allf = decode_frames(p)
    assert allf.shape == (12, 24, 32, 3) and allf.dtype == np.uint8
    assert count_frames(p) == 12
    reds = [frame_index(allf[i, ..., 0].mean() / 255) for i in range(12)]
    assert reds == list(range(12))
    sub = decode_frames(p, [5, 2, 2, 9])
    assert sub.shape == (4, 24, 32, 3)
    assert [frame_index(f[..., 0].mean() / 255) for f in sub] == [5, 2, 2, 9]


def test_decode_past_end_gives_last_frame(tmp_path):
    p = write_video(tmp_path / "v.mp4", 6)
    out = decode_frames(p, [4, 50])
    assert [frame_index(f[..., 0].mean() / 255) for f in out] == [4, 5]


def test_frame_folder_natural_sort_and_subset(tmp_path):
    d = write_frames(tmp_path / "clip", 12, pattern="img_{}.png")  # img_1 .. img_12: 10 sorts after 9
    names = [f.name for f in video.list_frame_files(d)]
    assert names[:3] == ["img_1.png", "img_2.png", "img_3.png"] and names[-1] == "img_12.png"
    out = decode_frames(d, [0, 9, 11])
    assert out[:, 0, 0, 0].tolist() == [level(0), level(9), level(11)]
    assert count_frames(d) == 12


def test_corrupt_and_empty_inputs(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    with pytest.raises(DataError, match="broken.mp4"):
        decode_frames(bad)
    with pytest.raises(DataError, match="broken.mp4"):
        count_frames(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="zero frames"):
        decode_frames(tmp_path / "empty")


# ------------------------------------------------------------------------------------ sampling
def test_sampling_strategies():
    rng = lambda e=0, i=0: video.clip_rng(0, e, i)  # noqa: E731
    r = sample_indices(100, 16, "random", rng=rng())
    assert len(r) == 16 and np.all(np.diff(r) == 1) and 0 <= r[0] <= 84
    assert np.array_equal(r, sample_indices(100, 16, "random", rng=rng()))  # same (seed, epoch, index)
    draws = {tuple(sample_indices(100, 16, "random", rng=rng(e))) for e in range(10)}
    assert len(draws) > 5  # epochs differ
    s = sample_indices(100, 16, "sbu", rng=rng())
    assert len(set(s.tolist())) == 16 and np.all(np.diff(s) > 0)
    u = sample_indices(64, 16, "uniform")
    assert np.array_equal(u, np.arange(0, 64, 4) + 2)
    c = sample_indices(40, 16, "center")
    assert c[0] == 12 and c[-1] == 27
    d = [sample_indices(40, 16, "dense", clip=k, num_clips=4) for k in range(4)]
    assert [x[0] for x in d] == [0, 8, 16, 24] and d[-1][-1] == 39  # cover start and end
    # stratified random: clip k of K starts in the k-th quarter of the possible starts
    starts = [sample_indices(100, 16, "random", rng=rng(0, k), clip=k, num_clips=4)[0] for k in range(4)]
    assert starts == sorted(starts)
    st = sample_indices(100, 8, "center", stride=3)
    assert np.all(np.diff(st) == 3)


def test_short_clips_loop_and_pad():
    assert sample_indices(5, 12, "dense").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert sample_indices(5, 8, "random", rng=video.clip_rng(0, 0, 0), short="pad").tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_indices(3, 6, "sbu", rng=video.clip_rng(0, 0, 0)).tolist() == [0, 1, 2, 0, 1, 2]
    # a stride that does not fit falls back to a smaller step before looping
    assert np.all(np.diff(sample_indices(20, 8, "center", stride=4)) == 2)
    with pytest.raises(DataError, match="zero frames"):
        sample_indices(0, 8, "dense")


def test_resize_modes():
    f = np.zeros((2, 20, 40, 3), np.uint8)
    f[:, :, :10] = 255  # left quarter white
    sq = resize_frames(f, 10, "resize")
    assert sq.shape == (2, 10, 10, 3) and sq[0, 5, 0, 0] == 255 and sq[0, 5, 9, 0] == 0
    cc = resize_frames(f, 10, "short_side_center_crop")  # 20x40 -> 10x20 -> centre 10x10: no white left
    assert cc.shape == (2, 10, 10, 3) and cc.max() == 0
    up = resize_frames(np.full((1, 4, 4, 3), 7, np.uint8), 8)
    assert up.shape == (1, 8, 8, 3) and np.all(up == 7)


# ------------------------------------------------------------------------------------ store + cache
def test_memmap_cache_second_epoch_does_not_decode(tmp_path, monkeypatch):
    vids = [write_video(tmp_path / f"v{i}.mp4", 20, tint=40 * i) for i in range(3)]
    recs = [Record(str(v), i, i, f"v{i}") for i, v in enumerate(vids)]
    store = FrameStore(16, cache_dir=tmp_path / "cache")
    ds = VideoClipDataset(recs, clip_len=8, size=16, strategy="random", clips_per_video=2, store=store)
    ds.set_epoch(0)
    first = [ds[i]["input"] for i in range(len(ds))]
    assert store.decodes == 3 and len(list((tmp_path / "cache").glob("*.npy"))) == 3

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(video_store, "decode_frames", boom)  # where the store decodes
    store2 = FrameStore(16, cache_dir=tmp_path / "cache")  # a new process: reads the memmaps
    ds2 = VideoClipDataset(recs, clip_len=8, size=16, strategy="random", clips_per_video=2, store=store2)
    ds2.set_epoch(0)
    again = [ds2[i]["input"] for i in range(len(ds2))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    ds2.set_epoch(1)
    assert ds2[0]["input"].shape == (3, 8, 16, 16) and store2.decodes == 0
    # a different size is a different cache entry
    assert video.cache_key(vids[0], {"size": 16}) != video.cache_key(vids[0], {"size": 32})


def test_cache_key_changes_when_file_changes(tmp_path):
    v = write_video(tmp_path / "v.mp4", 6)
    k1 = video.cache_key(v, {"size": 8})
    write_video(tmp_path / "v.mp4", 9)
    os.utime(v, ns=(1, 10**18))
    assert video.cache_key(v, {"size": 8}) != k1


def test_cached_values_match_direct_decode(tmp_path):
    d = write_frames(tmp_path / "f", 10)
    direct = FrameStore(12).frames(str(d), [1, 3, 5])
    cached = FrameStore(12, cache_dir=tmp_path / "c").frames(str(d), [1, 3, 5])
    pre = FrameStore(12)
    pre.preload([str(d)])
    assert np.array_equal(direct, cached) and np.array_equal(direct, pre.frames(str(d), [1, 3, 5]))


# ------------------------------------------------------------------------------------ datasets
def test_video_dataset_items_epochs_and_labels(tmp_path):
    long = write_frames(tmp_path / "long", 40)
    short = write_frames(tmp_path / "short", 10)
    recs = [Record(str(long), 1, 0, "long"), Record(str(short), 0, 2, "short")]
    ev = VideoClipDataset(recs, clip_len=16, size=8, strategy="dense", clips_per_video=4)
    assert len(ev) == 5  # 4 clips of the long video, 1 of the short one (only one distinct window)
    s = ev[4]
    assert s["input"].shape == (3, 16, 8, 8) and s["input"].dtype == torch.float32
    assert 0.0 <= s["input"].min() and s["input"].max() <= 1.0
    assert int(s["utility"]) == 0 and int(s["private"]) == 2 and s["id"] == "short"
    reds = [frame_index(s["input"][0, t].mean()) for t in range(16)]
    assert reds == list(range(10)) + list(range(6))  # looped
    assert [frame_index(ev[k]["input"][0, 0].mean()) for k in range(4)] == [0, 8, 16, 24]
    tr = VideoClipDataset(recs, clip_len=16, size=8, strategy="random", clips_per_video=3, seed=5)
    assert len(tr) == 6
    starts = set()
    for e in range(6):
        tr.set_epoch(e)
        starts.add(frame_index(tr[0]["input"][0, 0].mean()))
    assert len(starts) > 1
    tr.set_epoch(2)
    a = tr[1]["input"]
    tr.set_epoch(2)
    assert torch.equal(a, tr[1]["input"])
    # segments: only frames inside [start, end)
    seg = VideoClipDataset([Record(str(long), 0, 0, "seg", start=30, end=40)], clip_len=4, size=8, strategy="dense", clips_per_video=3)
    firsts = [frame_index(seg[i]["input"][0, 0].mean()) for i in range(len(seg))]
    assert firsts == [30, 33, 36]
    pad = VideoClipDataset([Record(str(short), 0, 0, "p")], clip_len=12, size=8, strategy="center", short="pad")
    assert [frame_index(pad[0]["input"][0, t].mean()) for t in range(12)] == list(range(10)) + [9, 9]


def test_multilabel_private_and_skip_mode(tmp_path, caplog):
    good = write_frames(tmp_path / "good", 5)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    recs = [Record(str(good), 0, [1.0, 0.0, 1.0], "g"), Record(str(bad), 0, [0.0, 0.0, 0.0], "b", source="m.csv row 3")]
    ds = VideoClipDataset(recs, clip_len=4, size=8, strategy="center")
    s = ds[0]
    assert s["private"].dtype == torch.float32 and s["private"].tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(DataError, match=r"m.csv row 3.*bad.mp4"):
        ds[1]
    ds_skip = VideoClipDataset(recs, clip_len=4, size=8, strategy="center", on_bad_sample="skip")
    assert ds_skip[1]["id"] == "g"  # replaced by the next loadable sample, with a warning
    assert "skipping a bad sample" in caplog.text


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "RGB"])
def test_image_dataset_modes(tmp_path, mode):
    p = write_image(tmp_path / f"x_{mode}.png", mode, size=(40, 20), value=200)
    ds = ImageDataset([Record(str(p), 1, 0, "x")], size=16, resize="short_side_center_crop")
    x = ds[0]["input"]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert abs(float(x[0].mean()) - 200 / 255) < 0.02  # red channel keeps the value
    pre = ImageDataset([Record(str(p), 1, 0, "x")], size=16, preload=True)
    assert pre.memory.shape == (1, 16, 16, 3)


def test_image_box_crop(tmp_path):
    from PIL import Image

    a = np.zeros((20, 20, 3), np.uint8)
    a[5:10, 5:10] = 255
    Image.fromarray(a).save(tmp_path / "b.png")
    ds = ImageDataset([Record(str(tmp_path / "b.png"), 0, 0, "b", box=(5, 5, 5, 5))], size=4)
    assert float(ds[0]["input"].min()) == 1.0
