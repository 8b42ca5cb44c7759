"""`docrestore evaluate` with no profile given measures a checkpoint with its own profile's eval.*
(the held-out reader's recipe above all), not with the profile a bare command picks for the machine
(quick on a CPU, whose reader pretrains for 3000 steps)."""

from __future__ import annotations

import pytest

from docrestore import checkpoint as CK
from docrestore import cli
from docrestore import config as C


@pytest.fixture
def smoke_checkpoint(tmp_path):
    from docrestore.models.generator import build_generator

    cfg = C.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", "tracking.enabled=false"])
    return CK.save_checkpoint(tmp_path / "last.pt", {"kind": "gan", "config": C.to_dict(cfg), "step": 1,
                                                    "models": {"generator": build_generator(cfg.generator).state_dict()}})


def _profile(argv):
    args = cli.parse_args(cli.build_parser(), ["evaluate", *argv])
    return cli.evaluate_profile(args)


def test_no_profile_given_takes_the_checkpoints(smoke_checkpoint, monkeypatch, capsys):
    monkeypatch.delenv(C.PROFILE_ENV, raising=False)
    assert _profile([f"eval.checkpoint={smoke_checkpoint}"]) == "smoke"
    # the dry run shows what evaluate would use: the smoke profile and its reader recipe
    assert cli.main(["evaluate", f"eval.checkpoint={smoke_checkpoint}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# profile        : smoke" in out
    steps = [line.split(":")[1].split("#")[0].strip() for line in out.splitlines() if "reader_steps:" in line]
    assert steps == [str(C.load_config(profile="smoke").eval.reader_steps)]
    assert C.load_config(profile="quick").eval.reader_steps != C.load_config(profile="smoke").eval.reader_steps


def test_a_given_profile_wins(smoke_checkpoint, monkeypatch):
    monkeypatch.delenv(C.PROFILE_ENV, raising=False)
    assert _profile([f"eval.checkpoint={smoke_checkpoint}", "profile=quick"]) is None
    monkeypatch.setenv(C.PROFILE_ENV, "quick")
    assert _profile([f"eval.checkpoint={smoke_checkpoint}"]) is None


def test_a_missing_checkpoint_is_left_to_evaluate_to_name(tmp_path, monkeypatch):
    monkeypatch.delenv(C.PROFILE_ENV, raising=False)
    assert _profile([f"eval.checkpoint={tmp_path}/nope.pt"]) is None
    assert _profile([]) is None
