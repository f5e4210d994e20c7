"""Model stage: snapshot and family checks, precision rules, loading once with QLoRA or LoRA, adapters in fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from csas_cli.errors import HardwareError, ModelError
from csas_cli.modeling import (
    Precision,
    add_lora,
    check_precision,
    load_config,
    load_model,
    load_tokenizer,
)
from csas_cli.registry import MARIAN, REGISTRY
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.snapshots import check_local_snapshot


def plan_for(key: str, model_dir: Path, **overrides):
    return build_plan(FinetuneSettings.create(which=key, model_id=str(model_dir), **overrides))


def load_base(plan, config, precision):
    """load_model as the recipe calls it: the plan's base, device map and quantization, on the CPU."""
    model, _ = load_model(
        plan.model_id, config, precision, torch.device("cpu"), device_map=plan.resolved.device_map,
        qlora=plan.lora.qlora,
    )  # fmt: skip
    return model


def with_lora(model, plan):
    return add_lora(model, plan.lora, plan.model_id)


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(ModelError, match="no such directory"):
        check_local_snapshot(str(tmp_path / "absent"))


def test_hub_ids_pass_the_local_check():
    check_local_snapshot("Helsinki-NLP/opus-mt-tc-big-en-fr")
    check_local_snapshot("facebook/m2m100_418M")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        check_local_snapshot(str(tmp_path))


def test_checkpoint_of_another_family_is_refused(tiny_models):
    with pytest.raises(ModelError, match=r"'m2m_100' checkpoint.*needs a 'marian'"):
        load_config(str(tiny_models["m2m100_418m"]), MARIAN, "opus_mt_en_fr")


@pytest.mark.parametrize("key", list(REGISTRY))
def test_config_of_the_right_family_loads(tiny_models, key):
    config = load_config(str(tiny_models[key]), REGISTRY[key].family, key)
    assert config.model_type == REGISTRY[key].family.model_type


def test_fp16_needs_cuda():
    with pytest.raises(HardwareError, match="--fp16"):
        check_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_cpu_precisions(name):
    precision = check_precision(name, torch.device("cpu"))
    assert precision.autocast == (name == "bf16")
    assert not precision.needs_loss_scaler


def test_fp16_uses_a_loss_scaler():
    assert Precision("fp16", "cuda").needs_loss_scaler
    assert Precision("fp16", "cuda").weight_dtype == torch.float16


@pytest.mark.parametrize("qlora", [True, False])
def test_model_loads_with_fp32_adapters_on_frozen_base(tiny_models, qlora):
    key = "mbart50_mmt_fr"
    plan = plan_for(key, tiny_models[key], qlora=qlora, bf16=not qlora)
    precision = check_precision(plan.resolved.precision, torch.device("cpu"))
    config = load_config(plan.model_id, REGISTRY[key].family, key)
    model = with_lora(load_base(plan, config, precision), plan)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.float32 for p in trainable.values())
    # Adapters on q/k/v of every attention block: self-attention in both stacks and cross-attention.
    adapted = {n.split(".lora_A")[0] for n in trainable if ".lora_A" in n}
    assert any("encoder_attn.q_proj" in n for n in adapted) and any("self_attn.v_proj" in n for n in adapted)
    assert not any("out_proj" in n or "fc1" in n for n in adapted)
    linear = model.get_base_model().model.encoder.layers[0].self_attn.k_proj.base_layer
    if qlora:
        assert type(linear).__name__ == "Linear4bit"
        assert model.get_base_model().is_gradient_checkpointing
    else:
        assert linear.weight.dtype == torch.bfloat16
    assert model.get_base_model().config.use_cache is False


def test_all_linear_targets(tiny_models):
    from csas_cli.values import parse_lora_targets

    key = "opus_mt_en_fr"
    plan = plan_for(key, tiny_models[key], qlora=False, lora_targets=parse_lora_targets("all-linear"))
    config = load_config(plan.model_id, MARIAN, key)
    model = with_lora(load_base(plan, config, check_precision("fp32", torch.device("cpu"))), plan)
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}


def test_unknown_lora_target_is_a_flag_error(tiny_models):
    key = "opus_mt_en_fr"
    plan = plan_for(key, tiny_models[key], qlora=False, lora_targets=("query",))
    config = load_config(plan.model_id, MARIAN, key)
    model = load_base(plan, config, check_precision("fp32", torch.device("cpu")))
    with pytest.raises(ModelError, match="--lora-targets: query"):
        with_lora(model, plan)


