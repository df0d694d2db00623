"""Where frames come from and go to: :class:`FrameSource` (a video file, an image, a folder of images
or a camera) and the sinks (:class:`VideoSink` through PyAV, :class:`ImageSink`)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..data.video import IMAGE_EXTS, VIDEO_EXTS, list_frame_files, load_frame
from ..errors import PrivacamError
from ..utils import atomic_path, atomic_write_bytes, inside, same_file, umask, write_failure

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


class FrameSource:
    """Frames of a video file, an image, a folder of images or a camera, as uint8 RGB ``[H, W, 3]``.

    Attributes:
        fps: frame rate (``DEFAULT_FPS`` for images).
        total: number of frames when known (else None).
        names: output file names for image inputs (else None).
    """

    def __init__(self, spec: str, max_frames: int | None = None, fps: float | None = None):
        self.spec, self.max_frames = str(spec), max_frames
        self.fps, self.total, self.names = fps or DEFAULT_FPS, None, None
        self.kind = "video"
        p = Path(self.spec)
        if re.fullmatch(r"\d+", self.spec) or self.spec.startswith("/dev/video"):
            self.kind = "camera"
        elif p.is_dir():
            self.kind = "folder"
            self._files = list_frame_files(p)
            if not self._files:
                raise PrivacamError(f"{p}: folder has no image files (png/jpg/...); give a video, an image or a folder of images")
            self.total, self.names = len(self._files), [f.stem for f in self._files]
        elif not p.exists():
            raise PrivacamError(f"{p}: no such file; give a video file, an image, a folder of images or a camera (/dev/videoN or N)")
        elif p.suffix.lower() in IMAGE_EXTS:
            self.kind, self._files, self.total, self.names = "image", [p], 1, [p.stem]
        else:
            self._probe_video(p, fps)
        if self.total is not None and max_frames is not None:
            self.total = min(self.total, max_frames)

    def _probe_video(self, p: Path, fps: float | None) -> None:
        import av

        try:
            with av.open(str(p)) as c:
                if not c.streams.video:
                    raise ValueError("no video stream")
                s = c.streams.video[0]
                rate = s.average_rate or s.guessed_rate
                self.fps = fps or (float(rate) if rate else DEFAULT_FPS)
                self.total = int(s.frames) or None
        except Exception as e:  # noqa: BLE001 - PyAV raises many types for unreadable files
            raise PrivacamError(f"{p}: cannot read as video or image ({type(e).__name__}: {e}); "
                                f"re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or give frames as images") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        n = 0
        for frame in self._frames():
            if self.max_frames is not None and n >= self.max_frames:
                return
            n += 1
            yield frame
        if n == 0:
            raise PrivacamError(f"{self.spec}: no frames could be read; check the input")

    def _frames(self) -> Iterator[np.ndarray]:
        if self.kind in ("folder", "image"):
            for f in self._files:
                yield load_frame(f)
        elif self.kind == "camera":
            yield from self._camera()
        else:
            import av

            try:
                with av.open(self.spec) as c:
                    s = c.streams.video[0]
                    s.thread_type = "AUTO"
                    for fr in c.decode(s):
                        yield fr.to_ndarray(format="rgb24")
            except av.FFmpegError as e:
                raise PrivacamError(f"{self.spec}: decoding failed ({e}); re-encode the file") from None

    def _camera(self) -> Iterator[np.ndarray]:
        import cv2

        dev = int(self.spec) if self.spec.isdigit() else self.spec
        cap = cv2.VideoCapture(dev)
        if not cap.isOpened():
            raise PrivacamError(f"camera {self.spec}: cannot open it; check the device exists and is not in use")
        try:
            rate = cap.get(cv2.CAP_PROP_FPS)
            if rate and rate > 0 and self.fps == DEFAULT_FPS:
                self.fps = float(rate)
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


# ---------------------------------------------------------------------------------------- sinks
class VideoSink:
    """Write uint8 frames (``[H, W, 3]`` RGB or ``[H, W]`` grey) to a video through PyAV.

    The codec is the first available of ``libx264``, ``h264``, ``mpeg4``; a grey release is written
    as grey video (neutral chroma). Odd sizes are padded by one pixel (4:2:0 needs even sizes). The
    video is written to a temporary file beside ``path`` and renamed onto it by :meth:`close`
    (:func:`~privacam.utils.atomic_path`); :meth:`abort` removes it.
    """

    CODECS = ("libx264", "h264", "mpeg4")

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps
        self.container = self.stream = None
        self.count = 0
        self.codec = None
        self._staged = None

    def _open(self, h: int, w: int) -> None:
        import av

        self._staged = atomic_path(self.path)
        tmp = self._staged.__enter__()
        try:
            self.container = av.open(str(tmp), "w")  # the temporary name ends in the same suffix
        except OSError as e:
            self.abort()
            raise write_failure(self.path, e) from None
        rate = Fraction(self.fps).limit_denominator(1001)
        for codec in self.CODECS:
            try:
                av.codec.Codec(codec, "w")
            except Exception:  # noqa: BLE001 - codec missing in this FFmpeg build
                continue
            self.stream = self.container.add_stream(codec, rate=rate)
            self.codec = codec
            break
        if self.stream is None:
            self.abort()
            raise PrivacamError(f"{self.path}: this FFmpeg build has none of the encoders {', '.join(self.CODECS)}; write images instead (-o FOLDER)")
        self.stream.width, self.stream.height = w + w % 2, h + h % 2
        self.stream.pix_fmt = "yuv420p"
        if self.codec != "mpeg4":
            self.stream.options = {"crf": "18"}
        else:
            self.stream.bit_rate = 4_000_000

    def write(self, frame: np.ndarray) -> None:
        import av

        if self.container is None:
            self._open(*frame.shape[:2])
        h, w = frame.shape[:2]
        if (h % 2) or (w % 2):
            pad = ((0, h % 2), (0, w % 2)) + (((0, 0),) if frame.ndim == 3 else ())
            frame = np.pad(frame, pad, mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray" if frame.ndim == 2 else "rgb24")
        vf.pts = self.count
        try:
            for packet in self.stream.encode(vf):
                self.container.mux(packet)
        except OSError as e:
            raise write_failure(self.path, e) from None
        self.count += 1

    def close(self) -> None:
        """Finish the video and rename it onto ``path``."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        except OSError as e:
            self.abort()
            raise write_failure(self.path, e) from None
        self.container = None
        staged, self._staged = self._staged, None
        staged.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop what was written: ``path`` is left as it was."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - the file is dropped anyway
                pass
            self.container = None
        if self._staged is not None:
            staged, self._staged = self._staged, None
            staged.__exit__(_Aborted, _Aborted(), None)


