"""Benchmark: restoring whole pages with the tiled restorer (pages/s and tiles/s).

    python benchmarks/bench_restore.py                      # 1 page of 2000 x 3000 (H x W)
    python benchmarks/bench_restore.py --pages 5 --width-mult 1

A randomly initialised U-Net generator (docrestore.models.build_generator) restores synthetic
pages (stained, noisy paper with rows of dark text-like strokes) on the device picked by
``pick_device("auto")``. Speed does not depend on the weights, so no checkpoint is needed.

Default model width: 1.0 (the paper's generator) on a GPU; 0.25 (the quick profile's) on a CPU,
where the full generator takes several seconds per 128 x 1024 tile (a 2000 x 3000 page is 84
tiles) and the default run must stay near two minutes. The width used is always printed.

Reported side by side: PyTorch and ONNX Runtime (restore.runtime; the export is checked against
PyTorch within 1e-3 first), each at native scale and with the text-size step of ``restore``
(estimate the page's text height, resize to the training scale of the profile whose lines match
the tile height, restore, resize back; ``--text-height``). The estimate's own time is printed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from docrestore import device as D
from docrestore import config as C
from docrestore.config import GeneratorConfig, RestoreConfig
from docrestore.models import build_generator
from docrestore.restore import scale as S
from docrestore.restore.runtime import onnx_for, synthetic_page
from docrestore.restore.tiling import check_tile, count_tiles, restore_image, restore_scaled


def parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 2000x3000, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=1, help="pages restored and timed (default 1)")
    ap.add_argument("--size", type=parse_hw, default=(2000, 3000), help="page size HxW (default 2000x3000)")
    ap.add_argument("--width-mult", type=float, default=None,
                    help="generator channel multiplier (default 1.0 on a GPU, 0.25 on a CPU)")
    ap.add_argument("--tile", type=parse_hw, default=(128, 1024), help="tile HxW (default 128x1024)")
    ap.add_argument("--overlap", type=float, default=0.25, help="tile overlap share (default 0.25)")
    ap.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (default 8)")
    ap.add_argument("--text-height", default="auto",
                    help="text-size step: auto (estimate), off, or PIXELS (default auto)")
    ap.add_argument("--runtimes", default="torch,onnx",
                    help="comma-separated runtimes to time: torch, onnx (CPU only; default both)")
    ap.add_argument("--device", default="auto",
                    help="device, as the config key `device` takes it (default auto)")
    args = ap.parse_args(argv)
    if args.pages < 1:
        ap.error("--pages must be at least 1")
    try:
        check_tile(args.tile)
    except ValueError as exc:
        ap.error(str(exc))

    device = D.pick_device(args.device)
    on_cpu = device == D.pick_device("cpu")
    width = args.width_mult if args.width_mult is not None else (0.25 if on_cpu else 1.0)
    torch.manual_seed(0)
    generator = build_generator(GeneratorConfig(width=width)).to(device).eval()
    n_params = sum(p.numel() for p in generator.parameters())
    h, w = args.size
    tiles_per_page = count_tiles((h, w), args.tile, args.overlap)
    pages = [synthetic_page(h, w, seed=i) for i in range(args.pages)]

    print(f"device    : {D.describe(device)}")
    print(f"generator : unet, width {width} ({n_params / 1e6:.2f} M parameters), random weights")
    print(f"page      : {h} x {w} (H x W), {args.pages} page(s)")
    print(f"tiles     : {args.tile[0]} x {args.tile[1]}, overlap {args.overlap}, batch {args.batch_size}, "
          f"{tiles_per_page} tiles/page")
    sys.stdout.flush()

    # The training scale of the profile whose lines have the tile's height (rendered once).
    profile = next((p for p in ("smoke", "quick", "full")
                    if C.load_config(profile=p).data.height == args.tile[0]), "full")
    mode = S.parse_text_height(args.text_height)
    trained = None if mode == "off" else S.trained_text_height(C.load_config(profile=profile))
    t0 = time.perf_counter()
    decision = S.decide(pages[0], mode, trained)
    t_est = time.perf_counter() - t0
    print(f"text size : {decision.reason} (trained scale of the {profile} profile's lines); "
          f"estimate {t_est:.2f} s")
    restore_cfg = RestoreConfig(tile_height=args.tile[0], tile_width=args.tile[1], overlap=args.overlap,
                                batch_size=args.batch_size)
    runtimes = {"torch": generator}
    if "onnx" in args.runtimes.split(","):
        if on_cpu:
            t0 = time.perf_counter()
            runtimes["onnx"] = onnx_for(generator, args.tile)
            print(f"onnx      : exported and checked in {time.perf_counter() - t0:.1f} s")
        else:
            print("onnx      : skipped (ONNX Runtime runs on the CPU; the device is a GPU)")
    if "torch" not in args.runtimes.split(","):
        runtimes.pop("torch")
    sys.stdout.flush()

    for name, model in runtimes.items():
        # Warm-up on one tile (kernel selection, allocator), not timed.
        restore_image(model, pages[0][:args.tile[0], :args.tile[1]], device, tile=args.tile,
                      overlap=args.overlap, batch_size=args.batch_size)
        for label, factor in (("native", 1.0), ("text-size", decision.factor)):
            if label == "text-size" and mode == "off":
                continue
            times = []
            for page in pages:
                t0 = time.perf_counter()
                if label == "text-size":  # the estimate is part of a restore with the step
                    S.decide(page, mode, trained)
                # returns a CPU array, so the time includes the copy back (a real sync)
                out = restore_scaled(model, page, device, restore_cfg, factor)
                times.append(time.perf_counter() - t0)
                assert out.shape == page.shape and np.isfinite(out).all()
            total = sum(times)
            tiles = count_tiles(S.scaled_shape((h, w), factor), args.tile, args.overlap)
            print(f"{name:6s} {label:9s}: {total / args.pages:6.2f} s per page  ({tiles} tiles/page, "
                  f"{args.pages * tiles / total:.2f} tiles/s, {args.pages * h * w / total / 1e6:.2f} Mpixel/s)")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
