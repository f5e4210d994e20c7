"""Checkpoint averaging (csas_cli.training.averaging, `csas average`, `--average-last`): the averaged adapter's weight
update is the mean of the adapters' updates, exactly, as peft applies it; what is averaged, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import SAMPLE, invoke

from csas_cli.errors import SettingsError
from csas_cli.training.averaging import Adapter, average, choose, read_adapter, run_adapters, updates

CONFIG = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "use_dora": False,
          "use_rslora": False, "bias": "none", "task_type": "SEQ_2_SEQ_LM", "rank_pattern": {}, "alpha_pattern": {}}
MODULES = ("m.layers.0.q_proj", "m.layers.0.v_proj", "m.layers.1.q_proj")


def fake_adapter(step: int, seed: int, r: int = 4, alpha: int = 8) -> Adapter:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for module in MODULES:
        tensors[f"{module}.lora_A.weight"] = torch.randn(r, 16, generator=g)
        tensors[f"{module}.lora_B.weight"] = torch.randn(12, r, generator=g)
    return Adapter(step, Path(f"step-{step}"), {**CONFIG, "r": r, "lora_alpha": alpha}, tensors)


def test_the_average_update_is_the_mean_of_the_updates():
    adapters = [fake_adapter(step, seed) for step, seed in ((10, 1), (20, 2), (30, 3))]
    config, tensors = average(adapters)
    assert (config["r"], config["lora_alpha"]) == (12, 12)
    got = updates(config, tensors)
    for module in MODULES:
        want = sum(updates(a.config, a.tensors)[module] for a in adapters) / 3
        assert torch.allclose(got[module], want, atol=1e-5, rtol=0), module
    # Not the update of the mean A and the mean B: that is what averaging must not do.
    mean_a = sum(a.tensors[f"{MODULES[0]}.lora_A.weight"] for a in adapters) / 3
    mean_b = sum(a.tensors[f"{MODULES[0]}.lora_B.weight"] for a in adapters) / 3
    assert not torch.allclose(2.0 * (mean_b.double() @ mean_a.double()), got[MODULES[0]], atol=1e-3)


def test_the_average_of_one_adapter_is_that_adapter():
    one = fake_adapter(5, 7)
    config, tensors = average([one])
    for module, update in updates(config, tensors).items():
        assert torch.allclose(update, updates(one.config, one.tensors)[module], atol=1e-6, rtol=0)


def test_other_ranks_or_targets_are_refused():
    with pytest.raises(SettingsError, match="r 4 at step 10, 8 at step 20"):
        average([fake_adapter(10, 1), fake_adapter(20, 2, r=8, alpha=16)])
    other = fake_adapter(20, 2)
    other = Adapter(20, other.path, {**other.config, "target_modules": ["q_proj"]}, other.tensors)
    with pytest.raises(SettingsError, match="target_modules"):
        average([fake_adapter(10, 1), other])


def kept_run(tmp_path: Path, checkpoints=(3, 6, 9), final: int | None = 12) -> Path:
    run = tmp_path / "run"
    for step in checkpoints:
        folder = run / "checkpoints" / f"step-{step:06d}" / "adapter"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    (run / "checkpoints" / "step-000010.tmp" / "adapter").mkdir(parents=True)  # a save cut short: not an adapter
    if final is not None:
        (run / "lora").mkdir(parents=True)
        (run / "lora" / "adapter_model.safetensors").write_bytes(b"x")
        (run / "finished.json").write_text(json.dumps({"steps": final}))
    return run


def test_a_runs_adapters_and_which_are_chosen(tmp_path):
    run = kept_run(tmp_path)
    kept = run_adapters(run)
    assert [s for s, _ in kept] == [3, 6, 9, 12] and kept[-1][1] == run / "lora"
    assert [s for s, _ in choose(kept, last=2)] == [9, 12]
    assert [s for s, _ in choose(kept, steps=[9, 3])] == [3, 9]
    with pytest.raises(SettingsError, match="kept 4 adapters"):
        choose(kept, last=5)
    with pytest.raises(SettingsError, match="no adapter of step 5 is kept"):
        choose(kept, steps=[5])
    with pytest.raises(SettingsError, match="one of them"):
        choose(kept)
    unfinished = kept_run(tmp_path / "u", final=None)
    assert [s for s, _ in run_adapters(unfinished)] == [3, 6, 9]


def save_random_adapters(base: Path, out: Path, seeds) -> list[Path]:
    """Adapters of the tiny base as peft saves them, with random (non-zero) B: what checkpoints hold."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    folders = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = AutoModelForSeq2SeqLM.from_pretrained(str(base))
        peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                init_lora_weights=False))  # fmt: skip
        folder = out / f"step-{seed:06d}" / "adapter"
        peft.save_pretrained(str(folder), save_embedding_layers=False)
        folders.append(folder)
    return folders


