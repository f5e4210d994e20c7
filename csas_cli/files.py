"""Small file helpers every stage uses: atomic writes, tolerant JSON records, hashes, timestamps, versions."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .errors import OutputError


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` as it is (no newline translation) so that a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` so that a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def follow_umask(directory: Path | str, pattern: str = "*.safetensors") -> None:
    """Give the files `pattern` matches in `directory` the mode the process umask asks for (0644 under the usual 022),
    as every other file csas writes has: the safetensors library creates its files 0600, which leaves a model or an
    adapter in a shared cluster folder unreadable to the group."""
    mask = os.umask(0)
    os.umask(mask)
    for path in Path(directory).glob(pattern):
        if path.is_file():
            os.chmod(path, 0o666 & ~mask)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that a reader never sees a half-written file."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json_record(path: Path) -> dict[str, Any]:
    """A JSON object written by csas (run.json, finished.json, csas_merge.json), or {} when it is missing, unreadable
    or not an object: for reports that go on without it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("csas", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "sentencepiece", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_output_file(path: Path | None, overwrite: bool, flag: str = "--output", create_parents: bool = False) -> None:
    """Refuse, before any model loads, to replace a file the user did not ask to replace. `create_parents`: a missing
    folder is fine where the writer creates it (the nearest existing one must be writable)."""
    if path is None:
        return
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{flag} {path}: exists; pass --overwrite to replace it")
    parent = path.absolute().parent
    while create_parents and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: {parent} is not writable")


def write_lines(lines: Sequence[str], path: Path | None, stdout: Any = None, flag: str = "--output") -> None:
    """Exactly one line per entry, to `path` (written under a temporary name, then renamed) or stdout."""
    text = "".join(line + "\n" for line in lines)
    if path is None:
        (stdout or sys.stdout).write(text)
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{flag} {path}: cannot be written ({exc.strerror or exc})") from None
