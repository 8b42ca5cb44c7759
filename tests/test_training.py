"""The trainer: exact resume, CTC monitor at weight 0, a frozen recognizer stays frozen, guards."""

from __future__ import annotations

import copy

import pytest
import torch

from docrestore import config as C
from docrestore import runs as R
from docrestore.training import common
from docrestore.training.gan import GANTrainer


@pytest.fixture
def trained_recognizer(smoke_recognizer):
    return smoke_recognizer


def make_cfg(tmp_path, smoke_dataset, recognizer, *overrides):
    return C.load_config(profile="smoke", overrides=[
        f"runs_dir={tmp_path}/runs", f"data.root={smoke_dataset.parent}", "tracking.enabled=false",
        f"recognizer.checkpoint={recognizer}", *overrides])


def trainer(cfg) -> GANTrainer:
    return GANTrainer(cfg, R.start_run(cfg, "train"))


def twin_steps(cfg):
    """Two trainers with the same G and D but different recognizers, one step each on one batch:
    if CTC reaches G, their generators differ afterwards. Returns (a, b, metrics_a, metrics_b)."""
    a, b = trainer(cfg), trainer(cfg)
    b.generator.load_state_dict(a.generator.state_dict())
    b.discriminator.load_state_dict(a.discriminator.state_dict())
    with torch.no_grad():
        for p in b.recognizer.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    batch = next(iter(common.loader(a.data.train, cfg, batch_size=4)))
    torch.manual_seed(0)
    ma = a.train_step(batch)
    torch.manual_seed(0)
    mb = b.train_step(batch)
    return a, b, ma, mb


@pytest.mark.usefixtures("plain_sample_grids")
def test_resume_continues_exactly(tmp_path, smoke_dataset, trained_recognizer):
    # 2 steps, then 2 more from the checkpoint, against 4 at once: a validation (and its
    # checkpoint) on each side of the break, as in a longer run
    base = ("train.max_steps=4", "train.val_every=2", "train.batch_size=4")
    full = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base))
    full.fit()
    first = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base[1:], "train.max_steps=2"))
    res = first.fit()
    resumed = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base, f"train.resume={res['last']}"))
    assert resumed.step == 2
    resumed.fit()
    assert resumed.step == full.step == 4
    for (name, a), b in zip(full.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b), f"generator tensor {name} differs after resume"
    last_full = [r for r in full.history.records if r["step"] == 4][0]
    last_resumed = [r for r in resumed.history.records if r["step"] == 4][0]
    assert last_full["train/loss_g"] == pytest.approx(last_resumed["train/loss_g"], rel=1e-6)


def test_ctc_is_monitored_at_weight_zero_and_does_not_reach_the_generator(tmp_path, smoke_dataset,
                                                                           trained_recognizer):
    # Linear schedule still in warm-up: the active weight is 0 for every step of this run.
    cfg = make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.scenario=frozen", "train.ctc.weight=5",
                   "train.ctc.schedule=linear", "train.ctc.warmup=100", "train.ctc.ramp=10")
    a, b, ma, mb = twin_steps(cfg)
    assert ma["train/ctc_weight"] == 0.0 and ma["train/ctc_term"] == 0.0
    # ctc_raw: with ERB's per-line sum a randomised recognizer's CTC can sit above the clip.
    assert ma["train/ctc_monitor"] > 0 and ma["train/ctc_raw"] != pytest.approx(mb["train/ctc_raw"])
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters()):
        assert torch.equal(pa, pb)


def test_ctc_reaches_the_generator_once_its_weight_is_positive(tmp_path, smoke_dataset, trained_recognizer):
    # No clip: a clipped CTC (the perturbed recognizer's per-line sum can exceed 100) has no gradient.
    cfg = make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.scenario=frozen", "train.ctc.weight=5",
                   "train.ctc.clip=0")
    a, b, m, _ = twin_steps(cfg)
    assert m["train/ctc_weight"] == 5.0
    assert m["train/ctc_term"] == pytest.approx(5.0 * m["train/ctc_monitor"])
    assert any(not torch.equal(pa, pb) for pa, pb in zip(a.generator.parameters(), b.generator.parameters()))


@pytest.mark.usefixtures("plain_sample_grids")
def test_feature_loss_training_leaves_the_recognizer_untouched(tmp_path, smoke_dataset, trained_recognizer):
    cfg = make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.scenario=frozen", "train.ctc.weight=0",
                   "train.feature_loss.weight=5", "train.max_steps=3", "discriminator.name=dual_modal")
    t = trainer(cfg)
    before = copy.deepcopy(t.frozen_recognizer.state_dict())
    result = t.fit()
    assert all(torch.equal(before[k], v) for k, v in t.frozen_recognizer.state_dict().items())
    assert all(p.grad is None for p in t.frozen_recognizer.parameters())
    assert not any(p is q for p in t.frozen_recognizer.parameters() for g in t.opt_g.param_groups
                   for q in g["params"])
    assert any(r.get("train/feature", 0) > 0 for r in result["history"])


