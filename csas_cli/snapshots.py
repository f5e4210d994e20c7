"""Snapshots: what a base's --model-id names, checked before anything loads it: a hub id or a local snapshot (and
--revision, which applies to hub ids only), the family its config declares, its weight files and the safety of their
pickles, its tokenizer files, and the hub commit a revision resolved to.

A local snapshot is laid out as the hub lays it out: `model.safetensors`, sharded safetensors
(`model.safetensors.index.json`), `pytorch_model.bin` or a sharded `.bin`; the tokenizer files its family's tokenizer
class reads (registry.Family.tokenizer_files). Pickled `.bin` weights (what the OPUS-MT repositories publish) must be
readable by torch's weights-only unpickler alone: a `.bin` whose unpickling would call code is refused before
transformers sees it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError, SettingsError, one_line
from .registry import Family


def check_model_family(config: Any, family: Family, model_id: str, which: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type != family.model_type:
        raise ModelError(
            f"--model-id {model_id}: a {model_type!r} checkpoint, but --which {which} needs a {family.model_type!r} one"
        )


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(model_id: str) -> bool:
    """Whether `model_id` names a folder on this machine (else it is a hub id)."""
    return Path(model_id).expanduser().exists()


def check_local_snapshot(model_id: str) -> None:
    """Explain the ways a local snapshot commonly fails, instead of the hub client's messages."""
    path = Path(model_id).expanduser()
    if not path.exists():
        if not HUB_ID.match(model_id):
            raise ModelError(f"--model-id {model_id}: no such directory (and not a hub id like facebook/m2m100_418M)")
        return
    if not path.is_dir():
        raise ModelError(f"--model-id {model_id}: not a directory")
    if not (path / "config.json").is_file():
        raise ModelError(f"--model-id {model_id}: no config.json; point it at a transformers model directory")


def check_revision(model_id: str, revision: str | None) -> None:
    """--revision picks a version of a hub repository; a local snapshot is one version already."""
    if revision is not None and is_local(model_id):
        raise SettingsError(
            f"--revision {revision}: --model-id {model_id} is a local snapshot; --revision applies to hub ids only"
        )


# -- weights -------------------------------------------------------------------------------------------------------

WEIGHT_LAYOUTS = (
    ("model.safetensors", "safetensors"),
    ("model.safetensors.index.json", "safetensors-sharded"),
    ("pytorch_model.bin", "pytorch-bin"),
    ("pytorch_model.bin.index.json", "pytorch-bin-sharded"),
)
"""The weight files transformers reads, in the order it prefers them, and the format name run.json records."""


@dataclass(frozen=True)
class Weights:
    """The weight files a snapshot holds, in the format transformers reads from it."""

    format: str
    """safetensors, safetensors-sharded, pytorch-bin or pytorch-bin-sharded."""
    files: tuple[str, ...]
    """The files holding tensors (the shards of a sharded layout), relative to the snapshot."""

    @property
    def pickled(self) -> bool:
        return self.format.startswith("pytorch-bin")

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "files": list(self.files)}

    def notice(self, model_id: str) -> str | None:
        """The one line a pickled base gets: how it was read."""
        if not self.pickled:
            return None
        names = self.files[0] if len(self.files) == 1 else f"{len(self.files)} .bin shards"
        return (
            f"{model_id}: pickled weights ({names}), read with torch's weights-only unpickler: tensors only, no code "
            "is run"
        )


def shard_names(index: Path, model_id: str) -> tuple[str, ...]:
    """The files a sharded checkpoint's index names."""
    import json

    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"--model-id {model_id}: cannot read {index.name} ({one_line(exc)})") from None
    if not names or not all(isinstance(n, str) and "/" not in n and "\\" not in n for n in names):
        raise ModelError(f"--model-id {model_id}: {index.name} names no shard files in its folder")
    return tuple(names)


def local_weights(model_id: str) -> Weights:
    """The weights of a local snapshot: the first layout transformers would read, with every file present.

    A snapshot without PyTorch weights is refused, naming what it holds instead (TensorFlow, Flax or Rust files).
    """
    path = Path(model_id).expanduser()
    for name, fmt in WEIGHT_LAYOUTS:
        if (path / name).is_file():
            files = shard_names(path / name, model_id) if name.endswith(".index.json") else (name,)
            absent = [f for f in files if not (path / f).is_file()]
            if absent:
                raise ModelError(f"--model-id {model_id}: {name} names {absent[0]}, which is not there; is the "
                                 "download complete?")  # fmt: skip
            return Weights(fmt, files)
    others = sorted(p.name for p in path.iterdir() if p.suffix in (".h5", ".msgpack", ".ot", ".onnx"))
    found = f" (it holds {', '.join(others)}, which transformers 5 no longer reads)" if others else ""
    raise ModelError(
        f"--model-id {model_id}: no PyTorch weights: model.safetensors, model.safetensors.index.json, "
        f"pytorch_model.bin or pytorch_model.bin.index.json{found}"
    )


