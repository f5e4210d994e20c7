"""`csas bench`: throughput and peak memory of csas's own training loop, to size a batch before booking GPU hours.

What runs is the real loop. A `FinetuneRecipe` is set up exactly as `csas finetune` sets one up (the same loading,
quantization, LoRA and optimizer code), then its `train()` runs on the benchmark's pairs for warm-up plus timed
optimizer steps. Two things differ from a training run, both outside the timed steps: the recipe's training pairs are
replaced by the benchmark's (so no text is tokenized per measurement), and it writes into a temporary run directory.
scripts/bench_vs_hf.py runs the same measurement next to transformers' Seq2SeqTrainer.

What a benchmark trains:
- `random_init`: the registry model's real architecture (`assets/configs/<hub id>.json`, reconstructed from its
  public config.json) or a small preset, with random weights written to a temporary checkpoint next to a stand-in
  tokenizer that knows only the special tokens, so nothing is downloaded. Weights do not change throughput.
- otherwise the model itself (--model-id, or the registry's hub id), loaded as `csas finetune` loads it.
- pairs: synthetic CSAS-like lengths (`synthetic_lengths`) with random token ids, or a data file tokenized once with
  the model's tokenizer.

torch and transformers are imported inside the functions, so importing this module (and `csas --help`) stays cheap.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import DataError, HardwareError, SettingsError
from .features import TokenizedPair
from .registry import DEFAULT_LORA_TARGETS, FINETUNE_ALL_TABLE, MARIAN, REGISTRY, check_which
from .settings import check_token_budget

CONFIGS = Path(__file__).resolve().parent / "assets" / "configs"
"""Architecture configs: one per registry hub id (`<owner>--<name>.json`) and the benchmark presets."""
PROVENANCE = "csas_provenance"
"""The key in each shipped config that says where its values come from (dropped before the config is built)."""

PRESETS = {"small": "bench-marian-small", "tiny": "bench-marian-tiny"}
"""Marian presets: `small` (10.7M parameters) sized for a CPU comparison in minutes, `tiny` for tests."""
PRESET_KEY = "opus_mt_en_fr"
"""The registry key a preset trains as (presets are Marian, one direction, no language codes)."""

LENGTH_MEDIAN = 30
"""Median source length in tokens, as in the GPU anchor's CSAS-like workload (docs/performance.md)."""
LENGTH_SIGMA = 0.6
"""Standard deviation of the log source length."""
TARGET_RATIO = (0.95, 1.35)
"""Target length = source length x U(lo, hi)."""
SYNTHETIC_PAIRS = 10_000
"""Synthetic pairs per benchmark: many length-grouping pools (50 batches each), as in a real epoch."""


# --- architectures -------------------------------------------------------------------------------------------------


def config_path(name: str) -> Path:
    """The shipped config of a hub id (`facebook/m2m100_418M`) or a preset name (`small`)."""
    stem = PRESETS.get(name, name.replace("/", "--"))
    return CONFIGS / f"{stem}.json"


def architecture_dict(name: str) -> dict[str, Any]:
    """The shipped config's fields, without the provenance note."""
    path = config_path(name)
    if not path.is_file():
        have = ", ".join(sorted(shipped_architectures()))
        raise SettingsError(f"no shipped architecture for {name!r} (have: {have})")
    values = json.loads(path.read_text(encoding="utf-8"))
    values.pop(PROVENANCE, None)
    return values


def shipped_architectures() -> list[str]:
    return [p.stem for p in CONFIGS.glob("*.json")]


def architecture_config(name: str) -> Any:
    """A transformers config object of the shipped architecture `name` (hub id or preset)."""
    from transformers import AutoConfig

    values = architecture_dict(name)
    return AutoConfig.for_model(values.pop("model_type"), **values)


# --- synthetic data ------------------------------------------------------------------------------------------------


