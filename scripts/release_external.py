"""Release a manifest's videos with a third-party anonymiser, as that tool is used, and audit the release.

    python scripts/release_external.py deface --out runs/weizmann_external/deface \
        [--data ../shared/data/weizmann/manifest.csv] [--bin PATH/TO/deface] [--audit] [--config weizmann] \
        [key=value ...] [-- TOOL ARGS]

Tools:

- ``deface`` (PyPI ``deface``, face detection with CenterFace + blurring; ``pip install deface`` in any
  environment, ``--bin`` names its executable). It is run as its command line is: once per video, on
  a folder of frames (each frame written beside itself as ``NNNN_anonymized.png``) or on a video file
  (``-o``). Arguments after ``--`` go to the tool (e.g. ``-- --scale 256x256``).
- ``haar`` (OpenCV's own Haar full-body detector, shipped with opencv-python-headless, which privacam
  depends on): every detected body box blurred (Gaussian, sigma = a quarter of the box).

Writes ``OUT/released/<row>/NNNN.png`` (frame folders) or ``OUT/released/<row>.<ext>`` (videos),
``OUT/RELEASED.csv`` (the raw manifest's rows and columns, ``path`` pointing at the release) and
``OUT/tool.json`` (the tool, its version, its arguments, how many frames it changed, seconds). With
``--audit`` it then runs ``privacam evaluate --released OUT/RELEASED.csv --data RAW --out OUT/audit``
and ``privacam report OUT/audit`` (the privacy card); ``--reuse --audit`` audits a release already in
``OUT`` without running the tool again. The raw data are only read.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and "_anonymized" not in p.stem)


def _read(p: Path) -> np.ndarray:
    import cv2

    return cv2.imread(str(p), cv2.IMREAD_UNCHANGED)


def deface_folder(bin_: str, src: Path, dst: Path, args: list[str]) -> tuple[int, int]:
    """Run deface on a copy of the frame folder ``src``; its outputs become ``dst/NNNN.png``."""
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work)
        subprocess.run([bin_, str(work), *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dst.mkdir(parents=True, exist_ok=True)
        n = changed = 0
        for f in _frames(work):
            out = work / f"{f.stem}_anonymized{f.suffix}"
            if not out.exists():
                raise SystemExit(f"{bin_} wrote no {out.name} for {src / f.name}; check the tool")
            changed += int(not np.array_equal(_read(out), _read(f)))
            n += 1
            shutil.move(str(out), dst / f.name)
    return n, changed


def deface_video(bin_: str, src: Path, dst: Path, args: list[str]) -> tuple[int, int]:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([bin_, str(src), "-o", str(dst), *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return -1, -1  # frames are counted by the audit's pairing check


def haar_folder(src: Path, dst: Path, args: list[str]) -> tuple[int, int]:
    """OpenCV's Haar full-body cascade on every frame; every detection blurred."""
    import cv2

    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_fullbody.xml"))
    up = 4  # Weizmann-sized frames: detect on a 4x upsampled frame (the cascade's window is 14x28)
    dst.mkdir(parents=True, exist_ok=True)
    n = changed = 0
    for f in _frames(src):
        img = cv2.imread(str(f))
        big = cv2.resize(img, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        boxes = cascade.detectMultiScale(cv2.cvtColor(big, cv2.COLOR_BGR2GRAY), scaleFactor=1.05, minNeighbors=2)
        out = img.copy()
        for (x, y, w, h) in boxes:
            x0, y0, x1, y1 = x // up, y // up, (x + w + up - 1) // up, (y + h + up - 1) // up
            roi = out[y0:y1, x0:x1]
            if roi.size:
                s = max(1.0, max(roi.shape[:2]) / 4)
                out[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (0, 0), s)
        cv2.imwrite(str(dst / f.name), out)
        n += 1
        changed += int(len(boxes) > 0)
    return n, changed


def tool_version(tool: str, bin_: str | None) -> str:
    if tool == "deface":
        r = subprocess.run([bin_, "--version"], capture_output=True, text=True, check=True)
        return (r.stdout or r.stderr).strip().splitlines()[-1]
    import cv2

    return f"opencv {cv2.__version__}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tool_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, tool_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tool", choices=("deface", "haar"))
    ap.add_argument("--out", required=True, help="folder for released/, RELEASED.csv, tool.json (and audit/)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/weizmann/manifest.csv"),
                    help="the raw manifest (default: the shared Weizmann data)")
    ap.add_argument("--bin", default=shutil.which("deface"), help="the deface executable (default: on PATH)")
    ap.add_argument("--label", help="the name of this release in tables (default: the tool and its arguments)")
    ap.add_argument("--audit", action="store_true", help="then audit it: privacam evaluate --released, privacam report")
    ap.add_argument("--reuse", action="store_true", help="keep the release already in --out (RELEASED.csv, tool.json); only audit")
    ap.add_argument("--config", default="weizmann", help="privacam config of the audit (default weizmann)")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw-data reference of the audit (privacam evaluate --no-raw)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the audit")
    a = ap.parse_args(argv)
    raw = Path(a.data).resolve()
    out = Path(a.out)
    if a.tool == "deface" and not a.bin and not a.reuse:
        raise SystemExit("deface: no executable on PATH; `pip install deface` (any environment) and give --bin PATH")
    if a.reuse:
        if not (out / "RELEASED.csv").is_file() or not (out / "tool.json").is_file():
            raise SystemExit(f"--reuse: {out} holds no RELEASED.csv and tool.json; release first (without --reuse)")
        info = json.loads((out / "tool.json").read_text())
        return _audit(out, raw, info, a) if a.audit else 0
    with open(raw, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    t0 = time.time()
    released_rows, frames, changed = [], 0, 0
    for row in rows:
        src = Path(row["path"])
        src = src if src.is_absolute() else raw.parent / src
        if src.is_dir():
            dst = out / "released" / src.name
            n, c = (deface_folder(a.bin, src, dst, tool_args) if a.tool == "deface" else haar_folder(src, dst, tool_args))
        else:
            if a.tool != "deface":
                raise SystemExit(f"{a.tool}: video files are not supported by this script; give frame folders")
            dst = out / "released" / src.name
            n, c = deface_video(a.bin, src, dst, tool_args)
        frames += max(n, 0)
        changed += max(c, 0)
        released_rows.append({**row, "path": str(dst.relative_to(out))})
    seconds = round(time.time() - t0, 1)
    with open(out / "RELEASED.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(released_rows)
    label = a.label or " ".join([a.tool, *tool_args]) or a.tool
    info = {"tool": a.tool, "version": tool_version(a.tool, a.bin), "args": tool_args, "label": label, "raw": str(raw),
            "rows": len(released_rows), "frames": frames, "frames_changed": changed, "seconds": seconds,
            "command": shlex.join(["python", "scripts/release_external.py", *argv, *(["--", *tool_args] if tool_args else [])])}
    (out / "tool.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"released {len(released_rows)} rows ({frames} frames, {changed} changed by {a.tool}) into {out} in {seconds} s")
    return _audit(out, raw, info, a) if a.audit else 0


def _audit(out: Path, raw: Path, info: dict, a) -> int:
    """privacam evaluate --released of the release in ``out``, then its privacy card."""
    from privacam.cli import main as privacam

    t = time.time()
    rc = privacam(["evaluate", "--released", str(out / "RELEASED.csv"), "--data", str(raw), "--out", str(out / "audit"),
                   "--config", a.config, "--label", f"{info['label']} ({info['tool']} {info['version']})",
                   *(["--no-raw"] if a.no_raw else []), *a.overrides])
    if rc:
        return rc
    print(f"audit: {time.time() - t:.0f} s")
    return privacam(["report", str(out / "audit")])


if __name__ == "__main__":
    sys.exit(main())
