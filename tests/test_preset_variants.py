"""Preset variants compose their base and differ from it only where they say (no training: seconds).

A variant X in config/pretraining or config/finetuning is two files: X.yaml only names
variants/X.yaml (``defaults: [_self_, variants/X]``, no keys: fairseq-hydra-train validates the config
named by --config-name against FairseqConfig, so every key of that file would carry a default that
overrides a base composed before it), and variants/X.yaml composes the base
(``defaults: [/BASE, _self_]``, or ``[/BASE, reset_optimizer, _self_]`` to replace the optimizer and
scheduler blocks whole) and sets what changes. Configs are composed here the way fairseq-hydra-train
composes them (fairseq's config store, the preset validated against FairseqConfig), in this process."""
import copy
import functools
import glob
import os
import sys

import pytest
import yaml

from conftest import REPO, fairseq_config_store, run

CONFIG = os.path.join(REPO, "metro_fairseq", "config")
KINDS = ("pretraining", "finetuning")
ABSENT = "<absent>"


def _raw(kind, name):
    with open(os.path.join(CONFIG, kind, f"{name}.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _presets(kind):
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONFIG, kind, "*.yaml")))


def _variants():
    """(kind, name, base, resets) for every preset whose file names a variant."""
    found = []
    for kind in KINDS:
        for name in _presets(kind):
            if "defaults" in _raw(kind, name):
                own = _raw(kind, f"variants/{name}")["defaults"]
                found.append((kind, name, own[0].lstrip("/"), [f"variants/{r}" for r in own[1:-1]]))
    return found


VARIANTS = _variants()


def flat(node, prefix=""):
    if isinstance(node, dict) and node:
        return {k: v for key, sub in node.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def compose(kind, name):
    """The job config fairseq-hydra-train --config-dir config/KIND --config-name NAME composes."""
    return copy.deepcopy(_compose(kind, name))


@functools.lru_cache(maxsize=None)
def _compose(kind, name):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with fairseq_config_store(name), initialize_config_dir(os.path.join(CONFIG, kind), version_base="1.1"):
        return OmegaConf.to_container(hydra_compose(config_name=name))


def _differing(a, b):
    a, b = flat(a), flat(b)
    return {k for k in a.keys() | b.keys() if a.get(k, ABSENT) != b.get(k, ABSENT)}


def _under(key, node):
    return key == node or key.startswith(node + ".")


def test_variants_are_found():
    assert {(kind, name, base) for kind, name, base, _ in VARIANTS} >= {
        ("pretraining", "metro_cpu_small_gdes", "metro_cpu_small"),
        ("pretraining", "metro_cpu_small_genlr", "metro_cpu_small"),
        ("finetuning", "wnli", "rte"),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_preset_files_are_shaped_to_compose(kind):
    names = set(_presets(kind))
    wrapped = {name for k, name, _, _ in VARIANTS if k == kind}
    for name in names:
        raw = _raw(kind, name)
        # hydra reads hydra.searchpath only from the primary config and refuses it in a composed one;
        # run_config/ (a link to config/run_config) gives every preset +run_config=local / slurm_N instead
        assert "searchpath" not in raw.get("hydra", {}), name
        if name in wrapped:  # only names its variant, _self_ (FairseqConfig's defaults) first
            assert raw == {"defaults": ["_self_", f"variants/{name}"]}, name
    for kind_, name, base, resets in VARIANTS:
        if kind_ != kind:
            continue
        own = _raw(kind, f"variants/{name}")
        assert own["defaults"][0] == f"/{base}" and own["defaults"][-1] == "_self_", name
        assert base in names and "searchpath" not in own.get("hydra", {}), name
        for reset in resets:  # only empties whole blocks of the base
            assert all(v is None for v in _raw(kind, reset).values()), reset
    listed = {f"variants/{name}" for k, name, _, _ in VARIANTS if k == kind}
    listed |= {r for k, _, _, resets in VARIANTS if k == kind for r in resets}
    on_disk = {f"variants/{os.path.basename(p)[:-5]}" for p in glob.glob(os.path.join(CONFIG, kind, "variants", "*.yaml"))}
    assert on_disk == listed  # no orphaned variant files
    assert {"local.yaml", "slurm_1.yaml"} <= set(os.listdir(os.path.join(CONFIG, kind, "run_config")))


@pytest.mark.parametrize("kind,name", [(kind, name) for kind in KINDS for name in _presets(kind)])
def test_preset_composes(kind, name):
    cfg = compose(kind, name)
    assert cfg["common"]["user_dir"] == "metro_fairseq" and cfg["task"]["data"] == "???", name


@pytest.mark.parametrize("kind,name,base,resets", VARIANTS, ids=[f"{k}/{n}" for k, n, _, _ in VARIANTS])
def test_variant_differs_from_its_base_only_where_it_says(kind, name, base, resets):
    differing = _differing(compose(kind, base), compose(kind, name))
    own = {k for k in flat({k: v for k, v in _raw(kind, f"variants/{name}").items() if k != "defaults"})}
    replaced = {k for reset in resets for k in _raw(kind, reset)}  # whole blocks of the base, dropped
    said = own | replaced
    assert {k for k in differing if not any(_under(k, s) for s in said)} == set(), "changes it does not say"
    no_effect = {k for k in own if k not in differing and not any(_under(k, r) for r in replaced)}
    assert no_effect == set(), "keys equal to the base's"
    assert {r for r in replaced if not any(_under(k, r) for k in differing)} == set(), "resets that change nothing"


def test_gdes_preset_is_cpu_small_with_gdes_only():
    # the demo's preset must stay the benchmarked recipe plus GDES
    tied, gdes = flat(compose("pretraining", "metro_cpu_small")), flat(compose("pretraining", "metro_cpu_small_gdes"))
    assert {k: (tied.get(k), gdes.get(k)) for k in _differing(tied, gdes)} == {"model.embedding_sharing": ("tied", "gdes")}


def test_genlr_keeps_cpu_small_optimisation_in_its_group():
    # the composite group replays metro_cpu_small's optimizer and schedule; only the generator's lr scale differs
    tied, genlr = compose("pretraining", "metro_cpu_small"), compose("pretraining", "metro_cpu_small_genlr")
    group = genlr["optimizer"]["groups"]["default"]
    assert group["optimizer"] == tied["optimizer"] and group["lr_scheduler"] == tied["lr_scheduler"]
    assert [group["lr_float"]] == tied["optimization"]["lr"] == genlr["optimization"]["lr"]


def test_in_process_composition_is_fairseq_hydra_train_s():
    """The helper above composes what the real command composes (one subprocess: a few seconds)."""
    result = run([sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", "metro_fairseq/config/pretraining",
                  "--config-name", "metro_cpu_small_genlr", "--cfg", "job"], cwd=REPO)
    assert flat(yaml.safe_load(result.stdout)) == flat(compose("pretraining", "metro_cpu_small_genlr"))