def test_run_writes_checkpoints_samples_and_history(tmp_path, smoke_dataset, trained_recognizer):
    t = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.max_steps=2", "train.val_every=1"))
    res = t.fit()
    run = t.run.dir
    for name in ("config.yaml", "git.json", "run.log", "last.pt", "best_val_cer.pt", "history.json",
                 "result.json"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_0000001.png", "step_0000002.png"]
    assert {"val/psnr", "val/ssim", "val/cer"} <= set(res["val"])


def test_nonfinite_guard_skips_then_stops():
    guard = common.NonFiniteGuard(limit=3)
    assert guard.ok(torch.tensor(1.0), step=0)
    assert not guard.ok(torch.tensor(float("nan")), step=1)
    assert not guard.ok(torch.tensor(float("inf")), step=2)
    with pytest.raises(FloatingPointError, match="consecutive steps had a non-finite loss"):
        guard.ok(torch.tensor(float("nan")), step=3)
    assert guard.total == 3


def test_collapse_is_detected():
    clean = torch.ones(2, 1, 16, 64)
    clean[:, :, 6:10, 10:50] = 0.0
    assert common.collapse_check(torch.ones_like(clean), clean) == "all-white"
    assert common.collapse_check(torch.zeros_like(clean), clean) == "all-black"
    assert common.collapse_check(clean.clone(), clean) == ""


def test_epoch_batches_depend_only_on_seed_and_epoch():
    a = list(common.EpochBatches(20, 4, seed=1, epoch=3))
    assert a == list(common.EpochBatches(20, 4, seed=1, epoch=3))
    assert a != list(common.EpochBatches(20, 4, seed=1, epoch=4))
    assert list(common.EpochBatches(20, 4, seed=1, epoch=3, start=2)) == a[2:]
    assert sorted(i for b in a for i in b) == list(range(20))


@pytest.mark.usefixtures("plain_sample_grids")
def test_evaluate_stage_measures_on_the_checkpoints_own_data(tmp_path, smoke_dataset, trained_recognizer,
                                                             smoke_reader):
    from docrestore import cli

    t = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.max_steps=1"))
    res = t.fit()
    # no profile given (the default is quick on a CPU): the checkpoint's smoke config must be used
    # (and its profile's eval.*: tests/test_evaluate_profile.py). The shared smoke reader is given.
    code = cli.main(["evaluate", f"eval.checkpoint={res['last']}", "eval.experiment=check", f"eval.reader={smoke_reader}",
                     f"eval.ledger_dir={tmp_path}/ledger", f"runs_dir={tmp_path}/runs", "tracking.enabled=false"])
    assert code == 0
    import json

    entry = json.loads((tmp_path / "ledger" / "smoke" / "check.json").read_text())
    assert entry["profile"] == "smoke" and entry["metrics"]["psnr"]["n"] == 12


def test_feature_loss_step_runs_under_bf16_autocast(tmp_path, smoke_dataset, trained_recognizer, monkeypatch):
    """On a GPU the generator's output is bf16 under autocast; every recognizer call (feature loss
    included) must run under autocast too. Simulated on the CPU with CPU bf16 autocast."""
    from docrestore import device as D

    monkeypatch.setattr(D, "autocast", lambda device: torch.autocast(device_type="cpu", dtype=torch.bfloat16))
    cfg = make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.scenario=frozen", "train.ctc.weight=0",
                   "train.feature_loss.weight=5", "discriminator.name=dual_modal")
    t = trainer(cfg)
    batch = next(iter(common.loader(t.data.train, cfg, batch_size=2)))  # CPU bf16 is slow: 2 lines
    metrics = t.train_step(batch)
    assert metrics["train/feature"] > 0 and t.guard.total == 0


