"""Configuration that cannot be silently ignored; dry runs; run folders; the device module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from docrestore import cli
from docrestore import config as C
from docrestore import device as D
from docrestore import runs as R

SRC = Path(__file__).resolve().parents[1] / "src" / "docrestore"


def test_unknown_key_is_rejected_and_named_with_the_allowed_keys():
    with pytest.raises(C.ConfigError, match=r"'bogus.key'.*Allowed keys in '<top level>': profile"):
        C.load_config(overrides=["bogus.key=1"])
    with pytest.raises(C.ConfigError, match=r"'data.n_trian'. Did you mean 'data.n_train'\?"):
        C.load_config(overrides=["data.n_trian=5"])


def test_unknown_key_in_a_yaml_file_is_rejected(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  ctc:\n    wieght: 3\n")
    with pytest.raises(C.ConfigError, match=r"train.ctc.wieght.*Did you mean 'train.ctc.weight'"):
        C.load_config(f)


@pytest.mark.parametrize("override, message", [
    ("train.lr_g=abc", r"'train.lr_g' must be a number"),
    ("train.batch_size=2.5", r"'train.batch_size' must be an integer"),
    ("train.batch_size=0", r"'train.batch_size' = 0 is outside the allowed range \[1, 4096\]"),
    ("train.scenario=S3", r"'train.scenario' must be one of \['S1', 'S2', 'frozen'\]"),
    ("tracking.enabled=maybe", r"'tracking.enabled' must be true or false"),
    ("device=gpu", r"'device' must be auto, cpu, cuda or cuda:N"),
    ("profile=huge", r"'profile' must be one of"),
])
def test_wrong_types_choices_and_ranges_name_the_key(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load_config(overrides=[override])


@pytest.mark.parametrize("override, message", [
    ("train.lr_g=.nan", r"'train.lr_g' = nan is not a finite number"),       # NaN passed every range check
    ("restore.overlap=.nan", r"'restore.overlap' = nan is not a finite number"),
    ("train.ctc.clip=.nan", r"'train.ctc.clip' = nan is not a finite number"),
    ("train.ctc.clip=.inf", r"'train.ctc.clip' = inf is not a finite number"),  # no upper bound
    ("train.pixel_weight=-.inf", r"'train.pixel_weight' = -inf is not a finite number"),
    ("train.lr_g=nan", r"'train.lr_g' = nan is not a finite number"),
    ("train.feature_loss.tap_weights=[1.0, .nan]", r"'train.feature_loss.tap_weights\[1\]' = nan is not a finite"),
    ("restore.tile_height=1600000", r"'restore.tile_height' = 1600000 is outside the allowed range"),
    ("restore.tile_width=1600000", r"'restore.tile_width' = 1600000 is outside the allowed range"),
    ("data.n_train=10000000000", r"'data.n_train' = 10000000000 is outside the allowed range"),
    ("train.max_steps=1e12", r"'train.max_steps' = 1000000000000 is outside the allowed range"),
    ("train.batch_size=1e-3", r"'train.batch_size' must be an integer"),
])
def test_non_finite_numbers_and_huge_sizes_are_refused(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load_config(overrides=[override])


def test_scientific_notation_is_a_number_on_the_command_line_and_in_yaml(tmp_path):
    """YAML 1.1 reads 1e-3 (no dot) as text: it was "must be a number, got '1e-3'"."""
    cfg = C.load_config(overrides=["train.lr_g=1e-3", "train.lr_d=2E-4", "data.n_train=1e4", "profile=smoke"])
    assert cfg.train.lr_g == 1e-3 and cfg.train.lr_d == 2e-4 and cfg.data.n_train == 10000
    assert isinstance(cfg.data.n_train, int)
    f = tmp_path / "c.yaml"
    f.write_text("profile: smoke\ntrain:\n  lr_r: 5e-4\n")
    assert C.load_config(f).train.lr_r == 5e-4


def test_cross_field_rules():
    with pytest.raises(C.ConfigError, match="min_words"):
        C.load_config(overrides=["data.min_words=5", "data.max_words=2"])
    with pytest.raises(C.ConfigError, match="one weight per tap"):
        C.load_config(overrides=["train.feature_loss.taps=[cnn1,cnn2]", "train.feature_loss.tap_weights=[1.0]"])


def test_resolution_order_defaults_profile_file_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("profile: quick\ntrain: {batch_size: 5}\n")
    cfg = C.load_config(f, ["train.val_every=7"])
    quick = yaml.safe_load(C.profile_path("quick").read_text())
    assert cfg.profile == "quick"
    assert cfg.data.height == quick["data"]["height"]         # profile
    assert cfg.train.batch_size == 5                            # file beats profile
    assert cfg.train.val_every == 7                             # override beats file
    assert C.load_config(f, ["profile=smoke"]).data.n_train == 48  # override picks the profile
    assert cfg.train.lr_d == C.TrainConfig().lr_d                # default where nobody set it


def test_every_shipped_config_and_profile_loads():
    for path in sorted((C.CONFIG_DIR).glob("*.yaml")):
        C.load_config(path)
    for profile in C.PROFILES:
        C.load_config(profile=profile)


def test_render_marks_changed_values_and_round_trips():
    cfg = C.load_config(overrides=["profile=smoke", "train.ctc.weight=0"])
    text = C.render(cfg)
    assert re.search(r"weight: 0.0  # \* changed \(default: 1.0\)", text)
    assert "lr_g: 0.0001\n" in text  # unchanged values carry no mark
    again = C.from_dict(yaml.safe_load(text))
    assert C.to_dict(again) == C.to_dict(cfg)


def test_dry_run_prints_the_plan_and_exits_zero(capsys, tmp_path):
    code = cli.main(["synth", "--dry-run", "profile=smoke", f"runs_dir={tmp_path}/runs", "data.n_train=7"])
    out = capsys.readouterr().out
    assert code == 0
    assert "# what would run : synthesise" in out and "# device         : cpu" in out
    assert "n_train: 7  # * changed" in out
    assert not (tmp_path / "runs").exists()  # nothing was run or written


def test_dry_run_with_a_bogus_key_fails_naming_it(capsys):
    assert cli.main(["synth", "--dry-run", "bogus.key=1"]) == 2
    assert "bogus.key" in capsys.readouterr().err


def test_run_folder_describes_itself_before_work_starts(tmp_path):
    cfg = C.load_config(overrides=["profile=smoke", f"runs_dir={tmp_path}", "desc=my test"])
    run = R.start_run(cfg, "train")
    assert re.fullmatch(r"\d{8}-\d{6}-train-my-test", run.name)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert C.to_dict(C.from_dict(saved)) == C.to_dict(cfg)
    git = json.loads((run.dir / "git.json").read_text())
    assert set(git) == {"commit", "dirty"}
    assert (run.dir / "run.log").exists()
    second = R.start_run(cfg, "train")  # same second: its own folder, never the first one's
    assert second.dir != run.dir


def test_device_auto_falls_back_to_cpu_and_autocast_is_null_on_cpu():
    dev = D.pick_device("auto") if not torch.cuda.is_available() else D.pick_device("cpu")
    assert dev.type == "cpu"
    with D.autocast(dev):
        assert not torch.is_autocast_enabled()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
            D.pick_device("cuda")


def test_seeding_makes_torch_and_numpy_repeat():
    import numpy as np

    D.seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    D.seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all()


def test_no_device_string_outside_the_device_module():
    pattern = re.compile(r"""['"]cuda(:\d+)?['"]|\.cuda\(""")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "device.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == [], f"device strings belong in device.py: {offenders}"


