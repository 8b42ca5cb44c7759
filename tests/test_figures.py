"""Figures and tables from a fake but schema-valid ledger written to a temporary folder.

The fake entries are built with the ledger's own ``make_entry``/``write_entry`` (so they pass
``validate_entry``) and only ever live under pytest's tmp_path, never in paper/results.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image, ImageDraw

from docrestore import config as C
from docrestore.evaluation import ledger as L
from docrestore.evaluation import stats
from docrestore.figures import entries as E
from docrestore.figures import paper, plots, style, tables

PROFILE = "smoke"
N_LINES = 12
TEXTS = ["anno 1723 den", "ende soo voort", "Item betaelt", "de heer van", "in den jaere", "ontfangen"]

# (experiment, method, group, config overrides, quality in [0, 1]: higher is better)
FAKE_EXPERIMENTS = [
    ("baseline_cgan", "cGAN (\u03bb=0)", "baseline", ["train.ctc.weight=0", "train.scenario=frozen"], 0.30),
    ("baseline_s1", "ERB S1", "baseline", ["train.scenario=S1"], 0.45),
    ("baseline_s2", "ERB S2", "baseline", ["train.scenario=S2"], 0.40),
    ("anneal_linear", "CTC linear ramp", "annealing",
     ["train.ctc.weight=5", "train.ctc.schedule=linear", "train.ctc.warmup=8", "train.ctc.ramp=16"], 0.55),
    ("anneal_cosine", "CTC cosine ramp", "annealing",
     ["train.ctc.weight=5", "train.ctc.schedule=cosine", "train.ctc.warmup=8", "train.ctc.ramp=16"], 0.60),
    ("anneal_switch", "CTC abrupt switch", "annealing",
     ["train.ctc.weight=5", "train.ctc.schedule=switch", "train.ctc.warmup=8", "train.ctc.ramp=0"], 0.20),
    ("feature_w0_cnn_last", "feature loss w=0 (cnn_last)", "feature_weight",
     ["train.feature_loss.weight=0", "train.feature_loss.taps=[cnn_last]"], 0.35),
    ("feature_w1_cnn_last", "feature loss w=1 (cnn_last)", "feature_weight",
     ["train.feature_loss.weight=1", "train.feature_loss.taps=[cnn_last]"], 0.55),
    ("feature_w5_cnn_last", "feature loss w=5 (cnn_last)", "feature_weight",
     ["train.feature_loss.weight=5", "train.feature_loss.taps=[cnn_last]"], 0.65),
    ("feature_w5_cnn1", "feature loss w=5 (cnn1)", "feature_tap",
     ["train.feature_loss.weight=5", "train.feature_loss.taps=[cnn1]"], 0.50),
    ("feature_w5_cnn2", "feature loss w=5 (cnn2)", "feature_tap",
     ["train.feature_loss.weight=5", "train.feature_loss.taps=[cnn2]"], 0.58),
    ("dual_modal_w0", "dual-modal D", "dual_modal",
     ["discriminator.name=dual_modal", "train.ctc.weight=0", "train.feature_loss.weight=0"], 0.50),
    ("dual_modal_w5", "dual-modal D + feature loss w=5", "dual_modal",
     ["discriminator.name=dual_modal", "train.ctc.weight=0", "train.feature_loss.weight=5"], 0.70),
]
EXPECTED_FIGURES = set(plots.FIGURES)
EXPECTED_TABLES = set(tables.TABLES)


# ------------------------------------------------------------------------ fake ledger
def _line_image(text: str, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A 32 x 256 grey text line in [0, 1], ink dark; ``noise`` adds a stain and speckle."""
    im = Image.new("L", (256, 32), 255)
    ImageDraw.Draw(im).text((6, 9), text, fill=0)
    a = np.asarray(im, dtype=np.float64) / 255.0
    if noise > 0:
        stain = np.exp(-((np.arange(256) - rng.uniform(40, 200)) / 60.0) ** 2)[None, :] * 0.4 * noise
        a = np.clip(a - stain + rng.normal(0, 0.15 * noise, a.shape), 0, 1)
    return a


