"""metro-export-hf (scripts/export_hf.py): each layout exports to transformers and matches fairseq after reload (hidden
states, fine-tuned heads, tokenizer ids on real text); MPNet guard; refusals with one line."""
import os
import re
import sys

import pytest
import torch
from fairseq.data import Dictionary

from conftest import run
from metro_fairseq.hf.equivalence_check import fairseq_outputs, max_difference, sample_batch
from metro_fairseq.hf.export import export_command
from metro_fairseq.hf.layouts import choose_family, convert, hf_config
from metro_fairseq.hf.metro_checkpoint import load_source
from metro_fairseq.hf.tokenizer import fairseq_ids
from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig
from test_finetuning import finetune_cmd

os.environ["HF_HUB_OFFLINE"] = "1"  # huggingface_hub reads it when imported: before transformers
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
TOL = 1e-4
CLS, SPAN = "sentence_classification_head", "squad_span_head"
LAYOUTS = {  # name: (MetroConfig options, family the exporter must choose)
    "postln_nobias": (dict(relative_position_buckets=0), "bert"),
    "postln_bias32": (dict(relative_position_buckets=32, relative_position_max_distance=128), "mpnet"),
    "postln_bias64": (dict(relative_position_buckets=64, relative_position_max_distance=128), "metro"),
    "preln_nobias": (dict(relative_position_buckets=0, encoder_normalize_before=True), "roberta_prelayernorm"),
    "preln_bias32": (dict(relative_position_buckets=32, encoder_normalize_before=True), "metro"),
    # log buckets below the 64-token sample (distances past 32 clamped); the T5 options are ignored
    "postln_disentangled": (dict(attention_type="disentangled", position_buckets=8, max_relative_positions=32),
                            "deberta_v2"),
    "preln_disentangled": (dict(attention_type="disentangled", position_buckets=8, max_relative_positions=32,
                                encoder_normalize_before=True), "metro"),
}


def dictionary(data):
    d = Dictionary.load(str(data / "dict.txt"))
    d.add_symbol("<mask>")
    return d


def tiny_cfg(**kw):
    base = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                generator_layers=1, max_positions=64, dropout=0.0, attention_dropout=0.0)
    base.update(kw)
    return MetroConfig(**base)


def write_checkpoint(path, data, cfg, head=None, generator=False, task="sentence_prediction"):
    """A fairseq checkpoint of a tiny MetroModel whose every tensor is perturbed, so a misplaced
    LayerNorm bias or position row cannot go unnoticed."""
    torch.manual_seed(0)
    model = MetroModel(cfg, dictionary(data), generator)
    if head == "classification":
        model.register_classification_head(CLS, num_classes=3)
    elif head == "qa":
        model.register_span_head(SPAN)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model_cfg = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    model_cfg["_name"] = "metro_tiny"
    torch.save({
        "cfg": {"model": model_cfg, "task": {"_name": task, "data": str(data)}}, "model": model.state_dict(),
        "optimizer_history": [{"criterion_name": "x", "optimizer_name": "x", "lr_scheduler_state": {}, "num_updates": 0}],
        "extra_state": {}, "last_optimizer_state": None,
    }, path)
    return path


def export(checkpoint, outdir, *extra):
    return export_command([str(checkpoint), str(outdir), *extra])


def error_line(excinfo):
    msg = str(excinfo.value)
    assert msg.startswith("export_hf: error: ") and "\n" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def lines(wiki_text):
    with open(wiki_text["valid"], encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()][:100]


