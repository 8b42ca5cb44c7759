"""Profile: where a quick plan's CPU time goes outside the training steps (docs/speed.md).

    python benchmarks/profile_plan.py            # quick size, 1 thread (as the plan's jobs)

Measures, in process (CPU) time on random lines and weights of the profile's size: one GAN
training step (baseline S1), one validation (train.val_lines lines, sample grid included), the
evaluation of one arm (the test lines restored and read by the held-out reader and the loss
recognizer, the reader's validation pass and its reading of the clean lines, the bootstrap of
every metric; the references are cached across arms and left out), one pretraining step of the
loss recognizer and of the held-out reader, and a job's start-up (imports). Then composes a
plan of ``--arms`` line jobs from them. Data synthesis and the page arms are not included.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch

from docrestore import config as C
from docrestore import device as D
from docrestore.training import throughput as T


def cpu(fn, repeat: int = 1) -> float:
    """CPU seconds of one call of ``fn`` (the least of ``repeat`` calls)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def recognizer_step_seconds(cfg: C.Config, role: str, steps: int = 4) -> float:
    from docrestore.losses import ctc_loss
    from docrestore.models import build_recognizer
    from docrestore.training.recognizer import role_config

    rc = role_config(cfg, role)
    model = build_recognizer(rc.recognizer, len(T.CHARSET) + 1, rc.data.height).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bs = rc.recognizer_train.batch_size
    x = torch.rand(bs, 1, rc.data.height, rc.data.width)
    chars = max(1, min(rc.data.max_chars, rc.data.width // 16))
    targets = torch.randint(1, len(T.CHARSET) + 1, (bs * chars,))
    lengths = torch.full((bs,), chars, dtype=torch.long)

    def step():
        loss = ctc_loss(model(x).logits, targets, lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    step()
    return cpu(lambda: [step() for _ in range(steps)]) / steps


def startup_seconds() -> float:
    """CPU seconds of a fresh process importing what a line job imports."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import docrestore.training.gan, docrestore.evaluation.evaluate, "
                    "mlflow, papermill"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=C.PROFILES, default="quick")
    ap.add_argument("--arms", type=int, default=33, help="line jobs in the plan (the quick plan: 33)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from docrestore.evaluation import evaluate as E
    from docrestore.models import build_recognizer
    from docrestore.training.recognizer import role_config

    trainer, batches = T.bench_trainer(args.profile, "baseline_s1", "cpu", 4, "runs/bench")
    cfg, tc = trainer.cfg, trainer.cfg.train
    trainer.train_step(batches[0])
    step = cpu(lambda: [trainer.train_step(b) for b in batches[1:]]) / 3
    n_test = cfg.eval.lines or cfg.data.n_test  # eval.lines 0: the whole test split
    lines = T.RandomLines(max(tc.val_lines, n_test, cfg.data.n_val), cfg.data.height, cfg.data.width,
                          max(1, min(cfg.data.max_chars, cfg.data.width // 16)), 3)
    trainer.val_data = torch.utils.data.Subset(lines, range(tc.val_lines))
    validation = cpu(trainer.validate)
    data = T.random_data(cfg, 8)
    data.test, data.val = torch.utils.data.Subset(lines, range(n_test)), torch.utils.data.Subset(
        lines, range(cfg.data.n_val))
    reader_cfg = role_config(cfg, "reader")
    reader = build_recognizer(reader_cfg.recognizer, len(T.CHARSET) + 1, cfg.data.height).eval()
    loss_rec = trainer.frozen_recognizer
    dev = torch.device("cpu")
    parts = {}
    parts["evaluation: test lines restored and read"] = cpu(
        lambda: parts.__setitem__("_ev", E.evaluate_generator(cfg, trainer.generator, data, reader, loss_rec, dev,
                                                              with_references=False)))
    parts["evaluation: reader on the validation lines"] = cpu(
        lambda: E.validation_by_reader(cfg, trainer.generator, data, reader, dev))
    parts["evaluation: reader on the clean test lines"] = cpu(lambda: E.clean_reading(cfg, data, reader, dev))
    parts["evaluation: bootstrap of every metric"] = cpu(lambda: E.summarize(parts["_ev"]["per_line"], cfg))
    del parts["_ev"]
    steps = tc.max_steps or tc.epochs * (cfg.data.n_train // tc.batch_size)
    n_val = steps // tc.val_every + (steps % tc.val_every > 0)
    loss_steps = (cfg.recognizer_train.max_steps or cfg.recognizer_train.epochs
                  * (cfg.data.n_train // cfg.recognizer_train.batch_size))
    reader_steps = role_config(cfg, "reader").recognizer_train.max_steps
    per_job = {"training steps": steps * step, "validation": n_val * validation, **parts,
               "process start-up (imports)": startup_seconds()}
    plan = {k: args.arms * v for k, v in per_job.items()}
    plan["loss recognizer pretraining"] = loss_steps * recognizer_step_seconds(cfg, "loss")
    plan["held-out reader pretraining"] = reader_steps * recognizer_step_seconds(cfg, "reader")
    total_job, total_plan = sum(per_job.values()), sum(plan.values())
    print(f"\n{args.profile} profile, 1 thread, CPU seconds ({D.describe(dev)}); one line job = {steps} steps "
          f"({step:.3f} s each) and {n_val} validations; the plan = {args.arms} line jobs + pretraining\n")
    print("| part | one line job (s) | share | plan (s) | share |\n| --- | ---: | ---: | ---: | ---: |")
    for k in plan:
        j = per_job.get(k)
        print(f"| {k} | {'' if j is None else f'{j:.1f}'} | {'' if j is None else f'{100 * j / total_job:.1f} %'} "
              f"| {plan[k]:.0f} | {100 * plan[k] / total_plan:.1f} % |")
    print(f"| **total** | **{total_job:.1f}** | | **{total_plan:.0f}** | |")
    outside = 1 - plan["training steps"] / total_plan
    print(f"\noutside the training steps: {100 * outside:.1f} % of the plan's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
