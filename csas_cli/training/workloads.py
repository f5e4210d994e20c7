"""What `csas bench` and scripts/bench_vs_hf.py train on: the benchmark's settings (`BenchSettings`), a model on
disk and the pairs, prepared before any clock runs.

- Architectures: `random_init` builds the registry model's real architecture (`assets/configs/<hub id>.json`,
  reconstructed from its public config.json) or a small preset, with random weights written to a temporary
  checkpoint next to a stand-in tokenizer that knows only the special tokens, so nothing is downloaded. Weights do
  not change throughput.
- Pairs: synthetic CSAS-like lengths (`synthetic_lengths`) with random token ids, or a data file tokenized once with
  the model's tokenizer.

torch and transformers are imported inside the functions, so importing this module (and `csas --help`) stays cheap.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from ..data.aligned import aligned_paths
from ..data.features import TokenizedPair
from ..errors import DataError, SettingsError
from ..fields import check_bounds, setting
from ..registry import FINETUNE_ALL_TABLE, MARIAN, REGISTRY, check_which
from ..settings import FinetuneSettings
from ..shipped import ASSETS

CONFIGS = ASSETS / "configs"
"""Architecture configs: one per registry hub id (`<owner>--<name>.json`) and the benchmark presets."""
PROVENANCE = "csas_provenance"
"""The key in each shipped config that says where its values come from (dropped before the config is built)."""

PRESETS = {"small": "bench-marian-small", "tiny": "bench-marian-tiny"}
"""Marian presets: `small` (10.7M parameters) sized for a CPU comparison in minutes, `tiny` for tests."""
PRESET_KEY = "opus_mt_en_fr"
"""The registry key a preset trains as (presets are Marian, one direction, no language codes)."""

LENGTH_MEDIAN = 30
"""Median source length in tokens, as in the CSAS-like workload of the GPU anchor (docs/performance.md)."""
LENGTH_SIGMA = 0.6
"""Standard deviation of the log source length."""
TARGET_RATIO = (0.95, 1.35)
"""Target length = source length x U(lo, hi)."""
SYNTHETIC_PAIRS = 10_000
"""Synthetic pairs per benchmark: many length-grouping pools (50 batches each), as in a real epoch."""


# --- architectures -------------------------------------------------------------------------------------------------


DEVICES = ("auto", "cpu", "cuda")


def run_setting(group: str, name: str) -> Any:
    """A read-only property of BenchSettings: the measured run's setting `name` of `group`."""
    return property(lambda self: getattr(getattr(self.finetune, group), name), doc=f"finetune.{group}.{name}")


