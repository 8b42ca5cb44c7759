"""Every training arm for two steps, in one process or under torchrun: the DDP test's driver.

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_arms.py SPEC OUT``
runs each arm of SPEC (JSON: recognizer, manifest, arms) for three global batches and rank 0 writes
OUT (torch.save): per arm, every rank's step metrics, rank 0's weights and the largest weight
difference between the ranks. tests/test_distributed.py runs the same :func:`run_arms` in one
process on the same global batches and compares.

The data makes one process and two comparable exactly (BatchNorm normalises over each rank's
share, so different images per rank would give different statistics than the whole batch):
within each global batch ``[o0, o1, o2, o3]`` the lines o0/o1 share an image, and so do o2/o3,
but every line keeps its own transcription. Each rank then sees the same images (BatchNorm
statistics equal the whole batch's) but other texts, so the CTC gradients of G and of the
recognizer differ between the ranks and only DDP's averaging keeps their weights equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from docrestore import config as C
from docrestore import runs as R
from docrestore.data import loading
from docrestore.training import common, distributed, throughput
from docrestore.training.gan import GANTrainer

STEPS = 3

# Every method of the paper (the arms the training benchmark times), at smoke size; dropout off
# (ranks and one process would draw other masks).
ARMS = throughput.ARMS


class PairedLines(torch.utils.data.Dataset):
    """Line ``i`` shows the image of ``image_of[i]`` and reads the text of base line ``i``."""

    def __init__(self, base, image_of: list[int]):
        self.base, self.image_of = base, image_of

    def __len__(self) -> int:
        return len(self.image_of)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        img = self.base[self.image_of[i]]
        item["degraded"], item["clean"] = img["degraded"], img["clean"]
        return item


def paired_data(cfg: C.Config, batch_size: int) -> loading.Data:
    data = loading.open_data(cfg)
    n = STEPS * batch_size
    image_of = list(range(n))
    for batch in common.EpochBatches(n, batch_size, cfg.seed, 0).batches:
        for k in range(0, len(batch), 2):  # neighbours in a batch go to different ranks
            image_of[batch[k + 1]] = batch[k]
    train = PairedLines(common.subset(data.train, n), image_of)
    return loading.Data(data.manifest, data.charset, train, data.val, data.test, data.data_hash)


def config(spec: dict, arm: str) -> C.Config:
    return C.load_config(profile="smoke", overrides=[
        f"runs_dir={spec['runs_dir']}", f"data.root={Path(spec['manifest']).parent}", "tracking.enabled=false",
        "device=cpu", f"recognizer.checkpoint={spec['recognizer']}", "generator.dropout=0",
        f"train.batch_size={spec['batch_size']}", *ARMS[arm]])


def flat_state(trainer: GANTrainer) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(trainer.trained_modules())
            for k, v in m.state_dict().items()}


def run_arms(spec: dict) -> dict:
    out = {}
    for arm in spec["arms"]:
        cfg = config(spec, arm)
        info = distributed.init_from_env(cfg.device)
        data = paired_data(cfg, cfg.train.batch_size)
        run = R.join_run(Path(spec["runs_dir"]) / f"{arm}-rank{info.rank}", cfg, "train", {})
        t = GANTrainer(cfg, run, data=data, recognizer_path=Path(spec["recognizer"]))
        for m in t.recognizer.modules():  # the pretrained recognizer's dropout, off as G's
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        from docrestore.data.dataset import collate_lines

        init = flat_state(t)
        steps = []
        for batch in common.EpochBatches(len(data.train), cfg.train.batch_size, cfg.seed, 0).batches[:STEPS]:
            share = distributed.shard(batch, t.dist)
            metrics = t.train_step(collate_lines([data.train[i] for i in share]))
            t.step += 1
            steps.append(gather(metrics, t.dist))
        state = flat_state(t)
        diff = 0.0
        for v in state.values():
            others = gather(v, t.dist)
            diff = max(diff, max((o.double() - v.double()).abs().max().item() for o in others))
        out[arm] = {"steps": steps, "state": state, "init": init, "rank_weight_diff": diff, "world": t.dist.world_size}
    return out


def gather(obj, info: distributed.DistInfo) -> list:
    if not info.distributed:
        return [obj]
    box = [None] * info.world_size
    torch.distributed.all_gather_object(box, obj)
    return box


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)
    try:
        result = run_arms(spec)
        if distributed.init_from_env("cpu").is_main:
            torch.save(result, sys.argv[2])
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