def test_notebooks_are_thin():
    import nbformat

    for nb_path in sorted((C.PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{nb_path.name}: one cell tagged 'parameters'"
        source = "\n".join(c.source for c in code)
        for banned in ("def ", "class ", "for ", "while ", "cuda", "/work/", "/tmp/"):
            assert banned not in source, f"{nb_path.name} holds {banned!r}"


def test_overrides_after_options_reach_the_stage(capsys, tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    # argparse leaves key=value words after options unparsed: they must still be overrides
    code = cli.main(["restore", str(img), "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o"),
                     "--dry-run", "device=cpu", "restore.overlap=0.5"])
    out = capsys.readouterr()
    assert code == 2 and "none.pt" in out.out + out.err  # the missing checkpoint, not an argparse error
    with pytest.raises(SystemExit):
        cli.main(["synth", "--dry-run", "--bogus-flag"])


def test_overrides_given_as_one_string_are_split():
    # papermill's -p passes text: "a=1 b=2" or a YAML list written as text
    assert C.load_config(overrides="train.batch_size=3 train.val_every=4").train.val_every == 4
    assert C.load_config(overrides='["train.batch_size=3", "seed=2"]').seed == 2


@pytest.mark.parametrize("overrides, key", [
    (["train.ctc.schedule=constant", "train.ctc.ramp=10"], "train.ctc.ramp"),
    (["train.ctc.schedule=constant", "train.ctc.warmup=10"], "train.ctc.warmup"),
    (["train.ctc.schedule=switch", "train.ctc.warmup=5", "train.ctc.ramp=10"], "train.ctc.ramp"),
    (["train.ctc.schedule=linear", "train.ctc.ramp=10", "train.ctc.steps=8"], "train.ctc.steps"),
    (["train.ctc.alpha=2"], "train.ctc.alpha"),
    (["discriminator.text_weight=0.5"], "discriminator.text_weight"),
    (["train.scenario=S1", "train.ctc.weight=0"], "train.scenario"),
    (["train.scenario=frozen", "train.lr_r=0.01"], "train.lr_r"),
    (["train.feature_loss.distance=l1"], "train.feature_loss.distance"),
    (["train.early_stop_metric=none", "train.patience=3"], "train.patience"),
    (["train.max_steps=10", "train.epochs=3"], "train.epochs"),
])
def test_a_setting_with_no_effect_is_an_error_naming_it(overrides, key):
    with pytest.raises(C.ConfigError, match=re.escape(f"'{key}' has no effect")):
        C.load_config(overrides=overrides)


def test_a_profile_value_with_no_effect_is_a_note_not_an_error(caplog):
    # quick sets discriminator.text_hidden for the dual-modal arms; with patch it is idle.
    C._NOTED.clear()
    with caplog.at_level("INFO", logger="docrestore"):
        cfg = C.load_config(profile="quick")
    assert cfg.discriminator.name == "patch"
    assert "'discriminator.text_hidden' has no effect" in caplog.text
    assert ("discriminator.text_hidden", "discriminator.name is patch (no text branch)") in C.no_effect(cfg)
    # the same setting where it acts is no note
    assert not any(k.startswith("discriminator.")
                   for k, _ in C.no_effect(C.load_config(profile="quick", overrides=["discriminator.name=dual_modal"])))


def test_eval_reader_must_not_be_the_loss_recognizer():
    with pytest.raises(C.ConfigError, match="eval.reader"):
        C.load_config(overrides=["recognizer.checkpoint=runs/r.pt", "eval.reader=runs/./r.pt"])


def test_warmup_in_steps_and_epochs_is_refused():
    with pytest.raises(C.ConfigError, match="warmup_epochs"):
        C.load_config(profile="smoke", overrides=["train.ctc.schedule=linear", "train.ctc.warmup=5",
                                                  "train.ctc.warmup_epochs=1"])