def _history(quality: float, schedule: str, rng: np.random.Generator) -> list[dict]:
    hist = []
    for step in range(0, 41, 2):
        ramp = min(1.0, max(0.0, (step - 8) / 16)) if schedule != "switch" else float(step >= 8)
        rec = {"step": step,
               "train/loss_g": float(12 * math.exp(-step / 15) + 1 + rng.uniform(0, 0.3)),
               "train/loss_d": float(0.25 + 0.05 * rng.standard_normal() ** 2),
               "train/ctc_monitor": float(30 * math.exp(-step * quality / 10) + 2),
               "train/ctc_weight": 5.0 * ramp,
               "train/gradnorm_adv": float(0.5 + 0.1 * rng.random()), "train/gradnorm_pixel": 2.0 - step / 40,
               "train/gradnorm_ctc": 5.0 * ramp * float(1 + rng.random()),
               "train/gradnorm_feature": 0.3 * quality}
        if step % 10 == 0:  # validation only every 10 steps: keys missing elsewhere
            rec["val/psnr"] = 12 + 10 * quality * step / 40
            rec["val/cer"] = max(0.02, 0.8 - quality * step / 40)
        hist.append(rec)
    return hist


def _summaries(per_line: dict) -> dict:
    return stats.summarize_metrics(per_line, n_resamples=20, seed=0)


def build_fake_ledger(ledger_dir: Path, experiments=FAKE_EXPERIMENTS, profile: str = PROFILE,
                      n_samples: int = 3) -> list[dict]:
    """Write schema-valid fake entries (and their sample PNGs) under ledger_dir; return them."""
    rng = np.random.default_rng(0)
    ids = [f"test-{i:04d}" for i in range(N_LINES)]
    base_cer = rng.uniform(0.3, 0.9, N_LINES)
    refs = {name: _summaries({m: list(rng.uniform(lo, hi, N_LINES)) for m, (lo, hi) in
                              {"psnr": (8, 12), "ssim": (0.4, 0.6), "cer": (0.5, 1.0), "wer": (0.7, 1.0),
                               "cer_loss_reader": (0.5, 1.0), "wer_loss_reader": (0.7, 1.0)}.items()})
            for name in L.REFERENCE_METHODS}
    written = []
    for k, (exp, method, group, overrides, q) in enumerate(experiments):
        cfg = C.load_config(overrides=overrides + ["eval.ledger_dir=" + str(ledger_dir)], profile=profile)
        cer = np.clip(base_cer * (1.2 - q) + rng.normal(0, 0.03, N_LINES), 0, None)
        per_line = {"psnr": list(10 + 15 * q + rng.normal(0, 1, N_LINES)),
                    "ssim": list(np.clip(0.5 + 0.4 * q + rng.normal(0, 0.02, N_LINES), 0, 1)),
                    "cer": list(cer), "wer": list(np.clip(cer * 1.8, 0, None)),
                    "cer_loss_reader": list(cer * 0.8), "wer_loss_reader": list(np.clip(cer * 1.5, 0, None))}
        samples = []
        for i in range(n_samples):
            text = TEXTS[i % len(TEXTS)]
            clean = _line_image(text, rng, 0.0)
            imgs = {"degraded": _line_image(text, rng, 1.0), "clean": clean,
                    method: np.clip(clean * q + _line_image(text, rng, 1.0) * (1 - q), 0, 1)}
            paths = L.save_sample_images(imgs, ledger_dir, profile, exp, ids[i])
            samples.append({"id": ids[i], "text": text, "lines": {
                "degraded": {"pred": text[:-3], "cer": 0.6, "image": paths["degraded"]},
                "clean": {"pred": text, "cer": 0.0, "image": paths["clean"]},
                method: {"pred": text if cer[i] < 0.3 else text[::2], "cer": float(cer[i]),
                         "image": paths[method]}}})
        entry = L.make_entry(
            experiment=exp, method=method, group=group, profile=profile, metrics=_summaries(per_line),
            per_line=per_line, references=refs, device="cpu (test)", data_hash="fakehash1234",
            config=cfg, samples=samples,
            history=_history(q, str(cfg.train.ctc.schedule), rng),
            mlflow_run_id=f"{k:02d}fa4e{k:02d}c0ffee{k:04d}", run_dir=f"runs/fake-{exp}",
            git={"commit": f"{k % 2}bad5eed" + "0" * 32, "dirty": k == 1},
            date="2024-01-01T00:00:00")
        entry["line_ids"] = ids
        entry["val_reader"] = {"cer": float(max(0.02, 0.8 - q)), "split": "val", "reader": "held-out"}
        entry["reader_clean"] = _summaries({"cer": list(rng.uniform(0, 0.1, N_LINES)),
                                            "wer": list(rng.uniform(0, 0.3, N_LINES))})
        L.write_entry(entry, ledger_dir)
        written.append(entry)
    return written


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ledger")
    build_fake_ledger(root)
    return root


