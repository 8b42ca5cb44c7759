"""A notebook reuses a ledger entry only when made with the same config by code unchanged since its commit."""

from __future__ import annotations

import json

from docrestore import config as C
from docrestore.evaluation import ledger as L
from docrestore.study import reuse as RU


def _entry(tmp_path, cfg, commit="a" * 40, dirty=False, **extra):
    path = tmp_path / "smoke" / "x.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"config": C.to_dict(cfg), "git_commit": commit, "git_dirty": dirty, "date": "2026-11-30T07:00:00",
             "run_dir": "runs/20261130-065900-train-x", "train": {"steps": 4},
             **{k: "" for k in RU.CURRENT_FIELDS}, **extra}
    path.write_text(json.dumps(entry))
    return path


def test_reuse_needs_same_config_and_unchanged_code(tmp_path, monkeypatch):
    from docrestore import runs as R

    cfg = C.load_config(profile="smoke")
    path = _entry(tmp_path, cfg)
    head = {"commit": "a" * 40, "dirty": False}
    d = RU.decide("x", cfg, path, True, head)
    assert not d.train and "aaaaaaaa" in d.reason and "2026-11-30T07:00:00" in d.reason
    assert RU.decide("x", cfg, path, False, head).reason == "reuse=False"
    # another commit: stale when the code under the entry changed (an unknown commit counts as changed)
    moved = RU.decide("x", cfg, path, True, {"commit": "b" * 40, "dirty": False})
    assert moved.train and "changed since the entry's commit aaaaaaaa" in moved.reason
    monkeypatch.setattr(R, "code_changed_since", lambda commit: False)  # e.g. only the ledger was committed
    assert not RU.decide("x", cfg, path, True, {"commit": "b" * 40, "dirty": False}).train
    monkeypatch.undo()
    old = _entry(tmp_path, cfg)
    data = json.loads(old.read_text())
    del data["val_reader"]
    old.write_text(json.dumps(data))
    assert "lacks val_reader" in RU.decide("x", cfg, old, True, head).reason
    path = _entry(tmp_path, cfg)
    other = RU.decide("x", C.load_config(profile="smoke", overrides=["train.pixel_weight=3"]), path, True, head)
    assert other.train and "train.pixel_weight" in other.reason
    dirty = _entry(tmp_path, cfg, dirty=True)
    assert RU.decide("x", cfg, dirty, True, head).train  # uncommitted code, committed tree now
    assert RU.decide("x", cfg, tmp_path / "none.json", True, head).reason == "no ledger entry yet"


def test_plan_text_estimates_from_earlier_runs(tmp_path):
    cfg = C.load_config(profile="smoke")
    _entry(tmp_path, cfg)  # 60 s for 4 steps: 15 s/step
    todo = RU.Decision("y", True, "no ledger entry yet", steps=8)
    text = RU.plan_text("smoke", "given", [todo, todo], tmp_path)
    assert text.splitlines()[0] == "profile: smoke (given)"
    assert text.count("train  y") == 1  # one line per experiment
    assert "1 training(s), 8 generator steps, about 2 min" in text and "15.00 s/step over 1" in text
    assert "no earlier smoke run" in RU.plan_text("smoke", "given", [todo], tmp_path / "empty")


def test_one_profile_rule_for_cli_and_notebooks(monkeypatch):
    from docrestore import device as D
    from docrestore.study import lines as P

    monkeypatch.delenv(C.PROFILE_ENV, raising=False)
    monkeypatch.setattr(D, "has_gpu", lambda: False)
    assert C.choose_profile(None)[0] == "quick" == C.load_config().profile == P.auto_profile(None)
    monkeypatch.setattr(D, "has_gpu", lambda: True)
    assert C.choose_profile(None)[0] == "full" == C.load_config().profile
    monkeypatch.setenv(C.PROFILE_ENV, "smoke")
    assert C.choose_profile(None) == ("smoke", f"from ${C.PROFILE_ENV}") and C.load_config().profile == "smoke"
    assert C.choose_profile("quick") == ("quick", "given")


