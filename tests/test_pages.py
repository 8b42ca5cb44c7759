"""Real page pairs (DIBCO): both folder layouts, every bad-pair error, patch sampling, DIBCO metrics
against doxapy, the page-mode config checks and one smoke run to a page-ledger entry and table rows.
Every page here is made by the test (no shared data, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docrestore import config as C
from docrestore import fingerprint as FP
from docrestore.data import pages as PG
from docrestore.evaluation import dibco
from docrestore.evaluation import metrics as M
from docrestore.figures import dibco_outputs as DO


def fake_page(h: int = 48, w: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scan uint8, ground truth uint8 0/255): dark strokes on a stained, noisy background."""
    rng = np.random.default_rng(seed)
    gt = np.full((h, w), 255, np.uint8)
    for _ in range(w // 12):
        y, x = int(rng.integers(4, h - 12)), int(rng.integers(0, w - 8))
        gt[y:y + int(rng.integers(4, 10)), x:x + int(rng.integers(1, 4))] = 0
        gt[y + 3:y + 5, x:x + int(rng.integers(3, 8))] = 0
    stain = np.linspace(150, 220, w)[None, :].repeat(h, 0)
    scan = np.where(gt == 0, 60, stain) + rng.normal(0, 12, (h, w))
    return np.clip(scan, 0, 255).astype(np.uint8), gt


def write_dibco(root: Path, sets=("SETA", "SETB"), per_set: int = 2, size=(48, 300)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for s_i, s in enumerate(sets):
        for i in range(per_set):
            scan, gt = fake_page(*size, seed=10 * s_i + i)
            Image.fromarray(scan).save(root / f"{s}_H{i + 1:02d}_source.png")
            Image.fromarray(gt).save(root / f"{s}_H{i + 1:02d}_target.png")
    return root


# ------------------------------------------------------------------------------- layouts
def test_dibco_layout_pairs_and_sets(tmp_path):
    root = write_dibco(tmp_path / "d")
    (root / "README.md").write_text("not an image")
    pairs = PG.find_pairs(root)
    assert [p.name for p in pairs] == ["SETA_H01", "SETA_H02", "SETB_H01", "SETB_H02"]
    page = pairs[0].load()
    assert page.image.dtype == np.float32 and page.image.shape == (48, 300)
    scan, gt = fake_page(seed=0)
    assert np.array_equal(page.ink, gt == 0)


def test_folders_layout_root_and_per_set(tmp_path):
    # one set in the root: gt as 0/1 in 8 bits and as 16-bit 0/65535, scans as tif and jpg
    one = tmp_path / "mine"
    (one / "imgs").mkdir(parents=True)
    (one / "gt").mkdir()
    scan, gt = fake_page(seed=3)
    Image.fromarray(scan).save(one / "imgs" / "p1.tif")
    Image.fromarray((gt // 255).astype(np.uint8)).save(one / "gt" / "p1.png")
    Image.fromarray(scan).save(one / "imgs" / "p2.jpg")
    Image.fromarray((gt.astype(np.uint16) * 257)).save(one / "gt" / "p2.png")
    pairs = PG.find_pairs(one)
    assert [(p.set, p.id) for p in pairs] == [("mine", "p1"), ("mine", "p2")]
    for p in pairs:
        assert np.array_equal(p.load().ink, gt == 0)
    # one sub-folder per set
    many = tmp_path / "many"
    for s in ("A", "B"):
        (many / s / "imgs").mkdir(parents=True)
        (many / s / "gt").mkdir()
        Image.fromarray(scan).save(many / s / "imgs" / "x.bmp")
        Image.fromarray(gt).save(many / s / "gt" / "x.png")
    assert [p.name for p in PG.find_pairs(many, "auto")] == ["A_x", "B_x"]


# ------------------------------------------------------------------------------ bad pairs
def test_missing_partner_is_named(tmp_path):
    root = write_dibco(tmp_path / "d")
    (root / "SETB_H02_target.png").unlink()
    with pytest.raises(PG.PageDataError, match=r"SETB_H02_source.png has no ground truth"):
        PG.find_pairs(root)
    root2 = write_dibco(tmp_path / "e")
    (root2 / "SETA_H01_source.png").unlink()
    with pytest.raises(PG.PageDataError, match=r"SETA_H01_target.png has no scan"):
        PG.find_pairs(root2)


def test_size_mismatch_unreadable_and_non_binary(tmp_path):
    root = write_dibco(tmp_path / "d", sets=("S",), per_set=3)
    scan, gt = fake_page(40, 300)
    Image.fromarray(gt).save(root / "S_H01_target.png")
    (root / "S_H02_source.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    grey = np.asarray(Image.open(root / "S_H03_target.png")).copy()
    grey[0, :3] = [10, 128, 200]
    Image.fromarray(grey).save(root / "S_H03_target.png")
    pairs = {p.id: p for p in PG.find_pairs(root)}
    with pytest.raises(PG.PageDataError, match=r"300x48 but its ground truth .* is 300x40"):
        pairs["H01"].load()
    with pytest.raises(PG.PageDataError, match=r"cannot read the scan .*S_H02_source.png"):
        pairs["H02"].load()
    with pytest.raises(PG.PageDataError, match=r"is not binary: 5 grey levels"):
        pairs["H03"].load()


def test_sets_by_name_validation_never_from_test(tmp_path):
    pairs = PG.find_pairs(write_dibco(tmp_path / "d", sets=("A", "B", "T"), per_set=3))
    s = PG.split_pages(pairs, ["A", "B"], ["T"], val_pages=2, load=False)
    assert [p.name for p in s.val] == ["A_H03", "B_H03"]
    assert {p.set for p in s.train} == {"A", "B"} and len(s.train) == 4
    assert [p.name for p in s.test] == ["T_H01", "T_H02", "T_H03"]
    with pytest.raises(PG.PageDataError, match=r"names \['X'\].*its sets: \['A', 'B', 'T'\]"):
        PG.split_pages(pairs, ["A", "X"], ["T"], 1)
    with pytest.raises(PG.PageDataError, match="both pages.train_sets and pages.test_sets"):
        PG.split_pages(pairs, ["A", "T"], ["T"], 1)


# --------------------------------------------------------------------------------- patches
def test_patch_sampling_crops_flips_and_padding(tmp_path):
    pairs = PG.find_pairs(write_dibco(tmp_path / "d", sets=("A",), per_set=2, size=(48, 300)))
    ds = PG.PatchDataset(pairs, 32, 64, per_page=20, seed=1)
    assert len(ds) == 40
    flips = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["degraded"].shape == (1, 32, 64) and item["clean"].shape == (1, 32, 64)
        assert item["has_clean"] is True and item["text"] == "" and item["target"].numel() == 0
        page = pairs[i // 20]
        y, x = map(int, item["id"].split("@")[1].split(","))
        a = page.image[y:y + 32, x:x + 64]
        d = item["degraded"][0].numpy()
        kinds = {"none": a, "h": a[:, ::-1], "v": a[::-1], "hv": a[::-1, ::-1]}
        hit = [k for k, v in kinds.items() if np.array_equal(v, d)]
        assert hit, "each patch is a crop of its page, possibly flipped"
        flips.add(hit[0])
        # the target is the same crop of the ground truth (1 = paper, 0 = ink)
        c = item["clean"][0].numpy()
        assert set(np.unique(c)) <= {0.0, 1.0}
    assert len(flips) >= 3  # flips happen
    assert np.array_equal(ds[5]["degraded"], ds[5]["degraded"])  # item i is always the same crop
    small = PG.PatchDataset(pairs, 64, 512, per_page=1, flips=False)
    item = small[0]
    assert item["degraded"].shape == (1, 64, 512)
    assert float(item["degraded"][0, 48:, :].min()) == 1.0 and float(item["degraded"][0, :, 300:].min()) == 1.0  # paper padding


# --------------------------------------------------------------------------------- metrics
def test_page_metrics_agree_with_doxapy(tmp_path):
    doxapy = pytest.importorskip("doxapy")
    for seed, (h, w) in enumerate([(61, 203), (96, 400)]):
        scan, gt = fake_page(h, w, seed=seed)
        gt_ink = gt == 0
        for name in ("otsu", "sauvola", "wolf"):
            pred_ink = dibco.reference_ink(name, scan.astype(np.float32) / 255)
            oracle = doxapy.calculate_performance(np.where(gt_ink, 0, 255).astype(np.uint8),
                                                  np.where(pred_ink, 0, 255).astype(np.uint8))
            ours = dibco.page_scores(pred_ink, gt_ink)
            assert ours["fmeasure"] == pytest.approx(oracle["fm"], abs=1e-6)
            assert ours["psnr"] == pytest.approx(oracle["psnr"], abs=1e-6)
            assert ours["drd"] == pytest.approx(oracle["drdm"], rel=1e-5)  # Doxa's weights are 6-digit integers
    assert M.drd(pred_ink, gt_ink) != pytest.approx(ours["drd"])  # the default NUBN counts the cut edge blocks


# ----------------------------------------------------------------------------------- config
@pytest.mark.parametrize("over, match", [
    (["train.ctc.weight=1"], "no transcription"),
    # refused already by config.validate (S1 with lambda 0 has no effect), naming the key
    (["train.ctc.weight=0", "train.scenario=S1"], "train.scenario"),
    (["train.ctc.weight=0", "train.scenario=frozen"], "early_stop_metric"),
    (["train.ctc.weight=0", "train.scenario=frozen", "train.early_stop_metric=val/psnr",
      "pages.references=[sauvola]"], "must include 'otsu'"),
])
def test_text_losses_are_refused_on_pages(over, match):
    from docrestore.training.pages import check_page_config

    with pytest.raises(C.ConfigError, match=match):
        check_page_config(C.load_config(profile="smoke", overrides=over))


# ------------------------------------------------------------------------------- smoke run
@pytest.mark.e2e
def test_smoke_run_writes_page_entry_and_table(tmp_path, capsys):
    from docrestore.study import pages as P

    root = write_dibco(tmp_path / "pages", sets=("TR", "TE"), per_set=2, size=(64, 300))
    over = [f"runs_dir={tmp_path}/runs", f"eval.ledger_dir={tmp_path}/ledger", "tracking.enabled=false",
            f"pages.root={root}", "pages.train_sets=[TR]", "pages.test_sets=[TE]", "pages.val_pages=1",
            "pages.tile=64", "pages.crop=32"]
    entries = P.run_pages(profile="smoke", arms=["supervised", "cgan"], overrides=over)
    assert [e["experiment"] for e in entries] == ["pages_supervised_TE", "pages_cgan_TE"]
    said = capsys.readouterr().out  # the plan is announced before anything trains
    assert "train  pages_supervised_TE: no ledger entry yet" in said and "estimate: 2 training(s)" in said
    on_disk = dibco.read_page_entries(tmp_path / "ledger", "smoke")
    assert {e["experiment"] for e in on_disk} == {"pages_supervised_TE", "pages_cgan_TE"}
    e = on_disk[0]
    assert e["train_sets"] == ["TR"] and e["test_sets"] == ["TE"] and e["val_pages"] == ["TR_H02"]
    assert e["pages"] == ["TE_H01", "TE_H02"] and e["profile"] == "smoke" and len(e["git_commit"]) >= 7
    assert set(e["references"]) == {"otsu", "sauvola"}
    for m in dibco.PAGE_METRICS:
        assert len(e["per_page"][m]) == 2 and np.isfinite(e["metrics"][m]["mean"])
    sup = next(x for x in on_disk if x["experiment"] == "pages_supervised_TE")
    assert all(h.get("train/loss_d") is None for h in sup["history"])  # no discriminator in the control
    table = DO.dibco_table(on_disk)
    assert "Otsu (reference) & own rule & TE" in table and "(pixel loss, no D) (smoke, CPU) & 0.5 & TE" in table
    assert "ERB, fine-tuned (published) & -- & H-DIBCO 2018 & 92.41 & 94.35 & 20.18 & 2.60" in table
    assert f"run_id=" in table and e["git_commit"][:7] in table
    # reused when asked again with the same settings
    again = P.run_pages(profile="smoke", arms=["supervised"], overrides=over)
    assert again[0]["date"] == sup["date"]
    # judged by the behaviour it recorded (and its pages' bytes), not by the bytes of the code
    assert sup["fingerprint"]["kind"] == "pages" and sup["data_hash"] == FP.local_page_data_hash(
        P.make_page_config(P.page_experiment("supervised", ["TE"]), "smoke", 0, over))
    assert "reuse  pages_supervised_TE: ledger entry of commit" in (said := capsys.readouterr().out)
    assert f"fingerprint {sup['fingerprint']['digest']} unchanged" in said
    paths = DO.write_outputs(tmp_path / "ledger", "smoke", tmp_path / "tables", tmp_path / "figures")
    assert (tmp_path / "tables" / "dibco.tex").exists() and any(p.suffix == ".png" for p in paths)
    prov = json.loads((tmp_path / "figures" / "dibco_crops.provenance.json").read_text())
    assert {x["experiment"] for x in prov["entries"]} == {"pages_supervised_TE", "pages_cgan_TE"}


def test_notebook_05_is_thin_and_parameterised():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "05_real_pages.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("profile", "train_sets", "test_sets", "init_from", "arms", "steps", "data_root", "overrides"):
        assert f"\n{name} = " in "\n" + params[0].source, name
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for banned in ("def ", "class ", "for ", "while ", "cuda", "/work/", "/tmp/"):
        assert banned not in code, banned
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # no outputs committed


def test_init_from_loads_generator_weights_and_checks_the_architecture(tmp_path):
    import torch

    from docrestore import checkpoint as CK
    from docrestore.models import build_generator

    cfg = C.load_config(profile="smoke")
    src = build_generator(cfg.generator)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.5)
    path = tmp_path / "g.pt"
    CK.save_checkpoint(path, {"kind": "gan", "config": C.to_dict(cfg), "models": {"generator": src.state_dict()}})
    dst = build_generator(cfg.generator)
    CK.init_generator(dst, path, cfg.generator)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    wider = C.load_config(profile="smoke", overrides=["generator.width=0.25"])
    with pytest.raises(CK.CheckpointError, match="generator.width=0.125"):
        CK.init_generator(build_generator(wider.generator), path, wider.generator)
    with pytest.raises(CK.CheckpointError, match="file not found"):
        CK.init_generator(dst, tmp_path / "none.pt", cfg.generator)


# ------------------------------------------------------------------ threshold and flip vote
class _Shift(__import__("torch").nn.Module):
    """A 'generator' whose output is the input darkened by 0.3: ink and paper both move down, so
    0.5 cuts into the paper and a lower threshold separates them again."""

    def forward(self, x):
        return x - 0.3


def _pages(tmp_path, n=2):
    root = write_dibco(tmp_path / "pp", sets=("V",), per_set=n, size=(48, 96))
    return [p.load() for p in PG.find_pairs(root)]


def test_threshold_chosen_on_validation_pages_and_used_by_val_only(tmp_path):
    import torch

    pages = _pages(tmp_path)
    cfg = C.load_config(profile="smoke", overrides=["pages.tile=48", "device=cpu"])
    t, by_t = dibco.choose_threshold(_Shift(), pages, cfg, torch.device("cpu"))
    assert set(by_t) == {f"{x:.2f}" for x in dibco.THRESHOLDS} and by_t[f"{t:.2f}"] == max(by_t.values())
    assert t < 0.5 and by_t[f"{t:.2f}"] > by_t["0.50"]  # the shift put paper below 0.5: a lower cut wins
    img = np.full((4, 4), 0.4, np.float32)
    assert dibco.binarize_restored(img, "fixed", threshold=0.3).all()  # fixed ignores a chosen threshold
    assert not dibco.binarize_restored(img, "val", threshold=0.3).any()
    assert dibco.threshold_label("val", 0.35) == "0.35 (val.)" and dibco.threshold_label("otsu") == "Otsu"
    assert dibco.threshold_label("fixed", 0.5) == "0.5"


def test_flip_vote_averages_the_page_and_its_mirror_image(tmp_path):
    import torch

    class LeftDark(torch.nn.Module):  # not mirror-symmetric: darkens the left half of every tile
        def forward(self, x):
            w = x.shape[-1]
            ramp = torch.linspace(-0.2, 0.2, w).view(1, 1, 1, w)
            return x + ramp

    page = _pages(tmp_path, n=1)[0]
    dev = torch.device("cpu")
    plain = C.load_config(profile="smoke", overrides=["pages.tile=48", "restore.overlap=0"])
    vote = C.load_config(profile="smoke", overrides=["pages.tile=48", "restore.overlap=0", "pages.flip_vote=true"])
    a = dibco.restore_page(LeftDark(), page.image, plain, dev)
    b = dibco.restore_page(LeftDark(), page.image, vote, dev)
    assert not np.allclose(a, page.image, atol=1e-3)
    inside = (page.image > 0.25) & (page.image < 0.75)  # away from the clip at 0 and 1
    assert np.allclose(b[inside], page.image[inside], atol=1e-4)  # the ramp and its mirror cancel


def test_table_states_each_rows_binarisation_and_groups_published_rows_by_test_set():
    base = {"mean": 80.0, "lo": 79.0, "hi": 81.0, "n": 2}
    metrics = {m: dict(base) for m in dibco.PAGE_METRICS}
    common = {"test_sets": ["DIBCO2017"], "pages": ["DIBCO2017_H01"], "train_sets": ["DIBCO2009"],
              "references": {"otsu": metrics, "sauvola": metrics}, "profile": "full", "device": "cpu", "git_commit": "abc1234",
              "mlflow_run_id": "r", "run_dir": "runs/x", "date": "2026-12-04"}
    cfg = {"pages": {"references": ["otsu", "sauvola"], "flip_vote": False}, "eval": {"ledger_dir": "paper/results"}}
    entries = [
        {**common, "experiment": "a", "method": "cGAN", "binarize": "fixed", "metrics": metrics, "config": cfg},
        {**common, "experiment": "b", "method": "cGAN val", "binarize": "val", "threshold": 0.45, "flip_vote": True,
         "metrics": metrics, "config": cfg},
        {**common, "experiment": "c", "method": "cGAN otsu", "binarize": "otsu", "threshold": None,
         "metrics": metrics, "config": cfg},
    ]
    table = DO.dibco_table(entries)
    assert "cGAN & 0.5 & DIBCO2017" in table and "cGAN val & 0.45 (val.), flip vote & DIBCO2017" in table
    assert "cGAN otsu & Otsu & DIBCO2017" in table
    heads = [line for line in table.splitlines() if "Published, tested on" in line]
    assert [h.split("tested on ")[1].split("}")[0] for h in heads] == ["DIBCO 2017", "H-DIBCO 2016", "H-DIBCO 2018"]
    body = table.split("Published, tested on DIBCO 2017")[1].split("Published, tested on H-DIBCO 2016")[0]
    assert "DIBCO 2017 contest winner (published) & -- & DIBCO 2017 & 91.04 & -- & 18.28 & --" in body
    assert "DE-GAN (published) & -- & H-DIBCO 2018 & 77.59 & 85.74 & 16.16 & 7.93" in table
    assert DO.set_label("DIBCO2017") == "DIBCO 2017" and DO.set_label("h-dibco2018") == "H-DIBCO 2018"


def test_notebook_05_shows_the_published_rows_grouped_by_their_test_set():
    from docrestore.study import pages as P

    df = P.published_table(["DIBCO2017"])
    groups = list(dict.fromkeys(df.index.get_level_values(0)))
    assert groups[0] == "DIBCO 2017" and set(groups) == {p["test"] for p in DO.PUBLISHED}
    erb = df.loc[("H-DIBCO 2018", "ERB, fine-tuned")]
    assert (erb["pfmeasure"], erb["drd"]) == (94.35, 2.60)
    assert df.loc[("DIBCO 2017", "DocEnTr")].isna()["fmeasure"]  # not reported: no number made up
    assert list(P.published_table(None).index.get_level_values(0))[0] == "DIBCO 2017"  # pages.test_sets
