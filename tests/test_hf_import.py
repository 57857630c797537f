"""metro-import-hf: released transformers encoders of each family become metro checkpoints that compute the
same hidden states on the released tokenizer's ids, continue pretraining with fairseq-train, and export
back to the released ids. The transformers models are small, random and saved with save_pretrained."""
import json
import os
import sys

import pytest
import torch

from conftest import REPO, run
from hf_fixtures import FAMILIES, SENTENCES, build_released

IMPORT = [sys.executable, os.path.join(REPO, "scripts", "import_hf.py")]
EXPORT = [sys.executable, os.path.join(REPO, "scripts", "export_hf.py")]


def fairseq_ids(dictionary, tokenizer, line):
    """What fairseq-preprocess (--srcdict dict.txt) and the tasks make of a line: <s> pieces </s>."""
    pieces = " ".join(tokenizer.tokenize(line))
    body = dictionary.encode_line(pieces, add_if_not_exist=False, append_eos=True).long()
    return torch.cat([torch.tensor([dictionary.bos()]), body])


def padded(rows, pad):
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
    return out


def released_hidden(model, tokenizer, lines):
    enc = tokenizer(lines, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    return hidden, enc["attention_mask"].bool(), enc["input_ids"]


def load_pretraining_model(ckpt_dir):
    """The whole imported model (generator included) from OUT's folder."""
    from fairseq import checkpoint_utils
    from fairseq.data import Dictionary

    from metro_fairseq.models.metro import MetroModel
    from metro_fairseq.models.metro_config import config_from_checkpoint

    state = checkpoint_utils.load_checkpoint_to_cpu(str(ckpt_dir / "model.pt"))
    dictionary = Dictionary.load(str(ckpt_dir / "dict.txt"))
    dictionary.add_symbol("<mask>")
    model = MetroModel(config_from_checkpoint(state["cfg"]["model"]), dictionary, with_generator=True)
    model.load_state_dict(state["model"], strict=True)
    return model.eval(), dictionary


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_import_computes_the_released_model_and_exports_back(family, tmp_path):
    import transformers

    from metro_fairseq.hf.metro_checkpoint import load_source

    released_dir = tmp_path / "released"
    build_released(released_dir, family)
    released = transformers.AutoModel.from_pretrained(released_dir).eval()  # the encoder of a head class too
    tokenizer = transformers.AutoTokenizer.from_pretrained(released_dir)
    result = run(IMPORT + [str(released_dir), str(tmp_path / "imported" / "model.pt")])
    assert "continue pretraining with: --arch metro" in result.stdout

    # independently of the tool's own check: the metro model on fairseq's ids, the released one on its own
    source = load_source(str(tmp_path / "imported" / "model.pt"))
    ours_ids = padded([fairseq_ids(source.dictionary, tokenizer, s) for s in SENTENCES], source.dictionary.pad())
    theirs, mask, their_ids = released_hidden(released, tokenizer, SENTENCES)
    with torch.no_grad():
        ours = source.model.encode(ours_ids)
    assert (ours[mask] - theirs[mask]).abs().max() < 1e-4

    # back to transformers with the released tokenizer: the same model under the same ids
    run(EXPORT + [str(tmp_path / "imported" / "model.pt"), str(tmp_path / "back"), "--hf-tokenizer", str(released_dir)])
    back = transformers.AutoModel.from_pretrained(tmp_path / "back").eval()
    back_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")
    again, again_mask, again_ids = released_hidden(back, back_tokenizer, SENTENCES)
    assert torch.equal(again_ids, their_ids)
    assert (again[mask] - theirs[mask]).abs().max() < 1e-4


@pytest.mark.parametrize("family", ["bert", "roberta"])  # WordPiece and SentencePiece
def test_released_ids_round_trip_through_dict_txt(family, tmp_path):
    """Every line's fairseq ids, mapped through the import's permutation, are the tokenizer's ids."""
    import transformers

    from fairseq.data import Dictionary

    from metro_fairseq.hf.vocabulary import vocabulary_of

    build_released(tmp_path / "released", family)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "released")
    vocab = vocabulary_of(tokenizer)
    vocab.write_dict(tmp_path / "dict.txt")
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    dictionary.add_symbol("<mask>")
    assert len(dictionary) == len(tokenizer.get_vocab()) == len(set(vocab.hf_ids))
    assert dictionary.symbols[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    for line in SENTENCES + ["unseen wordsxyz ÷ and 東京"]:
        ours = [vocab.hf_ids[i] for i in fairseq_ids(dictionary, tokenizer, line).tolist()]
        assert ours == tokenizer(line)["input_ids"], line
    assert vocab.hf_ids[dictionary.index("<mask>")] == tokenizer.mask_token_id
    assert vocab.hf_ids[dictionary.pad()] == tokenizer.pad_token_id


def import_and_continue(released, tmp_path, wiki_text, *import_flags):
    """metro-import-hf, prepare_corpus --hf-tokenizer, then 20 updates of fairseq-train with the printed flags
    from the import; returns the training log's {update: stats} (the loss must fall)."""
    from test_end_to_end import train_logs

    result = run(IMPORT + [str(released), str(tmp_path / "imported" / "model.pt"), *import_flags])
    flags = result.stdout.split("continue pretraining with: ")[1].split()
    run([sys.executable, "scripts/prepare_corpus.py", "--train", str(wiki_text["train"]),
         "--valid", str(wiki_text["valid"]), "--destdir", str(tmp_path / "bin"),
         "--hf-tokenizer", str(released), "--workers", "1"])
    assert (tmp_path / "bin" / "dict.txt").read_text() == (tmp_path / "imported" / "dict.txt").read_text()
    train = run([sys.executable, "-m", "fairseq_cli.train", str(tmp_path / "bin"), "--user-dir", "metro_fairseq",
                 "--task", "metro_pretraining", "--criterion", "metro", *flags,
                 "--finetune-from-model", str(tmp_path / "imported" / "model.pt"), "--tokens-per-sample", "64",
                 "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay",
                 "--warmup-updates", "2", "--total-num-update", "20", "--max-update", "20", "--log-interval", "5",
                 "--log-format", "json", "--save-dir", str(tmp_path / "ckpt"), "--no-epoch-checkpoints",
                 "--max-valid-steps", "2", "--cpu", "--num-workers", "0", "--seed", "3"])
    logs = train_logs(train.stdout + train.stderr)
    assert logs[20]["loss"] < logs[5]["loss"], logs
    return result.stdout


def test_import_continue_finetune_export_sequence(wiki_text, tmp_path):
    """docs/import.md's sequence: import -> prepare_corpus --hf-tokenizer -> fairseq-train --finetune-from-model
    (loss falls) -> prepare_glue --hf-tokenizer -> fine-tune -> export the classifier with the released ids."""
    import transformers

    from glue_fixtures import write_glue

    released = tmp_path / "released"
    build_released(released, "bert")
    import_and_continue(released, tmp_path, wiki_text)

    write_glue(str(tmp_path / "glue"))
    run([sys.executable, "scripts/prepare_glue.py", "--glue-dir", str(tmp_path / "glue"), "--tasks", "SST-2",
         "--hf-tokenizer", str(released), "--dict", str(tmp_path / "bin" / "dict.txt"), "--destdir", str(tmp_path / "glue-bin")])
    probe = run([sys.executable, "scripts/probe_checkpoint.py", str(tmp_path / "ckpt" / "checkpoint_last.pt"),
                 "--task-dir", str(tmp_path / "glue" / "SST-2"), "--hf-tokenizer", str(released),
                 "--data", str(tmp_path / "bin"), "--sizes", "all", "--seeds", "1"])
    assert "area under the learning curve" in probe.stdout
    model_flags = run([sys.executable, "scripts/export_main_model.py", "--show-args",
                       str(tmp_path / "ckpt" / "checkpoint_last.pt")]).stdout.split()
    run([sys.executable, "-m", "fairseq_cli.train", str(tmp_path / "glue-bin" / "SST-2"), "--user-dir", "metro_fairseq",
         "--task", "sentence_prediction", "--criterion", "sentence_prediction", "--num-classes", "2", *model_flags,
         "--finetune-from-model", str(tmp_path / "ckpt" / "checkpoint_last.pt"), "--init-token", "0",
         "--separator-token", "2", "--batch-size", "4", "--required-batch-size-multiple", "1", "--optimizer", "adam",
         "--lr", "1e-4", "--max-update", "4", "--cpu", "--num-workers", "0", "--no-epoch-checkpoints",
         "--save-dir", str(tmp_path / "sst2")])
    back = run(EXPORT + [str(tmp_path / "sst2" / "checkpoint_last.pt"), str(tmp_path / "back"),
                         "--hf-tokenizer", str(released)])
    assert "verified after reload" in back.stdout
    config = transformers.AutoConfig.from_pretrained(tmp_path / "back")
    assert config.architectures == ["BertForSequenceClassification"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")
    assert tokenizer(SENTENCES[0])["input_ids"] == transformers.AutoTokenizer.from_pretrained(released)(SENTENCES[0])["input_ids"]


def _refusal(tmp_path, hf_dir, *extra):
    out = tmp_path / "refused" / "model.pt"
    result = run(IMPORT + [str(hf_dir), str(out), *extra], check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and lines[-1].startswith("import_hf: error: "), result.stderr[-2000:]
    assert not out.exists() and not (tmp_path / "refused" / "dict.txt").exists()
    return lines[-1]


def test_refusals_in_one_line_with_nothing_written(tmp_path):
    import transformers

    bert = tmp_path / "bert"
    build_released(bert, "bert")
    # an unsupported architecture
    gpt2 = tmp_path / "gpt2"
    transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(gpt2)
    assert "model type 'gpt2' is not importable" in _refusal(tmp_path, gpt2)
    # a config the metro encoder cannot compute exactly
    relu = tmp_path / "relu"
    build_released(relu, "bert", hidden_act="relu")
    assert "hidden_act 'relu'" in _refusal(tmp_path, relu)
    small_electra = tmp_path / "electra_small"
    build_released(small_electra, "electra", embedding_size=16)
    assert "embedding_size 16 differs from hidden_size 32" in _refusal(tmp_path, small_electra)
    # a folder without weights
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((bert / "config.json").read_text())
    assert "has no weights" in _refusal(tmp_path, no_weights)
    # a vocabulary without a mask token
    no_mask = tmp_path / "no_mask"
    build_released(no_mask, "bert")
    config = json.loads((no_mask / "tokenizer_config.json").read_text())
    config["mask_token"] = None
    (no_mask / "tokenizer_config.json").write_text(json.dumps(config))
    assert "the tokenizer has no mask_token" in _refusal(tmp_path, no_mask)
    # a width for the lower layers, which keep the main model's
    assert "add --generator-from fresh" in _refusal(tmp_path, bert, "--generator-embed-dim", "16")
    # another import's dict.txt in OUT's folder
    (tmp_path / "out").mkdir()
    run(IMPORT + [str(bert), str(tmp_path / "out" / "bert.pt")])
    roberta = tmp_path / "roberta"
    build_released(roberta, "roberta")
    result = run(IMPORT + [str(roberta), str(tmp_path / "out" / "roberta.pt")], check=False)
    assert result.stderr.strip().splitlines()[-1].startswith("import_hf: error: ") and "another vocabulary" in result.stderr
    assert not (tmp_path / "out" / "roberta.pt").exists()
    # an existing OUT is kept
    (tmp_path / "out" / "model.pt").write_text("keep")
    result = run(IMPORT + [str(bert), str(tmp_path / "out" / "model.pt")], check=False)
    assert result.stderr.strip().splitlines()[-1].startswith("import_hf: error: ") and "--force" in result.stderr
    assert (tmp_path / "out" / "model.pt").read_text() == "keep"


@pytest.mark.parametrize("generator_from", ["lower-layers", "fresh"])
def test_generator_from_the_lower_layers_or_fresh(generator_from, tmp_path):
    from fairseq import checkpoint_utils

    build_released(tmp_path / "released", "bert", num_hidden_layers=4)
    run(IMPORT + [str(tmp_path / "released"), str(tmp_path / "out" / "model.pt"), "--generator-from", generator_from])
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "out" / "model.pt"))
    sd, cfg = state["model"], state["cfg"]["model"]
    assert cfg["generator_layers"] == 2 and cfg["embedding_sharing"] == "gdes"
    assert not any(k.startswith("generator.layers.2.") for k in sd)
    copies = [torch.equal(sd[f"generator.layers.{i}.fc1.weight"], sd[f"encoder.layers.{i}.fc1.weight"]) for i in (0, 1)]
    assert copies == ([True, True] if generator_from == "lower-layers" else [False, False])
    assert torch.equal(sd["embeddings.delta"], torch.zeros_like(sd["embeddings.delta"]))


def build_electra_generator(folder, **overrides):
    """ELECTRA's generator shape: the discriminator's embedding width (32), a narrower body (16) behind a projection."""
    config = dict(hidden_size=16, num_attention_heads=2, intermediate_size=32, **overrides)
    return build_released(folder, "electra", seed=1, model_class="ElectraForMaskedLM", **config)


def test_electra_released_generator_imports_exactly_and_continues(wiki_text, tmp_path):
    """--generator: ELECTRA's released generator becomes the metro generator (logits equal transformers'), the
    discriminator's table is the generator's plus GDES's delta, and fairseq-train continues from it."""
    import transformers

    build_released(tmp_path / "disc", "electra")
    generator = build_electra_generator(tmp_path / "gen")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "disc")
    stdout = import_and_continue(tmp_path / "disc", tmp_path, wiki_text, "--generator", str(tmp_path / "gen"))
    assert "its MLM logits within" in stdout
    flags = stdout.split("continue pretraining with: ")[1].split()
    assert "--generator-project-after-norm" in flags and "--generator-embed-dim" in flags

    model, dictionary = load_pretraining_model(tmp_path / "imported")
    ids = padded([fairseq_ids(dictionary, tokenizer, s) for s in SENTENCES], dictionary.pad())
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.generator(model.embeddings.embed_generator(ids), model.padding_mask(ids))
        ours = model.generator_head(hidden, model.embeddings.generator_weight())
        theirs = generator(**enc).logits
    mask = enc["attention_mask"].bool()
    specials = {"[CLS]": "<s>", "[PAD]": "<pad>", "[SEP]": "</s>", "[UNK]": "<unk>", "[MASK]": "<mask>"}
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    index = torch.tensor([dictionary.index(specials.get(t, t)) for t, _ in by_id])  # released token -> our id
    hf_ids = torch.tensor([i for _, i in by_id])  # (a fixture token listed twice leaves an unused row)
    assert (ours[mask][:, index] - theirs[mask][:, hf_ids]).abs().max() < 1e-4
    released_table = generator.electra.embeddings.word_embeddings.weight
    assert torch.equal(model.embeddings.weight[index], released_table[hf_ids])
    assert model.embeddings.delta.abs().max() > 0  # the discriminator's own table differs in this fixture