def test_peft_applies_the_averaged_adapter_as_the_mean_of_the_updates(tiny_models, tmp_path):
    """The file csas writes, loaded by peft on the base, changes every adapted weight by the mean of the
    checkpoints' changes (to 1e-5): the construction and peft agree on rank and scale."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    from csas_cli.training.averaging import write_average

    base = tiny_models["opus_mt_en_fr"]
    folders = save_random_adapters(base, tmp_path, (1, 2, 3))
    adapters = [read_adapter(i, f) for i, f in enumerate(folders)]
    config, tensors = average(adapters)
    write_average(tmp_path / "averaged", config, tensors, {"steps": [0, 1, 2]})
    model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(str(base)), str(tmp_path / "averaged"))
    checked = 0
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            key = f"{name}".removesuffix(".base_layer")
            want = sum(updates(a.config, a.tensors)[key] for a in adapters) / 3
            assert torch.allclose(module.get_delta_weight("default").double(), want, atol=1e-5, rtol=0), key
            checked += 1
    assert checked == len(updates(config, tensors)) > 0


# --- through the CLI ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_average_last_writes_and_evaluates_the_average_and_csas_average_agrees(tiny_models, tmp_path):
    out = tmp_path / "out"
    trained = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data",
                     SAMPLE, "--output-dir", out, "--max-steps", 8, "--save-steps", 2, "--eval-steps", 4,
                     "--batch-size", 4, "--lr", "3e-3", "--no-qlora", "--disable-tqdm", "--average-last", 3)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    run = out / "opus_mt_en_fr"
    averaged = json.loads((run / "finished.json").read_text())["averaged"]
    assert averaged["steps"] == [4, 6, 8] and averaged["dir"] == "averaged" and averaged["rank"] == 96
    assert isinstance(averaged["eval_loss"], float) and isinstance(averaged["better_than_last"], bool)
    assert "averaged/ (the mean of steps 4, 6, 8): eval_loss" in trained.stderr
    # csas average of the same steps writes the same adapter (the last step read back from lora/).
    again = invoke("average", run, "--last", 3, "--output", tmp_path / "again")
    assert again.exit_code == 0, again.output
    from safetensors.torch import load_file

    a, b = load_file(str(run / "averaged" / "adapter_model.safetensors")), load_file(
        str(tmp_path / "again" / "adapter_model.safetensors"))  # fmt: skip
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # Every inference command takes it like lora/.
    evaluated = invoke("evaluate", "--model", run / "averaged", "--data", SAMPLE, "--limit", 8, "--num-beams", 1,
                       "--max-new-tokens", 16, "--json")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["model"].endswith("averaged")
    merged = invoke("merge", run / "averaged", tmp_path / "merged")
    assert merged.exit_code == 0, merged.output
    assert json.loads((tmp_path / "merged" / "csas_merge.json").read_text())["adapter_choice"] == "averaged"
    refused = invoke("average", run, "--last", 3)
    assert refused.exit_code != 0 and "--overwrite" in refused.stderr