def synthetic_lengths(n: int, seed: int, max_len: int = 512) -> list[tuple[int, int]]:
    """`n` (source, target) token counts, end-of-sentence included: source ~ lognormal with median LENGTH_MEDIAN and
    sigma LENGTH_SIGMA, target = source x U(TARGET_RATIO), rounded but kept inside the ratio; both at most max_len."""
    rng = random.Random(f"lengths:{seed}")
    lo, hi = TARGET_RATIO
    out = []
    for _ in range(n):
        source = min(max_len, max(1, round(rng.lognormvariate(math.log(LENGTH_MEDIAN), LENGTH_SIGMA))))
        target = round(source * rng.uniform(lo, hi))
        # Rounding may step outside the ratio for short sentences; round(.., 9) keeps float noise out of ceil/floor.
        target = max(math.ceil(round(source * lo, 9)), min(target, math.floor(round(source * hi, 9))))
        out.append((source, min(target, max_len)))
    return out


def special_ids(config: Any) -> set[int]:
    names = ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "forced_bos_token_id")
    return {int(v) for v in (getattr(config, n, None) for n in names) if isinstance(v, int)}


def synthetic_pairs(lengths: Sequence[tuple[int, int]], config: Any, seed: int) -> list[TokenizedPair]:
    """Pairs of the given lengths whose ids are ordinary vocabulary entries, each side ending with </s>."""
    rng = random.Random(f"ids:{seed}")
    specials = special_ids(config)
    eos = int(config.eos_token_id)
    low, high = 4, int(config.vocab_size)
    ordinary = [i for i in range(low, low + 64) if i not in specials]

    def side(n: int) -> tuple[int, ...]:
        ids = [rng.randrange(low, high) for _ in range(n - 1)]
        return tuple(i if i not in specials else ordinary[i % len(ordinary)] for i in ids) + (eos,)

    return [TokenizedPair(side(s), side(t)) for s, t in lengths]


def pair_tokens(pairs: Sequence[TokenizedPair]) -> int:
    """Real (unpadded) source + target tokens."""
    return sum(len(p.input_ids) + len(p.labels) for p in pairs)


def padded_tokens(pairs: Sequence[TokenizedPair]) -> int:
    """Source + target positions of `pairs` collated into one micro-batch padded to its longest sides."""
    if not pairs:
        return 0
    return len(pairs) * (max(len(p.input_ids) for p in pairs) + max(len(p.labels) for p in pairs))


def random_batch_padding(pairs: Sequence[TokenizedPair], batch_size: int, seed: int, batches: int = 2000) -> float:
    """Expected share of padded positions in random-order batches (what a plain random sampler gives)."""
    rng = random.Random(f"padding:{seed}")
    real = padded = 0
    for _ in range(batches):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(batch_size)]
        real += pair_tokens(batch)
        padded += padded_tokens(batch)
    return 1 - real / padded


# --- stand-in checkpoints ------------------------------------------------------------------------------------------


def standin_tokenizer(config: Any, model_max_length: int = 1024) -> Any:
    """A tokenizer that knows only the config's special tokens (every word is <unk>), with their ids.

    Random-init benchmarks feed token ids directly; a tokenizer is needed only where csas's set-up tokenizes its
    placeholder rows and where DataCollatorForSeq2Seq pads with the pad id.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pad, eos = int(config.pad_token_id), int(config.eos_token_id)
    taken = {pad, eos, *special_ids(config)}
    unk = next(i for i in range(1, 1 << 20) if i not in taken)
    vocab = {"<pad>": pad, "</s>": eos, "<unk>": unk}
    bos = getattr(config, "bos_token_id", None)
    if isinstance(bos, int) and bos not in (pad, eos):
        vocab["<s>"] = bos
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        model_max_length=model_max_length,
    )


def write_random_checkpoint(config: Any, out_dir: Path, *, dtype: Any, device: str, seed: int) -> Path:
    """Save `config`'s model with random weights (seeded, in `dtype`) and a stand-in tokenizer into `out_dir`."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from .modeling import save_model_quietly

    config = config.__class__.from_dict(config.to_dict())  # a copy: use_cache is set on it below
    config.use_cache = False
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
        torch.manual_seed(seed)
        # Initialised on the GPU when there is one: seconds instead of a minute for a 600M-parameter model.
        with torch.device(device):
            model = AutoModelForSeq2SeqLM.from_config(config, dtype=dtype)
    save_model_quietly(model, out_dir)
    standin_tokenizer(config, getattr(config, "max_position_embeddings", 1024)).save_pretrained(out_dir)
    del model
    release_memory(device)
    return out_dir


