"""Writes notebooks 01-03 (thin: parameters, one library call per step, displays).

The notebooks are the committed artefacts; this script is how they were made, so a change to
their shape is a change here, reviewed as code. Run: python scripts/make_notebooks.py
"""

from pathlib import Path

import nbformat as nbf

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def notebook(title: str, intro: str, parameters: str, cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbf.v4.new_markdown_cell(f"# {title}\n\n{intro}"))
    p = nbf.v4.new_code_cell(parameters)
    p.metadata["tags"] = ["parameters"]
    nb.cells.append(p)
    for kind, src in cells:
        nb.cells.append(nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src))
    return nb


COMMON_PARAMS = '''profile = None        # None: a real experiment (full on a GPU, quick on a CPU); or smoke | quick | full
seed = 0
steps = None          # generator steps; None: from the profile
data_root = None      # dataset folder; None: the synthesised data of the profile
overrides = []        # extra dotted key-value config overrides (strings); docrestore config lists the keys
reuse = True          # reuse ledger entries made with exactly the same config
'''

IMPORTS = ("code", "from docrestore import pipeline as P\n"
                   "from docrestore.figures import plots\n"
                   "from docrestore.notebook import show")

NB01 = notebook(
    "01 — Baseline: a PyTorch replica of Souibgui et al., “Enhance to Read Better”",
    "U-Net generator, conditional PatchGAN discriminator (least-squares loss), CRNN recognizer with CTC.\n"
    "L = L_adv + λ·CTC + β·BCE(pixel). Arms: the plain cGAN (λ = 0), ERB S1 (recognizer trained on clean\n"
    "lines every batch) and ERB S2 (on restored lines). References: the degraded input, Otsu, Sauvola.\n"
    "CER/WER come from the held-out reader (no loss was trained against it); `cer_loss_reader` is the\n"
    "recognizer inside the loss, shown for contrast.",
    COMMON_PARAMS + '''scenario = "both"     # S1 | S2 | both
ctc_weight = 1.0      # lambda
pixel_weight = 10.0   # beta
with_cgan = True      # also train the cGAN without CTC (lambda 0)
''',
    [IMPORTS,
     ("code", "entries = P.run_baseline(profile=profile, scenario=scenario, ctc_weight=ctc_weight,\n"
              "                         pixel_weight=pixel_weight, with_cgan=with_cgan, seed=seed,\n"
              "                         overrides=P.notebook_overrides(steps, data_root, overrides), reuse=reuse)"),
     ("md", "## Test-split results (mean over lines; references first)"),
     ("code", "P.results_table(entries)"),
     ("md", "## Training curves"),
     ("code", "show(plots.training_curves(entries))"),
     ("md", "## Restored lines: degraded / each method / clean, with transcription and CER"),
     ("code", "show(plots.qualitative_grid(entries))")])

NB02 = notebook(
    "02 — CTC-loss annealing",
    "The CTC weight stays 0 for `warmup` steps, then ramps to `target_weight` over `ramp` steps\n"
    "(linear, cosine or step); `switch` is the abrupt on/off that failed before; `balanced` scales CTC by\n"
    "α·std(∇adv)/std(∇CTC) each step (ScrabbleGAN). CTC is always computed on the restored lines and\n"
    "logged as a monitor (`train/ctc_monitor`); the term in the generator loss is `train/ctc_term`.",
    COMMON_PARAMS + '''schedule = "all"      # linear | cosine | step | switch | balanced | all
target_weight = 5.0
warmup = None         # steps at weight 0; None: 20 % of training
ramp = None           # steps of the ramp; None: 40 % of training
''',
    [IMPORTS,
     ("code", "entries = P.run_annealing(profile=profile, schedules=P.schedules(schedule),\n"
              "                          target_weight=target_weight, warmup=warmup, ramp=ramp, seed=seed,\n"
              "                          overrides=P.notebook_overrides(steps, data_root, overrides), reuse=reuse)"),
     ("code", "P.results_table(entries)"),
     ("md", "## Weight schedule against generator loss and CTC monitor, per arm"),
     ("code", "show(plots.ctc_annealing(entries))"),
     ("md", "## Validation PSNR and CER over training"),
     ("code", "show(plots.training_curves(entries))")])

NB03 = notebook(
    "03 — Recognition feature loss",
    "A frozen pretrained recognizer compares its features at a tap (default: the last CNN block) of the\n"
    "clean and the restored line; L_G = β·pixel + adv + weight·feature. CTC is only monitored.\n"
    "`papermill notebooks/03_feature_loss.ipynb out.ipynb -p weight 5` runs the method at weight 5,\n"
    "then the weight and tap sweeps (reusing ledger entries already made with the same settings).",
    COMMON_PARAMS + '''weight = 5.0
tap = "cnn_last"          # cnn1 ... cnn5 | cnn_last (the same as cnn5) | rnn
distance = "mse"          # mse | l1
discriminator = "patch"   # patch | dual_modal
sweep_weights = [0.0, 1.0, 5.0, 10.0]
sweep_taps = ["cnn1", "cnn2", "cnn3", "cnn4"]   # cnn_last comes from the weight sweep
''',
    [IMPORTS,
     ("code", "results = P.run_feature_loss(profile=profile, weight=weight, tap=tap, distance=distance,\n"
              "                             discriminator=discriminator, sweep_weights=sweep_weights,\n"
              "                             sweep_taps=sweep_taps, seed=seed,\n"
              "                             overrides=P.notebook_overrides(steps, data_root, overrides), reuse=reuse)"),
     ("code", "P.results_table(results[\"main\"] + results[\"weights\"] + results[\"taps\"])"),
     ("md", "## Sweep over the feature-loss weight"),
     ("code", "show(plots.feature_weight_sweep(results[\"weights\"]) if results[\"weights\"] else None)"),
     ("md", "## Which tap works best"),
     ("code", "show(plots.feature_tap_sweep(results[\"taps\"]) if results[\"taps\"] else None)"),
     ("md", "## Restored samples next to the baseline's"),
     ("code", "show(plots.qualitative_grid(P.with_baseline(results[\"main\"], profile, seed, overrides=P.notebook_overrides(steps, data_root, overrides))))")])

if __name__ == "__main__":
    for name, nb in (("01_baseline_souibgui", NB01), ("02_ctc_annealing", NB02), ("03_feature_loss", NB03)):
        nbf.write(nb, NB_DIR / f"{name}.ipynb")
        print("wrote", NB_DIR / f"{name}.ipynb")
