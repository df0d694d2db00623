"""Deployment: ONNX export parity, streaming anonymization of videos / images, clear errors."""

import json

import numpy as np
import pytest
import torch

from conftest import TINY
from privacam.players import build_encoder
from privacam.cli import main
from privacam.config import dump_config, load_config
from privacam.deploy import anonymize, export_onnx, is_clip_level, stream_encode
from privacam.errors import PrivacamError
from privacam.models.encoders import SmallConvEncoder
from privacam.train import train

av = pytest.importorskip("av")


def _write_video(path, n=11, h=30, w=40, fps=10, seed=0):
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for _ in range(n):
            a = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _read_video(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in c.decode(s)], float(s.average_rate)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real (tiny) trained small_conv run."""
    return train(load_config("default", TINY), tmp_path_factory.mktemp("deploy") / "run")


def _hand_run(root, *overrides, size=16, clip_len=4):
    """A run directory for an untrained encoder (deployment does not care how f_d was trained)."""
    cfg = load_config("default", TINY + list(overrides))
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    enc = build_encoder(cfg, 3)
    torch.save(enc.state_dict(), root / "encoder.pt")
    (root / "config.yaml").write_text(dump_config(cfg))
    (root / "run.json").write_text(json.dumps({"shapes": {"in_channels": 3, "size": size, "clip_len": clip_len,
                                                           "num_utility": 3, "num_private": 3, "multilabel": False}}))
    return root


def test_export_parity_cli(trained_run, tmp_path, capsys):
    out = tmp_path / "enc.onnx"
    assert main(["export", str(trained_run), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.exists() and "max |onnx - torch|" in line
    assert float(line.rsplit("=", 1)[1]) <= 1e-4
    import onnx

    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]  # frame-wise: N, H, W dynamic


def test_straight_through_clamp_exports_as_clamp(tmp_path):
    enc = SmallConvEncoder(3, width=4, depth=2).eval()
    with torch.no_grad():
        enc.net[-1].bias.fill_(0.7)  # push many pixels past 1 so the clamp matters
    diff = export_onnx(enc, tmp_path / "sc.onnx", in_channels=3, size=16)
    assert diff <= 1e-4
    import onnxruntime as ort

    y = ort.InferenceSession(str(tmp_path / "sc.onnx")).run(None, {"input": np.random.rand(2, 3, 20, 12).astype(np.float32)})[0]
    assert y.shape == (2, 3, 20, 12) and y.min() >= 0 and y.max() <= 1 and (y == 1).mean() > 0.1


def test_clip_encoder_exports_with_time_axis(tmp_path):
    run = _hand_run(tmp_path / "st", "encoder.name=st_conv")
    assert main(["export", str(run)]) == 0
    import onnx

    dims = onnx.load(str(run / "encoder.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "time", "height", "width"]


def _ort_parity(path, enc, shapes):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for shape in shapes:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape) + shape[-1]))
        with torch.no_grad():
            ref = enc(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        assert got.shape == ref.shape, (shape, got.shape, ref.shape)
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


@pytest.mark.parametrize("name,params", [("downsample", {"factor": 4}), ("downsample", {"factor": 3}),
                                         ("blur", {"sigma": 2.0})])
def test_fixed_baselines_export_with_dynamic_axes(tmp_path, name, params):
    """downsample / blur export (frame-wise, batch and spatial axes dynamic) and match PyTorch at
    other batches and sizes, also sizes not divisible by the factor and smaller than the blur radius."""
    import onnx

    from privacam.registry import create_encoder

    enc = create_encoder(name, **params).eval()
    assert not is_clip_level(enc)
    path = tmp_path / f"{name}.onnx"
    assert export_onnx(enc, path, in_channels=3, size=16, clip_len=8) < 1e-4
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    assert _ort_parity(path, enc, [(1, 3, 16, 16), (3, 3, 30, 17), (2, 3, 5, 7), (1, 3, 2, 3)]) < 1e-4


def test_motion_encoder_exports_with_time_axis(tmp_path):
    import onnx

    from privacam.registry import create_encoder

    torch.manual_seed(0)
    enc = create_encoder("motion", width=4).eval()
    with torch.no_grad():  # a non-trivial net (the untrained last layer is zero)
        enc.last.weight.normal_(0, 0.3)
        enc.last.bias.normal_(0, 0.3)
    assert is_clip_level(enc)
    path = tmp_path / "motion.onnx"
    assert export_onnx(enc, path, in_channels=3, size=16, clip_len=4) < 1e-4
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "time", "height", "width"]
    assert _ort_parity(path, enc, [(1, 3, 4, 16, 16), (2, 3, 6, 12, 20)]) < 1e-4


def test_anonymize_video_keeps_frame_count_and_rate(trained_run, tmp_path):
    src = _write_video(tmp_path / "in.mp4", n=11, fps=10)
    out = tmp_path / "out.mp4"
    assert main(["anonymize", str(trained_run), str(src), "-o", str(out)]) == 0
    frames, fps = _read_video(out)
    assert len(frames) == 11 and fps == 10 and frames[0].shape == (30, 40, 3)  # the input's size by default
    # --release-size writes the encoder's size; the onnx backend gives the same release as torch
    small = tmp_path / "small.mp4"
    assert main(["anonymize", str(trained_run), str(src), "-o", str(small), "--release-size", "--backend", "onnx"]) == 0
    frames_s, fps_s = _read_video(small)
    assert len(frames_s) == 11 and fps_s == 10 and frames_s[0].shape == (16, 16, 3)
    res = anonymize(trained_run, str(src), tmp_path / "onnx.mp4", backend="onnx")
    frames_o, _ = _read_video(tmp_path / "onnx.mp4")
    assert res["frames"] == 11
    assert np.abs(np.stack(frames_o).astype(int) - np.stack(frames).astype(int)).mean() < 1.0


def test_anonymize_64x64_video_gives_64x64_frames_nearest_neighbour(trained_run, tmp_path, capsys):
    """A 64x64 clip through a 16x16 encoder: 64x64 frames, as many as in, at the same rate; each
    released pixel is a 4x4 block (nearest neighbour adds no information), i.e. exactly the
    --release-size frames repeated."""
    src = _write_video(tmp_path / "in64.mp4", n=9, h=64, w=64, fps=12)
    out = tmp_path / "out.mp4"
    assert main(["anonymize", str(trained_run), str(src), "-o", str(out)]) == 0
    assert "9 frames of 64x64 (release 16x16, nearest-neighbour upsampled)" in capsys.readouterr().out
    frames, fps = _read_video(out)
    assert len(frames) == 9 and fps == 12 and frames[0].shape == (64, 64, 3)
    big = anonymize(trained_run, str(src), tmp_path / "big")  # PNG frames: no codec in the way
    small = anonymize(trained_run, str(src), tmp_path / "small", keep_size=False)
    assert big["frames"] == small["frames"] == 9 and big["size"] == [64, 64] and small["size"] == [16, 16]
    import cv2

    read = lambda d: [cv2.imread(str(p))[:, :, ::-1] for p in sorted(d.iterdir())]  # noqa: E731
    b, s = read(tmp_path / "big"), read(tmp_path / "small")
    assert len(b) == len(s) == 9
    for fb, fs in zip(b, s):
        assert np.array_equal(fb, fs.repeat(4, 0).repeat(4, 1))


def test_anonymize_matches_encoder_on_images(trained_run, tmp_path):
    import cv2

    from privacam.runs import load_encoder

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    for i, a in enumerate(imgs):
        cv2.imwrite(str(folder / f"f{i}.png"), a[:, :, ::-1])
    assert main(["anonymize", str(trained_run), str(folder), "-o", str(tmp_path / "anon")]) == 0
    outs = sorted(p.name for p in (tmp_path / "anon").iterdir())
    assert outs == ["f0.png", "f1.png", "f2.png"]
    enc, _, _ = load_encoder(trained_run)
    with torch.no_grad():
        ref = enc(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255)
    got = cv2.imread(str(tmp_path / "anon" / "f1.png"))[:, :, ::-1].transpose(2, 0, 1) / 255.0
    assert np.abs(got - ref[1].numpy()).max() <= 1 / 255 + 1e-6
    assert main(["anonymize", str(trained_run), str(folder / "f0.png"), "-o", str(tmp_path / "one.png")]) == 0
    assert (tmp_path / "one.png").exists()


def test_clip_encoder_streams_grey_video(tmp_path):
    run = _hand_run(tmp_path / "stg", "encoder.name=st_conv", "encoder.grey=true")
    src = _write_video(tmp_path / "in.mp4", n=13)
    assert main(["anonymize", str(run), str(src), "-o", str(tmp_path / "g.mp4")]) == 0
    frames, _ = _read_video(tmp_path / "g.mp4")
    assert len(frames) == 13
    f = frames[5].astype(int)
    assert np.abs(f[..., 0] - f[..., 1]).max() <= 2 and np.abs(f[..., 1] - f[..., 2]).max() <= 2  # grey video


def test_stream_encode_emits_each_frame_once_with_bounded_memory():
    for L in (1, 3, 4, 8, 16):
        for n in (1, 2, 5, 8, 9, 17, 40):
            pulled = []

            def frames():
                for t in range(n):
                    pulled.append(t)
                    yield np.full((1, 2, 2), t, np.float32)

            lengths = []

            def run(x):
                lengths.append(x.shape[2])
                return x

            out = []
            for y in stream_encode(frames(), run, clip_len=L):
                out.append(int(y[0, 0, 0]))
                assert len(pulled) - len(out) <= L  # never more than one window ahead
            assert out == list(range(n))
            assert set(lengths) == {min(L, n)}  # always the trained clip length (shorter streams: all of it)


def test_clip_encoder_window_equals_whole_clip_when_short(tmp_path):
    from privacam.registry import create_encoder

    enc = create_encoder("st_conv", width=4, depth=3).eval()
    assert is_clip_level(enc) and not is_clip_level(SmallConvEncoder())
    x = torch.rand(1, 3, 8, 16, 16)
    with torch.no_grad():
        ref = enc(x)[0].transpose(0, 1).numpy()

    def run(c):
        with torch.no_grad():
            return enc(torch.from_numpy(c)).numpy()

    got = np.stack(list(stream_encode(iter(x[0].transpose(0, 1).numpy()), run, clip_len=8)))
    assert np.allclose(got, ref, atol=1e-6)


def test_errors_are_one_line(trained_run, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["anonymize", str(trained_run), str(bad), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0] and "re-encode" in err[0]
    assert main(["anonymize", str(trained_run), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setattr(SmallConvEncoder, "releases", "feature")
    with pytest.raises(PrivacamError, match="privacam export"):
        anonymize(trained_run, str(bad), tmp_path / "o.mp4")


def test_randomised_motion_encoder_keeps_its_draws_on_the_camera(tmp_path):
    import onnx

    from privacam.deploy import onnx_session
    from privacam.registry import create_encoder

    enc = create_encoder("motion", width=4, jitter=0.5, dilate=2).eval()
    path = tmp_path / "motion_random.onnx"
    assert export_onnx(enc, path, in_channels=3, size=16, clip_len=4) < 1e-4  # every op but the draws
    assert "RandomUniformLike" in {n.op_type for n in onnx.load(str(path)).graph.node}
    sess = onnx_session(path)
    x = np.random.default_rng(0).random((16, 3, 4, 16, 16), dtype=np.float32) * 0.3
    a, b = sess.run(None, {"input": x})[0], sess.run(None, {"input": x})[0]
    assert set(np.unique(a)) <= {0.0, 1.0} and a.shape == x.shape
    assert not np.array_equal(a, b)  # a fresh draw per call, as in PyTorch


def test_one_onnx_session_builder_with_the_thread_budget(tmp_path):
    """`privacam anonymize --backend onnx`, the export check and the audit of an ONNX file build their
    session in one place, which keeps this process's thread budget instead of taking every core."""
    import privacam.utils
    from privacam.deploy import export as export_mod
    from privacam.deploy import stream
    from privacam.evaluate import external

    assert stream.onnx_session is export_mod.onnx_session is external.onnx_session is privacam.utils.onnx_session
    path = tmp_path / "sc.onnx"
    export_onnx(SmallConvEncoder(3, width=4, depth=2).eval(), path, in_channels=3, size=16)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            opts = privacam.utils.onnx_session(path).get_session_options()
            assert opts.intra_op_num_threads == n
        assert privacam.utils.onnx_session(path, threads=3).get_session_options().intra_op_num_threads == 3
    finally:
        torch.set_num_threads(threads)
