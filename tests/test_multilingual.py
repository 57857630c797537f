"""Multilingual pretraining: language discovery, alpha-smoothed per-epoch sampling, per-language
validation, and a real fairseq-train run on LibreOffice Help in three languages (two scripts)."""
import os
import shutil
import sys

import numpy as np
import pytest
from fairseq.data import FairseqDataset

from conftest import DOWNLOAD_DIR, HELP_LANGS as LANGS, run
from metro_fairseq.data.language_layout import (
    check_language_dictionary, check_shards, find_languages, is_multilingual, split_language,
)
from metro_fairseq.data.language_probabilities import sampling_probabilities
from metro_fairseq.data.language_sampling import LanguageSampledDataset
from metro_fairseq.fairseq_log import read_log
from test_end_to_end import last_line, train_cmd, train_logs

# ---------------------------------------------------------------- sampling, by hand


@pytest.mark.parametrize("alpha", [1.0, 0.7, 0.5, 0.3, 0.0])
def test_probabilities_match_a_naive_computation(alpha):
    counts = [5000, 1200, 40]
    weights = [n ** alpha for n in counts]
    expected = [w / sum(weights) for w in weights]
    assert np.allclose(sampling_probabilities(counts, alpha), expected, rtol=1e-12)


def test_probabilities_worked_examples():
    assert np.allclose(sampling_probabilities([1, 4], 0.5), [1 / 3, 2 / 3])  # sqrt: 1 and 2
    assert np.allclose(sampling_probabilities([10, 30], 1.0), [0.25, 0.75])
    assert np.allclose(sampling_probabilities([10, 30, 7], 0.0), [1 / 3] * 3)


@pytest.mark.parametrize("alpha,counts", [(1.5, [1, 2]), (-0.1, [1, 2]), (0.3, [5, 0])])
def test_probabilities_reject_bad_input(alpha, counts):
    with pytest.raises(ValueError, match="alpha|at least one block"):
        sampling_probabilities(counts, alpha)


class Blocks(FairseqDataset):
    """n items of language ``lang``; item i is the tuple (lang, i); sizes vary so ordering matters."""

    def __init__(self, lang, n):
        self.lang, self.n = lang, n
        self.sizes = np.arange(n) % 7 + 10

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return (self.lang, int(i))


def sampled(counts=(2000, 500, 30), alpha=0.3, seed=1, epoch=1):
    datasets = [Blocks(lang, n) for lang, n in zip("abc", counts)]
    return LanguageSampledDataset(datasets, sampling_probabilities(counts, alpha), seed=seed, epoch=epoch)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.3])
def test_epoch_draw_follows_the_smoothed_shares(alpha):
    counts = np.array([2000, 500, 30])
    d = sampled(tuple(counts), alpha)
    p = counts ** alpha / (counts ** alpha).sum()
    drawn = np.bincount(d.language, minlength=3)
    assert abs(len(d) - counts.sum()) <= 3  # the epoch keeps the natural size, up to rounding
    assert np.all(np.abs(drawn / len(d) - p) < 2 / len(d))
    items = [d[i] for i in range(len(d))]
    for lang, n, m in zip("abc", counts, drawn):
        mine = [i for l_, i in items if l_ == lang]
        assert len(mine) == m and all(0 <= i < n for i in mine)
        if m <= n:  # downsampled: without replacement
            assert len(set(mine)) == m
    # the low-resource language is upsampled by smoothing
    assert (drawn[2] > counts[2]) == (alpha < 1.0)
    assert np.array_equal(d.sizes, [d.datasets[l_].sizes[i] for l_, i in zip(d.language, d.item)])


def test_epoch_draw_is_deterministic_per_seed_and_epoch():
    a, b = sampled(epoch=3), sampled(epoch=3)
    assert np.array_equal(a.item, b.item) and np.array_equal(a.language, b.language)
    assert np.array_equal(a.ordered_indices(), b.ordered_indices())
    assert not np.array_equal(a.item, sampled(epoch=4).item)
    assert not np.array_equal(a.item, sampled(seed=2, epoch=3).item)
    # epoch order is shuffled (languages mixed) yet sorted by size
    order = a.ordered_indices()
    assert np.all(np.diff(a.sizes[order]) >= 0)
    assert len(set(a.language[order[:200]])) > 1


