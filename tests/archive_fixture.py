"""An archive of two transcribed pages (PAGE XML), ingested as test lines only, and the tiny
untrained generator and reader checkpoints (smoke size) that evaluate it: what an archivist
brings to `docrestore evaluate` and to notebook 06, made here in a second."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from docrestore import checkpoint as CK
from docrestore import cli
from docrestore import config as C

PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGES = {"folio1": ["Uwer frowen gnade", "schick ich hie", "ein stuckly brief"],
         "folio2": ["von einem man", "der wolt gan", "zu der kilchen"]}


def _page(src: Path, name: str, texts: list[str]) -> None:
    """A light page with each text written in dark ink on its own band, and its PAGE XML."""
    img = Image.new("L", (420, 60 + 50 * len(texts)), 215)
    draw = ImageDraw.Draw(img)
    body = ""
    for i, text in enumerate(texts):
        top = 30 + 50 * i
        draw.text((20, top + 8), text, fill=25)
        box = f"10,{top} 400,{top} 400,{top + 34} 10,{top + 34}"
        body += (f'<TextLine id="l{i + 1}"><Coords points="{box}"/>'
                 f'<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine>')
    img.save(src / f"{name}.png")
    (src / f"{name}.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{PAGE_NS}"><Page imageFilename="{name}.png" '
        f'imageWidth="{img.width}" imageHeight="{img.height}"><TextRegion id="r1">{body}</TextRegion>'
        f'</Page></PcGts>', encoding="utf-8")


def ingest_archive(root: Path) -> Path:
    """The two pages ingested as an archive tests them: every line a test line. Returns the manifest."""
    src = root / "export"
    src.mkdir(parents=True)
    for name, texts in PAGES.items():
        _page(src, name, texts)
    # the README's command (section "Your own archive lines")
    assert cli.main(["ingest", str(src), "--out", str(root / "lines"), "--test-share", "1", "--val-share", "0"]) == 0
    return root / "lines" / "manifest.jsonl"


def tiny_checkpoints(root: Path) -> tuple[Path, Path]:
    """(generator, reader): untrained smoke-size models, saved as docrestore checkpoints. They show
    that everything runs and is written, not that restoration helps."""
    from docrestore.models import build_generator, build_recognizer

    cfg = C.load_config(profile="smoke", overrides=["device=cpu", "generator.width=0.03"])
    torch.manual_seed(0)
    chars = sorted(set("".join(t for texts in PAGES.values() for t in texts)))
    common = {"config": C.to_dict(cfg), "charset": chars, "step": 0, "epoch": 0, "optimizers": {},
              "scaler": None, "rng": CK.capture_rng(), "best": {}, "history": []}
    gen = CK.save_checkpoint(root / "gan" / "best_val_cer.pt", {
        **common, "kind": "gan", "models": {"generator": build_generator(cfg.generator).state_dict()}})
    reader = build_recognizer(cfg.recognizer, num_classes=len(chars) + 1, height=cfg.data.height)
    rd = CK.save_checkpoint(root / "reader" / "best_val_cer.pt", {
        **common, "kind": "recognizer", "models": {"recognizer": reader.state_dict()}})
    return gen, rd