@pytest.mark.parametrize("family", ["roberta", "roberta_prelayernorm", "mpnet", "deberta_v2"])  # BERT, ELECTRA: above
def test_each_family_continues_and_exports_what_it_learned(family, wiki_text, tmp_path):
    """Import -> 20 updates of continued pretraining (loss falls) -> export with the released tokenizer: the
    transformers model computes the continued model's hidden states on the released ids."""
    import transformers

    from metro_fairseq.hf.metro_checkpoint import load_source

    build_released(tmp_path / "released", family)
    import_and_continue(tmp_path / "released", tmp_path, wiki_text)
    continued = str(tmp_path / "ckpt" / "checkpoint_last.pt")
    run(EXPORT + [continued, str(tmp_path / "back"), "--hf-tokenizer", str(tmp_path / "released")])
    source = load_source(continued)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")
    ids = padded([fairseq_ids(source.dictionary, tokenizer, s) for s in SENTENCES], source.dictionary.pad())
    back = transformers.AutoModel.from_pretrained(tmp_path / "back").eval()
    theirs, mask, _ = released_hidden(back, tokenizer, SENTENCES)
    with torch.no_grad():
        ours = source.model.encode(ids)
    assert (ours[mask] - theirs[mask]).abs().max() < 1e-4
    released = transformers.AutoModel.from_pretrained(tmp_path / "released").eval()
    before, _, _ = released_hidden(released, tokenizer, SENTENCES)
    assert (before[mask] - theirs[mask]).abs().max() > 1e-2  # it learned something


