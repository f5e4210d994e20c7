"""Checkpoint averaging of LoRA adapters (`csas average`, `--average-last`): the mean of several adapters' weight
updates, exactly, as one adapter that every command takes like `lora/`.

An adapter changes each adapted weight by scale x B @ A (scale = lora_alpha / r). The mean of N such updates is not
the update of the mean A and mean B (a mean of products is not the product of means), but it is exactly the update of
one LoRA of rank N x r whose A stacks the N A matrices and whose B sets the N B matrices side by side, each scaled by
its adapter's scale / N (the construction behind peft's `cat` combination): B_cat @ A_cat = sum_i scale_i B_i A_i / N.
The averaged adapter has r = lora_alpha = N x r (scale 1). Marian, fairseq and OpenNMT average their last checkpoints
the same way in spirit (a plain mean: Gao et al. 2022 find it as good as weighted schemes).

Adapters of different ranks, targets or LoRA variants (DoRA, rsLoRA, per-module rank patterns) are refused in one
line: their updates could be averaged, but not as the plain mean of csas's own checkpoints this is meant for.

A run's adapters, oldest first: its checkpoints (`checkpoints/step-N/adapter`) and, once finished, its final step
(`lora/`) when no checkpoint is of that step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import DataError, SettingsError
from ..files import read_json_record, write_json_atomic
from ..layout import ADAPTER_DIR, AVERAGE_RECORD, CHECKPOINT_ADAPTER, CHECKPOINTS_DIR, FINISHED, STEP_DIR
from .checkpoints import list_checkpoints
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
SAME = ("target_modules", "lora_alpha", "r", "use_dora", "use_rslora", "bias", "task_type")
"""What every averaged adapter must share."""


@dataclass(frozen=True)
class Adapter:
    """One saved adapter: its step, folder, peft config and tensors."""

    step: int
    path: Path
    config: dict[str, Any]
    tensors: dict[str, Any]


def run_adapters(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, adapter folder) of every adapter a run kept, oldest first (see the module docstring)."""
    found: dict[int, Path] = {}
    for folder in list_checkpoints(run_dir / CHECKPOINTS_DIR):
        match = STEP_DIR.match(folder.name)
        if match and (folder / CHECKPOINT_ADAPTER / WEIGHTS).is_file():
            found[int(match.group(1))] = folder / CHECKPOINT_ADAPTER
    finished = read_json_record(run_dir / FINISHED)
    if finished.get("steps") and (run_dir / ADAPTER_DIR / WEIGHTS).is_file():
        found.setdefault(int(finished["steps"]), run_dir / ADAPTER_DIR)
    return sorted(found.items())


def choose(available: Sequence[tuple[int, Path]], last: int | None = None,
           steps: Sequence[int] | None = None) -> list[tuple[int, Path]]:  # fmt: skip
    """The adapters `--last N` (the newest N) or `--steps S,S` name, oldest first; refused in one line when there
    are not enough, or a step is not kept."""
    if (last is None) == (steps is None):
        raise SettingsError("pass --last N or --steps S,S,... (one of them)")
    if last is not None:
        if last < 1:
            raise SettingsError(f"--last must be at least 1, got {last}")
        if len(available) < last:
            raise SettingsError(f"--last {last}: the run kept {len(available)} adapter"
                                f"{'' if len(available) == 1 else 's'} (steps {kept(available)})")  # fmt: skip
        return list(available[-last:])
    by_step = dict(available)
    missing = [s for s in steps or () if s not in by_step]
    if missing:
        raise SettingsError(f"--steps: no adapter of step {', '.join(map(str, missing))} is kept (steps "
                            f"{kept(available)})")  # fmt: skip
    return sorted((s, by_step[s]) for s in dict.fromkeys(steps or ()))


def kept(available: Sequence[tuple[int, Path]]) -> str:
    return ", ".join(str(s) for s, _ in available) or "none"


