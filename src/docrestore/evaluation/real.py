"""Real lines without a clean image: does restoration make them easier to read?

For each test line the held-out reader reads the degraded line and the restored one; the entry
holds per-line CER/WER of both, their means with percentile-bootstrap intervals, and the paired
Wilcoxon test of restored vs degraded (the line is the unit). There is no PSNR/SSIM: there is no
clean image to compare with. Entries go to ``<eval.ledger_dir>/<profile>/real/<experiment>.json``,
beside (not among) the synthetic ledger entries, whose contract requires PSNR/SSIM.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

import torch

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..files import write_json_atomic
from ..data import manifest as MF
from ..data import loading
from . import metrics as M
from . import stats as S

log = logging.getLogger("docrestore")

KIND = "real_lines"
READS = ("degraded", "restored")


def real_entry_path(cfg: C.Config, experiment: str) -> Path:
    return C.resolve_path(cfg.eval.ledger_dir) / cfg.profile / "real" / f"{R.slug(experiment)}.json"


def read_real_entry(cfg: C.Config, experiment: str) -> dict:
    return json.loads(real_entry_path(cfg, experiment).read_text(encoding="utf-8"))


def _lines(cfg: C.Config, split: str):
    """The ``split`` lines of ``data.manifest`` at ``data.height x data.width``."""
    from ..data.dataset import LineDataset
    from ..data.synth import ensure_dataset

    manifest = Path(ensure_dataset(cfg))
    return LineDataset(manifest, split, cfg.data.height, cfg.data.width, MF.charset_for(manifest))


@torch.no_grad()
def read_before_after(generator, reader, reader_chars: list[str], lines, cfg: C.Config,
                      device: torch.device) -> dict:
    """Per line: the reader's text on the degraded and on the restored line, CER and WER of both."""
    from ..data.charset import Charset
    from ..models.recognizer import greedy_decode

    charset = Charset(reader_chars)
    generator.eval()
    out = {"ids": [], "texts": [], "preds": {k: [] for k in READS},
           "per_line": {f"{m}_{k}": [] for m in ("cer", "wer") for k in READS}}
    for batch in loading.loader(lines, cfg, batch_size=16):
        degraded = batch["degraded"].to(device)
        with D.autocast(device):
            restored = generator(degraded).float().clamp(0, 1)
            images = {"degraded": degraded, "restored": restored}
            hyps = {k: greedy_decode(reader(images[k]).logits.float(), charset) for k in READS}
        for j, text in enumerate(batch["texts"]):
            for k in READS:
                out["preds"][k].append(hyps[k][j])
                out["per_line"][f"cer_{k}"].append(float(M.cer(text, hyps[k][j])))
                out["per_line"][f"wer_{k}"].append(float(M.wer(text, hyps[k][j])))
        out["ids"] += batch["ids"]
        out["texts"] += batch["texts"]
    return out


def evaluate_real_lines(cfg: C.Config, checkpoint: str | Path, *, experiment: str, write: bool = True,
                        lines=None, split: str = "test") -> dict:
    """Restore the ``split`` lines of ``data.manifest`` (or the given ``lines``) with the generator
    of ``checkpoint`` and write the before/after entry (see the module docstring)."""
    from ..training.recognizer import ensure_recognizer

    device = D.pick_device(cfg.device)
    generator, _ = CK.load_generator(checkpoint, device)
    reader_path = ensure_recognizer(cfg, "reader")
    reader, reader_chars, _ = CK.load_recognizer(reader_path, device)
    lines = lines if lines is not None else _lines(cfg, split)
    base = lines.dataset if isinstance(lines, torch.utils.data.Subset) else lines
    missing = sorted(set("".join(base.records[i]["text"] for i in (
        lines.indices if isinstance(lines, torch.utils.data.Subset) else range(len(base))))) - set(reader_chars))
    if missing:  # the reader can never produce them: the CER counts them as errors, say so
        log.warning("the reader %s does not know %d character(s) of these lines: %s; fine-tune it on "
                    "transcribed lines of the same hands (recognizer_train.init)", reader_path, len(missing),
                    "".join(missing))
    res = read_before_after(generator, reader, reader_chars, lines, cfg, device)
    n_boot = cfg.eval.bootstrap
    metrics = {k: S.summarize(v, n_resamples=n_boot, seed=cfg.seed) for k, v in res["per_line"].items()}
    corpus = {f"{m}_{k}": fn(res["texts"], res["preds"][k]) for k in READS
              for m, fn in (("cer", M.cer_corpus), ("wer", M.wer_corpus))}
    paired = {m: S.paired_test(res["per_line"][f"{m}_restored"], res["per_line"][f"{m}_degraded"])
              for m in ("cer", "wer")}
    git = R.git_info()
    entry = {
        "kind": KIND, "experiment": R.slug(experiment), "profile": cfg.profile,
        "manifest": str(base.manifest), "split": split, "height": cfg.data.height, "width": cfg.data.width,
        "fit_counts": base.fit_counts,
        "checkpoint": str(checkpoint), "reader": str(reader_path), "reader_chars_missing": missing,
        "metrics": metrics, "corpus": corpus, "paired": paired,
        "per_line": {k: [round(v, 6) for v in vals] for k, vals in res["per_line"].items()},
        # Line ids and numbers only: the transcriptions and readings stay with the user's data
        # (an archive's text may not be free to publish with the results).
        "line_ids": res["ids"],
        "config": C.to_dict(cfg), "git_commit": git["commit"], "git_dirty": git["dirty"],
        "device": D.describe(device), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "data_hash": MF.manifest_hash(base.manifest),
    }
    log.info("%s (%d real lines): CER %.4f degraded -> %.4f restored (paired Wilcoxon p=%.3g), "
             "WER %.4f -> %.4f", experiment, len(res["ids"]), metrics["cer_degraded"]["mean"],
             metrics["cer_restored"]["mean"], paired["cer"]["p_value"], metrics["wer_degraded"]["mean"],
             metrics["wer_restored"]["mean"])
    if write:
        path = real_entry_path(cfg, experiment)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, entry, sort_keys=True)
        log.info("real-lines entry written: %s", path)
    return entry