def test_resume_sees_the_same_epoch_as_an_uninterrupted_run():
    straight = sampled(epoch=1)
    for epoch in range(2, 6):
        straight.set_epoch(epoch)
    resumed = sampled(epoch=5)  # what load_dataset(epoch=5) builds after a restart
    resumed.set_epoch(5)
    assert np.array_equal(straight.item, resumed.item)
    assert np.array_equal(straight.ordered_indices(), resumed.ordered_indices())
    # and going back to an earlier epoch redraws it exactly
    straight.set_epoch(2)
    assert np.array_equal(straight.item, sampled(epoch=2).item)


# ---------------------------------------------------------------- layout


def make_layout(root, langs=("de", "en"), splits=("train", "valid")):
    root.mkdir(parents=True, exist_ok=True)
    (root / "dict.txt").write_text("a 3\nb 2\n")
    for lang in langs:
        (root / lang).mkdir(parents=True)
        for split in splits:
            (root / lang / f"{split}.bin").write_bytes(b"")
            (root / lang / f"{split}.idx").write_bytes(b"")
    return root


def test_discovery_ignores_stray_directories(tmp_path):
    root = make_layout(tmp_path)
    (root / "logs").mkdir()
    (root / "raw").mkdir()
    (root / "raw" / "de.train.txt").write_text("Hallo\n")
    (root / "half").mkdir()
    (root / "half" / "train.bin").write_bytes(b"")  # no .idx: not binarized
    assert find_languages(str(root), "") == (["de", "en"], ["half", "logs", "raw"])
    assert find_languages(str(root), "en") == (["en"], ["de", "half", "logs", "raw"])


def test_monolingual_data_stays_monolingual(tmp_path):
    mono = tmp_path / "mono"
    mono.mkdir()
    for name in ("train.bin", "train.idx", "dict.txt"):
        (mono / name).write_bytes(b"")
    (mono / "logs").mkdir()
    assert not is_multilingual(str(mono), "")
    assert is_multilingual(str(make_layout(tmp_path / "multi")), "")
    assert is_multilingual(str(mono), "de")  # --languages always means the per-language layout


def test_unknown_language_is_one_clear_error(tmp_path):
    root = make_layout(tmp_path)
    with pytest.raises(FileNotFoundError, match="--languages lists fr but .* has no such directory"):
        find_languages(str(root), "de,fr")


def test_language_with_another_dictionary_is_refused(tmp_path):
    root = make_layout(tmp_path)
    (root / "de" / "dict.txt").write_text("a 3\nb 2\n")
    check_language_dictionary(str(root), "de")  # a copy of the shared one is fine
    (root / "en" / "dict.txt").write_text("a 3\nc 2\n")
    with pytest.raises(ValueError, match="en/dict.txt differs from .*dict.txt: every language must share"):
        check_language_dictionary(str(root), "en")


def test_split_names_with_a_language():
    langs = ["en", "pt_BR", "BR"]
    assert split_language("valid_en", langs) == ("valid", "en")
    assert split_language("valid_pt_BR", langs) == ("valid", "pt_BR")
    assert split_language("valid", langs) == ("valid", None)
    assert split_language("valid1", langs) == ("valid1", None)


# ---------------------------------------------------------------- real text, real fairseq runs


def test_prepare_reports_fertility_and_samples_with_alpha(help_bin):
    dest, out = help_bin
    assert sorted(os.listdir(dest)) == ["de", "dict.txt", "en", "notes", "ru", "spm.model", "spm.vocab"]
    for lang in LANGS:
        assert {"train.bin", "train.idx", "valid.bin", "valid.idx"} <= set(os.listdir(dest / lang))
        assert (dest / lang / "dict.txt").read_text() == (dest / "dict.txt").read_text()
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 5 and cells[0] in LANGS:
            rows[cells[0]] = cells
    n = np.array([int(rows[lang][1]) for lang in LANGS])
    p = n ** 0.3 / (n ** 0.3).sum()
    for lang, share in zip(LANGS, p):
        assert abs(float(rows[lang][3]) - share) < 1e-3, (lang, rows[lang], share)
    assert float(rows["ru"][3]) > float(rows["ru"][2])  # the small language is upsampled
    for lang in LANGS:
        assert f"| {lang} | train |" in out
    ru = [c.strip() for c in next(ln for ln in out.splitlines() if "| ru | train |" in ln).split("|")[1:-1]]
    assert 1.0 < float(ru[4]) < 6.0 and float(ru[5]) < 0.01  # pieces per word, unknown rate


