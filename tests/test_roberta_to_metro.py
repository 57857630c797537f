"""benchmarks/roberta_to_metro.py: a fairseq RoBERTa checkpoint becomes a metro pretraining checkpoint that computes
fairseq's RoBERTa features, with a generator of its lower layers and its LM head, and fairseq-train continues it."""
import os
import sys

import torch

from conftest import REPO, run

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import roberta_to_metro  # noqa: E402


def test_roberta_checkpoint_converts_exactly_and_continues(wiki_bin, tmp_path):
    from fairseq import checkpoint_utils, tasks
    from fairseq.data import Dictionary

    from metro_fairseq.models.metro import MetroModel
    from metro_fairseq.models.metro_config import config_from_checkpoint

    run([sys.executable, "-m", "fairseq_cli.train", str(wiki_bin), "--user-dir", "metro_fairseq", "--task", "masked_lm",
         "--criterion", "masked_lm", "--arch", "roberta", "--encoder-layers", "3", "--encoder-embed-dim", "32",
         "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--tokens-per-sample", "64",
         "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3", "--max-update", "10", "--cpu", "--num-workers",
         "0", "--disable-validation", "--save-dir", str(tmp_path / "roberta"), "--no-epoch-checkpoints"])
    roberta_path = str(tmp_path / "roberta" / "checkpoint_last.pt")
    flags = roberta_to_metro.convert(roberta_path, str(tmp_path / "metro.pt"), generator_layers=1).split()
    assert flags[flags.index("--generator-layers") + 1] == "1"

    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "metro.pt"))
    dictionary = Dictionary.load(str(wiki_bin / "dict.txt"))
    dictionary.add_symbol("<mask>")
    model = MetroModel(config_from_checkpoint(state["cfg"]["model"]), dictionary, with_generator=True)
    model.load_state_dict(state["model"], strict=True)
    model.eval()
    source = checkpoint_utils.load_checkpoint_to_cpu(roberta_path)
    roberta = tasks.setup_task(source["cfg"]["task"]).build_model(source["cfg"]["model"])
    roberta.load_state_dict(source["model"])
    roberta.eval()
    ids = torch.randint(4, len(dictionary) - 1, (2, 20))
    ids[:, 0], ids[:, -1], ids[1, 12:] = 0, 2, dictionary.pad()
    keep = ids.ne(dictionary.pad())
    with torch.no_grad():
        ours = model.encode(ids)
        theirs = roberta(ids, features_only=True)[0]
        # the generator: RoBERTa's first layer and its LM head, so on one layer it predicts what that computes
        gen = model.generator_head(model.generator(model.embeddings.embed_generator(ids), ids.eq(dictionary.pad())),
                                   model.embeddings.generator_weight())
        truncated = roberta.encoder.sentence_encoder
        truncated.layers = truncated.layers[:1]
        lower = roberta(ids, features_only=False)[0]
    assert (ours - theirs)[keep].abs().max() < 1e-4
    assert (gen - lower)[keep].abs().max() < 1e-4
    # the positions start after fairseq's padding row: read from 0 they would be another model
    shifted = roberta_to_metro.main_state(source["model"], 3, offset=0)
    assert not torch.equal(shifted["encoder.embed_positions.weight"][:20], model.encoder.embed_positions.weight[:20])

    train = run([sys.executable, "-m", "fairseq_cli.train", str(wiki_bin), "--user-dir", "metro_fairseq",
                 "--task", "metro_pretraining", "--criterion", "metro", *flags, "--finetune-from-model",
                 str(tmp_path / "metro.pt"), "--tokens-per-sample", "64", "--batch-size", "8", "--optimizer", "adam",
                 "--lr", "1e-3", "--max-update", "3", "--cpu", "--num-workers", "0", "--disable-validation",
                 "--save-dir", str(tmp_path / "continued"), "--no-epoch-checkpoints"])
    assert "done training" in train.stdout + train.stderr