class _Aborted(Exception):
    """Thrown into a staged write to drop it."""


class ImageSink:
    """Write frames as images: ``path`` itself for a single image, else ``path/<name>.png``.

    A single image goes through a temporary file renamed onto ``path``; a folder is filled as a
    temporary folder beside it and renamed onto ``path`` by :meth:`close` (which must then be new or an
    empty folder), so it appears whole or not at all; :meth:`abort` removes what was written.
    """

    def __init__(self, path: str | Path, names: list[str] | None, single: bool):
        self.path, self.names, self.single = Path(path), names, single
        self.count = 0
        self._stage: Path | None = None

    def write(self, frame: np.ndarray) -> None:
        import cv2

        img = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        target = self.path if self.single else Path(
            f"{self.names[self.count] if self.names and self.count < len(self.names) else f'frame_{self.count:06d}'}.png")
        try:
            ok, buf = cv2.imencode(target.suffix.lower() or ".png", img)
        except cv2.error:
            ok = False
        if not ok:
            shown = target if self.single else self.path / target
            raise PrivacamError(f"{shown}: cannot encode the image; check the file extension (png, jpg, ...)")
        if self.single:
            atomic_write_bytes(target, buf.tobytes())
        else:
            if self._stage is None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._stage = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
                    os.chmod(self._stage, 0o777 & ~umask())  # what a plain mkdir would give
                except OSError as e:
                    raise write_failure(self.path, e) from None
            try:
                (self._stage / target).write_bytes(buf.tobytes())
            except OSError as e:
                self.abort()
                raise write_failure(self.path / target, e) from None
        self.count += 1

    def close(self) -> None:
        """Rename the filled temporary folder onto ``path``."""
        if self._stage is None:
            return
        try:
            if self.path.is_dir() and not self.path.is_symlink() and not any(self.path.iterdir()):
                self.path.rmdir()
            os.rename(self._stage, self.path)
        except OSError as e:
            self.abort()
            raise write_failure(self.path, e) from None
        self._stage = None

    def abort(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None


def check_output_spares_input(output: str | Path, source: FrameSource) -> None:
    """Refuse an ``output`` that would write over the input: the input file itself, a path inside the
    input folder (or the folder itself), or a folder whose written image would replace the input image.
    Paths are compared by device and inode once links are followed (:func:`~privacam.utils.same_file`),
    so a hard link, a symlink or another spelling of the input is the input.

    Raises:
        PrivacamError: one line naming both paths and the fix; nothing has been written.
    """
    if source.kind == "camera":
        return
    inp, out = Path(source.spec), Path(output)
    where = None
    if same_file(out, inp):
        where = "is the input"
    elif source.kind == "folder" and inside(out, inp):
        where = "lies inside the input folder"
    elif source.kind in ("image", "folder"):
        files = list(getattr(source, "_files", []))
        if any(same_file(out, f) for f in files):
            where = "is an input image"
        elif out.suffix.lower() not in VIDEO_EXTS | IMAGE_EXTS and any(
                same_file(out / f"{n}.png", f) for n in source.names or [] for f in files):
            where = "would write over the input image"
    if where:
        raise PrivacamError(f"output {output} {where} {source.spec}: privacam never writes over its input; "
                            f"give another -o (a new file or folder)")


def _sink_for(output: Path, source: FrameSource):
    ext = output.suffix.lower()
    if ext in VIDEO_EXTS:
        return VideoSink(output, source.fps)
    if ext in IMAGE_EXTS:
        if source.kind != "image":
            raise PrivacamError(f"{output}: one image cannot hold {source.spec}'s frames; give a .mp4 file or a folder")
        return ImageSink(output, None, single=True)
    return ImageSink(output, source.names, single=False)