def test_qlora_trains_after_an_evaluation_pass(tiny_models):
    """bitsandbytes repacks 4-bit weights for CPU inference in eval mode; training afterwards must still work."""
    key = "opus_mt_en_fr"
    plan = plan_for(key, tiny_models[key])
    config = load_config(plan.model_id, MARIAN, key)
    model = with_lora(load_base(plan, config, check_precision("fp32", torch.device("cpu"))), plan)
    ids = torch.tensor([[5, 6, 7, 0]])
    model.eval()
    with torch.no_grad():
        model(input_ids=ids, decoder_input_ids=ids)
    model.train()
    out = model(input_ids=ids, decoder_input_ids=ids)
    out.logits.float().logsumexp(-1).mean().backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_B" in n)


def test_tokenizer_is_the_family_class(tiny_models):
    tokenizer = load_tokenizer(str(tiny_models["m2m100_418m"]), REGISTRY["m2m100_418m"].family)
    assert type(tokenizer).__name__ == "M2M100Tokenizer"
    assert json.loads((tiny_models["m2m100_418m"] / "config.json").read_text())["decoder_start_token_id"] == 2


def test_lengths_beyond_fixed_positions_are_refused(tiny_models):
    from csas_cli.errors import SettingsError
    from csas_cli.modeling import check_lengths
    from csas_cli.registry import M2M100

    config = load_config(str(tiny_models["opus_mt_en_fr"]), MARIAN, "opus_mt_en_fr")
    limit = config.max_position_embeddings
    check_lengths(config, MARIAN, limit, limit)
    with pytest.raises(SettingsError, match=f"--max-target-len {limit + 1}: this model has {limit} positions"):
        check_lengths(config, MARIAN, limit, limit + 1)
    check_lengths(config, M2M100, 10 * limit, 10 * limit)  # sinusoidal positions that grow


def test_checkpoint_missing_weights_is_refused(tiny_models, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    key = "m2m100_418m"
    broken = tmp_path / key
    shutil.copytree(tiny_models[key], broken)
    weights = load_file(str(broken / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if "encoder.layers.0." not in k}, str(broken / "model.safetensors"),
              metadata={"format": "pt"})  # fmt: skip
    plan = plan_for(key, broken, qlora=False)
    config = load_config(plan.model_id, REGISTRY[key].family, key)
    with pytest.raises(ModelError, match=r"lacks weights \(model\.encoder\.layers\.0\."):
        load_base(plan, config, check_precision("fp32", torch.device("cpu")))


def test_qlora_keeps_frozen_weights_in_the_requested_dtype(tiny_models):
    key = "mbart50_mmt_fr"
    plan = plan_for(key, tiny_models[key], bf16=True)
    config = load_config(plan.model_id, REGISTRY[key].family, key)
    model = load_base(plan, config, check_precision("bf16", torch.device("cpu")))
    dtypes = {n: p.dtype for n, p in model.named_parameters() if p.dtype != torch.uint8}
    assert dtypes["model.shared.weight"] == torch.bfloat16
    assert all(d == torch.float32 for n, d in dtypes.items() if "norm" in n)
    assert not any(d == torch.float32 for n, d in dtypes.items() if "norm" not in n)


def test_attention_kernels_leave_out_cudnn_on_cuda_only() -> None:
    from csas_cli.modeling import attention_kernels

    flags = torch.backends.cuda
    before = (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled())
    with attention_kernels(torch.device("cuda", 0)):  # only switches flags: runs without a GPU
        assert not flags.cudnn_sdp_enabled()
        assert flags.flash_sdp_enabled() and flags.mem_efficient_sdp_enabled() and flags.math_sdp_enabled()
    assert (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled()) == before
    with attention_kernels(torch.device("cpu")):
        assert flags.cudnn_sdp_enabled() == before[0]


def test_attention_kernels_keep_cudnn_when_asked() -> None:
    from csas_cli.modeling import attention_kernels

    flags = torch.backends.cuda
    before = (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled())
    with attention_kernels(torch.device("cuda", 0), cudnn=True):  # the cudnn-sdpa benchmark variant
        assert (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled()) == before
    assert (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled()) == before


@pytest.mark.parametrize("name, want", [
    ("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16),
    ("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16),
])  # fmt: skip
def test_torch_dtype_takes_precision_and_dtype_names(name, want) -> None:
    from csas_cli.modeling import torch_dtype

    assert torch_dtype(name) is want
    if name in ("fp32", "bf16", "fp16"):
        assert Precision(name, "cpu").weight_dtype is want
