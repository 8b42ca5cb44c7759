"""Dataset synthesis: determinism, manifest integrity, held-out fonts, clear errors, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docrestore import config as C
from docrestore import runs as R
from docrestore.data import manifest as M
from docrestore.data import paths, synth
from docrestore.data.charset import Charset
from docrestore.data.corpus import CorpusError
from docrestore.data.fonts import FontError

TINY = ["data.n_train=6", "data.n_val=2", "data.n_test=3"]


def tiny_cfg(tmp_path: Path, *overrides: str, root: str = "data") -> C.Config:
    return C.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", f"data.root={tmp_path}/{root}",
                                                     "tracking.enabled=false", *TINY, *overrides])


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = synth.ensure_dataset(tiny_cfg(tmp_path, root="a"))
    b = synth.ensure_dataset(tiny_cfg(tmp_path, "data.workers=2", root="b"))  # worker count must not matter
    c = synth.ensure_dataset(tiny_cfg(tmp_path, "data.seed=1", root="c"))
    files_a, files_b, files_c = folder_bytes(a.parent), folder_bytes(b.parent), folder_bytes(c.parent)
    assert "dataset.json" in files_a and "images/train/train_000000_degraded.png" in files_a
    assert files_a == files_b
    assert files_a["manifest.jsonl"] != files_c["manifest.jsonl"]
    assert files_a["images/train/train_000000_clean.png"] != files_c["images/train/train_000000_clean.png"]


def test_auto_root_hash_covers_synthesis_settings_and_data_seed_only(tmp_path):
    base = C.load_config(profile="smoke")
    root = paths.dataset_root(base)
    assert root.parent == C.PROJECT_ROOT / "data" and root.name == f"synth-{paths.settings_hash(base)}"
    assert len(paths.settings_hash(base)) == 12
    same = C.load_config(profile="smoke", overrides=["data.workers=3", "data.loader_workers=2", "train.lr_g=0.5",
                                                     "seed=7"])  # the training seed shares the data
    assert paths.dataset_root(same) == root
    for change in ("data.seed=7", "data.n_train=5", "data.severity_max=0.5", "data.fonts=[DejaVu Sans]"):
        assert paths.dataset_root(C.load_config(profile="smoke", overrides=[change])) != root, change
    explicit = C.load_config(profile="smoke", overrides=[f"data.root={tmp_path}/x"])
    assert paths.dataset_root(explicit) == tmp_path / "x"


# --------------------------------------------------------------------------- manifest checks
def test_manifest_integrity(smoke_dataset):
    cfg = C.load_config(profile="smoke")
    root = smoke_dataset.parent
    records = M.read_manifest(smoke_dataset)
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["complete"] is True and meta["counts"] == {"train": cfg.data.n_train, "val": cfg.data.n_val,
                                                           "test": cfg.data.n_test}
    assert M.split_counts(records) == meta["counts"]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    charset = Charset.from_file(root / "charset.txt")
    assert charset.chars == sorted(set("".join(r["text"] for r in records)))
    assert meta["charset_size"] == len(charset.chars)
    for r in records:
        assert set(r) == {"id", "split", "degraded", "clean", "text", "font", "severity", "degradations",
                          "height", "width"}
        assert charset.decode(charset.encode(r["text"])) == r["text"]
        assert cfg.data.min_words <= len(r["text"].split()) and len(r["text"]) <= cfg.data.max_chars
        assert cfg.data.severity_min <= r["severity"] <= cfg.data.severity_max
        assert r["font"] in cfg.data.fonts
        assert all(isinstance(d, dict) and isinstance(d["name"], str) for d in r["degradations"])
        for key in ("clean", "degraded"):
            assert r[key] == f"images/{r['split']}/{r['id']}_{key}.png"
            with Image.open(root / r[key]) as im:
                assert im.mode == "L" and im.size == (cfg.data.width, cfg.data.height)
    clean = np.asarray(Image.open(root / records[0]["clean"]))
    assert clean.max() == 255 and clean.min() < 40  # dark ink on white paper
    assert (clean[:, :2] == 255).all()  # left margin is paper


def test_heldout_fonts_only_in_the_test_split(tmp_path):
    cfg = tiny_cfg(tmp_path, "data.fonts=[DejaVu Sans, DejaVu Serif]", "data.heldout_fonts=[DejaVu Serif]",
                   "data.n_test=12")
    records = M.read_manifest(synth.ensure_dataset(cfg))
    assert {r["font"] for r in records if r["split"] != "test"} == {"DejaVu Sans"}
    assert "DejaVu Serif" in {r["font"] for r in records if r["split"] == "test"}
    meta = M.read_meta(paths.dataset_root(cfg))
    assert meta["heldout_fonts"] == ["DejaVu Serif"] and meta["train_fonts"] == ["DejaVu Sans"]


def test_reader_split_holds_every_hand_and_only_the_reader_trains_on_it(tmp_path):
    from docrestore.data.dataset import LineDataset
    from docrestore.training.recognizer import role_config

    cfg = tiny_cfg(tmp_path, "data.fonts=[DejaVu Sans, DejaVu Serif]", "data.heldout_fonts=[DejaVu Serif]",
                   "data.n_reader=16")
    manifest = synth.ensure_dataset(cfg)
    records = M.read_manifest(manifest)
    reader = [r for r in records if r["split"] == M.READER_SPLIT]
    assert len(reader) == 16 and {r["font"] for r in reader} == {"DejaVu Sans", "DejaVu Serif"}
    assert {r["font"] for r in records if r["split"] in ("train", "val")} == {"DejaVu Sans"}
    # the restorer's splits never hold the reader's lines
    train = LineDataset(manifest, "train", cfg.data.height, cfg.data.width, Charset.from_file(
        manifest.parent / M.CHARSET))
    assert all(r["split"] == "train" for r in train.records)
    assert role_config(cfg, "reader").recognizer_train.reader_lines
    assert not role_config(cfg, "loss").recognizer_train.reader_lines
    with pytest.raises(C.ConfigError, match="recognizer_train.reader_lines"):  # idle without the split
        C.load_config(profile="smoke", overrides=["recognizer_train.reader_lines=true"])


# -------------------------------------------------------------------------------- errors
def test_missing_font_is_an_error_naming_it_and_make_setup(tmp_path):
    cfg = tiny_cfg(tmp_path, "data.fonts=[DejaVu Sans, No Such Hand]")
    with pytest.raises(FontError, match="No Such Hand") as err:
        synth.ensure_dataset(cfg)
    assert "make setup" in str(err.value) and "DejaVu Sans" in str(err.value)
    with pytest.raises(FontError, match="missing.ttf"):
        synth.make_plan(tiny_cfg(tmp_path, f"data.fonts=[{tmp_path}/missing.ttf]"))


def test_every_font_held_out_is_an_error(tmp_path):
    with pytest.raises(FontError, match="no training fonts"):
        synth.make_plan(tiny_cfg(tmp_path, "data.fonts=[DejaVu Sans]", "data.heldout_fonts=[DejaVu Sans]"))


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="corpus is empty"):
        synth.make_plan(tiny_cfg(tmp_path, "data.languages=[]"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="corpus is empty"):
        synth.make_plan(tiny_cfg(tmp_path, "data.languages=[]", f"data.corpus_file={empty}"))


def test_undrawable_character_in_user_corpus_names_char_and_font(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Mr. Jansz. voorsz.\nde Comp. 漢 fl.\n", encoding="utf-8")
    with pytest.raises(FontError, match="DejaVu Sans") as err:
        synth.make_plan(tiny_cfg(tmp_path, f"data.corpus_file={corpus}"))
    assert "'漢'" in str(err.value) and "line 2" in str(err.value)


def test_user_corpus_lines_are_written(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Ontfangen van den Coopman\nde somma van fl. 250\n", encoding="utf-8")
    cfg = tiny_cfg(tmp_path, "data.languages=[]", f"data.corpus_file={corpus}", "data.archival_tokens=0")
    texts = [r["text"] for r in M.read_manifest(synth.ensure_dataset(cfg))]
    words = set("Ontfangen van den Coopman de somma fl. 250".split())
    assert texts and all(set(t.split()) <= words for t in texts)


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = tiny_cfg(tmp_path, root="a-file/data")
    with pytest.raises(paths.OutputFolderError, match="cannot write the dataset folder") as err:
        synth.ensure_dataset(cfg)
    assert "data.root" in str(err.value)


# ------------------------------------------------------------------------------ resuming
def test_interrupted_generation_is_finished_identically(tmp_path):
    cfg = tiny_cfg(tmp_path)
    manifest = synth.ensure_dataset(cfg)
    root = manifest.parent
    before = folder_bytes(root)
    # Simulate a kill: no dataset.json, some images gone, one truncated, a half-written partial record.
    (root / "dataset.json").unlink()
    (root / "images/train/train_000001_degraded.png").unlink()
    (root / "images/test/train_placeholder.png").write_bytes(b"")  # foreign junk is left alone
    (root / "images/val/val_000000_clean.png").write_bytes(before["images/val/val_000000_clean.png"][:50])
    (root / "manifest.partial.jsonl").write_text('{"id": "train_0000', encoding="utf-8")
    assert synth._complete_manifest(root, cfg, paths.settings_hash(cfg)) is None
    assert synth.ensure_dataset(cfg) == manifest
    after = folder_bytes(root)
    after.pop("images/test/train_placeholder.png")
    assert after == before
    assert not (root / "manifest.partial.jsonl").exists()


def test_unfinished_dataset_with_other_settings_is_not_overwritten(tmp_path):
    cfg = tiny_cfg(tmp_path)
    root = synth.ensure_dataset(cfg).parent
    (root / "dataset.json").unlink()
    (root / synth.STATE).write_text(json.dumps({"hash": paths.settings_hash(cfg)}))
    with pytest.raises(paths.DataError, match="other settings"):
        synth.ensure_dataset(tiny_cfg(tmp_path, "data.seed=5"))


def test_complete_dataset_with_other_settings_is_reused(tmp_path, caplog):
    root = synth.ensure_dataset(tiny_cfg(tmp_path)).parent
    before = folder_bytes(root)
    with caplog.at_level("WARNING", logger="docrestore"):
        assert synth.ensure_dataset(tiny_cfg(tmp_path, "data.seed=5")) == root / "manifest.jsonl"
    assert "seed: 0 -> 5" in caplog.text
    assert folder_bytes(root) == before


# ---------------------------------------------------------------------------------- stage
def test_synthesize_stage_writes_grid_and_summary_into_the_run(tmp_path):
    cfg = tiny_cfg(tmp_path)
    run = R.start_run(cfg, "synth")
    manifest = synth.synthesize(cfg, run)
    assert manifest == paths.dataset_root(cfg) / "manifest.jsonl"
    summary = json.loads((run.dir / "dataset_summary.json").read_text())
    assert summary["counts"] == {"train": 6, "val": 2, "test": 3} and summary["charset_size"] > 10
    with Image.open(run.dir / "samples.png") as im:
        assert im.width > 300 and im.height > 300


def test_notebook_overrides_keep_font_names_whole():
    overrides = synth.notebook_overrides(seed=3, n_train=None, root="/tmp/x", fonts=["DejaVu Sans", "Kristi"],
                                         overrides=["tracking.enabled=false"])
    cfg = C.load_config(profile="smoke", overrides=overrides)
    assert cfg.data.seed == 3 and cfg.data.root == "/tmp/x" and cfg.data.fonts == ["DejaVu Sans", "Kristi"]
    assert cfg.data.n_train == 48 and cfg.tracking.enabled is False


@pytest.mark.slow
def test_synthesize_logs_the_dataset_to_mlflow(tmp_path):
    import mlflow

    cfg = tiny_cfg(tmp_path, "tracking.enabled=true", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    run = R.start_run(cfg, "synth")
    synth.synthesize(cfg, run)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    found = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")
    assert len(found) == 1
    logged = found[0].data
    assert logged.metrics["data/n_train"] == 6 and logged.metrics["data/charset_size"] > 10
    assert logged.tags["data.hash"] == paths.settings_hash(cfg)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(found[0].info.run_id, "dataset")}
    assert {"dataset/samples.png", "dataset/dataset.json", "dataset/charset.txt"} <= artifacts


def test_smoke_dataset_fixture_is_found_complete_by_a_plain_smoke_config(smoke_dataset, tmp_path):
    stamp = (smoke_dataset.parent / "dataset.json").stat().st_mtime_ns
    cfg = C.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", f"data.root={smoke_dataset.parent}",
                                                    "tracking.enabled=false", "seed=3"])
    assert synth.ensure_dataset(cfg) == smoke_dataset
    assert (smoke_dataset.parent / "dataset.json").stat().st_mtime_ns == stamp  # reused, not remade
    assert M.read_meta(smoke_dataset.parent)["hash"] == paths.settings_hash(cfg)


def test_files_of_unknown_settings_are_remade_not_trusted(tmp_path):
    cfg = tiny_cfg(tmp_path)
    root = synth.ensure_dataset(cfg).parent
    before = folder_bytes(root)
    # No record of the settings at all: a stranger's images under the same names are replaced.
    (root / "dataset.json").unlink()
    (root / synth.STATE).unlink()
    stranger = np.full((32, 256), 7, np.uint8)
    Image.fromarray(stranger).save(root / "images/train/train_000002_clean.png")
    synth.ensure_dataset(cfg)
    assert folder_bytes(root) == before


# ------------------------------------------------------------------ the same lines on every machine
# The smoke dataset of this synthesis code (SYNTH_VERSION 3), measured on a 2-core AMD EPYC (numpy
# with AVX2 and with its SIMD kernels switched off: NPY_DISABLE_CPU_FEATURES=X86_V3, the same
# digits). A change of synthesis that changes the lines must bump SYNTH_VERSION and this record.
SMOKE_DATA_HASH = "bf37fd7907eea7c9"      # the manifest (what ledger entries record as data_hash)
SMOKE_CONTENT_HASH = "dc06d4db20dcc337"   # the manifest and every image's pixels


def test_smoke_dataset_is_the_recorded_one(smoke_dataset):
    assert M.manifest_hash(smoke_dataset) == SMOKE_DATA_HASH
    assert synth.content_hash(smoke_dataset) == SMOKE_CONTENT_HASH


def test_a_family_with_two_equal_files_resolves_to_one_whatever_the_font_cache_order(monkeypatch):
    """matplotlib breaks such ties by its font cache's order, which differs between machines."""
    import matplotlib.font_manager as fm

    from docrestore.data import fonts

    def entry(fname):
        return fm.FontEntry(fname=fname, name="Twin Hand", style="normal", variant="normal",
                            weight=400, stretch="normal", size="scalable")

    files = ["/fonts/b/Twin-Tertia18.otf", "/fonts/a/Twin-Cicero12.otf", "/fonts/c/Twin-Cicero12.otf"]
    chosen = set()
    for order in (files, files[::-1], files[1:] + files[:1]):
        monkeypatch.setattr(fm.fontManager, "ttflist", [entry(f) for f in order])
        chosen.add(fonts._findfont("Twin Hand"))
    assert chosen == {"/fonts/a/Twin-Cicero12.otf"}
    with pytest.raises(ValueError):
        fonts._findfont("No Such Hand")