def test_html_extraction_on_a_real_page(help_text):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    from fetch_libreoffice_help import page_paragraphs

    page = os.path.join(DOWNLOAD_DIR, "libreoffice-help", "en", "usr", "share", "libreoffice", "help", "en-US",
                        "text", "sbasic", "shared", "stardesktop.html")
    paragraphs = page_paragraphs(page)
    assert [text for _, text in paragraphs] == [
        "StarDesktop object",
        "The StarDesktop object represents LibreOffice application. Some routines or user interface objects "
        "such as current window can be used via StarDesktop.",
        "Example:",
    ]  # the Basic listing (pre/code), the navigation and the footer are left out
    assert paragraphs[0][0] == "hd_id401544551916353"  # ids align translations of a paragraph
    with open(page, encoding="utf-8") as f:
        assert "StarDesktop.LoadComponentFromURL" in f.read()


def mtrain(data, save, max_update, *extra):
    # validation (4 subsets) at updates 20, 30, 40, 60 only: saves every 30, none at epoch ends
    return train_cmd(data, save, max_update, "--multilang-sampling-alpha", "0.3", "--batch-size", "16",
                     "--save-interval-updates", "30", "--save-interval", "1000", "--validate-interval", "1000",
                     "--max-valid-steps", "2", *extra)


# --clm: the per-language validation metrics must carry the corrective LM's keys too
RUN_EXTRA = ("--valid-subset", "valid_ru,valid,valid_de,valid_en", "--best-checkpoint-metric", "loss",
             "--validate-interval-updates", "20", "--clm")


@pytest.fixture(scope="module")
def multilingual_run(help_bin, tmp_path_factory):
    dest, _ = help_bin
    save = tmp_path_factory.mktemp("multi-run")
    r = run(mtrain(dest, save, 60, *RUN_EXTRA))
    return save, r.stdout + r.stderr


def valid_stats(log, subset):
    """The validations of one subset in a fairseq-train output: [{name: float}] (names without the subset)."""
    return [record.stats for record in read_log(log.splitlines()).valid(subset)]


def test_run_logs_languages_table_and_per_language_metrics(multilingual_run):
    save, log = multilingual_run
    assert "multilingual data: 3 languages de,en,ru; ignored directories: notes" in log
    table = [line.split("| INFO | metro_fairseq.tasks.metro_pretraining | ")[-1] for line in log.splitlines()
             if "| INFO | metro_fairseq.tasks.metro_pretraining | | " in line]
    assert table[0] == "| language | blocks | natural share | sampled share | sampled blocks per epoch |"
    rows = {cells[0]: cells for cells in ([c.strip() for c in row.split("|")[1:-1]] for row in table[1:])}
    n = np.array([int(rows[lang][1]) for lang in ("de", "en", "ru")])
    p = n ** 0.3 / (n ** 0.3).sum()
    for lang, share in zip(("de", "en", "ru"), p):
        assert abs(float(rows[lang][3]) - share) < 2 / n.sum()
    for subset in ("valid_ru", "valid", "valid_de", "valid_en"):
        stats = valid_stats(log, subset)
        assert [int(s["num_updates"]) for s in stats] == [20, 30, 40, 60], subset
        for key in ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_acc", "clm_loss", "clm_acc"):
            assert key in stats[-1], (subset, key)
        # each language's validation loss falls
        assert stats[-1]["mlm_loss"] < stats[0]["mlm_loss"], subset
    # the first subset (valid_ru) drives --best-checkpoint-metric
    ru = valid_stats(log, "valid_ru")
    # (fairseq updates the best value when it saves: at 30 and 60 here)
    assert ru[-1]["best_loss"] == min(ru[1]["loss"], ru[3]["loss"])
    assert (save / "checkpoint_best.pt").exists()
    logs = train_logs(log)
    assert float(logs[60]["loss"]) < float(logs[5]["loss"])