def test_progress_bars_refresh_rarely_inside_a_kernel(monkeypatch):
    """An executed notebook keeps every bar refresh: 1000 steps must leave a handful, not 1000."""
    import io

    from tqdm import tqdm

    from docrestore import runs as R

    monkeypatch.setattr(R, "progress_disabled", lambda: False)  # as in a Jupyter kernel
    out = io.StringIO()
    bar = tqdm(total=1000, file=out, **R.progress_options())
    for i in range(1000):
        bar.update(1)
        bar.set_postfix(refresh=False, loss=f"{i:.3f}")
    bar.close()
    assert out.getvalue().count("\r") < 5
    assert R.progress_options(False)["disable"] is True


def test_an_entry_commit_never_reaches_git_as_an_option(tmp_path):
    """An entry's git_commit is input: "--output=FILE" made `git diff` create (or empty) FILE."""
    from docrestore import runs as R

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    made = tmp_path / "made.txt"
    for commit in (f"--output={victim}", f"--output={made}", "-p", "HEAD --", "a" * 41, "xyz"):
        assert R.code_changed_since(commit)  # not a commit id: counted as changed, never run
    assert victim.read_text() == "keep me" and not made.exists()
    cfg = C.load_config(profile="smoke")
    d = RU.decide("x", cfg, _entry(tmp_path, cfg, commit=f"--output={victim}"), True, {"commit": "a" * 40, "dirty": False})
    assert d.train and victim.read_text() == "keep me"


FP_RECORDED = {"version": 1, "steps": [{"step": 0, "train/loss_g": 1.0}], "eval": {"psnr": 12.0}, "digest": "f" * 16}


def _without(path, key: str):
    """The entry at ``path`` as older code recorded it: its config lacks the dotted ``key``."""
    data = json.loads(path.read_text())
    *parents, last = key.split(".")
    node = data["config"]
    for p in parents:
        node = node[p]
    del node[last]
    path.write_text(json.dumps(data))
    return path


def test_an_option_added_at_its_default_is_left_to_the_fingerprint(tmp_path, monkeypatch):
    from docrestore import runs as R

    monkeypatch.setattr(R, "code_changed_since", lambda commit: True)
    head = {"commit": "b" * 40, "dirty": False}
    cfg = C.load_config(profile="smoke")
    assert cfg.pages.flip_vote is C.flat_defaults()["pages.flip_vote"] is False
    entry = _without(_entry(tmp_path, cfg, fingerprint=FP_RECORDED), "pages.flip_vote")

    def decide(c):
        return RU.decide("x", c, entry, True, head, behaviour=lambda _: FP_RECORDED, data_hash=lambda _: None)

    # the new option at its default, the behaviour unchanged: reused, and the reason says which option
    kept = decide(cfg)
    assert not kept.train and f"fingerprint {'f' * 16} unchanged" in kept.reason
    assert "new option(s) at their default, not in the entry's config: pages.flip_vote" in kept.reason
    # set to another value, the entry was not made with it: stale, the option and both values named
    other = decide(C.load_config(profile="smoke", overrides=["pages.flip_vote=true"]))
    assert other.train and "other settings: pages.flip_vote (not in the entry's config; here True, default False)" \
        in other.reason
    # a changed value of a recorded option is still a difference, with its values
    pixel = decide(C.load_config(profile="smoke", overrides=["train.pixel_weight=3"]))
    assert pixel.train and "train.pixel_weight 10.0 -> 3.0" in pixel.reason
    # the byte rule (an entry without a fingerprint) keeps the strict comparison, and says why
    strict = _without(_entry(tmp_path, cfg), "pages.flip_vote")
    d = RU.decide("x", cfg, strict, True, head, behaviour=lambda _: FP_RECORDED, data_hash=lambda _: None)
    assert d.train and "pages.flip_vote (not in the entry's config; here False, the default, but the entry has " \
                       "no fingerprint" in d.reason


def test_config_differences_with_and_without_defaults():
    recorded = {"train": {"pixel_weight": 10.0}, "desc": "a"}
    current = {"train": {"pixel_weight": 10.0, "new": 0.0, "other": 1.0}, "desc": "b"}
    defaults = {"train.new": 0.0, "train.other": 0.5}
    assert L.config_differences(recorded, current) == ["train.new", "train.other"]  # strict: every added key
    assert L.config_differences(recorded, current, defaults) == ["train.other"]  # only the one off its default
    # a key the current code no longer has is a difference either way
    assert L.config_differences({**recorded, "gone": 1}, recorded, defaults) == ["gone"]