def read_adapter(step: int, path: Path) -> Adapter:
    from safetensors.torch import load_file

    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        tensors = load_file(str(path / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the adapter ({exc})") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise DataError(f"{path / CONFIG}: not a LoRA adapter config")
    return Adapter(step, path, config, tensors)


def lora_pairs(tensors: Mapping[str, Any], where: Path) -> dict[str, tuple[str, str]]:
    """Each adapted module's (lora_A key, lora_B key)."""
    pairs: dict[str, tuple[str, str]] = {}
    for key in tensors:
        if ".lora_A." in key:
            module = key.split(".lora_A.")[0]
            b = key.replace(".lora_A.", ".lora_B.")
            if b not in tensors:
                raise DataError(f"{where}: {key} has no lora_B")
            pairs[module] = (key, b)
    if not pairs:
        raise DataError(f"{where}: no LoRA weights")
    return pairs


def scale(config: Mapping[str, Any]) -> float:
    return float(config["lora_alpha"]) / float(config["r"])


def check_alike(adapters: Sequence[Adapter]) -> None:
    """Every adapter has the first one's rank, targets and variant, and the same modules, or a one-line refusal."""
    first = adapters[0]
    for name in ("rank_pattern", "alpha_pattern"):
        for a in adapters:
            if a.config.get(name):
                raise SettingsError(f"{a.path}: a per-module {name} cannot be averaged as one rank")
    for a in adapters[1:]:
        differ = [n for n in SAME if norm(a.config.get(n)) != norm(first.config.get(n))]
        if differ:
            what = "; ".join(f"{n} {first.config.get(n)!r} at step {first.step}, {a.config.get(n)!r} at step {a.step}"
                             for n in differ)  # fmt: skip
            raise SettingsError(f"the adapters differ ({what}): only adapters of one run's settings are averaged")
        if set(a.tensors) != set(first.tensors):
            raise SettingsError(f"{a.path}: other adapted modules than {first.path}")


def norm(value: Any) -> Any:
    return sorted(value) if isinstance(value, (list, tuple)) else value


def average(adapters: Sequence[Adapter]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The averaged adapter's config and tensors (see the module docstring); any other tensor (a trained bias) is the
    plain mean, which is exact for what enters the output linearly."""
    import torch

    if not adapters:
        raise SettingsError("nothing to average")
    check_alike(adapters)
    n, first = len(adapters), adapters[0]
    pairs = lora_pairs(first.tensors, first.path)
    out: dict[str, Any] = {}
    for a_key, b_key in pairs.values():
        dtype = first.tensors[a_key].dtype
        out[a_key] = torch.cat([a.tensors[a_key].float() for a in adapters], dim=0).to(dtype).contiguous()
        out[b_key] = torch.cat([a.tensors[b_key].float() * (scale(a.config) / n) for a in adapters],
                               dim=1).to(dtype).contiguous()  # fmt: skip
    lora_keys = {k for pair in pairs.values() for k in pair}
    for key in first.tensors:
        if key not in lora_keys:
            out[key] = (sum(a.tensors[key].float() for a in adapters) / n).to(first.tensors[key].dtype)
    rank = int(first.config["r"]) * n
    config = {**first.config, "r": rank, "lora_alpha": rank, "use_rslora": False, "lora_dropout": 0.0,
              "rank_pattern": {}, "alpha_pattern": {}}  # fmt: skip
    return config, out


def updates(config: Mapping[str, Any], tensors: Mapping[str, Any], where: Path = Path(".")) -> dict[str, Any]:
    """Each adapted module's weight update scale x B @ A (float64), what the adapter adds to the base."""
    s = scale(config)
    return {module: s * (tensors[b].double() @ tensors[a].double())
            for module, (a, b) in lora_pairs(tensors, where).items()}  # fmt: skip


def write_average(out_dir: Path, config: dict[str, Any], tensors: dict[str, Any], record: dict[str, Any]) -> None:
    """The averaged adapter in `out_dir` (adapter_config.json, adapter_model.safetensors, csas_average.json),
    written to a temporary folder first and renamed, replacing an earlier average there."""
    import shutil

    from safetensors.torch import save_file

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
    write_json_atomic(tmp / CONFIG, config)
    write_json_atomic(tmp / AVERAGE_RECORD, record)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def average_of(run_dir: Path, chosen: Sequence[tuple[int, Path]],
               final: Adapter | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The average of `chosen` (and `final`, the run's last step held in memory): its config, tensors, and the record
    written beside it."""
    adapters = [read_adapter(step, path) for step, path in chosen]
    if final is not None:
        adapters = [a for a in adapters if a.step != final.step] + [final]
    config, tensors = average(adapters)
    record = {"run_dir": str(run_dir.resolve()), "steps": [a.step for a in adapters],
              "adapters": [str(a.path) for a in adapters], "rank": config["r"]}  # fmt: skip
    return config, tensors, record


def average_run(run_dir: Path, out_dir: Path, chosen: Sequence[tuple[int, Path]],
                final: Adapter | None = None) -> dict[str, Any]:  # fmt: skip
    """Average `chosen` of `run_dir` (and `final`) into `out_dir` (average_of); the record written beside it."""
    config, tensors, record = average_of(run_dir, chosen, final)
    write_average(out_dir, config, tensors, record)
    return record


__all__ = [
    "Adapter", "average", "average_of", "average_run", "check_alike", "choose", "read_adapter",
    "run_adapters", "updates", "write_average",
]  # fmt: skip