def reload_and_compare(outdir, checkpoint, head_kind, lines, remote):
    """Independent of the exporter's own checks: the exported tokenizer's batch of real lines, padded,
    through AutoModel (and the head class) against fairseq on fairseq's own encoding of the lines."""
    source = load_source(str(checkpoint))
    tok = transformers.AutoTokenizer.from_pretrained(outdir, trust_remote_code=remote)
    batch = tok(lines[:6], padding=True, truncation=True, max_length=source.cfg.max_positions, return_tensors="pt")
    ids = batch["input_ids"]
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=os.path.join(source.data_dir, "spm.model"))
    for row, line in zip(ids, lines[:6]):
        ref = fairseq_ids(sp, source.dictionary, line)[: source.cfg.max_positions]
        if len(ref) == source.cfg.max_positions:  # truncation keeps </s> last, as a user gets it
            ref[-1] = source.dictionary.eos()
        assert row[: len(ref)].tolist() == ref
    ours = fairseq_outputs(source, ids)
    with torch.no_grad():
        hidden = transformers.AutoModel.from_pretrained(outdir, trust_remote_code=remote)(**batch).last_hidden_state
        diffs = max_difference(ours, {"hidden": hidden}, batch["attention_mask"])
        if head_kind == "classification":
            model = transformers.AutoModelForSequenceClassification.from_pretrained(outdir, trust_remote_code=remote)
            diffs.update(max_difference(ours, {"logits": model(**batch).logits}, batch["attention_mask"]))
        if head_kind == "qa":
            out = transformers.AutoModelForQuestionAnswering.from_pretrained(outdir, trust_remote_code=remote)(**batch)
            diffs.update(max_difference(ours, {"start": out.start_logits, "end": out.end_logits}, batch["attention_mask"]))
    assert set(diffs) == {"hidden"} | ({"logits"} if head_kind == "classification" else set()) | (
        {"start", "end"} if head_kind == "qa" else set())
    assert max(diffs.values()) <= TOL, diffs
    return diffs


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_exports_and_matches_after_reload(layout, wiki_bin, wiki_text, lines, tmp_path, capsys):
    options, family = LAYOUTS[layout]
    ckpt = write_checkpoint(tmp_path / "ft.pt", wiki_bin, tiny_cfg(**options), head="classification")
    assert export(ckpt, tmp_path / "hf", "--sample-text", str(wiki_text["valid"])) == family
    out = capsys.readouterr().out
    checked = re.search(r"ids equal fairseq's on (\d+) lines", out)
    assert checked and int(checked.group(1)) > 100 and "verified after reload" in out, out
    files = set(os.listdir(tmp_path / "hf"))
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert ("modeling_metro.py" in files) == (family == "metro")
    assert not [f for f in os.listdir(tmp_path) if ".partial-" in f]
    reload_and_compare(str(tmp_path / "hf"), ckpt, "classification", lines, remote=family == "metro")


@pytest.mark.parametrize("layout", ["postln_nobias", "postln_bias64", "preln_nobias", "postln_disentangled"])
def test_span_head_exports_for_question_answering(layout, wiki_bin, lines, tmp_path):
    options, family = LAYOUTS[layout]
    ckpt = write_checkpoint(tmp_path / "squad.pt", wiki_bin, tiny_cfg(**options), head="qa", task="squad")
    assert export(ckpt, tmp_path / "hf") == family
    reload_and_compare(str(tmp_path / "hf"), ckpt, "qa", lines, remote=family == "metro")


def test_checkpoint_saved_before_the_attention_options_exports_as_before(wiki_bin, tmp_path):
    ckpt = write_checkpoint(tmp_path / "old.pt", wiki_bin, tiny_cfg(relative_position_buckets=32))
    state = torch.load(ckpt, weights_only=False)
    for key in ("attention_type", "position_buckets", "max_relative_positions", "pos_att_type"):
        del state["cfg"]["model"][key]
    torch.save(state, ckpt)
    assert load_source(str(ckpt)).cfg.attention_type == "standard"
    assert export(ckpt, tmp_path / "hf", "--no-tokenizer") == "mpnet"