@dataclass(frozen=True)
class BenchSettings:
    """Everything `csas bench` (and scripts/bench_vs_hf.py) can be asked: the run measured, as `csas finetune`'s
    settings (with the finetune-all table's batch size and learning rate for the model), plus the bench's own."""

    finetune: FinetuneSettings
    random_init: bool = setting(False, "The model's real architecture with random weights: nothing is downloaded.")
    """Random weights: the registry model's shipped architecture, the preset's, or --model-id's config."""
    preset: str | None = setting(None, "A small random-weight Marian model instead (small or tiny; opus_mt keys).")
    """A shipped preset architecture (implies random_init; Marian keys only)."""
    data: Path | None = setting(None, "Pairs (JSON Lines) to measure on; default: synthetic CSAS-like lengths.")
    """A JSONL data file tokenized with the model's tokenizer; None: synthetic CSAS-like pairs."""
    steps: int = setting(20, "Timed optimizer steps.", at_least=1)
    """Timed optimizer steps."""
    warmup_steps: int = setting(3, "Optimizer steps before the clock starts.", at_least=0)
    """Optimizer steps run before the clock starts (allocator, kernel selection, data-loader start-up)."""
    device: str = setting("auto", "auto, cpu or cuda.")
    """auto, cpu or cuda."""
    num_pairs: int = setting(SYNTHETIC_PAIRS, at_least=1)
    """Synthetic pairs to draw (ignored with data)."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise SettingsError(f"--preset: unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
            if REGISTRY[self.which].family is not MARIAN:
                raise SettingsError(f"--preset {self.preset} is a Marian model; use it with an opus_mt key")
            if self.model_id is not None:
                raise SettingsError("--preset and --model-id exclude each other")
            if self.data is not None:
                raise SettingsError("--data needs the model's tokenizer, and a preset has none: use --model-id")
        if self.device not in DEVICES:
            raise SettingsError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.data is not None and not Path(self.data).is_file() and aligned_paths(self.data) is None:
            raise DataError(f"--data: {self.data} is not a file")

    @classmethod
    def create(cls, *, which: str, batch_size: int | None = None, **values: Any) -> BenchSettings:
        """From flat names: the bench's own fields, and any `csas finetune` setting; batch_size None (and the
        learning rate, always) from the finetune-all table's row for `which`."""
        check_which(which)
        bench = {name: values.pop(name) for name in list(values) if name in BENCH_FIELDS}
        row = FINETUNE_ALL_TABLE[which]
        finetune = FinetuneSettings.create(
            which=which, batch_size=row.batch_size if batch_size is None else batch_size,
            learning_rate=row.learning_rate, **values,
        )  # fmt: skip
        return cls(finetune, **bench)

    def updated(self, **values: Any) -> BenchSettings:
        """A copy with flat-named settings (the bench's own or `csas finetune`'s) replaced."""
        bench = {name: values.pop(name, getattr(self, name)) for name in BENCH_FIELDS}
        return BenchSettings(self.finetune.updated(**values) if values else self.finetune, **bench)

    # The run's settings that the workload and the report read, by their names there.
    which = run_setting("model", "which")
    model_id = run_setting("model", "model_id")
    revision = run_setting("model", "revision")
    seed = run_setting("training", "seed")
    micro_batch = run_setting("training", "batch_size")
    grad_accum = run_setting("training", "grad_accum")
    max_tokens = run_setting("training", "max_tokens")
    precision = run_setting("training", "precision")
    max_source_len = run_setting("corpus", "max_source_len")
    max_target_len = run_setting("corpus", "max_target_len")

    @property
    def weight_dtype(self) -> Any:
        from ..modeling import torch_dtype

        return torch_dtype(self.precision)

    @property
    def uses_random_weights(self) -> bool:
        return self.random_init or self.preset is not None


BENCH_FIELDS = tuple(f.name for f in fields(BenchSettings) if f.name != "finetune")
"""The bench's own settings; every other flat name is a `csas finetune` setting of the run measured."""


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

    Random-init benchmarks feed token ids directly; a tokenizer is needed only because a checkpoint directory holds
    one (csas loads it with the base) and because DataCollatorForSeq2Seq pads with the pad id.
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

    from ..memory import release_memory
    from ..modeling import save_model_quietly

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


# --- what to benchmark -----------------------------------------------------------------------------------------


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
            from ..modeling import load_failure
            from ..snapshots import check_local_snapshot, check_revision

            check_local_snapshot(settings.model_id)
            check_revision(settings.model_id, settings.revision)
            try:
                config = AutoConfig.from_pretrained(settings.model_id, revision=settings.revision,
                                                    trust_remote_code=False)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the hub client and config classes raise many kinds
                raise load_failure(settings.model_id, "its config", exc, settings.revision) from None
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
        from ..modeling import load_config

        config = load_config(model_id, spec.family, settings.which, settings.revision)
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
    from ..data.features import tokenize_examples
    from ..data.pairs import load_examples
    from ..modeling import load_tokenizer

    assert settings.data is not None
    spec = REGISTRY[settings.which]
    examples = load_examples(Path(settings.data), spec.source_langs).examples
    tokenizer = load_tokenizer(tokenizer_source, spec.family, settings.revision)
    return tokenize_examples(
        tokenizer, spec.family, examples, max_source_len=settings.max_source_len, max_target_len=settings.max_target_len
    )


def warm_imports() -> None:
    """Import what a measurement would otherwise import during its first run, so it does not count in the peak
    resident set of the first measurement."""
    import peft  # noqa: F401
    import transformers.trainer  # noqa: F401

    from .. import modeling  # noqa: F401
    from ..training import recipe  # noqa: F401


def count_parameters(config: Any) -> int:
    """The model's parameter count, from a weightless (meta-device) copy."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


