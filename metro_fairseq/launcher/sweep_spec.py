"""A sweep spec: one base fairseq command plus a grid of overrides, expanded into named runs.

```yaml
name: glue_rte                       # runs go to <output-root>/<name>/<run name>
command: >-                          # {key} / {key[field]} placeholders are filled from the grid
  fairseq-hydra-train --config-dir metro_fairseq/config/finetuning --config-name {task[config]}
  task.data=glue-bin/{task[data]} checkpoint.finetune_from_model=ckpt/main_model.pt
grid:                                # every combination is one run
  task:                              # a value may be a mapping of named fields, read as {task[field]}
    - {config: rte, data: RTE}
    - {config: mrpc, data: MRPC}
  optimization.lr: ["[1e-5]", "[2e-5]"]   # hydra override -> optimization.lr=[1e-5]
  common.seed: [1, 2, 3]
slurm: {partition: learnlab, gpus_per_node: 1, time_min: 240}   # optional defaults
```

A placeholder names a grid key by the last dotted part of the key (``{lr}`` for
``optimization.lr``); ``{run_dir}`` is the run's folder. A plain value fills ``{key}``; a mapping
value (every value of that key a mapping with the fields the command reads) fills
``{key[field]}``, so one grid key can carry values that go together (a config name and its data
folder). Mapping values only go into placeholders: a key whose values are mappings must be one.

Grid keys that are not placeholders are appended: ``--opt`` keys as ``--opt value`` (a ``true``
value as the bare flag) for ``fairseq-train``, other keys as hydra ``key=value`` overrides.
The run name is ``key_value`` for each grid key (last dotted part of the key), joined by ``.``;
a mapping value is named by its first field's value (``{config: rte, data: RTE}`` -> ``task_rte``).
"""
import itertools
import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, List

import yaml


class SpecError(ValueError):
    pass


@dataclass
class Run:
    name: str
    run_dir: str
    command: List[str]
    overrides: Dict[str, object]


@dataclass
class SweepSpec:
    name: str
    command: str
    grid: Dict[str, list] = field(default_factory=dict)
    slurm: Dict[str, object] = field(default_factory=dict)

    @property
    def hydra_style(self) -> bool:
        return "fairseq-hydra-train" in self.command or "hydra_train" in self.command


