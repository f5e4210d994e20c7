"""Snapshots laid out as the hub publishes them, built from a tiny checkpoint: pickled `.bin` weights alone (the
OPUS-MT repositories), sharded safetensors (large models), a fast tokenizer alone or SentencePiece files alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from csas_cli.commands.tiny import TINY_ASSETS

SPM_FILES = ("sentencepiece.bpe.model", "source.spm", "target.spm", "vocab.json", "added_tokens.json")

LAYOUTS = ("bin", "sharded", "tokenizer-json", "spm")


def copy_snapshot(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def state_dict(src: Path) -> dict:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(str(src)).state_dict()


def bin_only(src: Path, dest: Path) -> Path:
    """`pytorch_model.bin` (torch.save of the state dict, tied tensors shared, as the hub's files are) and no
    safetensors."""
    import torch

    copy_snapshot(src, dest)
    (dest / "model.safetensors").unlink()
    torch.save(state_dict(src), dest / "pytorch_model.bin")
    return dest


def sharded_bin(src: Path, dest: Path, shards: int = 3) -> Path:
    """`pytorch_model.bin.index.json` and its shards."""
    import torch

    copy_snapshot(src, dest)
    (dest / "model.safetensors").unlink()
    weights = state_dict(src)
    names = sorted(weights)
    weight_map = {}
    for i in range(shards):
        shard = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {k: weights[k] for k in names[i::shards]}
        torch.save(part, dest / shard)
        weight_map.update({k: shard for k in part})
    (dest / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return dest


def sharded(src: Path, dest: Path) -> Path:
    """`model.safetensors.index.json` and several `model-0000N-of-0000M.safetensors` shards."""
    from transformers import AutoModelForSeq2SeqLM

    copy_snapshot(src, dest)
    (dest / "model.safetensors").unlink()
    AutoModelForSeq2SeqLM.from_pretrained(str(src)).save_pretrained(str(dest), max_shard_size="1MB")
    assert (dest / "model.safetensors.index.json").is_file() and not (dest / "model.safetensors").exists()
    return dest


def tokenizer_json_only(src: Path, dest: Path) -> Path:
    """A fast tokenizer alone: tokenizer.json and tokenizer_config.json, no SentencePiece files. mBART-50's tiny
    snapshot has one; for Marian and M2M100, whose tokenizer classes transformers 5 cannot convert, a word-level
    tokenizer.json over the checkpoint's vocab.json stands in (what a hand-made conversion might leave)."""
    copy_snapshot(src, dest)
    if not (dest / "tokenizer.json").is_file():
        from tokenizers import Tokenizer, models

        vocab = json.loads((dest / "vocab.json").read_text(encoding="utf-8"))
        Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>")).save(str(dest / "tokenizer.json"))
    for name in SPM_FILES:
        (dest / name).unlink(missing_ok=True)
    return dest


def spm_only(src: Path, dest: Path) -> Path:
    """SentencePiece files alone, no tokenizer.json: mBART-50's sentencepiece.bpe.model (what the hub repository
    also ships), Marian's and M2M100's files as they are."""
    copy_snapshot(src, dest)
    if (dest / "tokenizer.json").is_file():
        (dest / "tokenizer.json").unlink()
        shutil.copy(TINY_ASSETS / "spm.model", dest / "sentencepiece.bpe.model")
    assert not (dest / "tokenizer.json").exists()
    return dest


BUILDERS = {"bin": bin_only, "sharded": sharded, "tokenizer-json": tokenizer_json_only, "spm": spm_only}


def build_layout(src: Path, dest: Path, layout: str) -> Path:
    return BUILDERS[layout](src, dest)


class Payload:
    """Unpickling this calls os.system: what a malicious `.bin` does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def malicious_bin(src: Path, dest: Path, marker: Path) -> Path:
    """A `.bin` whose unpickling would create `marker` (the weights themselves are real)."""
    import torch

    copy_snapshot(src, dest)
    (dest / "model.safetensors").unlink()
    weights = state_dict(src)
    weights["payload"] = Payload(marker)
    torch.save(weights, dest / "pytorch_model.bin")
    return dest


def hub_cache(root: Path, repo: str, revisions: dict[str, Path]) -> Path:
    """A hub cache as `huggingface-cli download` leaves it: one snapshot folder per commit, refs naming them."""
    import shutil

    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    for i, (ref, snapshot) in enumerate(revisions.items(), start=1):
        commit = f"{i}" * 40
        shutil.copytree(snapshot, folder / "snapshots" / commit)
        (folder / "refs" / ref).write_text(commit)
    return root