@pytest.fixture(scope="module")
def made(ledger, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("paper")
    return paper.make_all(ledger, out / "figures", out / "tables", profile=PROFILE)


@pytest.fixture(scope="module")
def loaded(ledger) -> list[dict]:
    return paper.load_entries(ledger, PROFILE)


# ------------------------------------------------------------------------------- tests
def test_fake_entries_are_schema_valid(ledger):
    entries = L.read_ledger(ledger, PROFILE)
    assert len(entries) == len(FAKE_EXPERIMENTS)
    for e in entries:
        L.validate_entry(e)


def test_make_all_writes_every_figure_and_table(made):
    assert made["skipped"] == {}
    assert set(made["figures"]) == EXPECTED_FIGURES
    assert set(made["tables"]) == EXPECTED_TABLES
    for name, paths in made["figures"].items():
        suffixes = sorted(Path(p).name.removeprefix(name) for p in paths)
        assert suffixes == [".pdf", ".png", ".provenance.json"], name
        for p in paths:
            assert Path(p).stat().st_size > 0, p
        assert Path(paths[0]).read_bytes()[:5] == b"%PDF-"
    for path in made["tables"].values():
        assert Path(path).suffix == ".tex" and Path(path).stat().st_size > 0
    json.dumps(made)  # the report is JSON-ready
    assert made["identical"] == E.identical_arms(paper.load_entries(made["ledger_dir"], PROFILE))


def test_figures_are_journal_sized_png_at_300_dpi(made):
    for name, paths in made["figures"].items():
        png = next(p for p in paths if p.endswith(".png"))
        with Image.open(png) as im:
            w, h = im.size
        assert w / style.DPI <= 7.2 + 1e-6, f"{name} is {w / style.DPI:.2f} in wide"
        assert h / style.DPI <= style.MAX_HEIGHT_IN + 1.0, f"{name} is {h / style.DPI:.2f} in tall"
        assert w >= 3.4 * style.DPI  # at least a single column at 300 dpi


@pytest.mark.parametrize("name", sorted(plots.FIGURES))
def test_each_figure_is_legible_and_traceable(loaded, name):
    fig = plots.FIGURES[name](loaded)
    try:
        assert fig.get_size_inches()[0] <= 7.2
        sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
                 if hasattr(t, "get_text") and t.get_text().strip()]
        assert sizes and min(sizes) >= style.SMALL_FONT_PT, f"{name}: font {min(sizes)} pt"
        prov = style.figure_provenance(fig)
        assert prov is not None and prov["profile_label"].startswith("smoke profile")
        footer = fig._supxlabel.get_text()
        assert "not the paper's full-profile result" in " ".join(footer.split())
        assert re.search(r"=\w{8}", footer), "run ids in the footer"
        for rec in prov["entries"]:
            assert rec["mlflow_run_id"]
    finally:
        plt.close(fig)


def test_footer_sidecar_names_every_run(made, loaded):
    side = json.loads(Path(made["figures"]["ablation_bars"][2]).read_text())
    ids = {r["mlflow_run_id"] for r in side["entries"]}
    arms = E.ablation_arms(loaded)
    assert ids == {e["mlflow_run_id"] for _, e, _ in arms}
    assert [lab for lab, _, _ in arms] == ["baseline (ERB)", "CTC annealing", "feature loss",
                                           "dual-modal D", "both"]