def test_custom_code_on_request_matches_too(wiki_bin, lines, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", wiki_bin, tiny_cfg(relative_position_buckets=0))
    assert export(ckpt, tmp_path / "hf", "--custom-code") == "metro"
    reload_and_compare(str(tmp_path / "hf"), ckpt, "base", lines, remote=True)


@pytest.mark.parametrize("buckets,distance", [(8, 16), (32, 128), (64, 128), (128, 256)])
def test_shipped_bucket_function_equals_the_plugins(buckets, distance):
    """modeling_metro.py is self-contained, so it carries its own copy of the T5 bucketing."""
    from metro_fairseq.hf.modeling_metro import relative_position_bucket as shipped
    from metro_fairseq.modules import relative_position_bucket

    rel = torch.arange(-1100, 1100)
    assert torch.equal(shipped(rel, buckets, distance), relative_position_bucket(rel, True, buckets, distance))


@pytest.mark.parametrize("buckets,max_position", [(8, 32), (64, 128), (256, 512)])
def test_shipped_log_buckets_equal_the_plugins(buckets, max_position):
    from metro_fairseq.hf.modeling_metro import log_bucket_position as shipped
    from metro_fairseq.modules import log_bucket_position

    rel = torch.arange(-1100, 1100)
    assert torch.equal(shipped(rel, buckets, max_position), log_bucket_position(rel, buckets, max_position))


@pytest.mark.parametrize("buckets,distance", [(64, 128), (128, 256), (32, 64), (16, 128), (32, 256)])
def test_mpnet_is_never_chosen_for_other_bucket_settings(buckets, distance):
    cfg = tiny_cfg(relative_position_buckets=buckets, relative_position_max_distance=distance)
    assert choose_family(cfg)[0] == "metro"
    with pytest.raises(ValueError, match="MPNet computes only a 32-bucket"):
        hf_config(transformers, "mpnet", cfg, 100, 2, 0.1)
    assert choose_family(tiny_cfg(relative_position_buckets=32, relative_position_max_distance=128))[0] == "mpnet"


def test_mpnet_forced_on_64_buckets_is_silently_wrong(wiki_bin, tmp_path):
    """Why the guard exists: MPNet loads 64/128 weights without complaint (only its first 32 bucket
    rows fit, so truncate them) and gives other hidden states."""
    cfg = tiny_cfg(relative_position_buckets=64, max_positions=64)
    source = load_source(str(write_checkpoint(tmp_path / "m.pt", wiki_bin, cfg)))
    config = hf_config(transformers, "mpnet", tiny_cfg(relative_position_buckets=32), len(source.dictionary), 2, 0.1)
    state = convert("mpnet", source.model.state_dict(), cfg.encoder_layers, "base", {})
    state["encoder.relative_attention_bias.weight"] = state["encoder.relative_attention_bias.weight"][:32]
    model = transformers.MPNetModel(config).eval()
    model.load_state_dict(state, strict=True)
    ids, mask = sample_batch(source.dictionary, cfg.max_positions)
    with torch.no_grad():
        diff = max_difference(fairseq_outputs(source, ids), {"hidden": model(ids, attention_mask=mask)[0]}, mask)
    assert diff["hidden"] > 1e-2, diff


def test_failed_check_exits_with_one_line_and_writes_nothing(wiki_bin, tmp_path, monkeypatch):
    import metro_fairseq.hf.export as export_module

    def corrupt(*args):
        state = convert(*args)
        key = next(k for k in state if k.endswith("attention.output.LayerNorm.bias"))
        state[key] = state[key] + 1e-2
        return state

    monkeypatch.setattr(export_module, "convert", corrupt)
    ckpt = write_checkpoint(tmp_path / "m.pt", wiki_bin, tiny_cfg(relative_position_buckets=0))
    with pytest.raises(SystemExit) as e:
        export(ckpt, tmp_path / "hf")
    assert "exceeds 0.0001" in error_line(e)
    assert os.listdir(tmp_path) == ["m.pt"]


def test_gdes_pretraining_checkpoint_is_merged_before_export(wiki_bin, lines, tmp_path):
    cfg = tiny_cfg(relative_position_buckets=64, embedding_sharing="gdes")
    ckpt = write_checkpoint(tmp_path / "pre.pt", wiki_bin, cfg, generator=True, task="metro_pretraining")
    state = torch.load(ckpt, weights_only=False)
    assert state["model"]["embeddings.delta"].abs().sum() > 0 and any(k.startswith("generator.") for k in state["model"])
    assert export(ckpt, tmp_path / "hf") == "metro"
    # fairseq's full pretraining model, main path (E + E_delta), against the export
    full = MetroModel(cfg, dictionary(wiki_bin), True)
    full.load_state_dict(state["model"])
    full.eval()
    ids, mask = sample_batch(dictionary(wiki_bin), cfg.max_positions)
    hf = transformers.AutoModel.from_pretrained(str(tmp_path / "hf"), trust_remote_code=True)
    with torch.no_grad():
        diff = (full.encode(ids) - hf(ids, attention_mask=mask).last_hidden_state)[mask.bool()].abs().max()
    assert diff <= TOL


def test_real_pretrained_checkpoint_through_the_cli(pretrained, wiki_bin, tmp_path):
    """The real metro_tiny run (GDES + CLM, fairseq-train) and its export_main_model output."""
    for name, ckpt in zip(("pretraining", "exported"), pretrained):
        result = run([sys.executable, "scripts/export_hf.py", str(ckpt), str(tmp_path / name)])
        assert "MPNetModel family" in result.stdout and "verified after reload" in result.stdout, result.stdout
    a = transformers.AutoModel.from_pretrained(str(tmp_path / "pretraining"))
    b = transformers.AutoModel.from_pretrained(str(tmp_path / "exported"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_real_fine_tuned_classifier_gives_fairseq_logits(pretrained, glue_bin, wiki_bin, tmp_path):
    """fairseq-train sentence_prediction on RTE from the real pretraining run, saved, exported (the
    dictionary from the GLUE folder, label names from label/dict.txt), and run by a text-classification
    pipeline on sentence pairs the way fairseq's task encodes them."""
    _, exported = pretrained
    cmd = [a for a in finetune_cmd(glue_bin / "RTE", exported, tmp_path / "ft", "--num-classes", "2") if a != "--no-save"]
    run(cmd + ["--no-epoch-checkpoints", "--disable-validation"])
    ckpt = tmp_path / "ft" / "checkpoint_last.pt"
    result = run([sys.executable, "scripts/export_hf.py", str(ckpt), str(tmp_path / "hf"),
                  "--spm-model", str(wiki_bin / "spm.model")])
    assert "classification head 'sentence_classification_head'" in result.stdout, result.stdout
    source = load_source(str(ckpt))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf")).eval()
    labels = set(model.config.id2label.values())
    assert labels == {"entailment", "not_entailment"}
    ids, mask = sample_batch(source.dictionary, source.cfg.max_positions, seed=3)
    with torch.no_grad():
        diff = max_difference(fairseq_outputs(source, ids), {"logits": model(ids, attention_mask=mask).logits}, mask)
    assert diff["logits"] <= TOL, diff
    clf = transformers.pipeline("text-classification", model=str(tmp_path / "hf"))
    assert clf({"text": "A man is walking.", "text_pair": "Someone walks."})["label"] in labels


def test_pipeline_text_classification(wiki_bin, tmp_path):
    ckpt = write_checkpoint(tmp_path / "ft.pt", wiki_bin, tiny_cfg(relative_position_buckets=64), head="classification")
    export(ckpt, tmp_path / "hf")
    clf = transformers.pipeline("text-classification", model=str(tmp_path / "hf"), trust_remote_code=True)
    out = clf(["A short review.", "Another, slightly longer line of text."])
    assert len(out) == 2 and all(o["label"].startswith("LABEL_") for o in out)


def test_bpe_tokenizer_is_refused_and_model_exports_without_it(wiki_text, tmp_path, capsys):
    from metro_fairseq.cli.prepare_corpus import train_sentencepiece, write_fairseq_dict

    train_sentencepiece(str(wiki_text["train"]), str(tmp_path / "spm"), 1000, "bpe", 100000)
    write_fairseq_dict(str(tmp_path / "spm"), str(tmp_path / "dict.txt"))
    ckpt = write_checkpoint(tmp_path / "m.pt", tmp_path, tiny_cfg(relative_position_buckets=0))
    with pytest.raises(SystemExit) as e:
        export(ckpt, tmp_path / "hf")
    assert "is a bpe SentencePiece model" in error_line(e) and "--no-tokenizer" in str(e.value)
    assert not (tmp_path / "hf").exists()
    export(ckpt, tmp_path / "hf", "--no-tokenizer")
    assert "tokenizer.json" not in os.listdir(tmp_path / "hf")


@pytest.mark.parametrize("case", ["missing", "not_a_checkpoint", "other_architecture", "other_dictionary",
                                  "outdir_not_empty", "outdir_is_a_file", "two_heads_no_choice",
                                  "mean_pooled_head"])
def test_bad_input_gives_one_line(case, wiki_bin, tmp_path):
    ckpt = tmp_path / "m.pt"
    args = []
    if case == "missing":
        ckpt, expected = tmp_path / "nope.pt", "does not exist"
    elif case == "not_a_checkpoint":
        ckpt.write_text("hello\n")
        expected = "is not a fairseq checkpoint"
    elif case == "other_architecture":
        write_checkpoint(ckpt, wiki_bin, tiny_cfg())
        state = torch.load(ckpt, weights_only=False)
        state["cfg"]["model"]["_name"] = "roberta_base"
        torch.save(state, ckpt)
        expected = "model 'roberta_base', not metro"
    elif case == "other_dictionary":
        write_checkpoint(ckpt, wiki_bin, tiny_cfg())
        other = tmp_path / "dict.txt"
        other.write_text("".join(f"w{i} 1\n" for i in range(len(dictionary(wiki_bin)) - 5)))
        args, expected = ["--dict", str(other)], "dictionary of this run does not match"
    elif case == "outdir_not_empty":
        write_checkpoint(ckpt, wiki_bin, tiny_cfg())
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "keep.txt").write_text("x")
        expected = "exists and is not empty"
    elif case == "outdir_is_a_file":
        write_checkpoint(ckpt, wiki_bin, tiny_cfg())
        (tmp_path / "hf").write_text("x")
        expected = "is a file"
    elif case == "mean_pooled_head":
        write_checkpoint(ckpt, wiki_bin, tiny_cfg(classifier_pooling="mean"), head="classification")
        expected = "--classifier-pooling mean: transformers heads read the <s> state"
    else:
        write_checkpoint(ckpt, wiki_bin, tiny_cfg(), head="classification")
        state = torch.load(ckpt, weights_only=False)
        state["model"].update({k.replace(CLS, "other"): v for k, v in state["model"].items() if CLS in k})
        torch.save(state, ckpt)
        expected = "pick one with --head NAME"
    with pytest.raises(SystemExit) as e:
        export(ckpt, tmp_path / "hf", *args)
    assert expected in error_line(e)
