"""Small randomly initialised transformers encoders saved with ``save_pretrained``, each with the tokenizer
its family ships: WordPiece (BERT, ELECTRA, MPNet) or SentencePiece (XLM-R's for RoBERTa, DeBERTa-v3's)."""
import os

WORDS = ("the of and to in is was for on with as by at from that it his an are were which this be had "
         "first new one two city team year game world also after but its their has have not other").split()
SENTENCES = [
    "The city team won the first game of the new year.",
    "It was one of two games played in the world cup after the war.",
    "Their first album, which had been recorded in 1998, was released by an independent label!",
    "Zoë's café is not far from the station; its menu has other things too.",
]
# the first rows of the released vocabularies: BERT's [PAD] then unused rows; MPNet's <s> <pad> </s> <unk>
# (with "<unk>" a plain token: its unk_token is [UNK], further on)
HEADS = {"wordpiece": ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
         "mpnet": ["<s>", "<pad>", "</s>", "<unk>", "[unused0]", "[UNK]", "<mask>"]}
# family -> (model_type's config class, the class saved, tokenizer kind)
FAMILIES = {
    "bert": ("BertConfig", "BertForMaskedLM", "wordpiece"),
    "electra": ("ElectraConfig", "ElectraForPreTraining", "wordpiece"),
    "roberta": ("RobertaConfig", "RobertaModel", "sentencepiece"),
    "roberta_prelayernorm": ("RobertaPreLayerNormConfig", "RobertaPreLayerNormModel", "sentencepiece"),
    "mpnet": ("MPNetConfig", "MPNetModel", "mpnet"),
    "deberta_v2": ("DebertaV2Config", "DebertaV2Model", "deberta"),
}


def _wordpiece_vocab(kind):
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    return HEADS[kind] + WORDS + list(letters) + ["##" + c for c in letters] + list(".,;!?'()-") + ["##s", "##ed", "##ing"]


def _sentencepiece(folder, name, **ids):
    """``ids``: the special pieces' ids and names (SentencePiece's trainer options)."""
    import sentencepiece as spm

    text = os.path.join(folder, "spm-train.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(SENTENCES * 20 + [" ".join(WORDS)] * 5) + "\n")
    spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(folder, "spm"), vocab_size=80,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2, **ids)
    os.replace(os.path.join(folder, "spm.model"), os.path.join(folder, name))
    for leftover in ("spm.vocab", "spm-train.txt"):
        os.remove(os.path.join(folder, leftover))
    return os.path.join(folder, name)


def build_tokenizer(transformers, folder, kind):
    if kind in ("wordpiece", "mpnet"):
        vocab = _wordpiece_vocab(kind)
        path = os.path.join(folder, "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        cls = transformers.MPNetTokenizer if kind == "mpnet" else transformers.BertTokenizer
        return cls(vocab=path)
    if kind == "sentencepiece":  # XLM-R's: <s> <pad> </s> <unk> first, <mask> last
        _sentencepiece(folder, "sentencepiece.bpe.model")
        return transformers.XLMRobertaTokenizer.from_pretrained(folder)
    _sentencepiece(folder, "spm.model", pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                   eos_piece="[SEP]", unk_piece="[UNK]")  # DeBERTa-v3's: [PAD] [CLS] [SEP] [UNK] first, [MASK] added
    return transformers.DebertaV2Tokenizer.from_pretrained(folder)


def build_released(folder, family, seed=0, model_class=None, **config_overrides):
    """A ``family`` model of 2 layers x 32 with its tokenizer, saved into ``folder``; returns the model.
    ``model_class``: another transformers class of the family (ELECTRA's generator: ``ElectraForMaskedLM``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    config_name, class_name, kind = FAMILIES[family]
    os.makedirs(folder, exist_ok=True)
    tokenizer = build_tokenizer(transformers, str(folder), kind)
    size = max(tokenizer.get_vocab().values()) + 1
    config = dict(vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=66, pad_token_id=tokenizer.pad_token_id)
    if family == "deberta_v2":  # v3's settings
        config.update(relative_attention=True, position_biased_input=False, share_att_key=True,
                      norm_rel_ebd="layer_norm", pos_att_type=["p2c", "c2p"], type_vocab_size=0,
                      position_buckets=16, max_relative_positions=64)
    if family == "electra":
        config["embedding_size"] = 32
    config.update(config_overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class or class_name)(getattr(transformers, config_name)(**config))
    with torch.no_grad():  # away from the initialisation's zero biases and unit norms, so a swap shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model.eval()
