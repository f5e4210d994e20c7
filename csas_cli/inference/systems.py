"""The models a comparison translates (`csas compare`): each one named for the tables, and the base of each.

MODEL paths are resolved as inference/source.py resolves `--model` (a run, `RUN/best`, a checkpoint, a merged or
exported model); a finetune-all or sweep output root gives its finished runs, and its unfinished ones are left out
by name. A model's name is its path under the folder all of them share, made unique; its base is the base model
`--compare-base` would score, one system for the models that share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import CsasError, SettingsError
from ..languages import Direction
from ..layout import RUN_JSON, find_runs, run_names, run_state
from ..registry import REGISTRY, other_language
from .source import BASE, EXPORT_RECORD, MERGE_RECORD, ModelSource, checkpoint_adapter, resolve_source


@dataclass
class System:
    """One model in the comparison."""

    name: str
    source: ModelSource
    base: str | None = None
    """The name of this model's base system (None for a base, or a model that records no base)."""

    @property
    def directions(self) -> list[Direction]:
        return [Direction(s, other_language(s)) for s in REGISTRY[self.source.which].source_langs]


@dataclass
class Systems:
    """The models to compare, their bases, and what was left out."""

    models: list[System] = field(default_factory=list)
    bases: dict[str, System] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    no_base: list[str] = field(default_factory=list)
    """Models whose base is not known (a merged model without its record): not compared with a base."""


def model_dirs(paths: Sequence[Path], left_out: list[str]) -> list[Path]:
    """The model directories PATHs name: each model itself, or every finished run under an output root (the
    unfinished ones are added to `left_out`)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise SettingsError(f"MODEL {path}: no such directory")
        if is_model(path):
            found.append(path)
            continue
        models = sorted(p for p in path.iterdir()
                        if p.is_dir() and ((p / MERGE_RECORD).is_file() or (p / EXPORT_RECORD).is_file()))
        if models and not any(path.glob(f"*/{RUN_JSON}")):  # merge-all's or a folder of exports' output root
            found.extend(models)
            continue
        for run in find_runs([path]):
            if run_state(run) == "finished":
                found.append(run)
            else:
                left_out.append(f"{run} (unfinished)")
    return list(dict.fromkeys(found))


def is_model(path: Path) -> bool:
    """A run, a run's adapter folder or checkpoint, a merged or exported model: one model, not a root of them."""
    return (path / RUN_JSON).is_file() or (path / "config.json").is_file() or \
        (path / "adapter_config.json").is_file() or checkpoint_adapter(path) is not None  # fmt: skip


def system_names(dirs: Sequence[Path]) -> list[str]:
    """Each model's name in the tables: its path under the folder all of them share (a run's adapter folder or
    checkpoint with its run's name), made unique."""
    names = run_names(dirs) if dirs else []
    out: list[str] = []
    for path, name in zip(dirs, names):
        if "/" not in name and (path.name in ("best", "lora") or checkpoint_adapter(path) is not None):
            run = path.parent if path.name in ("best", "lora") else path.parent.parent
            name = f"{run.name}/{name}"
        unique, n = name, 2
        while unique in out:
            unique, n = f"{name} ({n})", n + 1
        out.append(unique)
    return out


def gather_systems(paths: Sequence[Path], which: str | None = None, model_id: str | None = None,
                   revision: str | None = None, model_root: Path | None = None) -> Systems:  # fmt: skip
    """Resolve the models (reading their small JSON records only) and the base of each. `model_root`: a run's or
    merged model's base is MODEL_ROOT/KEY where that folder exists (a cluster's copy of the bases)."""
    systems = Systems()
    dirs = model_dirs(paths, systems.left_out)
    for path, name in zip(dirs, system_names(dirs)):
        source = resolve_source(path, None, None, flag="MODEL")
        if model_root is not None and (Path(model_root) / source.which).is_dir() and source.kind != BASE:
            source = resolve_source(path, None, str(Path(model_root) / source.which), flag="MODEL")
        systems.models.append(System(name, source))
    if which is not None:
        systems.models.append(System(f"base {which}", resolve_source(None, which, model_id, revision=revision)))
    elif model_id is not None or revision is not None:
        raise SettingsError("--model-id and --revision name a base model to compare: pass --which KEY with them "
                            "(--model-root DIR puts the runs on DIR/KEY)")  # fmt: skip
    if not systems.models:
        left = f" (left out: {', '.join(systems.left_out)})" if systems.left_out else ""
        raise SettingsError(f"nothing to compare{left}: pass MODEL... (runs, merged or exported models, output "
                            "roots) or --which KEY")  # fmt: skip
    given = [m for m in systems.models if m.source.kind == BASE]
    for system in systems.models:
        if system.source.kind == BASE:
            continue
        try:
            base = system.source.base()
        except CsasError:
            systems.no_base.append(system.name)
            continue
        same = [b for b in (*given, *systems.bases.values()) if (b.source.which, b.source.model_id,
                b.source.base_revision) == (base.which, base.model_id, base.base_revision)]  # fmt: skip
        if same:  # a base given with --which, or one another model shares
            system.base = same[0].name
            continue
        name = f"base {base.which}"
        if name in systems.bases or any(m.name == name for m in systems.models):
            name = f"base {base.which} ({base.model_id})"
        systems.bases[name] = System(name, base)
        system.base = name
    return systems


__all__ = ["System", "Systems", "gather_systems", "model_dirs", "system_names"]
