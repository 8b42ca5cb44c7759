"""One typed configuration tree for every stage.

Resolution order (later wins): dataclass defaults < profile file (configs/profiles/<profile>.yaml)
< the experiment's YAML file < command-line ``key=value`` overrides.

Nothing is silently ignored: an unknown key, a value of the wrong type or a value outside its
allowed range raises :class:`ConfigError`, which names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"
PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "DOCRESTORE_PROFILE"  # the profile when none is given (e.g. smoke for nbval in CI)


class ConfigError(ValueError):
    """A configuration problem, with the key and what is allowed."""


def _f(default: Any, help: str = "", lo: float | None = None, hi: float | None = None, finite: bool = True):
    """A config field with a help text and an optional closed range [lo, hi]; NaN and infinities
    are refused unless ``finite=False``."""
    meta = {"help": help, "lo": lo, "hi": hi, "finite": finite}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    root: str = _f("auto", "dataset folder; 'auto' = data/synth-<hash of the synthesis settings>")
    seed: int = _f(0, "seed of the synthetic data, apart from the training seed so every training seed "
                      "and the held-out reader share one dataset")
    manifest: str = _f("", "path to a manifest.jsonl of real lines; when set, synthesis is skipped")
    source: Literal["synthetic", "real"] = _f(
        "synthetic", "where the line pairs come from: synthetic (font lines rendered and damaged) or real "
                     "(ERB's degraded-real protocol: the real line crops of data.real_lines, "
                     "background-flattened, are the clean lines, the damage model makes the degraded ones)")
    real_lines: str = _f("", "data.source=real: the manifest.jsonl `docrestore ingest` wrote (its page-disjoint "
                             "train/val/test splits are kept)")
    height: int = _f(128, "line image height in pixels", 16, 512)
    width: int = _f(1024, "line image width in pixels", 64, 4096)
    n_train: int = _f(20000, "synthetic training lines", 1)
    n_val: int = _f(1000, "synthetic validation lines", 1)
    n_test: int = _f(2000, "synthetic test lines", 1)
    n_reader: int = _f(0, "synthetic lines in every hand, held-out hands included, that only the held-out "
                          "reader trains on (beside the train split), so it can read the unseen-hand test "
                          "lines; the restorer and the loss recognizer never see them. 0 = none", 0)
    languages: list[str] = _f(["nl", "id"], "wordfreq languages of the word corpus")
    corpus_words: int = _f(8000, "most frequent words taken per language", 10)
    corpus_file: str = _f("", "optional UTF-8 text file of extra words/lines for the corpus")
    min_words: int = _f(2, "fewest words per line", 1, 30)
    max_words: int = _f(6, "most words per line", 1, 30)
    max_chars: int = _f(48, "longest transcription in characters", 4, 512)
    archival_tokens: float = _f(0.25, "share of tokens that are dates, numerals or abbreviations", 0.0, 1.0)
    fonts: list[str] = _f(
        ["Joscelyn", "DkgHandwriting", "Kristi", "Ecolier_court", "femkeklaver", "Breip",
         "Because We Learn", "Junicode Two Beta", "Jessen", "Hamlet"],
        "font family names or .ttf/.otf paths of the hands to render")
    heldout_fonts: list[str] = _f([], "fonts used only for the test split (hands never seen in training)")
    severity_min: float = _f(0.2, "lowest degradation severity", 0.0, 1.0)
    severity_max: float = _f(1.0, "highest degradation severity", 0.0, 1.0)
    workers: int = _f(0, "synthesis processes; 0 = one per CPU core", 0, 256)
    loader_workers: int = _f(0, "DataLoader worker processes", 0, 64)


# ------------------------------------------------------------------------------------- models
@dataclass
class GeneratorConfig:
    name: Literal["unet", "light"] = _f("unet", "generator architecture: unet (ERB's U-Net) or light "
                                               "(depthwise-separable U-Net for fast CPU restoration, "
                                               "made by `docrestore distill`)")
    width: float = _f(1.0, "channel multiplier on the ERB filters 64-128-256-256-512", 0.03, 4.0)
    levels: int = _f(4, "poolings of the light generator (unet always has 4)", 1, 4)
    dropout: float = _f(0.5, "dropout at the two deepest levels", 0.0, 0.9)
    bn_momentum: float = _f(0.2, "PyTorch BatchNorm momentum (Keras 0.8 == PyTorch 0.2)", 0.0, 1.0)
    output_bias: float = _f(2.0, "initial output-layer bias: 2 starts from near-white paper, 0 from grey", -10.0, 10.0)


@dataclass
class DiscriminatorConfig:
    name: Literal["patch", "dual_modal"] = _f("patch", "patch: conditional PatchGAN; dual_modal: image + text branch")
    width: float = _f(1.0, "channel multiplier on 64-128-256-256", 0.03, 4.0)
    image_weight: float = _f(1.0, "dual_modal: weight of the image branch score", 0.0)
    text_weight: float = _f(1.0, "dual_modal: weight of the text branch score", 0.0)
    text_input: Literal["probs", "features"] = _f("probs", "dual_modal: what the text branch reads")
    text_hidden: int = _f(64, "dual_modal: hidden size of the text branch's sequence model", 4, 1024)


@dataclass
class RecognizerConfig:
    name: Literal["crnn", "crnn_lstm", "conv_ctc"] = _f(
        "crnn", "crnn: gated CNN + BiGRU; crnn_lstm: plain CNN + BiLSTM (held-out reader); conv_ctc: residual "
                "CNN + dilated temporal convolutions, no recurrent layer (second held-out reader)")
    width: float = _f(1.0, "channel multiplier on the CNN", 0.03, 4.0)
    rnn_hidden: int = _f(128, "hidden units per direction", 8, 1024)
    rnn_layers: int = _f(2, "recurrent layers", 1, 6)
    dropout: float = _f(0.2, "dropout before the recurrent layers", 0.0, 0.9)
    checkpoint: str = _f("", "pretrained recognizer checkpoint; empty = pretrain one first")


# ----------------------------------------------------------------------------------- training
@dataclass
class CTCConfig:
    weight: float = _f(1.0, "target CTC weight (lambda); 0 = plain conditional GAN; with schedule=balanced "
                            "any value > 0 only switches CTC on (the weight is alpha * std ratio)", 0.0)
    schedule: Literal["constant", "linear", "cosine", "step", "switch", "balanced"] = _f(
        "constant", "how the active CTC weight moves from 0 to the target")
    warmup: int = _f(0, "steps at weight 0 before the ramp starts", 0)
    ramp: int = _f(0, "steps over which the weight ramps to the target", 0)
    warmup_epochs: float = _f(0.0, "the warm-up in epochs of the training split instead of steps (steps = "
                                   "round(epochs x steps per epoch), recorded in the run); 0 = use warmup", 0.0)
    ramp_epochs: float = _f(0.0, "the ramp in epochs of the training split instead of steps; 0 = use ramp", 0.0)
    steps: int = _f(4, "schedule=step: number of equal stairs in the ramp", 1, 1000)
    alpha: float = _f(1.0, "schedule=balanced: alpha in alpha*std(grad_adv)/std(grad_ctc)", 0.0)
    clip: float = _f(100.0, "CTC values above this are clipped before weighting (0 = no clip); see clip_mode", 0.0)
    clip_mode: Literal["rescale", "clamp"] = _f(
        "rescale", "rescale: above the clip the CTC is multiplied by clip/CTC (the clipped value, its gradient "
                   "scaled, never zero); clamp: min(CTC, clip), the research notes' clip, which passes NO "
                   "gradient to the generator while the CTC is above the clip")
    reduction: Literal["sum", "per_char"] = _f(
        "sum", "sum: each line's CTC summed over its characters, then the batch mean (ERB's code, so "
               "lambda means ERB's lambda); per_char: each line's CTC divided by its length (10-25x smaller)")


@dataclass
class FeatureLossConfig:
    weight: float = _f(0.0, "weight of the recognition feature loss; 0 = off", 0.0)
    taps: list[str] = _f(["cnn_last"], "recognizer taps compared, each one of cnn1 ... cnn5, cnn_last "
                                       "(= the last CNN block), rnn (Recognizer.TAPS)")
    tap_weights: list[float] = _f([], "one weight per tap; empty = equal weights")
    distance: Literal["mse", "l1"] = _f("mse", "distance between normalised tap features")
    normalize: bool = _f(True, "unit-length features over channels before the distance")


@dataclass
class TrainConfig:
    epochs: int = _f(150, "training epochs (max_steps wins when > 0)", 1)
    max_steps: int = _f(0, "stop after this many generator steps; 0 = epochs decide", 0)
    batch_size: int = _f(8, "lines per batch", 1, 4096)
    lr_g: float = _f(1e-4, "Adam learning rate of the generator", 0.0, 1.0)
    lr_d: float = _f(1e-4, "Adam learning rate of the discriminator", 0.0, 1.0)
    lr_r: float = _f(1e-3, "RMSprop learning rate of the recognizer (scenarios S1/S2)", 0.0, 1.0)
    adv_loss: Literal["lsgan", "vanilla"] = _f("lsgan", "lsgan: least squares (ERB code); vanilla: BCE (ERB paper)")
    adv_weight: float = _f(1.0, "weight of the adversarial loss", 0.0)
    pixel_loss: Literal["bce", "l1", "mse"] = _f("bce", "pixel loss between restored and clean")
    pixel_weight: float = _f(10.0, "beta: weight of the pixel loss", 0.0)
    scenario: Literal["S1", "S2", "frozen"] = _f(
        "S1", "S1: recognizer trained on clean lines; S2: on restored lines; frozen: never updated")
    ctc: CTCConfig = field(default_factory=CTCConfig)
    feature_loss: FeatureLossConfig = field(default_factory=FeatureLossConfig)
    val_every: int = _f(500, "validate (and write last.pt) every N steps and at the last step", 1)
    val_lines: int = _f(256, "validation lines used at each validation", 1)
    early_stop_metric: Literal["val/psnr", "val/ssim", "val/cer", "none"] = _f(
        "val/cer", "metric that picks best_<metric>.pt and stops early; none: no early stop (best by val/cer)")
    patience: int = _f(0, "validations without improvement before stopping (never before the CTC warm-up "
                          "and ramp are over); 0 = never stop early", 0)
    plateau_tol: float = _f(0.005, "validation CER has plateaued when it fell by less than this (0.005 = 0.5 "
                                   "points) over the last plateau_window of the steps so far (recorded per run)",
                            0.0, 1.0)
    plateau_window: float = _f(0.25, "share of the steps so far over which the plateau is judged", 0.01, 1.0)
    stop_at_plateau: bool = _f(False, "stop when validation CER has plateaued (never inside the CTC warm-up and "
                                      "ramp); max_steps / epochs are the cap")
    max_nonfinite: int = _f(20, "consecutive non-finite steps that stop the run", 1)
    grad_norms_every: int = _f(5, "every N steps, log the L2 norm of each loss term's gradient at the "
                                  "generator output (train/gradnorm_<term>); 0 = never (saves the extra "
                                  "backward passes)", 0)
    grad_clip: float = _f(0.0, "clip gradient norm of G and D; 0 = off", 0.0)
    samples: int = _f(8, "lines in each sample grid", 1, 64)
    resume: str = _f("", "checkpoint to resume from (last.pt of an interrupted run)")
    checkpoint_minutes: float = _f(30.0, "also write last.pt every N minutes of training (0 = only at "
                                         "validations); SIGTERM/SIGINT always write one", 0.0, 1440.0)
    auto_resume: bool = _f(True, "`docrestore train` continues the newest interrupted run of the same config "
                                 "in its folder and MLflow run; false = always a new run")
    mode: Literal["lines", "pages"] = _f(
        "lines", "what the generator is trained on: lines (synthetic or real line manifests) or pages (patches "
                 "of page pairs; set by the page stage, notebook 05). Restore reads it: a pages checkpoint "
                 "restores at native scale")
    init_from: str = _f("", "GAN checkpoint whose generator weights start this run (e.g. a synthetic-line model "
                            "fine-tuned on pages); empty = from scratch. Only the generator is taken")


@dataclass
class RecognizerTrainConfig:
    epochs: int = _f(30, "pretraining epochs", 1)
    max_steps: int = _f(0, "stop after this many steps; 0 = epochs decide", 0)
    batch_size: int = _f(16, "lines per batch", 1, 4096)
    optimizer: Literal["adam", "rmsprop"] = _f("adam", "optimiser of the pretraining (the GAN stage uses RMSprop as ERB)")
    lr: float = _f(1e-3, "learning rate of the pretraining", 0.0, 1.0)
    on_degraded: float = _f(0.0, "share of batches read from degraded lines (0 = clean only)", 0.0, 1.0)
    schedule: Literal["constant", "cosine"] = _f(
        "constant", "learning rate over the pretraining: constant, or cosine decay to 0 after a linear warm-up")
    warmup: int = _f(100, "schedule=cosine: steps of linear learning-rate warm-up", 0)
    augment: bool = _f(False, "vary pen width, size, slant, baseline and ink contrast of each training line "
                              "(data/augment.py)")
    reader_lines: bool = _f(False, "also train on the data's 'reader' split (data.n_reader); set for the "
                                   "held-out reader only")
    val_every: int = _f(500, "validate every N steps", 1)
    patience: int = _f(0, "validations without CER improvement before stopping; 0 = never", 0)
    init: str = _f("", "recognizer checkpoint to fine-tune (e.g. the held-out reader on real lines of "
                       "data.manifest); characters it lacks are added to its charset and reported; "
                       "empty = train from scratch")


# --------------------------------------------------------------------------------- evaluation
@dataclass
class EvalConfig:
    reader: str = _f("", "held-out reader checkpoint for the paper's CER/WER; empty = train one")
    reader_seed: int = _f(1234, "seed of the held-out reader (differs from the loss recognizer's)")
    reader_arch: Literal["crnn", "crnn_lstm", "conv_ctc"] = _f("crnn_lstm", "architecture variant of the held-out reader")
    reader2_arch: Literal["", "crnn", "crnn_lstm", "conv_ctc"] = _f(
        "", "architecture of a second held-out reader (conv_ctc: no recurrent layer), trained like the first "
            "(its steps, width, schedule, lines) with eval.reader2_seed; its CER/WER are recorded as "
            "cer_reader2/wer_reader2. Empty = no second reader")
    reader2: str = _f("", "second held-out reader checkpoint; empty = train one when eval.reader2_arch is set")
    reader2_seed: int = _f(4321, "seed of the second held-out reader")
    reader_steps: int = _f(0, "pretraining steps of the held-out reader; 0 = as recognizer_train says "
                              "(the loss recognizer's length)", 0)
    reader_width: float = _f(0.0, "CNN channel multiplier of the held-out reader; 0 = recognizer.width. It "
                                  "only reads at evaluation, so it can be larger than the loss recognizer, "
                                  "which runs inside every GAN step", 0.0, 4.0)
    reader_rnn_hidden: int = _f(0, "hidden units per direction of the held-out reader; 0 = recognizer.rnn_hidden",
                                0, 1024)
    reader_schedule: Literal["same", "constant", "cosine"] = _f(
        "same", "learning-rate schedule of the held-out reader's pretraining; same = recognizer_train.schedule")
    reader_augment: Literal["same", "augmented", "plain"] = _f(
        "same", "held-out reader's training lines: augmented, plain, or same = as recognizer_train.augment")
    bootstrap: int = _f(1000, "bootstrap resamples for 95% intervals", 10)
    ssim_window: int = _f(11, "SSIM Gaussian window size (odd)", 3, 51)
    ssim_sigma: float = _f(1.5, "SSIM Gaussian sigma", 0.1, 10.0)
    lines: int = _f(0, "test lines evaluated; 0 = all", 0)
    split: Literal["test", "val", "train", "reader", "all"] = _f(
        "test", "lines `docrestore evaluate` reads: one split of the manifest, or all of them. The paper's "
                "entry (PSNR/SSIM) measures the test split's pairs; lines without a clean image (an "
                "archive's), and with another split every line, are read before and after restoration "
                "into <ledger_dir>/<profile>/real/<experiment>.json with a per-line CSV beside it")
    checkpoint: str = _f("", "generator checkpoint evaluated by `docrestore evaluate`")
    experiment: str = _f("", "name of the ledger entry written (paper/results/<profile>/<experiment>.json)")
    ledger_dir: str = _f("paper/results", "folder of the results ledger")
    allow_dirty: bool = _f(False, "allow a quick/full entry in paper/results from a tree with uncommitted "
                                  "changes (refused otherwise); it is marked with a dagger in the tables")


@dataclass
class RestoreConfig:
    tile_height: int = _f(128, "tile height fed to the generator", 16, 4096)
    tile_width: int = _f(1024, "tile width fed to the generator", 16, 8192)
    overlap: float = _f(0.25, "overlap between neighbouring tiles, as a share of the tile", 0.0, 0.75)
    batch_size: int = _f(8, "tiles per forward pass", 1, 1024)
    text_height: str = _f("off", "fit the page's writing to the checkpoint's training scale: off (native "
                                 "scale, the default: auto measured worse than off on DIBCO pages with a "
                                 "checkpoint trained on synthetic lines, see the logbook), auto (estimate "
                                 "per page) or the text height in px (a number > 0); a checkpoint trained "
                                 "on pages restores at native scale")
    min_scale: float = _f(0.8, "strongest shrink the text-size step may apply (auto or PIXELS): a page is "
                               "never resized below this factor; thin strokes of pages shrunk further "
                               "did not survive (DIBCO, logbook 2026-11-30)", 0.125, 1.0)
    flip_vote: bool = _f(False, "also restore the mirrored page and average the two (ERB's test-time vote; "
                                "twice the time); measured on DIBCO validation pages in the logbook")
    page_model: str = _f("models/page_model.pt", "the generator `docrestore restore` uses when no --checkpoint "
                                                "is given: the deployable page model `make page-model` writes "
                                                "(relative paths: from the project root)")
    runtime: Literal["auto", "torch", "onnx"] = _f("auto", "inference runtime: onnx (the generator exported "
                                                          "and run by ONNX Runtime, checked against PyTorch "
                                                          "within 1e-3), torch, or auto (onnx on a CPU, "
                                                          "where it measured faster; torch on a GPU)")


@dataclass
class PagesConfig:
    """Real degraded pages with binary ground truth (DIBCO): training on page patches and the
    page-level benchmark. Used by the page stage only (docrestore.training.pages, notebook 05)."""

    root: str = _f("auto", "folder of page pairs; 'auto' = ../shared/data/dibco beside the project (make DIBCO=PATH)")
    layout: Literal["auto", "dibco", "folders"] = _f(
        "auto", "dibco: <SET>_<ID>_source/_target files; folders: imgs/ + gt/ with matching stems "
                "(the root, or one sub-folder per set); auto: whichever the root holds")
    train_sets: list[str] = _f(["DIBCO2009", "DIBCO2010", "DIBCO2011", "DIBCO2012", "DIBCO2013", "DIBCO2014"],
                               "sets whose pages train the model (and give the validation pages)")
    test_sets: list[str] = _f(["DIBCO2017"], "sets the benchmark is measured on; never used in training or validation")
    val_pages: int = _f(3, "training pages held out for validation: the last page (by id) of the first N "
                           "training sets", 1, 100)
    test_pages: int = _f(0, "test pages evaluated (in name order); 0 = all", 0)
    patch_height: int = _f(0, "training patch height; 0 = data.height (the recognizer's line height)", 0, 2048)
    patch_width: int = _f(0, "training patch width; 0 = data.width", 0, 4096)
    patches_per_page: int = _f(64, "random patches drawn per training page in one epoch", 1, 100000)
    max_steps: int = _f(0, "generator steps of a page run (replaces train.max_steps there); 0 = train.max_steps", 0)
    val_every: int = _f(0, "validate on the whole validation pages every N steps (replaces train.val_every "
                           "there); 0 = train.val_every", 0)
    tile: int = _f(256, "side of the square tiles a whole page is restored in (multiple of 16); 0 = the patch size",
                   0, 4096)
    binarize: Literal["fixed", "otsu", "val"] = _f(
        "fixed", "how a restored page becomes binary before the DIBCO metrics: fixed = ink below 0.5, "
                 "otsu = Otsu's threshold of the restored page, val = the one threshold (0.05 ... 0.95) with "
                 "the best mean F-measure on the validation pages (never the test pages); recorded per entry")
    flip_vote: bool = _f(False, "restore each page and its mirror image and average the two (ERB's test-time "
                                "vote between the page and its flipped copy); twice the restoration time")
    references: list[str] = _f(["otsu", "sauvola", "wolf", "nick", "isauvola", "su"],
                               "classical binarisers (doxapy) measured beside the methods")
    crop: int = _f(256, "side of the page crops in the figure (pixels)", 32, 4096)


@dataclass
class DistillConfig:
    """`docrestore distill --teacher CKPT`: a light generator trained to copy a trained one."""

    teacher: str = _f("", "the trained generator checkpoint to copy (--teacher)")
    student: Literal["unet", "light"] = _f("light", "the student's generator.name")
    width: float = _f(0.125, "the student's generator.width", 0.03, 4.0)
    levels: int = _f(3, "the student's generator.levels (light only)", 1, 4)
    steps: int = _f(1500, "student updates", 1)
    batch_size: int = _f(16, "lines (or page patches) per update", 1, 4096)
    lr: float = _f(2e-3, "Adam learning rate (cosine decay to 5% of it)", 1e-6, 1.0)
    loss: Literal["l1", "bce"] = _f("l1", "distance to the teacher's output: l1, or bce to the teacher's "
                                          "sigmoid output as a soft target")
    pages: str = _f("", "optional folder of page pairs (e.g. DIBCO): patches of its pages.train_sets pages "
                        "are mixed into the training batches (the test sets are never read)")
    page_share: float = _f(0.5, "share of the updates drawn from page patches when distill.pages is set",
                           0.0, 1.0)
    val_lines: int = _f(100, "validation lines scored (PSNR to the clean line, student and teacher)", 1)
    val_every: int = _f(250, "score the student every N updates (best_val_psnr.pt keeps the best)", 1)
    resume: str = _f("", "last.pt of an interrupted distill run to continue (in a new run folder; the "
                         "old one is kept); same teacher and student design")


@dataclass
class TrackingConfig:
    uri: str = _f("", "MLflow tracking URI; empty = $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db")
    experiment: str = _f("docrestore", "MLflow experiment name")
    enabled: bool = _f(True, "log to MLflow")


@dataclass
class Config:
    profile: Literal["smoke", "quick", "full"] = _f("full", "size profile: smoke (seconds), quick (CPU), full (GPU)")
    seed: int = _f(0, "seed of Python, NumPy, torch and the DataLoader workers")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    desc: str = _f("", "short description used in the run folder name")
    runs_dir: str = _f("runs", "where run folders are created")
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    recognizer_train: RecognizerTrainConfig = field(default_factory=RecognizerTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    restore: RestoreConfig = field(default_factory=RestoreConfig)
    pages: PagesConfig = field(default_factory=PagesConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# ------------------------------------------------------------------------------- mechanics
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _allowed(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _unknown(key: str, cls, prefix: str) -> ConfigError:
    allowed = _allowed(cls)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown config key '{prefix}{key}'.{hint} Allowed keys in "
        f"'{prefix.rstrip('.') or '<top level>'}': {', '.join(allowed)}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float)."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"'{key}' must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (list, tuple):
        (item_tp,) = get_args(tp)[:1]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and item_tp is not str:
            value = [value]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if item_tp is str else [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"'{key}' must be {tp}, got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
            number = float(value)  # YAML 1.1 reads 1e4 as text; an integral value is an integer
            value = int(number) if number.is_integer() else value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) and nan as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            # YAML reads 'desc=2024' as int; a string field accepts scalars as text.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"'{key}' must be text, got {value!r}")
        return value
    raise ConfigError(f"'{key}': unsupported type {tp}")


# Numbers as text: YAML 1.1 (PyYAML) reads 1e-3, 1E5 and nan as strings.
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
NUMBER_TEXT = re.compile(SCIENTIFIC.pattern + r"|[-+]?(nan|inf|infinity)", re.IGNORECASE)
# An integer key without its own upper bound still ends somewhere: a count or a step number
# beyond a 32-bit int is a typing slip, and torch and numpy index with such ints.
INT_CAP = 2**31 - 1


def _check_range(obj, f: dataclasses.Field, key: str) -> None:
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    v = getattr(obj, f.name)
    if isinstance(v, list):
        for i, item in enumerate(v):
            _check_number(item, lo, hi, f.metadata.get("finite", True), f"{key}[{i}]")
    else:
        _check_number(v, lo, hi, f.metadata.get("finite", True), key)


def _check_number(v: Any, lo: float | None, hi: float | None, finite: bool, key: str) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return
    if finite and not math.isfinite(v):  # NaN fails no comparison: it passed every range check
        raise ConfigError(f"'{key}' = {v} is not a finite number; give a number (nan and inf are not allowed)")
    if isinstance(v, int) and hi is None:
        hi = INT_CAP
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ConfigError(f"'{key}' = {v} is outside the allowed range {rng}")


def _apply(obj, mapping: dict, prefix: str = "") -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {mapping!r}")
    hints = _hints(type(obj))
    for key, value in mapping.items():
        if key not in hints:
            leaf = str(key)
            while isinstance(value, dict) and len(value) == 1:  # name the whole dotted key
                (k, value), = value.items()
                leaf += f".{k}"
            err = _unknown(str(key), type(obj), prefix)
            if leaf != str(key):
                err = ConfigError(f"unknown config key '{prefix}{leaf}': " + str(err))
            raise err
        tp = hints[key]
        full = prefix + key
        if dataclasses.is_dataclass(tp):
            _apply(getattr(obj, key), value or {}, full + ".")
        else:
            setattr(obj, key, _coerce(value, tp, full))


def validate(cfg: Config, explicit: set[str] | None = None) -> Config:
    """Range checks and cross-field rules; raises ConfigError.

    ``explicit``: the dotted keys set by the experiment file or the overrides (not the profile).
    Such a key that would have no effect in this configuration is an error; a profile's value
    that has none is a logged note (see :func:`no_effect`).
    """

    def walk(obj, prefix):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, prefix + f.name + ".")
            else:
                _check_range(obj, f, prefix + f.name)

    walk(cfg, "")
    d = cfg.data
    if d.min_words > d.max_words:
        raise ConfigError(f"'data.min_words' ({d.min_words}) must not exceed 'data.max_words' ({d.max_words})")
    if d.severity_min > d.severity_max:
        raise ConfigError("'data.severity_min' must not exceed 'data.severity_max'")
    if d.source == "real" and not d.real_lines:
        raise ConfigError("'data.source' is real but 'data.real_lines' is empty; give the manifest.jsonl that "
                          "`docrestore ingest` wrote (data.real_lines=runs/htr/manifest.jsonl)")
    if d.source == "real" and d.manifest:
        raise ConfigError(f"'data.source' is real and 'data.manifest' is set ({d.manifest}): the first makes "
                          "pairs from data.real_lines, the second reads a finished manifest; set only one")
    fl = cfg.train.feature_loss
    if fl.tap_weights and len(fl.tap_weights) != len(fl.taps):
        raise ConfigError(f"'train.feature_loss.tap_weights' has {len(fl.tap_weights)} values but "
                          f"'train.feature_loss.taps' has {len(fl.taps)}; give one weight per tap or none")
    ctc = cfg.train.ctc
    for unit in ("warmup", "ramp"):
        if getattr(ctc, unit) and getattr(ctc, f"{unit}_epochs"):
            raise ConfigError(f"'train.ctc.{unit}' = {getattr(ctc, unit)} steps and 'train.ctc.{unit}_epochs' = "
                              f"{getattr(ctc, f'{unit}_epochs')} both set: give the {unit} in steps or in "
                              "epochs, not both")
    th = str(cfg.restore.text_height).strip().lower()
    if th not in ("auto", "off"):
        try:
            ok = float(th) > 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"'restore.text_height' must be auto, off or a positive number of pixels, "
                              f"got {cfg.restore.text_height!r}")
    if cfg.eval.ssim_window % 2 == 0:
        raise ConfigError(f"'eval.ssim_window' must be odd, got {cfg.eval.ssim_window}")
    if cfg.eval.reader and cfg.recognizer.checkpoint and (
            resolve_path(cfg.eval.reader).resolve() == resolve_path(cfg.recognizer.checkpoint).resolve()):
        raise ConfigError(f"'eval.reader' is the loss recognizer itself ({cfg.eval.reader}): the paper's "
                          "CER/WER must be read by a network no loss was trained against; leave eval.reader "
                          "empty (a held-out reader is trained) or give another checkpoint")
    _check_effect(cfg, explicit)
    from .device import DEVICE_CHOICES, is_valid_request

    if not is_valid_request(cfg.device):
        raise ConfigError(f"'device' must be {DEVICE_CHOICES}, got {cfg.device!r}")
    return cfg


def no_effect(cfg: Config) -> list[tuple[str, str]]:
    """``(dotted key, why)`` for every setting that differs from its default but does nothing in
    this configuration (e.g. a CTC ramp with the constant schedule)."""
    base = flatten(to_dict(Config()))
    now = flatten(to_dict(cfg))
    out: list[tuple[str, str]] = []

    def idle(keys, why):
        out.extend((k, why) for k in keys if now[k] != base[k])

    ctc, tc = cfg.train.ctc, cfg.train
    uses_ctc = ctc.weight > 0 or ctc.schedule == "balanced"
    if not uses_ctc:
        idle(["train.ctc.schedule", "train.ctc.warmup", "train.ctc.ramp", "train.ctc.steps", "train.ctc.alpha",
              "train.ctc.warmup_epochs", "train.ctc.ramp_epochs", "train.ctc.clip_mode"],
             "train.ctc.weight is 0 (CTC is only monitored)")
    else:
        if ctc.schedule == "constant":
            idle(["train.ctc.warmup", "train.ctc.ramp", "train.ctc.warmup_epochs", "train.ctc.ramp_epochs"],
                 "train.ctc.schedule is constant")
        if ctc.schedule in ("switch", "balanced"):
            idle(["train.ctc.ramp", "train.ctc.ramp_epochs"], f"train.ctc.schedule is {ctc.schedule} (no ramp)")
        if ctc.schedule != "step":
            idle(["train.ctc.steps"], "only train.ctc.schedule=step has stairs")
        if ctc.schedule != "balanced":
            idle(["train.ctc.alpha"], "only train.ctc.schedule=balanced uses alpha")
    if not (uses_ctc and tc.scenario in ("S1", "S2")):
        idle(["train.lr_r"], "no recognizer is updated (scenario frozen, or CTC weight 0)")
    if not uses_ctc and tc.scenario in ("S1", "S2"):
        out.append(("train.scenario", f"{tc.scenario} updates the recognizer only for the CTC term, and "
                                      "train.ctc.weight is 0: the run is scenario frozen"))
    if cfg.discriminator.name == "patch":
        idle(["discriminator.image_weight", "discriminator.text_weight", "discriminator.text_input",
              "discriminator.text_hidden"], "discriminator.name is patch (no text branch)")
    if tc.feature_loss.weight == 0:
        idle(["train.feature_loss.taps", "train.feature_loss.tap_weights", "train.feature_loss.distance",
              "train.feature_loss.normalize"], "train.feature_loss.weight is 0")
    if cfg.generator.name != "light":
        idle(["generator.levels"], "generator.name is unet (always 4 levels)")
    if cfg.distill.student != "light":
        idle(["distill.levels"], "distill.student is unet (always 4 levels)")
    if not cfg.data.n_reader:
        idle(["recognizer_train.reader_lines"], "data.n_reader is 0 (no reader split)")
    if cfg.data.source != "real":
        idle(["data.real_lines"], "data.source is synthetic")
    if not cfg.distill.pages:
        idle(["distill.page_share"], "distill.pages is empty (lines only)")
    if tc.early_stop_metric == "none":
        idle(["train.patience"], "train.early_stop_metric is none")
    if tc.max_steps > 0:
        idle(["train.epochs"], "train.max_steps > 0 decides the length")
    if cfg.recognizer_train.max_steps > 0:
        idle(["recognizer_train.epochs"], "recognizer_train.max_steps > 0 decides the length")
    if cfg.recognizer_train.schedule == "constant" and cfg.eval.reader_schedule in ("same", "constant"):
        idle(["recognizer_train.warmup"], "no recognizer is pretrained with schedule=cosine")
    if cfg.eval.reader:
        idle(["eval.reader_steps", "eval.reader_width", "eval.reader_rnn_hidden", "eval.reader_schedule",
              "eval.reader_augment"],
             "eval.reader is given: no reader is pretrained")
    if cfg.recognizer.checkpoint and cfg.eval.reader:
        idle([k for k in now if k.startswith("recognizer_train.")],
             "both recognizer.checkpoint and eval.reader are given: nothing is pretrained")
    return out


_NOTED: set[str] = set()


def _check_effect(cfg: Config, explicit: set[str] | None) -> None:
    import logging

    for key, why in no_effect(cfg):
        if explicit and key in explicit:
            raise ConfigError(f"'{key}' has no effect here: {why}. Remove it, or change what makes it idle")
        note = f"note: '{key}' has no effect here ({why})"
        if explicit is not None and note not in _NOTED:  # a profile's value or a default: said once, not an error
            _NOTED.add(note)
            logging.getLogger("docrestore").info(note)


def override_list(overrides: str | list | tuple | None) -> list[str]:
    """Overrides as a list of 'key=value' strings. `papermill -p overrides "a=1 b=2"` (or a YAML
    list written as text) arrives as one string: it is split, never iterated letter by letter."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        parsed = yaml.safe_load(overrides) if overrides.strip().startswith("[") else None
        return [str(o) for o in parsed] if isinstance(parsed, list) else overrides.split()
    return [str(o) for o in overrides]


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. data.n_train=5000)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    cur = out
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def resolve_path(p: str | Path) -> Path:
    """Relative paths in configs are relative to the project root, wherever the caller runs
    (papermill runs notebooks with notebooks/ as the working directory)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def total_steps(cfg: Config, n_train: int | None = None) -> int:
    """Generator steps of a run: ``train.max_steps``, else ``train.epochs`` epochs of ``n_train``
    lines (default ``data.n_train``; the trainer passes its dataset's length), at least one step
    an epoch."""
    t = cfg.train
    n = cfg.data.n_train if n_train is None else n_train
    return t.max_steps if t.max_steps > 0 else t.epochs * max(1, n // t.batch_size)


def project_relative(path: str | Path | None) -> str:
    """The inverse of :func:`resolve_path` for what is recorded: a path inside the project as a
    relative POSIX path (checkpoints and the ledger move with the repository); any other path
    unchanged; None or '' -> ''."""
    if path is None or not str(path):
        return ""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(PROJECT_ROOT).as_posix()
        except (ValueError, OSError):
            pass
    return p.as_posix()


def profile_path(profile: str) -> Path:
    return CONFIG_DIR / "profiles" / f"{profile}.yaml"


def choose_profile(profile: str | None = None) -> tuple[str, str]:
    """(profile, why) — the one rule the CLI, the pipeline and the notebooks share: the profile
    given, else $DOCRESTORE_PROFILE, else a real experiment: full on a GPU, quick on a CPU."""
    import os

    if profile:
        return profile, "given"
    env = os.environ.get(PROFILE_ENV, "").strip()
    if env:
        if env not in PROFILES:
            raise ConfigError(f"${PROFILE_ENV} must be one of {list(PROFILES)}, got {env!r}")
        return env, f"from ${PROFILE_ENV}"
    from .device import has_gpu

    if has_gpu():
        return "full", "none given and a GPU is present (full: the paper's size)"
    return "quick", "none given and no GPU is present (quick: the CPU-sized real experiment)"


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                profile: str | None = None) -> Config:
    """Resolve defaults < profile < file < overrides into a validated :class:`Config`.

    ``overrides`` is a list of ``key=value`` strings or a flat ``{dotted.key: value}`` dict.
    ``profile`` given here wins over one in the file or the overrides; with none anywhere,
    :func:`choose_profile` decides (full on a GPU, quick on a CPU).
    """
    file_data = _read_yaml(Path(path)) if path else {}
    over: dict = {}
    if isinstance(overrides, str):
        overrides = override_list(overrides)
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = [parse_override(o) for o in (overrides or [])]
    for k, v in items:
        over = _merge(over, _nest(k, v))
    chosen = choose_profile(profile or over.get("profile") or file_data.get("profile"))[0]
    if chosen not in PROFILES:
        raise ConfigError(f"'profile' must be one of {list(PROFILES)}, got {chosen!r}")
    cfg = Config()
    prof = profile_path(chosen)
    if prof.exists():
        _apply(cfg, _read_yaml(prof))
    _apply(cfg, file_data)
    _apply(cfg, over)
    cfg.profile = chosen
    explicit = set(flatten(file_data)) | set(flatten(over))
    return validate(cfg, explicit)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def flat_defaults() -> dict[str, Any]:
    """{dotted key: the dataclass default} for every key (before any profile or file)."""
    return flatten(to_dict(Config()))


def diff_from_defaults(cfg: Config) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (default, value)} for every value that differs from the dataclass default."""
    base = flat_defaults()
    now = flatten(to_dict(cfg))
    return {k: (base[k], v) for k, v in now.items() if base.get(k) != v}


def render(cfg: Config) -> str:
    """The resolved config as YAML, with '# default: X' after every value that differs."""
    changed = diff_from_defaults(cfg)
    lines: list[str] = []

    def walk(obj, indent, prefix):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                lines.append(f"{'  ' * indent}{f.name}:")
                walk(v, indent + 1, prefix + f.name + ".")
                continue
            # one line per key, however long (a wrapped value would not read back)
            text = yaml.safe_dump(v, default_flow_style=True, allow_unicode=True, width=1 << 30).strip()
            text = text.removesuffix("\n...").removesuffix("...").strip()
            key = prefix + f.name
            mark = ""
            if key in changed:
                dflt = yaml.safe_dump(changed[key][0], default_flow_style=True, allow_unicode=True,
                                      width=1 << 30).strip()
                dflt = dflt.removesuffix("...").strip()
                mark = f"  # * changed (default: {dflt})"
            lines.append(f"{'  ' * indent}{f.name}: {text}{mark}")

    walk(cfg, 0, "")
    return "\n".join(lines) + "\n"


def save(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(render(cfg), encoding="utf-8")


def from_dict(d: dict) -> Config:
    """Rebuild a Config from a saved dict (a checkpoint or config.yaml), strictly."""
    cfg = Config()
    _apply(cfg, d)
    return validate(cfg)


def type_text(tp: Any, f: dataclasses.Field | None = None) -> str:
    """A key's type with its choices or range, as `docrestore config` shows it."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + " | ".join(str(c) for c in get_args(tp))
    if origin in (list, tuple):
        return f"list of {type_text(get_args(tp)[0])}"
    names = {bool: "true/false", int: "integer", float: "number", str: "text"}
    text = names.get(tp, getattr(tp, "__name__", str(tp)))
    lo, hi = (f.metadata.get("lo"), f.metadata.get("hi")) if f is not None else (None, None)
    if lo is not None and hi is not None:
        text += f" in [{lo:g}, {hi:g}]"
    elif lo is not None:
        text += f" >= {lo:g}"
    elif hi is not None:
        text += f" <= {hi:g}"
    return text


def profile_values() -> dict[str, dict[str, Any]]:
    """{profile: {dotted key: value}} of what each profile file sets."""
    return {p: flatten(_read_yaml(profile_path(p))) if profile_path(p).exists() else {} for p in PROFILES}


def _short(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip().removesuffix("...").strip()


def help_text(cls=Config, prefix: str = "", profiles: dict | None = None) -> list[str]:
    """Two lines per key for `docrestore config`: name, type with choices or range, default and
    the value each profile sets; then the meaning."""
    profiles = profile_values() if profiles is None else profiles
    out = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            out += help_text(tp, key + ".", profiles)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        set_by = [f"{p}: {_short(v[key])}" for p, v in profiles.items() if key in v]
        line = f"{key}  ({type_text(tp, f)})  default {_short(default)}"
        if key == "profile":
            line = (f"{key}  ({type_text(tp, f)})  default: none given -> ${PROFILE_ENV}, else full on a GPU, "
                    "quick on a CPU (CLI and notebooks alike)")
        out.append(line + (f"  [{'; '.join(set_by)}]" if set_by else ""))
        out.append(f"    {f.metadata.get('help', '')}")
    return out
