"""Models: load the config, tokenizer and weights of a base (training, inference, merge and bench alike), choose
the precision, quantize for QLoRA, wrap the base with LoRA, pick the attention kernels, and save a model.

Loading rules that differ from finetune.py on purpose: the model is loaded once; remote code is never run; pickled
`.bin` weights (what the OPUS-MT repositories publish) are read with torch's weights-only unpickler alone, and a `.bin`
that needs more (one whose unpickling would call code) is refused before transformers sees it; frozen weights are fp32
unless --bf16/--fp16 ask for less, and LoRA weights are always fp32 (fp16 trainable weights cannot be unscaled by a
loss scaler). What a model id names, and whether its files may be read, is checked first by snapshots.py.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HardwareError, ModelError, SettingsError, one_line
from .hub import check_hub
from .registry import Family
from .snapshots import (
    Weights,
    check_local_snapshot,
    check_model_family,
    check_revision,
    check_tokenizer_files,
    check_weights,
    hub_weights,
    is_local,
    refused_pickle,
)

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
    # The kernels library (transformers' hub kernels) warns on every load, offline, that it skips a check of a
    # kernel csas does not ask for: not csas's news, and nothing the user can act on.
    logging.getLogger("kernels").setLevel(logging.ERROR)
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
