"""Hostile and broken inputs are refused before any work is lost, with one line naming the file and
the fix, and nothing is overwritten: truncated shards, a malformed dict.txt, a corrupt SentencePiece
model, files that are not fairseq checkpoints, a pickle carrying code, labels outside the label dictionary."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data.indexed_dataset import MMapIndexedDatasetBuilder
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from conftest import run
from glue_fixtures import write_glue
from test_end_to_end import last_line, train_cmd
from metro_fairseq.checkpoint_reader import CheckpointError


def one_line(e):
    message = str(e.value if hasattr(e, "value") else e)
    assert "\n" not in message, message
    return message


def cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


# -- training data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case,expected", [
    ("bin", "train.bin is truncated or from another binarization"),
    ("idx", "train.idx is truncated or padded"),
    ("dict", "dict.txt:7: 'broken' is not '<token> <count>'"),
])
def test_broken_training_data_is_refused_before_anything_is_touched(case, expected, wiki_bin, tmp_path):
    data, save = tmp_path / "data", tmp_path / "save"
    shutil.copytree(wiki_bin, data)
    save.mkdir()
    (save / "checkpoint_last.pt").write_bytes(b"a run's checkpoint: must stay as it is")
    if case == "bin":
        cut(data / "train.bin", -100)
    elif case == "idx":
        cut(data / "train.idx", -8)
    else:
        lines = (data / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        lines[6] = "broken\n"
        (data / "dict.txt").write_text("".join(lines), encoding="utf-8")
    r = run(train_cmd(data, save, 5), check=False)
    assert r.returncode != 0
    line = last_line(r)
    assert expected in line and str(data) in line and ("fairseq-preprocess" in line or "prepare_corpus" in line), line
    assert "begin training" not in r.stdout + r.stderr
    assert os.listdir(save) == ["checkpoint_last.pt"]
    assert (save / "checkpoint_last.pt").read_bytes() == b"a run's checkpoint: must stay as it is"


def test_truncated_index_header_and_missing_half_of_a_pair(tmp_path):
    from metro_fairseq.data.binarized_split import check_binarized

    builder = MMapIndexedDatasetBuilder(str(tmp_path / "train.bin"), dtype=np.uint16)
    for row in ([4, 5, 2], [6, 2]):
        builder.add_item(torch.tensor(row))
    builder.finalize(str(tmp_path / "train.idx"))
    assert check_binarized(str(tmp_path / "train"))
    cut(tmp_path / "train.idx", 12)
    with pytest.raises(ValueError, match="train.idx is truncated \\(12 bytes, not even a header\\)") as e:
        check_binarized(str(tmp_path / "train"))
    one_line(e)
    os.remove(tmp_path / "train.idx")
    with pytest.raises(ValueError, match="train.idx is missing next to .*train.bin"):
        check_binarized(str(tmp_path / "train"))


# -- SentencePiece models in the preparation scripts -----------------------------------------------

SQUAD = {"data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
    {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}


@pytest.mark.parametrize("script,damage", [
    ("prepare_corpus", "cut between pieces"),  # SentencePiece itself loads this one
    ("prepare_glue", "garbage"),
    ("prepare_squad", "cut inside the normalizer"),
])
def test_corrupt_sentencepiece_model_is_refused_by_the_prep_tools(script, damage, wiki_bin, wiki_text, tmp_path):
    model = (wiki_bin / "spm.model").read_bytes()
    bad = tmp_path / "spm.model"
    bad.write_bytes({"cut between pieces": model[:300], "garbage": b"\x00not a model" * 50,
                     "cut inside the normalizer": model[:20000]}[damage])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "dict.txt").write_text("earlier output 1\n")
    if script == "prepare_corpus":
        args = ["--train", str(wiki_text["valid"]), "--valid", str(wiki_text["valid"])]
    elif script == "prepare_glue":
        write_glue(str(tmp_path / "glue"))
        args = ["--glue-dir", str(tmp_path / "glue"), "--tasks", "RTE", "--dict", str(wiki_bin / "dict.txt")]
    else:
        (tmp_path / "squad.json").write_text(json.dumps(SQUAD))
        args = ["--train", str(tmp_path / "squad.json"), "--valid", str(tmp_path / "squad.json"),
                "--dict", str(wiki_bin / "dict.txt")]
    r = run([sys.executable, f"scripts/{script}.py", *args, "--spm-model", str(bad), "--destdir", str(dest)], check=False)
    assert r.returncode != 0
    assert last_line(r).startswith(f"{script}: error: --spm-model {bad} is not a SentencePiece model"), last_line(r)
    assert os.listdir(dest) == ["dict.txt"] and (dest / "dict.txt").read_text() == "earlier output 1\n"


# -- checkpoints -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case,expected", [
    ("text", "is truncated or not a PyTorch checkpoint"),
    ("empty", "is empty (0 bytes)"),
    ("truncated", "is truncated or not a PyTorch checkpoint"),
    ("tensors_only", "is not a fairseq checkpoint (it holds keys ['weight'], no 'model')"),
])
def test_file_that_is_not_a_fairseq_checkpoint_is_refused(case, expected, tmp_path):
    path = tmp_path / "model.pt"
    if case == "text":
        path.write_text("hello\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        torch.save({"model": {"w": torch.zeros(1000)}}, path)
        cut(path, 2000)
    else:
        torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError) as e:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))  # what resume, --restore-file and the scripts call
    assert one_line(e).startswith(f"{path} {expected}") and "give a checkpoint written by fairseq-train" in str(e.value)


class Payload:
    """Unpickling this runs exec(...), which would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_pickle_with_a_code_payload_is_refused_and_never_runs(wiki_bin, tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "extra": Payload(marker)}, evil)
    # the payload is live: an unrestricted load runs it (in a throwaway process)
    run([sys.executable, "-c", f"import torch; torch.load({str(evil)!r}, weights_only=False)"])
    assert marker.exists()
    marker.unlink()

    save = tmp_path / "save"
    r = run(train_cmd(wiki_bin, save, 5, "--restore-file", str(evil)), check=False)
    assert r.returncode != 0
    assert f"{evil} was refused by the weights-only loader (it calls exec; nothing in it was run)" in last_line(r)
    assert "begin training" not in r.stdout + r.stderr and not marker.exists()

    # a plain pickle too, even with torch's opt-out of weights-only loading set
    legacy = tmp_path / "legacy.pkl"
    import pickle

    legacy.write_bytes(pickle.dumps({"model": Payload(marker)}))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match="refused by the weights-only loader") as e:
        checkpoint_utils.load_checkpoint_to_cpu(str(legacy))
    one_line(e)
    assert not marker.exists()