def test_multilingual_resume_gives_identical_losses(multilingual_run, help_bin, tmp_path):
    """Epochs are about 22 updates: stopped at 30 and resumed, the run crosses an epoch boundary again."""
    save, log = multilingual_run
    dest, _ = help_bin
    run(mtrain(dest, tmp_path, 30, *RUN_EXTRA))
    resumed = run(mtrain(dest, tmp_path, 60, *RUN_EXTRA))
    out = resumed.stdout + resumed.stderr
    assert "Loaded checkpoint" in out
    straight, again = train_logs(log), train_logs(out)
    assert sorted(again) == [35, 40, 45, 50, 55, 60]
    assert "end of epoch 2 " in log  # resumed in epoch 2, so the resumed part redraws epochs 2 and 3
    for step in again:
        for key in ("loss", "mlm_loss", "rtd_loss", "clm_loss", "rtd_acc", "gnorm"):
            assert again[step][key] == straight[step][key], (step, key)


def test_shards_are_read_one_per_epoch(help_bin, tmp_path):
    """DATA1:DATA2, each DATA/<lang>/: epoch 1 reads the first shard, epoch 2 the second. The second
    shard here holds ru's text as de and de's as ru, so the switch shows in the block counts."""
    dest, _ = help_bin
    second = tmp_path / "shard2"
    second.mkdir()
    for lang, source in (("en", "en"), ("de", "ru"), ("ru", "de")):
        (second / lang).symlink_to(dest / source, target_is_directory=True)
    r = run(mtrain(f"{dest}:{second}", tmp_path / "save", 30, "--disable-validation"))
    log = r.stdout + r.stderr
    loaded = {}
    for line in log.splitlines():
        if "INFO | metro_fairseq.tasks.metro_pretraining | loaded " in line:
            n, path = line.split("| loaded ")[1].split(" blocks from ")
            loaded[path.strip()] = int(n)
    first = {lang: loaded[f"{dest}/{lang}/train"] for lang in LANGS}
    assert first["de"] != first["ru"]
    assert loaded[f"{second}/de/train"] == first["ru"] and loaded[f"{second}/ru/train"] == first["de"]
    assert "end of epoch 1 " in log  # 30 updates reach epoch 2
    assert sorted(train_logs(log)) == [5, 10, 15, 20, 25, 30]


def test_shards_must_hold_every_language_with_the_shared_dictionary(tmp_path):
    first, second = make_layout(tmp_path / "a"), make_layout(tmp_path / "b", langs=("de",))
    with pytest.raises(FileNotFoundError, match=r"shard .*b lacks language\(s\) en of the first shard .*a: binarize"):
        check_shards([str(first), str(second)], ["de", "en"])
    check_shards([str(first), str(second)], ["de"])
    (second / "de" / "dict.txt").write_text("a 3\nz 2\n")
    with pytest.raises(ValueError, match=r"b/de/dict.txt differs from .*a/dict.txt"):
        check_shards([str(first), str(second)], ["de"])


def test_clm_and_scl_train_on_multilingual_data(help_bin, tmp_path):
    dest, _ = help_bin
    r = run(mtrain(dest, tmp_path, 6, "--clm", "--scl-view", "crop", "--disable-validation"))
    last = train_logs(r.stdout + r.stderr)[5]
    assert "clm_loss" in last and "scl_loss" in last


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing_split", "split 'valid' not found in"),
        ("unknown_language", "--languages lists fr but"),
        ("other_dict", "de/dict.txt differs from"),
        ("alpha", "--multilang-sampling-alpha 1.5 must lie in [0, 1]"),
        ("shard", "lacks language(s) ru of the first shard"),
    ],
)
def test_bad_multilingual_input_fails_with_one_line(case, expected, help_bin, tmp_path):
    dest, _ = help_bin
    data = tmp_path / "data"
    shutil.copytree(dest, data)
    extra = []
    if case == "missing_split":
        os.remove(data / "ru" / "valid.bin")
        os.remove(data / "ru" / "valid.idx")
    elif case == "unknown_language":
        extra = ["--languages", "en,fr"]
    elif case == "other_dict":
        with open(data / "de" / "dict.txt", "a", encoding="utf-8") as f:
            f.write("extra 1\n")
    elif case == "alpha":
        extra = ["--multilang-sampling-alpha", "1.5"]
    elif case == "shard":
        shutil.copytree(dest, tmp_path / "shard2")
        shutil.rmtree(tmp_path / "shard2" / "ru")
        data = f"{data}:{tmp_path / 'shard2'}"
    r = run(train_cmd(data, tmp_path / "save", 5, *extra), check=False)
    assert r.returncode != 0
    assert expected in last_line(r), last_line(r)
    if case == "missing_split":
        assert "binarize that split for every language" in last_line(r)
    assert "begin training" not in r.stdout + r.stderr