# --- devices and memory --------------------------------------------------------------------------------------------


def use_device(name: str) -> str:
    """Check the requested device ("auto", "cpu" or "cuda") and return the one csas will train on.

    csas trains on the GPU whenever one is visible, so "cpu" on a GPU machine hides the GPUs from this process;
    that works only before CUDA is initialised, which is why commands call this first.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise SettingsError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cpu":
        torch_module = sys.modules.get("torch")
        if torch_module is None or not torch_module.cuda.is_initialized():
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise HardwareError("--device cuda: no CUDA GPU is visible to this process")
    if name == "cpu" and available:
        raise HardwareError("--device cpu: CUDA is already initialised in this process; run with CUDA_VISIBLE_DEVICES=")
    return "cuda" if available else "cpu"


def release_memory(device: str) -> None:
    """Return freed memory to the device (CUDA cache) or to the OS (glibc heap), so the next peak starts clean."""
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    else:
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_kib(field_name: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return None


class PeakMemory:
    """The peak memory of what runs between `start()` and `read()`.

    CUDA: torch.cuda.max_memory_allocated() (tensors only, not the allocator's cache), its counter reset by start().
    CPU: how far the process's peak resident set (VmHWM) rose above the resident set at start(), the peak being reset
    through /proc/self/clear_refs; this counts every allocation (weights, activations, allocator slack) and is None
    where /proc does not allow it (not Linux).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.base: int | None = None

    @property
    def measure(self) -> str:
        if self.device == "cuda":
            return "torch.cuda.max_memory_allocated"
        return "peak RSS increase (VmHWM after /proc/self/clear_refs, minus RSS at start)"

    def start(self) -> None:
        release_memory(self.device)
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            self.base = 0
            return
        self.base = None
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # 5: reset the peak resident set size to the current one
            self.base = _status_kib("VmRSS")

    def read(self) -> int | None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        peak = _status_kib("VmHWM")
        return None if peak is None or self.base is None else max(0, peak - self.base)


# --- what to benchmark ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    """Everything `csas bench` (and scripts/bench_vs_hf.py) can be asked; defaults mirror `csas finetune`."""

    which: str
    """Registry key: the model family, the LoRA plan and (without --random-init) the hub model."""
    model_id: str | None = None
    """A hub id or local snapshot to benchmark instead of the registry's; with random_init, only its config is used."""
    random_init: bool = False
    """Random weights: the registry model's shipped architecture, the preset's, or --model-id's config."""
    preset: str | None = None
    """A shipped preset architecture (implies random_init; Marian keys only)."""
    data: Path | None = None
    """A JSONL data file tokenized with the model's tokenizer; None: synthetic CSAS-like pairs."""
    batch_size: int | None = None
    """Pairs per micro-batch; None: the finetune-all table's batch size for `which`."""
    grad_accum: int = 2
    """Micro-batches per optimizer step."""
    max_tokens: int | None = None
    """Token-budget micro-batches (as `csas finetune --max-tokens`) instead of batch_size pairs."""
    steps: int = 20
    """Timed optimizer steps."""
    warmup_steps: int = 3
    """Optimizer steps run before the clock starts (allocator, kernel selection, data-loader start-up)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    bf16: bool = False
    """Frozen weights in bfloat16 with bf16 autocast, as --bf16."""
    fp16: bool = False
    """Frozen weights in float16 with a loss scaler, as --fp16 (CUDA); bf16 wins if both are given."""
    qlora: bool = True
    """4-bit NF4 base (QLoRA), as `csas finetune` without --no-qlora."""
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    max_source_len: int = 512
    max_target_len: int = 512
    seed: int = 42
    num_pairs: int = SYNTHETIC_PAIRS
    """Synthetic pairs to draw (ignored with --data)."""

    def __post_init__(self) -> None:
        check_which(self.which)
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise SettingsError(f"--preset: unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
            if REGISTRY[self.which].family is not MARIAN:
                raise SettingsError(f"--preset {self.preset} is a Marian model; use it with an opus_mt key")
            if self.model_id is not None:
                raise SettingsError("--preset and --model-id exclude each other")
            if self.data is not None:
                raise SettingsError("--data needs the model's tokenizer, and a preset has none: use --model-id")
        for name in ("grad_accum", "steps", "lora_r", "lora_alpha", "max_source_len", "max_target_len", "num_pairs"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise SettingsError(f"--batch-size must be at least 1, got {self.batch_size}")
        check_token_budget(self.max_tokens, self.max_source_len, self.max_target_len)
        if self.warmup_steps < 0:
            raise SettingsError(f"--warmup-steps must be at least 0, got {self.warmup_steps}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.data is not None and not Path(self.data).is_file():
            raise DataError(f"--data: {self.data} is not a file")

    @property
    def uses_random_weights(self) -> bool:
        return self.random_init or self.preset is not None

    @property
    def micro_batch(self) -> int:
        return self.batch_size if self.batch_size is not None else FINETUNE_ALL_TABLE[self.which].batch_size

    @property
    def learning_rate(self) -> float:
        return FINETUNE_ALL_TABLE[self.which].lr

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    @property
    def weight_dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.precision]


@dataclass
class Workload:
    """A model on disk and the pairs both engines train on."""

    which: str
    model_dir: str
    """What every measurement loads (a temporary random-weight checkpoint, a local snapshot or a hub id)."""
    pairs: list[TokenizedPair]
    description: str
    parameters: int = 0
    data: str = "synthetic"


def architecture_name(settings: BenchSettings) -> str:
    """The shipped config a random-weight benchmark builds: the preset's, or the registry model's."""
    if settings.preset is not None:
        return settings.preset
    return REGISTRY[settings.which].hub_id


def prepare_workload(settings: BenchSettings, workdir: Path, device: str) -> Workload:
    """Write the random-weight checkpoint when asked for one, and make the pairs. Nothing here is timed."""
    from transformers import AutoConfig

    spec = REGISTRY[settings.which]
    if settings.uses_random_weights:
        if settings.model_id is not None:
            config = AutoConfig.from_pretrained(settings.model_id, trust_remote_code=False)
            source = f"{settings.model_id}'s architecture"
        else:
            name = architecture_name(settings)
            config = architecture_config(name)
            source = f"preset {settings.preset}" if settings.preset else f"{name} architecture"
        checkpoint = write_random_checkpoint(
            config, workdir / "model", dtype=settings.weight_dtype, device=device, seed=settings.seed
        )
        model_dir = str(checkpoint)
        description = f"{source}, random weights"
    else:
        model_id = settings.model_id or spec.hub_id
        from .modeling import load_config

        config = load_config(model_id, spec.family, settings.which)
        model_dir, description = model_id, model_id
    parameters = count_parameters(config)
    warm_imports()

    if settings.data is None:
        positions = getattr(config, "max_position_embeddings", None) or 1 << 30
        limit = min(settings.max_source_len, settings.max_target_len, positions)
        lengths = synthetic_lengths(settings.num_pairs, settings.seed, max_len=limit)
        pairs, data = synthetic_pairs(lengths, config, settings.seed), "synthetic"
    else:
        # With random weights the checkpoint's tokenizer is a stand-in: tokenize with the model's real one.
        pairs, data = tokenized_data(settings, settings.model_id or spec.hub_id), str(settings.data)
    per_batch = settings.micro_batch
    if settings.max_tokens:  # twice the pairs of mean length a budget holds: enough for the batches to vary
        per_batch = 2 * max(1, settings.max_tokens * len(pairs) // max(1, sum(p.length for p in pairs)))
    needed = (settings.warmup_steps + settings.steps) * per_batch * settings.grad_accum
    if len(pairs) < needed:  # repeat a small file so no epoch ends inside the measured steps
        pairs = [pairs[i % len(pairs)] for i in range(needed)]
    return Workload(settings.which, model_dir, pairs, description, parameters, data)


def tokenized_data(settings: BenchSettings, tokenizer_source: str) -> list[TokenizedPair]:
    """The rows of --data the model trains on, tokenized as `csas finetune` tokenizes them."""
    from .data import load_examples
    from .features import tokenize_examples
    from .modeling import load_tokenizer

    assert settings.data is not None
    spec = REGISTRY[settings.which]
    examples = load_examples(Path(settings.data), spec.source_langs).examples
    tokenizer = load_tokenizer(tokenizer_source)
    return tokenize_examples(
        tokenizer, spec.family, examples, max_source_len=settings.max_source_len, max_target_len=settings.max_target_len
    )


def warm_imports() -> None:
    """Import what a measurement would otherwise import during its first run, so it does not count in the peak
    resident set of the first measurement."""
    import peft  # noqa: F401
    import transformers.trainer  # noqa: F401

    from . import modeling, train  # noqa: F401


def count_parameters(config: Any) -> int:
    """The model's parameter count, from a weightless (meta-device) copy."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


# --- one measurement -----------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One engine's timed steps."""

    engine: str
    steps: int
    samples: int
    tokens: int
    """Real source + target tokens in the timed steps."""
    seconds: float
    loss: float | None
    """Training loss over the timed steps."""
    peak_memory: int | None
    """Bytes; see PeakMemory for what is counted."""
    padding: float | None = None
    """Share of padded positions in the timed micro-batches (None where the engine's batches are not visible)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def placeholder_data(path: Path) -> Path:
    """Two rows (one per language) for csas's set-up to read; the benchmark's pairs replace them after set-up."""
    rows = [
        {"source": "stock assessment", "target": "evaluation du stock", "source_lang": "en", "pub_number": "bench-en"},
        {"source": "avis scientifique", "target": "science advice", "source_lang": "fr", "pub_number": "bench-fr"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def recipe_settings(settings: BenchSettings, workload: Workload, workdir: Path, run_name: str, seed: int) -> Any:
    from .settings import FinetuneSettings

    data = workdir / "placeholder.jsonl"
    if not data.exists():
        placeholder_data(data)
    return FinetuneSettings(
        which=workload.which, model_id=workload.model_dir, data=data, output_dir=workdir / "runs", run_name=run_name,
        batch_size=settings.micro_batch, grad_accum=settings.grad_accum, max_tokens=settings.max_tokens,
        lr=settings.learning_rate, seed=seed,
        bf16=settings.bf16, fp16=settings.fp16, no_qlora=not settings.qlora, lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout, lora_targets=settings.lora_targets,
        val_ratio=0.0, max_source_len=settings.max_source_len, max_target_len=settings.max_target_len,
        max_steps=settings.warmup_steps + settings.steps, disable_tqdm=True, overwrite=True,
    )  # fmt: skip


def measure_csas(
    settings: BenchSettings,
    workload: Workload,
    workdir: Path,
    device: str,
    round_index: int = 0,
    probe_longest: bool = False,
    adapt: Callable[[Any], None] | None = None,
) -> Measurement:
    """Set up a fresh recipe, run warm-up + timed steps through `FinetuneRecipe.train()`, and tear it down.

    `probe_longest`: afterwards, one more optimizer step on the longest pairs, for the worst-case peak memory.
    `adapt`: called with the set-up recipe before training (scripts/bench_vs_hf.py measures engine variants so).
    """
    import torch

    from .batches import fill_token_budget
    from .modeling import attention_kernels
    from .progress import Reporter
    from .train import FinetuneRecipe, prepare_run, token_count

    seed = settings.seed + round_index
    prepared = prepare_run(recipe_settings(settings, workload, workdir, f"csas-{round_index}", seed), environ={})
    ends: list[float] = []
    steps: list[tuple[int, int, int, int, float]] = []  # samples, real tokens, padded positions, target tokens, loss
    peak = PeakMemory(device)
    peak.start()
    recipe = FinetuneRecipe(prepared.plan, prepared.split)
    try:
        # The set-up's console line describes the placeholder rows, not the benchmark.
        with contextlib.redirect_stderr(io.StringIO()):
            recipe.setup()
        assert recipe.reporter is not None
        recipe.reporter.close()
        recipe.reporter = Reporter(None, bar=False, quiet=True)
        recipe.train_pairs = list(workload.pairs)
        recipe.eval_pairs = []
        recipe.plan_training_steps()  # for these pairs; the plan's max_steps is warm-up + timed steps
        if adapt is not None:
            adapt(recipe)
        engine_step = recipe.optimizer_step

        def timed_step(groups: Sequence[Sequence[TokenizedPair]], step_tokens: int, idle: bool = False) -> Any:
            result = engine_step(groups, step_tokens, idle)  # returns after its one host sync per step
            ends.append(time.perf_counter())
            real = sum(pair_tokens(g) for g in groups)
            padded = sum(padded_tokens(g) for g in groups)
            steps.append((sum(len(g) for g in groups), real, padded, step_tokens, result[0]))
            return result

        recipe.optimizer_step = timed_step  # type: ignore[method-assign]
        started = time.perf_counter()
        recipe.train()
        peak_bytes = peak.read()
        extra: dict[str, Any] = {}
        if probe_longest:
            # The longest pairs in one micro-batch bound what any step of an epoch on these pairs needs.
            longest = sorted(recipe.train_pairs, key=lambda p: p.length, reverse=True)
            n = settings.micro_batch
            if settings.max_tokens:
                cut = fill_token_budget(range(len(longest)), [p.length for p in longest], settings.max_tokens)
                groups = [[longest[i] for i in batch] for batch in cut[: settings.grad_accum]]
            else:
                groups = [longest[i * n : (i + 1) * n] for i in range(settings.grad_accum)]
            extra["longest_pair_tokens"] = len(longest[0].input_ids) + len(longest[0].labels)
            peak.start()
            try:
                with attention_kernels(recipe.device):  # as inside train()
                    engine_step(groups, sum(token_count(g) for g in groups))
                extra["peak_memory_longest"] = peak.read()
            except torch.OutOfMemoryError:
                extra["longest_out_of_memory"] = True
    finally:
        recipe.cleanup()
        del recipe
        release_memory(device)

    warm = settings.warmup_steps
    timed = steps[warm:]
    t0 = ends[warm - 1] if warm else started
    real = sum(s[1] for s in timed)
    target_tokens = sum(s[3] for s in timed)
    return Measurement(
        engine="csas",
        steps=len(timed),
        samples=sum(s[0] for s in timed),
        tokens=real,
        seconds=ends[-1] - t0,
        loss=sum(s[4] * s[3] for s in timed) / target_tokens,  # token-averaged, as the loop logs it
        peak_memory=peak_bytes,
        padding=1 - real / sum(s[2] for s in timed),
        extra=extra,
    )


# --- `csas bench` --------------------------------------------------------------------------------------------------


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"


def gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def run_bench(
    settings: BenchSettings, workdir: Path | None = None, say: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """Measure csas's loop once (warm-up + timed steps) and return the record `csas bench` prints."""
    import tempfile

    import torch

    from .modeling import check_precision, quiet_libraries

    device = use_device(settings.device)
    check_precision(settings.precision, torch.device(device))  # before any preparation, as `csas finetune` does
    quiet_libraries()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="csas-bench-")))
        say(f"{settings.which}: preparing the model and the pairs")
        workload = prepare_workload(settings, workdir, device)
        say(
            f"{settings.which}: {settings.warmup_steps} warm-up + {settings.steps} timed steps of "
            f"{step_shape(settings)} on {device}, then one step of the longest pairs"
        )
        m = measure_csas(settings, workload, workdir, device, probe_longest=True)
    from .outputs import library_versions

    return {
        "which": settings.which,
        "model": workload.description,
        "parameters": workload.parameters,
        "data": workload.data,
        "pairs": len(workload.pairs),
        "device": device,
        "device_name": device_name(device),
        "precision": settings.precision,
        "qlora": settings.qlora,
        "lora": {"r": settings.lora_r, "alpha": settings.lora_alpha, "targets": list(settings.lora_targets)},
        "batch_size": None if settings.max_tokens else settings.micro_batch,
        "max_tokens": settings.max_tokens,
        "grad_accum": settings.grad_accum,
        "samples_per_step": round(m.samples / m.steps, 2) if m.steps else None,
        "warmup_steps": settings.warmup_steps,
        "steps": m.steps,
        "seconds": round(m.seconds, 3),
        "samples_per_second": round(m.samples_per_second, 2),
        "tokens_per_second": round(m.tokens_per_second, 1),
        "padding": round(m.padding, 4) if m.padding is not None else None,
        "final_loss": m.loss,
        "peak_memory_gib": gib(m.peak_memory),
        "peak_memory_longest_gib": gib(m.extra.get("peak_memory_longest")),
        "longest_out_of_memory": m.extra.get("longest_out_of_memory", False),
        "longest_pair_tokens": m.extra.get("longest_pair_tokens"),
        "peak_memory_measure": PeakMemory(device).measure,
        "versions": library_versions(),
    }


