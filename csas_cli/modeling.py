"""Models: load the config, tokenizer and weights of a base (training, inference, merge and bench alike), choose
the precision, quantize for QLoRA and wrap the base with LoRA.

Loading rules that differ from finetune.py on purpose: the model is loaded once; remote code is never run; pickled
`.bin` weights (what the OPUS-MT repositories publish) are read with torch's weights-only unpickler alone, and a `.bin`
that needs more (one whose unpickling would call code) is refused before transformers sees it; frozen weights are fp32
unless --bf16/--fp16 ask for less, and LoRA weights are always fp32 (fp16 trainable weights cannot be unscaled by a
loss scaler).

A base is a hub id (with an optional --revision: a tag, branch or commit) or a local snapshot laid out as the hub lays
it out: `model.safetensors`, sharded safetensors (`model.safetensors.index.json`), `pytorch_model.bin` or a sharded
`.bin`; the tokenizer files its family's tokenizer class reads (registry.Family.tokenizer_files).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HardwareError, ModelError, SettingsError
from .hub import check_hub
from .registry import Family

if TYPE_CHECKING:
    from .settings import LoraSettings

DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Precision names (--bf16, --fp16) -> torch dtype names (merge's --dtype takes the latter)."""
SAVE_DTYPE = "float32"
"""What `csas merge` saves unless --dtype says otherwise: exact, since a LoRA update is small next to the weight it is
added to and bfloat16 rounds part of it away."""


def torch_dtype(name: str) -> Any:
    """The torch dtype of a precision (fp32, bf16, fp16) or dtype name (float32, bfloat16, float16)."""
    import torch

    return getattr(torch, DTYPE_NAMES.get(name, name))


def quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, deprecation notes raised inside peft) out of csas's console."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # bitsandbytes tries to fetch an optional CPU kernel from the hub at import and logs its failure offline.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*sacremoses.*")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", message=r".*use_cache=True.*")


@dataclass(frozen=True)
class Precision:
    """How weights are stored and computed for one run."""

    name: str
    """fp32, bf16 or fp16."""
    device_type: str
    """cuda or cpu."""

    @property
    def weight_dtype(self) -> Any:
        return torch_dtype(self.name)

    @property
    def autocast(self) -> bool:
        return self.name != "fp32"

    @property
    def needs_loss_scaler(self) -> bool:
        return self.name == "fp16"


def check_precision(name: str, device: Any) -> Precision:
    """Fail early, naming the flag, when the hardware cannot run the requested precision."""
    import torch

    if device.type == "cuda":
        if name == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            major, minor = torch.cuda.get_device_capability(device)
            raise HardwareError(
                f"--bf16: {torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no native "
                "bfloat16; use --fp16 instead"
            )
    elif name == "fp16":
        raise HardwareError("--fp16: float16 training needs a CUDA GPU; on the CPU use --bf16 or neither flag")
    return Precision(name, device.type)


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


def from_pretrained(model_id: str, config: Any, *, revision: str | None, **kwargs: Any) -> tuple[Any, Weights | None]:
    """The base's weights as transformers loads them, checked: a local snapshot's files and pickles first, the
    loaded weights against the model after. Remote code is never run; a `.bin` is read weights-only."""
    from transformers import AutoModelForSeq2SeqLM

    # Given a hub id with .bin weights only, transformers would start a thread that asks the hub to convert them to
    # safetensors (a pull request on the model's repository): not csas's business, and a network call per load.
    os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
    check_hub(model_id, revision)
    weights = check_weights(model_id)
    try:
        model, info = AutoModelForSeq2SeqLM.from_pretrained(
            model_id, config=config, revision=revision, trust_remote_code=False, output_loading_info=True, **kwargs
        )
    except Exception as exc:  # noqa: BLE001 - truncated files, bad device maps, quantization errors, ...
        if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
            # A hub id's .bin, which transformers itself reads weights-only.
            raise refused_pickle(model_id, "its .bin weights hold", exc) from None
        raise load_failure(model_id, "the model", exc, revision) from None
    check_loading_info(info, model_id)
    return model, weights if weights is not None else hub_weights(model_id, revision)


