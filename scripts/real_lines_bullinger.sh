#!/bin/bash
# The user's path on the 60 real Bullinger lines (issue 10's measurement), one command:
#   scripts/real_lines_bullinger.sh GAN_CHECKPOINT READER_CHECKPOINT [BULLINGER_DIR] [NAME]
# ingest (pages de_6_00 + de_9_01 test, la_6_01 + de_7_01 val, the rest train) -> the reader as it
# is, read before/after restoration -> the reader fine-tuned on the train pages (new characters
# added) -> before/after again. Entries: <LEDGER>/quick/real/<NAME>_*.json (LEDGER: environment,
# default paper/results; NAME default bullinger: a second reader keeps its own entries, e.g.
# NAME=bullinger_realhand for the reader trained on the three shared HTR sets, which reads 32 x 512
# lines already, as these are read).
# GAN_CHECKPOINT: a quick-profile generator (runs/<run>/best_val_cer.pt); READER_CHECKPOINT: the
# quick held-out reader (runs/cache/recognizers/reader-<key>.pt), or, for a cGAN (lambda=0, frozen)
# generator that no recognizer loss touched, its loss recognizer.
set -euo pipefail
GAN=${1:?generator checkpoint}; READER=${2:?reader checkpoint}; SRC=${3:-../shared/data/bullinger}
NAME=${4:-bullinger}; LEDGER=${LEDGER:-paper/results}
OUT=runs/$NAME-lines
DR="nice -n 10 uv run --frozen --no-sync docrestore"
rm -rf "$OUT"
$DR ingest "$SRC" --out "$OUT" --test-pages de_6_00,de_9_01 --val-pages la_6_01,de_7_01
COMMON="profile=quick data.manifest=$OUT/manifest.jsonl data.width=512"
$DR evaluate $COMMON eval.ledger_dir="$LEDGER" eval.checkpoint="$GAN" eval.reader="$READER" eval.experiment=${NAME}_reader_not_finetuned
$DR pretrain $COMMON recognizer_train.init="$READER" recognizer_train.max_steps=150 recognizer_train.batch_size=8 \
    recognizer_train.val_every=25 recognizer_train.lr=0.0005 desc=$NAME-reader-finetune
FT=$(ls -td runs/*-pretrain-$NAME-reader-finetune | head -1)/best_val_cer.pt
$DR evaluate $COMMON eval.ledger_dir="$LEDGER" eval.checkpoint="$GAN" eval.reader="$FT" eval.experiment=${NAME}_real_lines