def load_spec(path: str) -> SweepSpec:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    unknown = set(raw) - {"name", "command", "grid", "slurm"}
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {sorted(unknown)}; a spec has name, command, grid, slurm")
    for key in ("name", "command"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SpecError(f"{path}: '{key}' must be a non-empty string")
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise SpecError(f"{path}: 'grid' must map option names to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{path}: grid value of '{key}' must be a non-empty list, e.g. {key}: [1, 2]")
    if not re.fullmatch(r"[\w.-]+", raw["name"]):
        raise SpecError(f"{path}: name {raw['name']!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
    return SweepSpec(raw["name"], " ".join(raw["command"].split()), grid, raw.get("slurm") or {})


def short_key(key: str) -> str:
    return key.lstrip("-").split(".")[-1]


def format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def name_value(value):
    """What a grid value contributes to the run name: a mapping its first field's value."""
    return next(iter(value.values())) if isinstance(value, dict) else value


def run_name(overrides: Dict[str, object]) -> str:
    parts = []
    for key, value in overrides.items():
        value = name_value(value)
        text = re.sub(r"[^\w.+-]", "", format_value(value).replace(",", "-").replace(" ", ""))
        parts.append(f"{short_key(key)}_{text}")
    return ".".join(parts) or "run"


def output_args(run_dir: str, hydra_style: bool) -> List[str]:
    """Where fairseq writes checkpoints and its log (and hydra its outputs, without changing directory)."""
    if hydra_style:
        return [
            f"checkpoint.save_dir={run_dir}", f"common.log_file={run_dir}/train.log",
            f"hydra.run.dir={run_dir}", "hydra.job.chdir=false",
        ]
    return ["--save-dir", run_dir, "--log-file", f"{run_dir}/train.log"]


PLACEHOLDER = re.compile(r"\{(\w+)(?:\[([^\]{}]*)\])?\}")  # {key} or {key[field]}
FIELD = re.compile(r"[A-Za-z_][\w-]*")


def show(value) -> str:
    """A grid value as the spec writes it: a mapping in YAML flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{f}: {format_value(v)}" for f, v in value.items()) + "}"
    return repr(value)


def check_mapping_values(spec: SweepSpec, uses: Dict[str, set]) -> None:
    """Mapping grid values: only for placeholder keys, with every field the command reads ({key[field]})."""
    for key, values in spec.grid.items():
        name = short_key(key)
        mappings = [v for v in values if isinstance(v, dict)]
        fields = {f for f in uses.get(name, ()) if f is not None}
        if mappings and name not in uses:
            raise SpecError(f"grid key '{key}' has mapping values but the command has no {{{name}[field]}} "
                            f"placeholder; mappings only fill placeholders, e.g. {{{name}[{next(iter(mappings[0]), 'field')}]}}")
        if mappings and None in uses[name]:
            raise SpecError(f"command uses {{{name}}} but the values of '{key}' are mappings; "
                            f"name a field, e.g. {{{name}[{next(iter(mappings[0]), 'field')}]}}")
        for value in values:
            if not fields:
                break
            if not isinstance(value, dict):
                raise SpecError(f"command uses {{{name}[{sorted(fields)[0]}]}} but the value {show(value)} of '{key}' "
                                f"is not a mapping; write it as {{{sorted(fields)[0]}: {value}}}")
            if not value:
                raise SpecError(f"an empty mapping in the values of '{key}'; a mapping needs at least one field")
            bad = [f for f in value if not isinstance(f, str) or not FIELD.fullmatch(f)]
            if bad:
                raise SpecError(f"field name {bad[0]!r} in a value of '{key}' must be a word (letters, digits, '_', '-')")
            nested = [f for f, v in value.items() if isinstance(v, (dict, list))]
            if nested:
                raise SpecError(f"field '{nested[0]}' in a value of '{key}' must be a plain value, not a list or mapping")
            unknown = sorted(fields - set(value))
            if unknown:
                raise SpecError(f"command uses {{{name}[{unknown[0]}]}} but the value {show(value)} of '{key}' has no field "
                                f"'{unknown[0]}' (its fields: {', '.join(value)})")


def expand(spec: SweepSpec, output_root: str) -> List[Run]:
    keys = list(spec.grid)
    uses: Dict[str, set] = {}
    for name, fld in PLACEHOLDER.findall(spec.command):
        if name != "run_dir":
            uses.setdefault(name, set()).add(fld or None)
    placeholders = set(uses)
    known = {short_key(k) for k in keys}
    if len(known) != len(keys):
        raise SpecError("two grid keys end in the same name, so run names would be ambiguous; rename one key")
    missing = placeholders - known
    if missing:
        raise SpecError(f"command uses {{{sorted(missing)[0]}}} but the grid has no such key; add it to 'grid'")
    check_mapping_values(spec, uses)
    runs = []
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        overrides = dict(zip(keys, values))
        name = run_name(overrides)
        run_dir = f"{output_root.rstrip('/')}/{spec.name}/{name}"
        fill = {
            short_key(k): {f: format_value(x) for f, x in v.items()} if isinstance(v, dict) else format_value(v)
            for k, v in overrides.items()
        }
        fill["run_dir"] = run_dir
        command = shlex.split(spec.command.format(**fill))
        for key, value in overrides.items():
            if short_key(key) in placeholders:
                continue
            if key.startswith("--"):
                command += [key] if value is True else [key, format_value(value)]
            else:
                command.append(f"{key}={format_value(value)}")
        if "{run_dir}" not in spec.command:
            command += output_args(run_dir, spec.hydra_style)
        runs.append(Run(name, run_dir, command, overrides))
    if len({r.name for r in runs}) != len(runs):
        raise SpecError("two grid values give the same run name (only letters, digits and . + - are kept)")
    return runs