def load_config(model_id: str, family: Family, which: str, revision: str | None = None) -> Any:
    """The checkpoint's config, checked against the registry key's family before anything heavier is loaded."""
    from transformers import AutoConfig

    check_local_snapshot(model_id)
    check_revision(model_id, revision)
    check_hub(model_id, revision)
    try:
        config = AutoConfig.from_pretrained(model_id, revision=revision, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - the hub client and config classes raise many kinds
        raise load_failure(model_id, "its config", exc, revision) from None
    check_model_family(config, family, model_id, which)
    return config


def check_lengths(config: Any, family: Family, max_source_len: int, max_target_len: int) -> None:
    """Marian and mBART-50 have a fixed number of positions; longer inputs would fail in the middle of training."""
    limit = getattr(config, "max_position_embeddings", None)
    if not family.fixed_positions or limit is None:
        return
    for flag, value in (("--max-source-len", max_source_len), ("--max-target-len", max_target_len)):
        if value > limit:
            raise SettingsError(f"{flag} {value}: this model has {limit} positions; use at most {limit}")


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


def load_tokenizer(model_id: str, family: Family | None, revision: str | None = None) -> Any:
    """The checkpoint's own tokenizer class (MarianTokenizer, M2M100Tokenizer, MBart50Tokenizer): another class, a
    generic one in particular, would not add the family's language codes. `family` None: a benchmark's stand-in
    tokenizer, of whatever class."""
    from transformers import AutoTokenizer

    if family is not None:
        check_tokenizer_files(model_id, family)
    check_hub(model_id, revision)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - missing or broken tokenizer files raise TypeError, OSError, ...
        raise load_failure(model_id, "its tokenizer", exc, revision) from None
    name = type(tokenizer).__name__
    if family is not None and name not in (family.tokenizer_class, family.tokenizer_class + "Fast"):
        raise ModelError(
            f"--model-id {model_id}: its tokenizer loads as {name}, not {family.tokenizer_class}; csas needs the "
            "family's own tokenizer (it adds the language codes and reads the target vocabulary)"
        )
    return tokenizer


OFFLINE = re.compile(r"couldn't connect to|offline mode|OfflineModeIsEnabled|LocalEntryNotFound", re.IGNORECASE)


def load_failure(model_id: str, what: str, exc: BaseException, revision: str | None = None) -> ModelError:
    """Why `what` of `model_id` did not load, in one line. A hub id that is neither in this machine's cache nor
    reachable (a compute node without internet) gets what to do instead of the hub client's paragraph."""
    chain = f"{type(exc).__name__}: {exc}"
    if not is_local(model_id) and OFFLINE.search(chain):
        flag, where = ("", "") if revision is None else (f" --revision {revision}", " at that revision")
        return ModelError(
            f"--model-id {model_id}: cannot load {what}: it is not in this machine's hub cache{where} and the hub "
            f"cannot be reached; download it where there is internet (`hf download {model_id}{flag}`) "
            "or pass a local snapshot"
        )
    return ModelError(f"--model-id {model_id}: cannot load {what} ({one_line(exc)})")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def load_model(
    model_id: str, config: Any, precision: Precision, device: Any, *, device_map: Any, qlora: bool,
    revision: str | None = None,
) -> tuple[Any, Weights | None]:
    """The base model, once, on its device(s): quantized to 4-bit NF4 for QLoRA, else in the weight dtype; and the
    weight files it came from (None when a hub cache cannot tell).

    `device_map` is the resolver's (device_map.py); None means "no accelerate dispatch": the whole model goes to
    `device`, this process's device.
    """
    from transformers import BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": precision.weight_dtype}
    if qlora:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=precision.weight_dtype,
        )
        # 4-bit weights are quantized as they are placed, so they must be placed at load time.
        if device_map is None:
            device_map = {"": device.index if device.type == "cuda" else "cpu"}
    if device_map is not None:
        kwargs["device_map"] = device_map
    model, weights = from_pretrained(model_id, config, revision=revision, **kwargs)
    if device_map is None:
        model.to(device)
    model.config.use_cache = False
    if qlora:
        keep_4bit_layers_trainable(model)
        from peft import prepare_model_for_kbit_training

        # Checkpointing must be on before LoRA wraps the model, and non-reentrant: the reentrant form sees no input
        # that requires grad on a frozen base and drops the adapters' gradients.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        restore_frozen_dtype(model, precision)
    return model, weights