# -- fine-tuning labels ----------------------------------------------------------------------------

def binarize(prefix, rows):
    builder = MMapIndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for row in rows:
        builder.add_item(torch.tensor(row))
    builder.finalize(f"{prefix}.idx")


def glue_dir(root, labels_dict, label_ids):
    """A two-example sentence_prediction folder; labels binarized as the given label-dictionary ids."""
    for key in ("input0", "label"):
        (root / key).mkdir(parents=True)
    (root / "input0" / "dict.txt").write_text("hello 2\nworld 1\n")
    (root / "label" / "dict.txt").write_text("".join(f"{w} 1\n" for w in labels_dict))
    for split in ("train", "valid"):
        binarize(root / "input0" / split, [[4, 5, 2], [5, 2]])
        binarize(root / "label" / split, [[i, 2] for i in label_ids])
    return root


def finetuning_task(data, num_classes=2):
    cfg = SentencePredictionConfig(data=str(data), num_classes=num_classes, regression_target=False)
    return SentencePredictionTask.setup_task(cfg)


@pytest.mark.parametrize("case,expected", [
    ("unk", "label/valid.bin holds 1 labels missing from"),
    ("replaced_dict", "label/valid.bin holds 1 labels missing from"),
    ("num_classes", "label/valid.bin uses class 2 ('neutral') but --num-classes is 2"),
])
def test_finetuning_labels_missing_from_the_label_dictionary_are_refused(case, expected, tmp_path):
    from metro_fairseq import plugin

    plugin.install()  # the sentence_prediction checks

    labels, ids = ["entailment", "not_entailment"], [4, 3]  # 3 = <unk>: a label the dictionary lacks
    if case == "replaced_dict":
        labels, ids = ["entailment"], [4, 5]  # binarized with two labels, dict.txt later cut to one
    elif case == "num_classes":
        labels, ids = ["entailment", "contradiction", "neutral"], [4, 6]
    task = finetuning_task(glue_dir(tmp_path / "data", labels, ids))
    with pytest.raises(ValueError) as e:
        task.load_dataset("valid")
    message = one_line(e)
    assert expected in message and str(tmp_path / "data" / "label") in message, message
    assert ("binarize the labels" in message) or ("raise --num-classes" in message)


def test_finetuning_data_whole_loads_a_cut_shard_and_a_bad_dict_line_do_not(tmp_path):
    from metro_fairseq import plugin

    plugin.install()

    data = glue_dir(tmp_path / "data", ["entailment", "not_entailment"], [4, 5])
    cfg = SentencePredictionConfig(data=str(data), num_classes=2, regression_target=False, seed=1, max_positions=64)
    task = SentencePredictionTask.setup_task(cfg)
    task.load_dataset("valid")
    assert len(task.datasets["valid"]) == 2
    cut(data / "input0" / "train.bin", -2)
    with pytest.raises(ValueError, match="input0/train.bin is truncated or from another binarization") as e:
        task.load_dataset("train")
    one_line(e)
    (data / "label" / "dict.txt").write_text("entailment 1\nentailment 1\n")
    with pytest.raises(ValueError, match=r"label/dict.txt:2: 'entailment' is listed twice \(also line 1\)") as e:
        finetuning_task(data)
    one_line(e)
    assert task.source_dictionary[len(task.source_dictionary) - 1] == "<mask>"  # fairseq's loader still runs