def test_tables_carry_profile_run_ids_and_bold_best(made, loaded):
    main = Path(made["tables"]["main_comparison"]).read_text()
    assert "smoke profile" in main and "not the paper's full-profile result" in main
    assert r"\toprule" in main and r"\bottomrule" in main and r"\begin{table*}" in main
    for ref in ("Degraded input", "Otsu", "Sauvola"):
        assert ref in main
    rows = [ln for ln in main.splitlines() if ln.endswith(r"\\") and not ln.startswith("%")]
    body = [r for r in rows if r.startswith(("Degraded", "Otsu", "Sauvola")) or "(smoke, CPU)" in r]
    assert len({r.count("&") for r in rows}) == 1, "every row has the same number of cells"
    assert len(body) == 3 + len(E.headline_entries(loaded))
    assert main.count(r"\textbf{") >= 4  # one best per metric column at least
    # every method row is preceded by its traceability comment
    lines = main.splitlines()
    for i, ln in enumerate(lines):
        if "(smoke, CPU)" in ln and ln.endswith(r"\\"):
            assert lines[i - 1].startswith("% experiment=") and "run_id=" in lines[i - 1]
    for e, _ in E.headline_entries(loaded):
        assert f"run_id={e['mlflow_run_id']}" in main
    anneal = Path(made["tables"]["ablation_annealing"]).read_text()
    for e in loaded:
        if e["group"] == "annealing":
            assert e["mlflow_run_id"] in anneal and e["experiment"] in anneal
    assert "(ref.)" in anneal
    # a p-value cell, marked with what was tested (over seeds, or within one seed's test lines)
    assert re.search(r"& (\$<\$0\.001|0\.\d{3}|1\.000)\$\^\{[tw]\}\$ \\\\", anneal), "a p-value cell"
    taps = Path(made["tables"]["ablation_feature_tap"]).read_text()
    assert "cnn\\_last" in taps, "the weight-sweep arm at the tap weight is in the tap table"


def test_p_value_matches_paired_wilcoxon(loaded):
    base = E.baseline_entry(loaded)
    other = next(e for e in loaded if e["experiment"] == "dual_modal_w5")
    p, why = tables.p_value(other, base)
    assert why == ""
    expected = stats.paired_test(other["per_line"]["cer"], base["per_line"]["cer"])["p_value"]
    assert p == pytest.approx(expected)
    assert tables.p_value(base, base) == (None, "reference")
    shuffled = {**other, "line_ids": list(reversed(other["line_ids"])),
                "per_line": {"cer": list(reversed(other["per_line"]["cer"]))}}
    assert tables.p_value(shuffled, base)[0] == pytest.approx(expected), "lines matched by id"
    moved = {**other, "data_hash": "another"}
    assert tables.p_value(moved, base) == (None, "different test sets (data_hash)")


def test_qualitative_grid_shows_failure_cases(loaded):
    main = E.main_method(loaded)
    assert main["experiment"] == "dual_modal_w5"  # lowest validation CER of the fake arms
    picked = plots._pick_lines(main, 3)
    cers = {s["id"]: s["lines"][main["method"]]["cer"] for s in main["samples"]}
    worst = max(cers, key=cers.get)
    assert picked[0] == (worst, "highest CER")
    assert any(why == "lowest CER" for _, why in picked)


def test_missing_group_is_skipped_with_its_name(tmp_path, monkeypatch):
    # Each figure is drawn, but written as empty files: rendering the PDF and the 300 dpi PNG is
    # what test_make_all_writes_every_figure_and_table checks, and most of make_all's CPU time.
    def savefig(fig, out_dir, name):
        assert style.figure_provenance(fig) is not None, name
        paths = [Path(out_dir) / f"{name}{suffix}" for suffix in (".pdf", ".png", ".provenance.json")]
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        return paths

    monkeypatch.setattr(style, "savefig", savefig)
    only_base = [x for x in FAKE_EXPERIMENTS if x[2] == "baseline"]
    build_fake_ledger(tmp_path / "ledger", only_base, n_samples=2)
    report = paper.make_all(tmp_path / "ledger", tmp_path / "fig", tmp_path / "tab", profile=PROFILE)
    assert "ctc_annealing" in report["skipped"] and "'annealing'" in report["skipped"]["ctc_annealing"]
    assert "'feature_weight'" in report["skipped"]["feature_weight_sweep"]
    assert "'feature_tap'" in report["skipped"]["feature_tap_sweep"]
    assert "'dual_modal'" in report["skipped"]["ablation_dual_modal"]
    assert "make paper-figures" in report["skipped"]["ablation_bars"]
    assert {"qualitative_grid", "training_curves"} <= set(report["figures"])
    assert {"main_comparison", "reader_check"} <= set(report["tables"])
    assert not (tmp_path / "fig" / "ctc_annealing.pdf").exists()


