"""``metro-squad-eval``: SQuAD 1.1 / 2.0 evaluation, with the arguments and output of the official
v2.0 script.

    metro-squad-eval DEV_JSON PREDICTIONS [--na-prob-file NA_PROB.json]
        [--na-prob-thresh 1.0] [--out-file OUT.json]

PREDICTIONS is a JSON object question id -> answer text ("" = no answer); NA_PROB.json maps
question id -> probability of no answer, which adds best_exact/best_f1 and their thresholds.
Prints one JSON object (exact, f1, total, HasAns_*, NoAns_*, best_*), also written to --out-file.
A question without a prediction counts as wrong.
"""
import argparse
import json
import os
import sys
import warnings

from ..evaluation.squad_metrics import evaluate
from .messages import fail, one_line_errors

TOOL = "squad_eval"


def load_json(path, what, fix):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        fail(TOOL, f"{what} {path} does not exist: {fix}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(TOOL, f"{what} {path} is not JSON ({e}): {fix}")


def check_mapping(obj, path, what, kind, kind_name, fix):
    if not isinstance(obj, dict) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in obj.values()):
        fail(TOOL, f"{what} {path} is not a JSON object of question id -> {kind_name}: {fix}")


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_file", metavar="DEV_JSON", help="SQuAD dev file, e.g. dev-v2.0.json")
    p.add_argument("pred_file", metavar="PREDICTIONS", help="JSON object question id -> predicted answer text")
    p.add_argument("--na-prob-file", "-n", help="JSON object question id -> probability of no answer")
    p.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                   help="predict no answer where the no-answer probability exceeds this (default 1.0)")
    p.add_argument("--out-file", "-o", help="also write the scores here as JSON")
    args = p.parse_args(argv)

    dataset = load_json(args.data_file, "DEV_JSON", "pass the SQuAD dev file (dev-v2.0.json) as the first argument")
    preds = load_json(args.pred_file, "PREDICTIONS", "pass the predictions (id -> answer text) as the second argument")
    check_mapping(preds, args.pred_file, "PREDICTIONS", str, "string",
                  'write {"question id": "answer text", ...} ("" = no answer)')
    na_probs = None
    if args.na_prob_file:
        na_probs = load_json(args.na_prob_file, "--na-prob-file", "pass a JSON file of id -> probability of no answer")
        check_mapping(na_probs, args.na_prob_file, "--na-prob-file", (int, float), "number",
                      'write {"question id": probability of no answer, ...}')

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scores = evaluate(dataset, preds, na_probs, args.na_prob_thresh)
        except ValueError as e:
            where = args.na_prob_file if "na_probs" in str(e) else args.data_file
            fail(TOOL, f"{where}: {e}")
    for w in caught:
        print(f"{TOOL}: warning: {w.message}", file=sys.stderr)
    print(json.dumps(scores, indent=2))
    if args.out_file:
        os.makedirs(os.path.dirname(os.path.abspath(args.out_file)), exist_ok=True)
        with open(args.out_file, "w") as f:
            json.dump(scores, f)


if __name__ == "__main__":
    main()