def test_raw_ctc_clip_count_and_per_term_gradient_norms(tmp_path, smoke_dataset, trained_recognizer):
    base = ("train.scenario=frozen", "train.ctc.weight=5", "train.grad_norms_every=1")
    t = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base, "train.ctc.clip=0.001",
                         "train.ctc.clip_mode=clamp"))
    batch = next(iter(common.loader(t.data.train, t.cfg, batch_size=4)))
    m = t.train_step(batch)
    # The clamp hides the raw value and kills the CTC gradient: both are visible in the metrics.
    assert m["train/ctc_raw"] > 0.001 == pytest.approx(m["train/ctc_monitor"])
    assert m["train/ctc_clips_total"] == 1 == t.ctc_clips
    assert m["train/ctc_raw_peak"] == m["train/ctc_raw"]  # the first step is logged: its own peak
    assert m["train/gradnorm_ctc"] == 0.0 and m["train/gradnorm_feature"] == 0.0
    assert m["train/gradnorm_adv"] > 0 and m["train/gradnorm_pixel"] > 0
    t2 = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base, "train.ctc.clip=0"))
    m2 = t2.train_step(batch)
    assert m2["train/gradnorm_ctc"] > 0 and m2["train/ctc_clips_total"] == 0
    assert m2["train/ctc_raw"] == pytest.approx(m2["train/ctc_monitor"])


def test_clamp_passes_no_ctc_gradient_and_rescale_does(tmp_path, smoke_dataset, trained_recognizer):
    """Above the clip, clamp (the research notes' clip) leaves the CTC term without a gradient;
    rescale keeps the clipped value and a gradient. Both count the clip."""
    base = ("train.scenario=frozen", "train.ctc.weight=5", "train.grad_norms_every=1", "train.ctc.clip=0.001")
    clamp = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base, "train.ctc.clip_mode=clamp"))
    batch = next(iter(common.loader(clamp.data.train, clamp.cfg, batch_size=4)))
    m = clamp.train_step(batch)
    assert m["train/gradnorm_ctc"] == 0.0 and m["train/ctc_grad"] == 0.0
    rescale = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base))  # the default
    assert rescale.cfg.train.ctc.clip_mode == "rescale"
    m2 = rescale.train_step(batch)
    assert m2["train/gradnorm_ctc"] > 0 and m2["train/ctc_grad"] == 1.0
    assert m2["train/ctc_monitor"] == pytest.approx(0.001) and m2["train/ctc_raw"] > 0.001
    assert m["train/ctc_clips_total"] == m2["train/ctc_clips_total"] == 1


@pytest.mark.usefixtures("plain_sample_grids")
def test_run_records_ctc_onset_zero_gradient_share_and_plateau(tmp_path, smoke_dataset, trained_recognizer):
    """A switch after 2 steps: the CTC gradient first reaches G at step 3; clamped at a tiny clip it never does."""
    base = ("train.scenario=frozen", "train.ctc.weight=5", "train.ctc.schedule=switch", "train.ctc.warmup=2",
            "train.max_steps=4", "train.val_every=2")
    res = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base)).fit()
    ctc = res["ctc"]
    assert ctc["steps"] == 4 and ctc["onset_step"] == 3 and ctc["zero_grad_share"] == pytest.approx(0.5)
    assert ctc["raw"]["p50"] > 0 and ctc["weighted"]["max"] > 0 and ctc["clamped_steps"] == 0
    assert res["schedule"]["warmup_steps"] == 2 and set(res["plateau"]) >= {"reached", "first_step", "rule"}
    pinned = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, *base, "train.ctc.clip=0.001",
                              "train.ctc.clip_mode=clamp")).fit()["ctc"]
    assert pinned["onset_step"] is None and pinned["zero_grad_share"] == 1.0 and pinned["clamped_steps"] == 2
    assert pinned["weighted"]["max"] == pytest.approx(5 * 0.001)


def test_warmup_in_epochs_maps_to_steps(tmp_path, smoke_dataset, trained_recognizer):
    t = trainer(make_cfg(tmp_path, smoke_dataset, trained_recognizer, "train.ctc.schedule=linear",
                         "train.ctc.warmup_epochs=1", "train.ctc.ramp_epochs=0.5"))
    per_epoch = common.steps_per_epoch(len(t.data.train), t.cfg.train.batch_size)
    mapping = t.schedule.mapping()
    assert mapping["steps_per_epoch"] == per_epoch and mapping["warmup_steps"] == per_epoch
    assert mapping["ramp_steps"] == round(0.5 * per_epoch) and "epochs at" in mapping["describe"]


def test_plateau_rule():
    recs = [{"step": s, "val/cer": v} for s, v in [(100, 0.50), (200, 0.40), (300, 0.398), (400, 0.397)]]
    p = common.plateau(recs, window=0.25, tol=0.005)  # from step 300 (0.398) to the best after it (0.397)
    assert p["reached"] and p["fall"] == pytest.approx(0.001)
    assert not common.plateau(recs, window=0.25, tol=0.0005)["reached"]
    assert not common.plateau(recs[:2], window=0.25, tol=0.005)["reached"]  # fell 0.10 over (150, 200]
    assert not common.plateau(recs[:1])["reached"]  # one validation cannot show a plateau