def test_plot_raises_missing_results_naming_the_group(loaded):
    without = [e for e in loaded if e["group"] != "annealing"]
    with pytest.raises(E.MissingResults, match="'annealing'"):
        plots.ctc_annealing(without)


def test_empty_ledger_says_to_run_the_experiments(tmp_path):
    with pytest.raises(paper.EmptyLedgerError, match="run the experiments first"):
        paper.make_all(tmp_path, tmp_path / "f", tmp_path / "t", profile="quick")


def test_savefig_refuses_a_figure_without_footer(tmp_path):
    fig, _ = style.new_figure()
    with pytest.raises(ValueError, match="traceability footer"):
        style.savefig(fig, tmp_path, "bare")
    plt.close(fig)
    with pytest.raises(ValueError, match="exceeds"):
        style.new_figure(width=8.0)


def test_profile_label_marks_reduced_profiles():
    assert style.profile_label(["full"]) == "full profile"
    assert "not the paper's full-profile result" in style.profile_label(["full", "quick"])
    assert style.profile_label(["quick"]).startswith("quick profile (CPU)")


def test_latex_escape():
    assert tables.latex_escape("a_b & 5% \u03bb") == r"a\_b \& 5\% $\lambda$"


def test_make_figures_stage(ledger, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(plots, "FIGURES", {"ablation_bars": plots.ablation_bars})
    shutil.copytree(ledger, tmp_path / "results")  # figures and tables go beside the ledger folder
    cfg = C.load_config(profile=PROFILE, overrides=[f"eval.ledger_dir={tmp_path / 'results'}"])
    assert paper.output_dirs(tmp_path / "results") == (tmp_path / "figures", tmp_path / "tables")

    class FakeRun:
        written = {}

        def write_json(self, name, obj):
            self.written[name] = obj

    run = FakeRun()
    report = paper.make_figures(cfg, run)
    assert (tmp_path / "figures" / "ablation_bars.pdf").stat().st_size > 0
    assert (tmp_path / "tables" / "main_comparison.tex").exists()
    assert run.written["figures_report.json"] is report


NOTEBOOK = C.PROJECT_ROOT / "notebooks" / "04_evaluation_figures.ipynb"


@pytest.mark.slow
def test_notebook_04_runs_on_the_fake_ledger(ledger, tmp_path):
    papermill = pytest.importorskip("papermill")
    t0 = time.time()
    out = tmp_path / "04.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), progress_bar=False, kernel_name="python3",
        parameters={"profile": PROFILE, "ledger_dir": str(ledger),
                    "figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")})
    for name in EXPECTED_FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
    for name in EXPECTED_TABLES:
        assert (tmp_path / "tables" / f"{name}.tex").stat().st_size > 0
    text = out.read_text()
    assert "image/png" in text and "main_comparison" in text
    print(f"notebook 04 ran in {time.time() - t0:.1f} s")


def test_notebook_04_is_thin():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for key in ("profile", "ledger_dir", "figures_dir", "tables_dir"):
        assert re.search(rf"^{key} = ", params[0].source, re.M), key
    for c in code:
        assert not re.search(r"^\s*(def|class|for|while) ", c.source, re.M), c.source
    assert sum("make_all(" in c.source for c in code) == 1


