"""What many test modules use: the shipped sample, the real CLI in-process, and the one-line error check."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from csas_cli.cli import app
from csas_cli.shipped import SAMPLE_PAIRS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = SAMPLE_PAIRS
"""The shipped domain sample (csas_cli/assets/sample_pairs.jsonl)."""

FINETUNE_ALL_SPEC = {
    "m2m100_418m": (12, 2e-4),
    "mbart50_mmt_fr": (8, 1.5e-4),
    "mbart50_mmt_en": (8, 1.5e-4),
    "opus_mt_en_fr": (16, 3e-4),
    "opus_mt_fr_en": (16, 3e-4),
}
"""finetune_all.py's table (batch size, learning rate per model, in its order), written out independently of
csas_cli/registry.py so that the tests check the registry against it."""


def invoke(*args: object, env: dict | None = None):
    """The real CLI in-process; a bug (not a CsasError, which exits) re-raises with its traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def write_pairs(path: Path, per_language: int) -> Path:
    """The first `per_language` English-source and French-source rows of the shipped sample."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if r["source_lang"] == "en"][:per_language]
    kept += [r for r in rows if r["source_lang"] == "fr"][:per_language]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    return path


def one_error_line(result) -> str:
    """A user error: non-zero exit, exactly one stderr line `csas: error: ...`, no traceback, nothing on stdout."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("csas: error: "), lines[0]
    assert result.stdout == ""
    return lines[0]


def make_recipe(
    tiny_models: dict[str, Path],
    out: Path,
    key: str,
    *,
    setup: bool = True,
    engine: dict | None = None,
    random_lora_b: bool = False,
    **values: object,
):
    """A recipe for `key`'s tiny model on the shipped sample (plain LoRA, no dropout, 3 steps unless `values` say
    otherwise), built with the recipe keyword arguments `engine` and set up unless `setup` is False; the caller calls
    its cleanup(). `random_lora_b`: LoRA B starts random instead of zero (which would leave every lora_A gradient
    zero), so that every adapter weight takes part in the loss."""
    import torch

    from csas_cli.settings import FinetuneSettings
    from csas_cli.training.run import build_recipe, prepare_run

    settings = FinetuneSettings.create(
        which=key, model_id=str(tiny_models[key]), data=SAMPLE, output_dir=out, qlora=False, lora_dropout=0.0,
        disable_tqdm=True, **{"max_steps": 3, **values},
    )  # fmt: skip
    recipe = build_recipe(prepare_run(settings, environ={}), **(engine or {}))
    if setup:
        recipe.setup()
    if random_lora_b:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            for name, param in recipe.model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return recipe


def first_steps(recipe, n: int) -> list[list[list]]:
    """The pairs of a recipe's first `n` optimizer steps, as its batching cuts them (batches.optimizer_steps)."""
    from csas_cli.data.batches import optimizer_steps

    training = recipe.plan.training
    lengths = [p.length for p in recipe.data.train]
    return [
        [[recipe.data.train[i] for i in mb] for mb in micro_batches]
        for _, _, micro_batches in optimizer_steps(lengths, recipe.batching, training.grad_accum, training.seed, n)
    ]
