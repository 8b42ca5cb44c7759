"""The dry run refuses what the real run would die on; `docrestore config` shows types, ranges,
choices and what each profile sets."""

from __future__ import annotations

import pytest

from docrestore import cli


@pytest.mark.parametrize("override, named", [
    # with the feature loss on: at weight 0 its taps are refused earlier as having no effect
    ("train.feature_loss.weight=1 train.feature_loss.taps=[cnn_lst]", "Did you mean 'cnn_last'?"),
    ("data.fonts=[NoSuchFont]", "'data.fonts[0]': font 'NoSuchFont' is not installed"),
    ("data.languages=[nl,xx]", "'data.languages' has 'xx'"),
    ("recognizer.checkpoint=nope/rec.pt", "'recognizer.checkpoint' = 'nope/rec.pt': no such file"),
])
def test_dry_run_checks_list_items_and_named_files(tmp_path, capsys, override, named):
    code = cli.main(["train", "--dry-run", "profile=smoke", f"runs_dir={tmp_path}/runs",
                     f"data.root={tmp_path}/data", *override.split()])
    assert code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_dry_run_passes_a_valid_config(tmp_path, capsys):
    assert cli.main(["train", "--dry-run", "profile=smoke", f"data.root={tmp_path}/data"]) == 0
    assert "# profile        : smoke" in capsys.readouterr().out


def test_config_lists_type_range_choices_and_profile_values(capsys):
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "data.n_train  (integer >= 1)  default 20000  [smoke: 48; quick: 2000; full: 20000]" in out
    assert "train.ctc.schedule  (one of constant | linear | cosine | step | switch | balanced)" in out
    assert "data.archival_tokens  (number in [0, 1])" in out
    assert "quick on a CPU" in out.splitlines()[0]