def test_electra_generator_refusals(tmp_path):
    build_released(tmp_path / "disc", "electra")
    build_released(tmp_path / "bert", "bert")
    build_electra_generator(tmp_path / "gen")
    build_electra_generator(tmp_path / "wide_table", embedding_size=16)
    gen = ["--generator", str(tmp_path / "gen")]
    assert "leave out --generator-from" in _refusal(tmp_path, tmp_path / "disc", *gen, "--generator-layers", "1")
    assert "for an ELECTRA discriminator" in _refusal(tmp_path, tmp_path / "bert", *gen)
    assert "it is not a generator" in _refusal(tmp_path, tmp_path / "disc", "--generator", str(tmp_path / "disc"))
    assert "embedding_size 16 differs from the main model's 32" in _refusal(
        tmp_path, tmp_path / "disc", "--generator", str(tmp_path / "wide_table"))


@pytest.mark.parametrize("family,model_class", [("bert", "BertForMaskedLM"), ("roberta", "RobertaForMaskedLM")])
def test_lower_layers_generator_takes_the_released_mlm_head(family, model_class, tmp_path):
    """BERT's cls.predictions and RoBERTa's lm_head become the generator head: a generator of all the layers
    then computes the released ForMaskedLM logits; a folder of the base model gives a fresh head."""
    import transformers

    released = build_released(tmp_path / "released", family, model_class=model_class)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "released")
    result = run(IMPORT + [str(tmp_path / "released"), str(tmp_path / "out" / "model.pt"), "--generator-layers", "2"])
    assert "the released MLM head" in result.stdout
    model, dictionary = load_pretraining_model(tmp_path / "out")
    ids = padded([fairseq_ids(dictionary, tokenizer, s) for s in SENTENCES], dictionary.pad())
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    hf_of_ours = torch.tensor([tokenizer.convert_tokens_to_ids(
        {"<s>": tokenizer.cls_token, "<pad>": tokenizer.pad_token, "</s>": tokenizer.sep_token,
         "<unk>": tokenizer.unk_token, "<mask>": tokenizer.mask_token}.get(s, s)) for s in dictionary.symbols])
    with torch.no_grad():
        hidden = model.generator(model.embeddings.embed_generator(ids), model.padding_mask(ids))
        ours = model.generator_head(hidden, model.embeddings.generator_weight())
        theirs = released(**enc).logits
    mask = enc["attention_mask"].bool()
    assert (ours[mask] - theirs[mask][:, hf_of_ours]).abs().max() < 1e-4

    base = tmp_path / "base"
    build_released(base, "roberta")  # RobertaModel: no head in the folder
    result = run(IMPORT + [str(base), str(tmp_path / "base_out" / "model.pt")])
    assert "a fresh head (the folder has no MLM head)" in result.stdout
