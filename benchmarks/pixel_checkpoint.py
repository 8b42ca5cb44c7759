"""A synthetic-line quick checkpoint in minutes: the quick profile's generator trained with the
pixel loss (BCE) only on the quick synthetic lines, batch 8, Adam at train.lr_g, saved in the GAN
checkpoint format (so `docrestore restore` and benchmarks/eval_text_height.py take it).

    python benchmarks/pixel_checkpoint.py STEPS OUT.pt DATASET_FOLDER

Used where `docrestore train` (recognizer pretraining first) does not fit the time on a shared
2-core CPU; run with OMP_NUM_THREADS=1 there (two threads on busy cores were 30x slower).
"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from docrestore import config as C, checkpoint as CK
from docrestore.models import build_generator
root = Path(sys.argv[3] if len(sys.argv) > 3 else "data/synth-e089d531cf67")
cfg = C.load_config("configs/baseline_s1.yaml", ["profile=quick", "train.ctc.weight=0", "device=cpu"])
recs = [json.loads(l) for l in open(root / "manifest.jsonl")]
train = [r for r in recs if r["split"] == "train"]
load = lambda p: np.asarray(Image.open(root / p), dtype=np.float32) / 255
X = torch.from_numpy(np.stack([load(r["degraded"]) for r in train]))[:, None]
Y = torch.from_numpy(np.stack([load(r["clean"]) for r in train]))[:, None]
torch.manual_seed(0); torch.set_num_threads(1)
g = build_generator(cfg.generator)
opt = torch.optim.Adam(g.parameters(), lr=cfg.train.lr_g)
t0 = time.time()
for step in range(int(sys.argv[1]) if len(sys.argv) > 1 else 300):
    idx = torch.randint(0, len(X), (8,))
    loss = torch.nn.functional.binary_cross_entropy(g(X[idx]), Y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 50 == 0: print(step, float(loss), round(time.time() - t0), flush=True)
CK.save_checkpoint(sys.argv[2] if len(sys.argv) > 2 else "runs/e-pixel-quick/last.pt", {"kind": "gan", "config": C.to_dict(cfg), "charset": [], "step": step + 1,
    "epoch": 0, "models": {"generator": g.state_dict()}, "optimizers": {}, "scaler": None, "rng": CK.capture_rng(),
    "best": {}, "history": []})
print("saved", time.time() - t0)
