"""``privacam anonymize`` and ``privacam export``: deploy a run's encoder f_d."""

from __future__ import annotations

import argparse

from ..deploy import anonymize, export_run
from .common import Command


class Anonymize(Command):
    name = "anonymize"
    help = "run a trained encoder f_d over a video, image(s) or camera and write the anonymized output"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", help="run directory of a trained encoder")
        p.add_argument("input", help="video file, image, folder of images, or camera (/dev/videoN or N)")
        p.add_argument("-o", "--output", required=True, help="output .mp4, image file, or folder for images")
        p.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine (default torch)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
        size = p.add_mutually_exclusive_group()
        size.add_argument("--release-size", action="store_true",
                          help="write the release at the encoder's size (default: the input's size, upsampled by nearest neighbour)")
        size.add_argument("--keep-size", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
        p.add_argument("--max-frames", type=int, help="stop after this many frames (needed for endless cameras)")
        p.add_argument("--batch-size", type=int, default=8, help="frames per call for frame-wise encoders")
        p.add_argument("--fps", type=float, help="frame rate of the output for image inputs (default 25)")
        p.add_argument("--onnx", help="ONNX file for --backend onnx (default RUN_DIR/encoder.onnx, exported if needed)")
        p.add_argument("--overwrite", action="store_true",
                       help="-o may exist: move it aside (<name>.replaced-<time>, never deleted) and write a new one")

    def run(self, args) -> int:
        res = anonymize(args.run_dir, args.input, args.output, backend=args.backend, device=args.device,
                        keep_size=not args.release_size, max_frames=args.max_frames, batch_size=args.batch_size,
                        fps=args.fps, onnx_path=args.onnx, overwrite=args.overwrite)
        size = "x".join(map(str, res["size"]))
        note = "" if res["size"] == res["release_size"] else f" (release {'x'.join(map(str, res['release_size']))}, nearest-neighbour upsampled)"
        print(f"wrote {res['frames']} frames of {size}{note} to {res['output']}")
        if res.get("replaced"):
            print(f"the earlier {res['output']} is kept as {res['replaced']}")
        return 0


class Export(Command):
    name = "export"
    help = "export a run's encoder f_d to ONNX (checked against PyTorch with onnxruntime)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", help="run directory of a trained encoder")
        p.add_argument("-o", "--output", help="ONNX file (default RUN_DIR/encoder.onnx)")
        p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
        p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |onnx - torch| (default 1e-4)")
        p.add_argument("--overwrite", action="store_true",
                       help="the ONNX file may exist: move it aside (<name>.replaced-<time>.onnx, never deleted)")

    def run(self, args) -> int:
        res = export_run(args.run_dir, args.output, opset=args.opset, tolerance=args.tolerance, overwrite=args.overwrite)
        draws = " (every op but the release's per-clip random draws, which the file keeps)" if res["randomised"] else ""
        print(f"exported {res['output']}; max |onnx - torch| = {res['diff']:.3g}{draws}")
        if res.get("replaced"):
            print(f"the earlier {res['output']} is kept as {res['replaced']}")
        return 0
