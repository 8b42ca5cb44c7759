"""`make gpu-check`: is this GPU ready for the full profile? At most ~5 minutes on one GPU.

    python benchmarks/gpu_check.py                  # the GPU, full profile sizes, bf16
    python benchmarks/gpu_check.py --device cpu     # the same checks on the CPU at smoke sizes (tests)

1. every training arm for a few steps at the profile's size (bf16 autocast on a GPU): lines/s and
   peak memory (goal: >= 500 lines/s for G + D + recognizer at 128 x 1024 on one H100-class GPU);
2. restoring a 2000 x 3000 page with the ERB-size generator (goal: < 0.1 s on an H100-class GPU);
3. bf16 vs fp32: three training steps from the same weights and batches, largest relative
   difference of each loss;
4. the CTC loss on cuDNN vs PyTorch's native kernel (agreement and time; GPU only);
5. the projected wall time of configs/experiments/paper_full.yaml on 1, 2 and 4 GPUs.

Writes benchmarks/results/gpu-check-<cpu|gpu>-<date>.json (and a train-*.json that plan dry runs
read). Nothing beyond `make setup` is needed: no dataset, no pretrained model (random weights;
speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from docrestore import config as C
from docrestore import device as D
from docrestore.study import estimate as E
from docrestore.training import throughput as T

GOALS = {"lines_per_s": 500.0, "page_seconds": 0.1}


def restore_time(device: torch.device, size: tuple[int, int], width: float, tile: tuple[int, int]) -> dict:
    from docrestore.config import GeneratorConfig
    from docrestore.models import build_generator
    from docrestore.restore.tiling import restore_image

    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(width=width)).to(device).eval()
    rng = np.random.default_rng(0)
    page = np.clip(0.85 + rng.normal(0, 0.05, size), 0, 1).astype(np.float32)
    restore_image(g, page[:tile[0], :tile[1]], device, tile=tile)  # warm-up: kernels, allocator
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = restore_image(g, page, device, tile=tile, batch_size=32 if D.is_gpu(device) else 8)
        times.append(time.perf_counter() - t0)  # a CPU array back: the time includes the sync
    assert out.shape == page.shape and np.isfinite(out).all()
    return {"page": list(size), "generator_width": width, "tile": list(tile), "seconds": min(times)}


def bf16_agreement(profile: str, device: str, work: str, steps: int = 3) -> dict:
    """Largest relative difference of each loss between bf16 and fp32 over ``steps`` steps."""
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        cfg = T.arm_config(profile, "baseline_s1", device, [f"runs_dir={work}", "generator.dropout=0"])
        from docrestore import runs as R
        from docrestore.data.dataset import collate_lines
        from docrestore.training.gan import GANTrainer

        folder = C.resolve_path(work)
        folder.mkdir(parents=True, exist_ok=True)
        rec = T.random_recognizer(cfg, folder / f"random-recognizer-{profile}.pt")
        bs = cfg.train.batch_size
        data = T.random_data(cfg, bs * steps)
        t = GANTrainer(cfg, R.join_run(folder / "agreement", cfg, "train", {}), data=data, recognizer_path=rec)
        out = []
        with D.precision(precision):
            for k in range(steps):
                out.append(t.train_step(collate_lines([data.train[i] for i in range(k * bs, (k + 1) * bs)])))
                t.step += 1
        runs[precision] = out
    keys = ("train/loss_g", "train/loss_d", "train/pixel", "train/adv", "train/ctc_monitor")
    diff = {k: max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-8) for a, b in zip(runs["fp32"], runs["bf16"]))
            for k in keys}
    return {"steps": steps, "max_rel_diff": diff}


def ctc_check(device: torch.device) -> dict:
    if not D.is_gpu(device):
        return {"applicable": False, "why": "cuDNN CTC exists on NVIDIA GPUs only"}
    torch.manual_seed(0)
    T_, B, Cn, S = 256, 64, 80, 40
    logits = torch.randn(T_, B, Cn, device=device).log_softmax(2).requires_grad_()
    targets = torch.randint(1, Cn, (B * S,), dtype=torch.int32)  # cuDNN: int32 targets on the CPU
    in_len = torch.full((B,), T_, dtype=torch.int32)
    tgt_len = torch.full((B,), S, dtype=torch.int32)
    res = {}
    for name, enabled in (("cudnn", True), ("native", False)):
        with torch.backends.cudnn.flags(enabled=enabled):
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            loss = torch.nn.functional.ctc_loss(logits, targets if enabled else targets.to(device).long(),
                                                in_len, tgt_len, reduction="sum", zero_infinity=True)
            (grad,) = torch.autograd.grad(loss, logits)
            torch.cuda.synchronize(device)
            res[name] = {"loss": loss.item(), "seconds": time.perf_counter() - t0, "grad": grad}
    agree = abs(res["cudnn"]["loss"] - res["native"]["loss"]) / abs(res["native"]["loss"])
    gdiff = (res["cudnn"]["grad"] - res["native"]["grad"]).abs().max().item()
    return {"applicable": True, "loss_rel_diff": agree, "grad_max_abs_diff": gdiff,
            "cudnn_seconds": res["cudnn"]["seconds"], "native_seconds": res["native"]["seconds"],
            "cudnn_enabled": torch.backends.cudnn.enabled, "cudnn_version": torch.backends.cudnn.version()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (the GPU), cuda, cuda:N or cpu")
    ap.add_argument("--profile", choices=C.PROFILES, default=None,
                    help="training sizes (default: full on a GPU, smoke on the CPU)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per arm (default 10 on a GPU, 1 on the CPU)")
    ap.add_argument("--out", default=T.RESULTS_DIR, help="folder of the JSON report")
    ap.add_argument("--work", default="runs/bench", help="scratch folder (random recognizer checkpoints)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = D.pick_device(args.device)
    gpu = D.is_gpu(device)
    profile = args.profile or ("full" if gpu else "smoke")
    steps = args.steps or (10 if gpu else 1)
    precision = "auto" if gpu else "bf16"  # the CPU path runs the GPU's bf16 code too
    print(f"gpu-check on {D.describe(device)}, profile {profile}, {'bf16' if precision != 'fp32' else 'fp32'}",
          flush=True)
    report: dict = {"device": D.describe(device), "kind": D.kind_of(D.describe(device)), "profile": profile,
                    "torch": torch.__version__, "cuda": torch.version.cuda, "goals": GOALS}

    train = []
    for arm in T.ARMS:
        r = T.measure(profile, arm, args.device, steps=steps, warmup=2 if gpu else 1, precision=precision, workdir=args.work)
        train.append(r)
        mem = f", peak {r['peak_memory_gib']:.2f} GiB" if r["peak_memory_gib"] is not None else ""
        print(f"  train {arm:13s} {r['lines_per_s']:9.1f} lines/s{mem}", flush=True)
    report["train"] = train

    size, width, tile = ((2000, 3000), 1.0, (128, 1024)) if gpu else ((96, 512), 0.125, (32, 256))
    report["restore"] = restore_time(device, size, width, tile)
    print(f"  restore {size[0]} x {size[1]} (generator width {width}): {report['restore']['seconds']:.3f} s", flush=True)

    report["bf16_vs_fp32"] = bf16_agreement(profile, args.device, args.work)
    print("  bf16 vs fp32, largest relative loss difference over 3 steps: " + ", ".join(
        f"{k.split('/')[1]} {v:.2%}" for k, v in report["bf16_vs_fp32"]["max_rel_diff"].items()), flush=True)

    report["ctc"] = ctc_check(device)
    print(f"  CTC: {report['ctc']}", flush=True)

    rates = {r["arm"]: r["lines_per_s"] for r in train}
    from docrestore.scheduler import plan as PL

    seeds = len(PL.load_plan(C.CONFIG_DIR / "experiments" / "paper_full.yaml").seeds or [0])
    hours, per_run = E.estimate_hours("full", seeds, rates)
    report["paper_full_projection"] = {
        "rates_from": f"{report['kind']} at profile {profile}" + ("" if gpu and profile == "full" else
                                                               " (not the full size on a GPU: not a GPU figure)"),
        "steps_per_run": per_run, "seeds": seeds,
        "hours": {str(n): hours / n for n in (1, 2, 4)}}
    for n in (1, 2, 4):
        print(f"  paper_full.yaml on {n} GPU(s): ~{hours / n:.1f} h of training steps "
              f"({per_run} steps per run, {seeds} seeds, no early stop)"
              + ("" if gpu and profile == "full" else "  [from CPU smoke rates: not a GPU estimate]"), flush=True)
    if gpu and profile == "full":
        # the goal is stated for the ERB step (G + D + recognizer): baseline S1
        report["goals_met"] = {"lines_per_s": rates["baseline_s1"] >= GOALS["lines_per_s"],
                               "page_seconds": report["restore"]["seconds"] < GOALS["page_seconds"]}
    report["wall_seconds"] = time.perf_counter() - t_start

    out = C.resolve_path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from docrestore.runs import git_info

    git = git_info()
    report.update(git_commit=git.get("commit"), git_dirty=git.get("dirty"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"gpu-check-{report['kind'].lower()}-{profile}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    T.write_results(train, tag="gpucheck-", out_dir=out)
    print(f"report: {path} ({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