UNSAFE_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.<>]+)", re.IGNORECASE)
"""The name torch's weights-only unpickler refused (its messages differ between torch releases)."""


def refused_pickle(model_id: str, subject: str, exc: BaseException) -> ModelError:
    """The one line for a pickle that holds more than tensors, naming what it refers to when torch said."""
    found = UNSAFE_GLOBAL.search(str(exc))
    refers = f" (it refers to {found.group(1)})" if found else ""
    return ModelError(
        f"--model-id {model_id}: {subject} more than tensors{refers}; unpickling could run code, so csas does not "
        "load it. Use a safetensors copy of the model"
    )


def check_pickle(path: Path, model_id: str) -> None:
    """Refuse a `.bin` that torch's weights-only unpickler cannot read: one whose unpickling would import or call
    something other than tensors and plain containers. Only the pickle is read (tensors land on the meta device), so
    the check costs no memory."""
    import torch

    try:
        torch.load(path, map_location="meta", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refused_pickle(model_id, f"{path.name} holds", exc) from None
    except Exception as exc:  # noqa: BLE001 - truncated archives, not a torch file at all, ...
        raise ModelError(f"--model-id {model_id}: cannot read {path.name} ({one_line(exc)})") from None


def check_weights(model_id: str) -> Weights | None:
    """A local snapshot's weights, its pickles checked; None for a hub id (transformers picks its files, reading a
    `.bin` weights-only itself)."""
    if not is_local(model_id):
        return None
    weights = local_weights(model_id)
    if weights.pickled:
        for name in weights.files:
            check_pickle(Path(model_id).expanduser() / name, model_id)
    return weights


def hub_weights(model_id: str, revision: str | None) -> Weights | None:
    """Which weight files transformers took for a hub id, from the local cache (after loading); None if unknown."""
    from huggingface_hub import try_to_load_from_cache

    for name, fmt in WEIGHT_LAYOUTS:
        try:
            found = try_to_load_from_cache(model_id, name, revision=revision)
        except Exception:  # noqa: BLE001 - an id the cache layout cannot hold: nothing to report
            return None
        if isinstance(found, str):
            files = shard_names(Path(found), model_id) if name.endswith(".index.json") else (name,)
            return Weights(fmt, files)
    return None


def snapshot_commit(model_id: str, revision: str | None) -> str | None:
    """The commit a hub id's revision (None: the default branch) resolved to, read from the hub cache once its config
    has loaded: the snapshot folder's name. None for a local snapshot, or when the cache cannot tell."""
    if is_local(model_id):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - an id the cache layout cannot hold: nothing to report
        return None
    if not isinstance(found, str):
        return None
    folder = Path(found).parent
    return folder.name if folder.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", folder.name) else None


def check_tokenizer_files(model_id: str, family: Family) -> None:
    """A local snapshot must hold the files its family's tokenizer class reads: transformers 5 reads Marian's and
    M2M100's tokenizers from their SentencePiece files only, mBART-50's from tokenizer.json or its SentencePiece
    model."""
    path = Path(model_id).expanduser()
    if not path.is_dir() or any(all((path / f).is_file() for f in files) for files in family.tokenizer_files):
        return
    wanted = " or ".join(" + ".join(files) for files in family.tokenizer_files)
    known = dict.fromkeys(("tokenizer.json", *(f for files in family.tokenizer_files for f in files)))
    present = [name for name in known if (path / name).is_file()]
    holds = f"; it holds {', '.join(present)} only" if present else ""
    raise ModelError(f"--model-id {model_id}: no {family.tokenizer_class} files ({wanted}){holds}")


def check_snapshot_files(model_id: str, family: Family, which: str) -> None:
    """What can be checked of a local snapshot without loading it (what --dry-run checks): a config of the key's
    family, PyTorch weights that need no full unpickle, the family's tokenizer files. A hub id is checked when it
    loads."""
    import json
    from types import SimpleNamespace

    check_local_snapshot(model_id)
    if not is_local(model_id):
        return
    try:
        model_type = json.loads((Path(model_id).expanduser() / "config.json").read_text(encoding="utf-8"))["model_type"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"--model-id {model_id}: cannot read config.json's model_type ({one_line(exc)})") from None
    check_model_family(SimpleNamespace(model_type=model_type), family, model_id, which)
    check_weights(model_id)
    check_tokenizer_files(model_id, family)
