"""Benchmark: the teacher generator and its light student, PyTorch and ONNX Runtime, side by side.

    python benchmarks/bench_restore.py                                    # random weights: speed only
    python benchmarks/bench_restore.py --teacher runs/<train>/best_val_cer.pt \\
        --student runs/<distill>/best_val_psnr.pt                         # speed and PSNR

For each generator (teacher, light student) and runtime (PyTorch, ONNX Runtime: the export is
checked against PyTorch within 1e-3 first) one table row: seconds per page (default one
2000 x 3000 page, a synthetic stained page with rows of strokes), tiles per second, the peak
resident memory (RSS) of the process while that page was restored, the PSNR on the first
``--test-lines`` lines of the synthetic test split of the teacher's data (line by line, as the
evaluation does), and the ratios to the teacher on PyTorch. Speed does not depend on the weights:
without checkpoints the teacher is a random U-Net (``--width-mult``, 0.25 on a CPU) and the student
a random light generator of the ``distill`` defaults, and the PSNR column says "not measured"
rather than scoring random weights. The test split is read only when its dataset exists (make data).

Tile: the teacher checkpoint's training size (as ``docrestore restore`` uses), else 128 x 1024;
``--tile`` overrides. ``--text-height auto`` also times the text-size step of ``restore``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from docrestore import config as C
from docrestore import device as D
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


class PeakRSS:
    """The largest resident set size (bytes) of this process seen while the block ran (sampled
    every 5 ms from /proc; ``None`` where /proc is missing)."""

    def __enter__(self):
        self.peak, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def _watch(self):
        while not self._stop.wait(0.005):
            rss = self._rss()
            if rss is not None and (self.peak is None or rss > self.peak):
                self.peak = rss

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def load_models(args, device):
    """{label: (generator, config or None)} for teacher and student, from checkpoints or random."""
    from docrestore import checkpoint as CK

    on_cpu = device.type == "cpu"
    models = {}
    for label, path in (("teacher", args.teacher), ("student", args.student)):
        if path:
            models[label] = CK.load_generator(path, device)
        else:
            torch.manual_seed(0)
            d = C.DistillConfig()
            gcfg = (GeneratorConfig(width=args.width_mult or (0.25 if on_cpu else 1.0)) if label == "teacher"
                    else GeneratorConfig(name=d.student, width=d.width, levels=d.levels, dropout=0.0))
            models[label] = (build_generator(gcfg).to(device).eval(), None)
    return models


def test_lines(cfg: C.Config | None, n: int):
    """(degraded, clean) arrays (N,1,H,W) of the first ``n`` test lines of ``cfg``'s data, or a
    reason why there are none."""
    if cfg is None:
        return None, "not measured (random weights: give --teacher/--student checkpoints)"
    from docrestore.data.charset import Charset
    from docrestore.data.dataset import LineDataset
    from docrestore.data.synth import dataset_root

    manifest = Path(cfg.data.manifest) if cfg.data.manifest else dataset_root(cfg) / "manifest.jsonl"
    if not manifest.is_file():
        return None, f"not measured (no dataset at {manifest}: make data, or docrestore synth with the teacher's config)"
    ds = LineDataset(manifest, "test", cfg.data.height, cfg.data.width,
                     Charset.from_file(manifest.parent / "charset.txt"))
    items = [ds[i] for i in range(min(n, len(ds)))]
    return (torch.stack([it["degraded"] for it in items]), torch.stack([it["clean"] for it in items])), ""


@torch.inference_mode()
def lines_psnr(model, lines, device, batch: int = 16) -> float:
    from docrestore.evaluation.metrics import psnr

    degraded, clean = lines
    scores = []
    for i in range(0, len(degraded), batch):
        out = model(degraded[i:i + batch].to(device)).float().clamp(0, 1).cpu().numpy()
        scores += [psnr(o[0], c[0]) for o, c in zip(out, clean[i:i + batch].numpy())]
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="", help="trained generator checkpoint (default: random U-Net)")
    ap.add_argument("--student", default="", help="its distilled light student (docrestore distill; "
                                                  "default: random light generator)")
    ap.add_argument("--pages", type=int, default=1, help="pages restored and timed (default 1)")
    ap.add_argument("--size", type=parse_hw, default=(2000, 3000), help="page size HxW (default 2000x3000)")
    ap.add_argument("--width-mult", type=float, default=None,
                    help="random teacher's channel multiplier (default 1.0 on a GPU, 0.25 on a CPU)")
    ap.add_argument("--tile", type=parse_hw, default=None,
                    help="tile HxW (default: the teacher checkpoint's line size, else 128x1024)")
    ap.add_argument("--overlap", type=float, default=0.25, help="tile overlap share (default 0.25)")
    ap.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (default 8)")
    ap.add_argument("--test-lines", type=int, default=50, help="synthetic test lines scored (default 50)")
    ap.add_argument("--text-height", default="off",
                    help="also time the text-size step: auto (estimate), PIXELS, or off (default)")
    ap.add_argument("--runtimes", default="torch,onnx",
                    help="comma-separated runtimes to time: torch, onnx (CPU only; default both)")
    ap.add_argument("--device", default="auto", help="device, as the config key `device` takes it (default auto)")
    args = ap.parse_args(argv)
    if args.pages < 1:
        ap.error("--pages must be at least 1")
    device = D.pick_device(args.device)
    on_cpu = device.type == "cpu"
    try:
        models = load_models(args, device)
    except Exception as exc:  # a missing or foreign checkpoint: say which
        ap.error(str(exc))
    tcfg = models["teacher"][1]
    tile = args.tile or ((tcfg.data.height, tcfg.data.width) if tcfg is not None else (128, 1024))
    try:
        check_tile(tile)
    except ValueError as exc:
        ap.error(str(exc))
    h, w = args.size
    pages = [synthetic_page(h, w, seed=i) for i in range(args.pages)]
    lines, why_not = test_lines(tcfg if args.teacher and args.student else None, args.test_lines)

    print(f"device    : {D.describe(device)}  (torch threads {torch.get_num_threads()})")
    for label, (g, cfg) in models.items():
        gc = cfg.generator if cfg is not None else None
        desc = (f"{gc.name}, width {gc.width}" + (f", {gc.levels} levels" if gc.name == "light" else "")
                if gc else f"{type(g).__name__}, random weights")
        print(f"{label:10s}: {desc} ({sum(p.numel() for p in g.parameters()) / 1e3:.0f} k parameters)"
              + (f" - {getattr(args, label)}" if getattr(args, label) else ""))
    print(f"page      : {h} x {w} (H x W), {args.pages} page(s); tiles {tile[0]} x {tile[1]}, overlap "
          f"{args.overlap}, batch {args.batch_size}, {count_tiles((h, w), tile, args.overlap)} tiles/page")
    print(f"PSNR      : " + (f"first {len(lines[0])} synthetic test lines of the teacher's data" if lines
                             else why_not))
    mode = S.parse_text_height(args.text_height)
    restore_cfg = RestoreConfig(tile_height=tile[0], tile_width=tile[1], overlap=args.overlap,
                                batch_size=args.batch_size)
    sys.stdout.flush()

    rows = []
    wanted = args.runtimes.split(",")
    for label, (g, cfg) in models.items():
        runtimes = {"torch": g} if "torch" in wanted else {}
        if "onnx" in wanted and on_cpu:
            t0 = time.perf_counter()
            runtimes["onnx"] = onnx_for(g, tile)
            print(f"{label} onnx: exported and checked in {time.perf_counter() - t0:.1f} s")
        elif "onnx" in wanted:
            print("onnx      : skipped (ONNX Runtime runs on the CPU; the device is a GPU)")
        for name, model in runtimes.items():
            # Warm-up on one tile (kernel selection, allocator), not timed.
            restore_image(model, pages[0][:tile[0], :tile[1]], device, tile=tile, overlap=args.overlap,
                          batch_size=args.batch_size)
            factor = 1.0
            if mode != "off":
                trained = S.trained_text_height(cfg or C.load_config(profile="quick"))
                factor = S.decide(pages[0], mode, trained).factor
            times, peak = [], 0
            for page in pages:
                with PeakRSS() as mem:
                    t0 = time.perf_counter()
                    out = restore_scaled(model, page, device, restore_cfg, factor)  # a CPU array: synced
                    times.append(time.perf_counter() - t0)
                peak = max(peak, mem.peak or 0)
                assert out.shape == page.shape and np.isfinite(out).all()
            score = lines_psnr(model, lines, device) if lines else None
            rows.append((label, name, sum(times) / len(times), peak, score))
            print(f"  {label} {name}: {rows[-1][2]:.2f} s/page", flush=True)

    base_t = rows[0][2]
    base_p = {r[1]: r[4] for r in rows if r[0] == "teacher"}
    print(f"\n{'model':8s} {'runtime':7s} {'s/page':>7s} {'speed-up':>8s} {'peak RSS':>9s} {'PSNR dB':>8s} "
          f"{'vs teacher':>10s}")
    for label, name, t, peak, score in rows:
        psnr_txt = f"{score:8.2f}" if score is not None else f"{'n/m':>8s}"
        ref = base_p.get(name)
        delta = f"{score - ref:+10.2f}" if score is not None and ref is not None else f"{'':>10s}"
        print(f"{label:8s} {name:7s} {t:7.2f} {base_t / t:7.1f}x {peak / 2**30:7.2f}GB {psnr_txt} {delta}")
    if not lines:
        print(f"PSNR {why_not}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
