"""Translations kept on disk with what produced them, so that a comparison run again translates only what changed.

A system's translations of one test set in one direction are a text file (one line per scored row, in the test
set's order) beside a JSON record of what produced them: the model's fingerprint, the sources translated (their
sha256, as read: --locales or a glossary's annotation change them), the direction and row count, and the decoding
settings and device; the file's name carries the decoding, so translations of other settings are kept side by side.
`load` gives the lines back only when the record says the same as the one asked for (`find` looks under every
system's name), so a retrained adapter, an edited test file or another beam width translates again, and adding a
model to a comparison leaves the other models' files as they are.

A model's fingerprint is cheap to take: a run's adapter file by its sha256 with its base and revision; a merged,
exported or local base model by its weight files' names, sizes and modification times with its csas record; a hub
base by its id and revision.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..files import file_sha256, now_iso, write_json_atomic, write_text_atomic
from .source import BASE, EXPORT_RECORD, MERGE_RECORD, RUN, ModelSource

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.json", "*.model", "*.spm", "vocab*")
"""What a model directory's fingerprint covers: weights, configs and tokenizer files at its top level."""


def model_fingerprint(source: ModelSource) -> dict[str, Any]:
    """What identifies `source`'s translations (see the module docstring)."""
    print_: dict[str, Any] = {"kind": source.kind, "which": source.which}
    if source.kind == RUN:
        assert source.adapter is not None
        weights = source.adapter / "adapter_model.safetensors"
        print_["adapter_sha256"] = file_sha256(weights) if weights.is_file() else None
        print_.update(base=source.model_id, revision=source.base_revision)
        return print_
    directory = Path(source.model_id)
    if directory.is_dir():
        print_["files"] = directory_files(directory)
        for record in (MERGE_RECORD, EXPORT_RECORD):
            if (directory / record).is_file():
                print_[record] = (directory / record).read_text(encoding="utf-8", errors="replace")
    else:  # a hub id
        print_.update(model_id=source.model_id, revision=source.base_revision if source.kind == BASE else None)
    return print_


def directory_files(directory: Path) -> list[list[Any]]:
    """[name, size, mtime_ns] of a model directory's weight, config and tokenizer files."""
    files = sorted({p for pattern in WEIGHT_FILES for p in directory.glob(pattern) if p.is_file()})
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


@dataclass(frozen=True)
class Produced:
    """What produced a file of translations; two records equal mean the same translations."""

    model: dict[str, Any]
    sources_sha256: str
    """The sources translated, as read (--locales and an annotation with the glossary change them)."""
    direction: str
    rows: int
    decoding: dict[str, Any]
    """num_beams, max_new_tokens and the device (the batch size changes no translation)."""


def slug(name: str) -> str:
    """A system's or test set's name as one safe folder or file name part."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "_"


def sources_sha256(sources: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sources).encode("utf-8")).hexdigest()


def paths_for(root: Path, system: str, test_set: str, direction: str, tag: str = "") -> tuple[Path, Path]:
    """ROOT/SYSTEM/TEST.SRC-TGT[.TAG].txt and the .json beside it; `tag` names the decoding, so that translations
    of other settings are kept side by side."""
    folder = root / slug(system)
    stem = f"{slug(test_set)}.{direction.replace('->', '-')}" + (f".{slug(tag)}" if tag else "")
    return folder / f"{stem}.txt", folder / f"{stem}.json"


def load(text_path: Path, record_path: Path, produced: Produced) -> list[str] | None:
    """The stored translations, when the record beside them is `produced` and they have a line per row."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        lines = text_path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("produced") != json.loads(json.dumps(asdict(produced))):
        return None
    if lines and lines[-1] == "":
        lines.pop()
    return lines if len(lines) == produced.rows else None


def find(root: Path, test_set: str, direction: str, produced: Produced, tag: str = "") -> list[str] | None:
    """Translations `produced` describes, kept under any system's name in `root` (a model renamed, or given twice,
    is not translated again)."""
    own, _ = paths_for(root, "_", test_set, direction, tag)
    for record_path in sorted(root.glob(f"*/{own.stem}.json")):
        lines = load(record_path.with_suffix(".txt"), record_path, produced)
        if lines is not None:
            return lines
    return None


def store(text_path: Path, record_path: Path, produced: Produced, lines: Sequence[str], about: dict[str, Any]) -> None:
    """Write the translations, then their record (so a record always describes complete translations); `about`
    adds what a reader wants beside the key (the model's label, the test file's path)."""
    text_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)
    write_text_atomic(text_path, "".join(line + "\n" for line in lines))
    write_json_atomic(record_path, {**about, "produced": asdict(produced), "written": now_iso()})


__all__ = ["Produced", "find", "load", "model_fingerprint", "paths_for", "slug", "sources_sha256", "store"]
