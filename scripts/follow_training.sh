#!/usr/bin/env bash
# Show a running fairseq training's progress: follow_training.sh LOG PID
# Prints LOG from its start and as it grows, keeping one line per log interval and per validation
# (plus checkpoint loads, the end and errors; lines cut at 240 characters), and returns once process
# PID has exited and its last lines are printed. LOG need not exist yet: a trainer started in the
# background creates it when it gets round to it, and until then this waits (returning at once if
# PID exits first) instead of letting `tail` fail on the missing file. PID must be a process that
# gets reaped when it exits (a background job of the calling shell, as in scripts/demo.sh); always
# exits 0, so the caller takes the training's status from `wait PID`.
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 LOG PID" >&2
  exit 2
fi
log=$1 pid=$2
while [ ! -e "$log" ]; do
  kill -0 "$pid" 2>/dev/null || { [ -e "$log" ] || exit 0; break; }
  sleep 0.2
done
# both greps line-buffered (mawk's fflush() does not stop it from buffering a pipe)
tail -n +1 -f --pid "$pid" "$log" \
  | grep --line-buffered -E "\[(train_inner|valid)\]|done training|Loaded checkpoint|Error|error:" \
  | grep --line-buffered -o "^.\{1,240\}"
exit 0