# Tied to the shared embedding, or computed rather than stored: legitimately absent from a checkpoint.
NOT_STORED = re.compile(r"(^|\.)(lm_head\.weight|embed_tokens\.weight|embed_positions\.\w+|final_logits_bias)$")


def check_loading_info(info: dict[str, Any], model_id: str) -> None:
    """Refuse a checkpoint whose weights do not cover the model: transformers would fill the gap with noise."""
    missing = sorted(k for k in info.get("missing_keys", ()) if not NOT_STORED.search(k))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    for what, keys in (("lacks", missing), ("has wrongly shaped", mismatched)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            raise ModelError(f"--model-id {model_id}: the checkpoint {what} weights ({shown}); is it complete?")


def restore_frozen_dtype(model: Any, precision: Precision) -> None:
    """Undo prepare_model_for_kbit_training's fp32 upcast of frozen weights, keeping only layer norms in fp32.

    Under --bf16/--fp16 the upcast would hold mBART-50's 250k-row embedding in fp32 (about 1 GB) for no gain.
    """
    import torch

    if precision.weight_dtype == torch.float32:
        return
    for name, param in model.named_parameters():
        if not param.requires_grad and param.dtype == torch.float32 and "norm" not in name:
            param.data = param.data.to(precision.weight_dtype)


def keep_4bit_layers_trainable(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during evaluation.

    On CPUs with AVX512-BF16, a Linear4bit called in eval mode without grad converts its weight to an inference-only
    layout and never converts it back when training resumes, so the next training step fails (bitsandbytes 0.50).
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def add_lora(model: Any, lora: "LoraSettings", model_id: str) -> Any:
    """Wrap the base with LoRA adapters on `lora`'s target modules; adapter weights in fp32."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in lora.lora_targets if t not in names]
    if missing:
        raise ModelError(
            f"--lora-targets: {', '.join(missing)} not found in {model_id} "
            f"(its layers include q_proj, k_proj, v_proj, out_proj, fc1, fc2)"
        )
    config = LoraConfig(
        r=lora.lora_r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=list(lora.lora_targets),
        bias="none",
        task_type=TaskType.SEQ_2_SEQ_LM,
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:  # peft refuses modules it cannot adapt (layer norms, embeddings by suffix, ...)
        raise ModelError(f"--lora-targets: {one_line(exc)}") from None
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(torch.float32)
    return model


def input_device(model: Any) -> Any:
    """Where batches must go: the device of the input embeddings (the first shard under a device map)."""
    return model.get_input_embeddings().weight.device


def attention_kernels(device: Any, cudnn: bool = False) -> Any:
    """The attention kernels a run computes with, as a context: on CUDA, scaled-dot-product attention may use the
    flash, memory-efficient or math kernels, and not cuDNN's unless `cudnn` (a benchmark variant).

    cuDNN's attention builds an execution plan on the CPU for every new (batch, length) shape; with length-varying
    batches that dominated the CPU time of a training step (measured in docs/performance.md). On the CPU there is no
    cuDNN kernel to leave out, and nothing changes.
    """
    from contextlib import nullcontext

    if device.type != "cuda" or cudnn:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def save_model_quietly(model: Any, out_dir: Path | str) -> None:
    """save_pretrained in safetensors, without transformers' "Writing model shards" progress bar."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out_dir, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    from .files import follow_umask

    follow_umask(out_dir)