def test_main_tex_includes_every_figure_and_table():
    tex = (C.PROJECT_ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    body = tex[tex.index(r"\begin{document}"):]
    # the line ledger's figures and tables, and the DIBCO page benchmark's (evaluation/dibco.py)
    assert set(re.findall(r"\\paperfigure\{(\w+)\}", body)) == EXPECTED_FIGURES | {"dibco_crops"}
    assert set(re.findall(r"\\papertable\{(\w+)\}", body)) == EXPECTED_TABLES | {"dibco"}
    assert r"\documentclass[twocolumn" in tex and r"\usepackage{booktabs}" in tex


# ------------------------------------------------------------------------- figure polish
def test_weight_sweep_is_drawn_at_the_real_weights(loaded):
    fig = plots.feature_weight_sweep(loaded)
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [0.0, 1.0, 5.0]  # 0, 1, 5: not evenly spaced categories
    assert "over test lines" in " ".join(t.get_text() for t in fig.legends[0].get_texts())


def test_bar_labels_do_not_repeat_and_caption_says_what_intervals_cover(loaded):
    fig = plots.ablation_bars(loaded)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "dual-modal D" in labels and not any(lab.startswith("dual-modal D:") for lab in labels)
    assert "95% bootstrap interval over test lines" in fig._suptitle.get_text()


def test_balanced_arm_is_labelled_with_its_effective_weight():
    entry = {"group": "annealing", "config": {"train": {"ctc": {"schedule": "balanced", "weight": 5.0, "alpha": 1.0}}},
             "history": [{"step": 1, "train/ctc_weight": 0.0}, {"step": 2, "train/ctc_weight": 0.1},
                         {"step": 3, "train/ctc_weight": 0.12}]}
    assert plots.annealing_label(entry) == "balanced (\u03b1=1, eff. \u03bb\u22480.11)"


# ------------------------------------------------------------- what the figures claim
def test_identical_annealing_arms_are_drawn_once_under_both_names(loaded):
    import copy

    arms = [e for e in loaded if e["group"] == "annealing"]
    twin = copy.deepcopy(next(e for e in arms if e["experiment"] == "anneal_linear"))
    twin["experiment"] = "anneal_constant"
    twin["config"]["train"]["ctc"]["schedule"] = "constant"
    fig = plots.ctc_annealing(list(loaded) + [twin])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(" = " in lab and "constant" in lab and "linear" in lab for lab in labels)
    drawn = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    assert len(drawn) == len(arms)  # the twin adds no line of its own
    plt.close(fig)


def _tap_entry(name, group, taps, pixel="bce"):
    return {"experiment": name, "group": group,
            "config": {"train": {"pixel_loss": pixel, "feature_loss": {"weight": 5.0, "taps": taps}}}}


def test_tap_sweep_has_one_tick_per_tap_and_leaves_out_the_l1_pixel_arm():
    entries = [_tap_entry("feature_w5_cnn1", E.FEATURE_TAP, ["cnn1"]),
               _tap_entry("feature_w5_cnn2", E.FEATURE_TAP, ["cnn2"]),
               _tap_entry("feature_w5_cnn_last", E.FEATURE_WEIGHT, ["cnn_last"]),
               _tap_entry("feature_w5_cnn_last_pixl1", E.FEATURE_WEIGHT, ["cnn_last"], pixel="l1")]
    names = [e["experiment"] for e in E.tap_arms(entries)]
    assert sorted(names) == ["feature_w5_cnn1", "feature_w5_cnn2", "feature_w5_cnn_last"]


def test_ctc_macros_quote_the_recorded_onset_and_zero_gradient_share():
    entry = {"config": {"train": {"ctc": {"weight": 10.0, "clip": 100.0, "clip_mode": "clamp"}}},
             "train": {"ctc": {"steps": 300, "onset_step": 90, "zero_grad_share": 0.3, "clamped_steps": 68,
                               "raw": {"p50": 140.2}},
                       "plateau": {"reached": False}},
             "history": [{"step": 85, "train/gradnorm_ctc": 0.0}, {"step": 90, "train/gradnorm_ctc": 462.0}]}
    m = tables.ctc_macros(entry)
    assert m == {"ctc-weight": "10", "ctc-clip": "100", "ctc-clip-mode": "clamp", "ctc-onset": "90",
                 "ctc-zero-grad": "30.0", "ctc-clamped": "68", "ctc-raw-p50": "140", "ctc-onset-logged": "90",
                 "plateau": "no"}
    old = {"config": {"train": {"ctc": {"weight": 10.0, "clip": 100.0}}}, "history": []}
    assert tables.ctc_macros(old)["ctc-clip-mode"] == "clamp"  # before clip_mode existed the clip clamped