def step_shape(settings: BenchSettings) -> str:
    if settings.max_tokens:
        return f"{settings.grad_accum} micro-batches of up to {settings.max_tokens} tokens"
    return f"{settings.micro_batch} x {settings.grad_accum} pairs"


def record_step_shape(record: dict[str, Any]) -> str:
    if record["max_tokens"]:
        return (
            f"{record['grad_accum']} micro-batches of up to {record['max_tokens']} tokens per step "
            f"({record['samples_per_step']:.1f} samples on average)"
        )
    return f"{record['batch_size']} x {record['grad_accum']} samples per step"


def format_record(record: dict[str, Any]) -> str:
    """The human-readable form of `run_bench`'s record."""
    mem = record["peak_memory_gib"]
    longest = record["peak_memory_longest_gib"]
    lines = [
        f"{record['which']}: {record['model']} ({record['parameters'] / 1e6:.1f}M parameters), {record['data']} pairs",
        f"on {record['device_name']}, {record['precision']}{', QLoRA 4-bit' if record['qlora'] else ''}, "
        f"LoRA r={record['lora']['r']}; {record_step_shape(record)}",
        f"{record['samples_per_second']:.1f} samples/s, {record['tokens_per_second']:.0f} tokens/s "
        f"over {record['steps']} steps after {record['warmup_steps']} warm-up ({record['padding']:.1%} padding)",
        f"peak memory {'n/a' if mem is None else f'{mem:.2f} GiB'}; one step of the longest pairs "
        f"(the longest: {record['longest_pair_tokens']} tokens): "
        + ("out of memory" if record["longest_out_of_memory"] else "n/a" if longest is None else f"{longest:.2f} GiB"),
        f"final loss {record['final_loss']:.4f}",
    ]
    return "\n".join(lines)
