"""Staleness by behaviour: a refactor keeps every ledger entry, a changed loss stales only its arms.

The edited code is a real copy of the package with real edits (comments, a docstring, a function
moved to another module; a loss constant changed), imported in place of the package for the
length of a test.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

import pytest

import docrestore
from docrestore import config as C
from docrestore import fingerprint as FP
from docrestore.study import reuse as RU

ARMS = {  # the three kinds of line arm: no text loss, CTC, recognition feature loss
    "cgan": ["train.ctc.weight=0"],
    "ctc": ["train.ctc.weight=1", "train.scenario=S1"],
    "feature": ["train.ctc.weight=0", "train.feature_loss.weight=5"],
}


def arm_config(tmp_path: Path, arm: str, seed: int = 0) -> C.Config:
    return C.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", f"data.root={tmp_path}/data",
                                                     "tracking.enabled=false", f"seed={seed}", *ARMS[arm]])


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("fp-original")
    return {arm: FP.fingerprint(arm_config(tmp, arm)) for arm in ARMS}


@contextlib.contextmanager
def edited_package(tmp_path: Path, edits: dict[str, callable]):
    """Import a copy of docrestore with ``edits`` ({relative path: text -> text}) applied, in
    place of the package; the original modules are back afterwards."""
    src = Path(docrestore.__file__).parent
    root = tmp_path / "checkout"
    shutil.copytree(src, root / "src" / "docrestore", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(C.CONFIG_DIR, root / "configs")
    for rel, edit in edits.items():
        path = root / "src" / "docrestore" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        after = edit(before)
        assert after != before, f"the edit of {rel} changed nothing"
        path.write_text(after, encoding="utf-8")
    saved = {k: v for k, v in sys.modules.items() if k == "docrestore" or k.startswith("docrestore.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(root / "src"))
    try:
        import docrestore.fingerprint as edited

        assert Path(edited.__file__).is_relative_to(root)
        yield edited
    finally:
        sys.path.remove(str(root / "src"))
        for k in [k for k in sys.modules if k == "docrestore" or k.startswith("docrestore.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def fingerprints_of(edited, tmp_path: Path) -> dict[str, dict]:
    from docrestore import config as EC  # the edited copy's config module

    out = {}
    for arm, overrides in ARMS.items():
        cfg = EC.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", f"data.root={tmp_path}/data",
                                                        "tracking.enabled=false", *overrides])
        out[arm] = json.loads(json.dumps(edited.fingerprint(cfg)))
    return out


@pytest.mark.e2e  # trains three arms for a few steps each (about 30 s of CPU in all)
def test_fingerprint_is_deterministic_and_shared_by_seeds(tmp_path, original, monkeypatch):
    monkeypatch.setattr(FP, "_cache", {})
    again = FP.fingerprint(arm_config(tmp_path, "feature", seed=2))
    assert FP.differences(original["feature"], again) == []
    assert again["digest"] == original["feature"]["digest"]
    # the three arms do different things, and their fingerprints say so
    assert len({fp["digest"] for fp in original.values()}) == 3
    assert {"data", "steps", "params", "eval"} <= set(original["cgan"])


def _move_unit_normalize(text: str) -> str:
    start = text.index("def unit_normalize")
    end = text.index("\n\n\n", start)
    return text[:start] + "from ._norm import unit_normalize  # moved\n" + text[end + 3:]


@pytest.mark.e2e  # trains three arms for a few steps each (about 30 s of CPU in all)
def test_comments_docstrings_and_a_moved_function_keep_every_fingerprint(tmp_path, original):
    feature = Path(docrestore.__file__).parent / "losses" / "feature.py"
    moved = feature.read_text(encoding="utf-8")
    start = moved.index("def unit_normalize")
    body = moved[start:moved.index("\n\n\n", start)]
    edits = {
        "losses/gan.py": lambda t: "# A comment that changes no behaviour.\n" + t.replace('"""', '"""Reworded. ', 1),
        "training/gan.py": lambda t: t.replace("def train_step(self, batch: dict) -> dict[str, float]:\n",
                                               "def train_step(self, batch: dict) -> dict[str, float]:\n"
                                               "        # one more comment\n", 1),
        "losses/_norm.py": lambda t: "import torch\n\nNORM_EPS = 1e-8\n\n\n" + body + "\n",
        "losses/feature.py": _move_unit_normalize,
    }
    with edited_package(tmp_path, edits) as edited:
        after = fingerprints_of(edited, tmp_path)
    for arm in ARMS:
        assert FP.differences(original[arm], after[arm]) == [], arm


@pytest.mark.e2e  # trains three arms for a few steps each (about 30 s of CPU in all)
def test_a_changed_feature_loss_constant_stales_exactly_the_feature_arm(tmp_path, original):
    edits = {"losses/feature.py": lambda t: t.replace("NORM_EPS = 1e-8", "NORM_EPS = 0.5", 1)}
    with edited_package(tmp_path, edits) as edited:
        after = fingerprints_of(edited, tmp_path)
    stale = {arm for arm in ARMS if FP.differences(original[arm], after[arm])}
    assert stale == {"feature"}
    assert any(d.startswith(("steps", "params")) for d in FP.differences(original["feature"], after["feature"]))


# -------------------------------------------------------------------------------- the reuse rule
def _entry(tmp_path: Path, cfg: C.Config, **extra) -> Path:
    path = tmp_path / "smoke" / "x.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"config": C.to_dict(cfg), "git_commit": "a" * 40, "git_dirty": False, "date": "2026-12-04T10:00:00",
             "run_dir": "runs/20261204-095900-train-x", "train": {"steps": 4}, "data_hash": "d" * 16,
             **{k: "" for k in RU.CURRENT_FIELDS}, **extra}
    path.write_text(json.dumps(entry))
    return path


def test_reuse_follows_the_fingerprint_not_the_bytes(tmp_path, monkeypatch):
    from docrestore import runs as R

    cfg = C.load_config(profile="smoke")
    fp = {"version": FP.VERSION, "data": "x", "steps": [{"step": 0, "train/loss_g": 1.0}],
          "params": {"generator": {"n": 10, "sum": 0.5, "abs": 3.0, "signed": 0.1}}, "eval": {"psnr": 12.0},
          "digest": "f" * 16}
    head = {"commit": "b" * 40, "dirty": False}
    monkeypatch.setattr(R, "code_changed_since", lambda commit: True)  # every byte may have changed
    path = _entry(tmp_path, cfg, fingerprint=fp)
    same = RU.decide("x", cfg, path, True, head, behaviour=lambda c: fp, data_hash=lambda c: None)
    assert not same.train and "fingerprint ffffffff" in same.reason
    noisy = json.loads(json.dumps(fp))
    noisy["steps"][0]["train/loss_g"] = 1.0 + 1e-6  # another machine's float rounding
    noisy["params"]["generator"]["signed"] = 0.1 + 1e-5  # a sum that cancels: judged against abs
    assert not RU.decide("x", cfg, path, True, head, behaviour=lambda c: noisy, data_hash=lambda c: None).train
    changed = json.loads(json.dumps(fp))
    changed["steps"][0]["train/loss_g"] = 1.01
    stale = RU.decide("x", cfg, path, True, head, behaviour=lambda c: changed, data_hash=lambda c: None)
    assert stale.train and "training losses changed" in stale.reason and "1.0 -> 1.01" in stale.reason
    # an entry measured on other data than this checkout's is not reused as if measured on it
    other = RU.decide("x", cfg, path, True, head, behaviour=lambda c: fp, data_hash=lambda c: "e" * 16)
    assert other.train and "d" * 16 in other.reason and "e" * 16 in other.reason
    # an entry from before fingerprints says so, and keeps the byte rule
    old = _entry(tmp_path, cfg)
    byte_rule = RU.decide("x", cfg, old, True, head, behaviour=lambda c: fp, data_hash=lambda c: None)
    assert byte_rule.train and RU.NO_FINGERPRINT in byte_rule.reason
    monkeypatch.setattr(R, "code_changed_since", lambda commit: False)
    kept = RU.decide("x", cfg, old, True, head, behaviour=lambda c: fp, data_hash=lambda c: None)
    assert not kept.train and RU.NO_FINGERPRINT in kept.reason


def test_machine_names_cpu_and_libraries():
    from docrestore.machine import machine_info

    m = machine_info()
    assert m["cpu"] and m["torch"] and m["numpy"] and m["torch_threads"] >= 1


# ------------------------------------------------------------------------------------ page arms
PAGE_ARMS = ("supervised", "cgan")  # the paper's page arms: no discriminator, and ERB's cGAN


def page_config(pages_module, tmp_path: Path, arm: str, seed: int = 0) -> C.Config:
    return pages_module.make_page_config(pages_module.page_experiment(arm, ["TE"]), "smoke", seed,
                                         [f"runs_dir={tmp_path}/runs", "tracking.enabled=false"])


@pytest.fixture(scope="module")
def original_pages(tmp_path_factory) -> dict[str, dict]:
    from docrestore.study import pages as P

    tmp = tmp_path_factory.mktemp("fp-pages")
    return {arm: FP.page_fingerprint(page_config(P, tmp, arm)) for arm in PAGE_ARMS}


def page_fingerprints_of(edited, tmp_path: Path) -> dict[str, dict]:
    from docrestore.study import pages as EP  # the edited copy's page recipes

    return {arm: json.loads(json.dumps(edited.page_fingerprint(page_config(EP, tmp_path, arm))))
            for arm in PAGE_ARMS}


def _page_entry(tmp_path: Path, cfg: C.Config, fingerprint: dict | None) -> Path:
    """A page-ledger entry of ``cfg`` made at another commit (only what the reuse rule reads)."""
    from docrestore.evaluation import dibco

    path = dibco.pages_dir(tmp_path / "ledger", "smoke") / "pages_x.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"config": C.to_dict(cfg), "git_commit": "a" * 40, "git_dirty": False, "date": "2026-12-04T10:00:00",
             "run_dir": "runs/20261204-095900-pages-x", "steps": 4, "data_hash": "d" * 16,
             **{k: "" for k in dibco.PAGE_FIELDS if k not in ("config", "git_commit", "git_dirty", "date",
                                                                "run_dir", "data_hash")}}
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
    path.write_text(json.dumps(entry, allow_nan=False))  # as the page ledger writes it: no NaN
    return path


def _page_decision(cfg, path, current: dict):
    from docrestore.evaluation import dibco

    return RU.decide("pages_x", cfg, path, True, {"commit": "b" * 40, "dirty": False}, fields=dibco.PAGE_FIELDS,
                     behaviour=lambda c: current, data_hash=lambda c: "d" * 16)


@pytest.mark.e2e  # two page arms, a few steps each on tiny pages (seconds)
def test_page_fingerprint_is_deterministic_and_tells_the_arms_apart(tmp_path, original_pages, monkeypatch):
    # its cost is measured in the logbook (seconds per arm), not asserted: timings belong to benchmarks
    from docrestore.study import pages as P

    monkeypatch.setattr(FP, "_cache", {})
    again = FP.page_fingerprint(page_config(P, tmp_path, "cgan", seed=3))
    assert FP.differences(original_pages["cgan"], again) == [] and again["digest"] == original_pages["cgan"]["digest"]
    assert original_pages["supervised"]["digest"] != original_pages["cgan"]["digest"]
    assert {"data", "steps", "params", "eval", "references"} <= set(again) and again["kind"] == "pages"
    # the supervised control has no discriminator: its loss is not computed, recorded as null (JSON has no NaN)
    assert original_pages["supervised"]["steps"][0]["train/loss_d"] is None
    assert set(again["references"]) == set(page_config(P, tmp_path, "cgan").pages.references)


@pytest.mark.e2e  # two page arms, a few steps each on tiny pages (seconds)
def test_a_refactor_keeps_page_entries(tmp_path, original_pages, monkeypatch):
    from docrestore import runs as R
    from docrestore.study import pages as P

    dibco_py = (Path(docrestore.__file__).parent / "evaluation" / "dibco.py").read_text(encoding="utf-8")
    start = dibco_py.index("def binarize_restored")
    body = dibco_py[start:dibco_py.index("\n\n\n", start)]

    def move_binarize(t: str) -> str:
        s = t.index("def binarize_restored")
        return t[:s] + "from ._page_binarize import binarize_restored  # moved\n" + t[t.index("\n\n\n", s) + 3:]

    edits = {
        "training/pages.py": lambda t: t.replace('"""', '"""Reworded. ', 1).replace(
            "        pix = pixel_loss(", "        # the pixel term, as ever\n        pix = pixel_loss(", 1),
        "data/pages.py": lambda t: "# A comment that changes no behaviour.\n" + t,
        "evaluation/_page_binarize.py": lambda t: ("import numpy as np\n\nfrom . import metrics as M\n\n\n"
                                                   + body + "\n"),
        "evaluation/dibco.py": move_binarize,
    }
    with edited_package(tmp_path, edits) as edited:
        after = page_fingerprints_of(edited, tmp_path)
    for arm in PAGE_ARMS:
        assert FP.differences(original_pages[arm], after[arm]) == [], arm
    # and so the reuse rule keeps a page entry although every byte may have changed since its commit
    monkeypatch.setattr(R, "code_changed_since", lambda commit: True)
    cfg = page_config(P, tmp_path, "supervised")
    d = _page_decision(cfg, _page_entry(tmp_path, cfg, original_pages["supervised"]), after["supervised"])
    assert not d.train and f"fingerprint {original_pages['supervised']['digest']} unchanged" in d.reason
    # an entry recorded before page fingerprints keeps the byte rule, and says so
    old = _page_decision(cfg, _page_entry(tmp_path, cfg, None), after["supervised"])
    assert old.train and RU.NO_FINGERPRINT in old.reason and "changed since the entry's commit aaaaaaaa" in old.reason


@pytest.mark.e2e  # two page arms, a few steps each on tiny pages (seconds)
def test_a_changed_page_loss_constant_stales_exactly_its_arm(tmp_path, original_pages):
    from docrestore.study import pages as P

    edits = {"training/pages.py": lambda t: t.replace("loss_g = tc.pixel_weight * pix",
                                                      "loss_g = 2.0 * tc.pixel_weight * pix", 1)}
    with edited_package(tmp_path, edits) as edited:
        after = page_fingerprints_of(edited, tmp_path)
    stale = {arm for arm in PAGE_ARMS if FP.differences(original_pages[arm], after[arm])}
    assert stale == {"supervised"}  # the scaled term is the supervised control's step; the cGAN's is the GAN's
    cfg = page_config(P, tmp_path, "supervised")
    d = _page_decision(cfg, _page_entry(tmp_path, cfg, original_pages["supervised"]), after["supervised"])
    assert d.train and "the code behaves differently" in d.reason and "training losses changed" in d.reason
