#!/usr/bin/env python
"""Translation speed: transformers' `generate` on a merged model against its CTranslate2 export (`csas export`).

Both engines translate the same sentences with the same beam, batch size and token budget, in csas's own code path
(`translate_texts`: batches sorted by length, input order kept), alternating within one run (generate, export,
generate, export, ... for --rounds rounds) after one untimed warm-up batch each. Reported per engine, medians over
the rounds: sentences/s, target tokens/s (the translations' tokens, re-encoded with the target tokenizer), the
memory it took to load and its peak while translating, and the chrF of its translations against the references
and, for the export, how many sentences it translates exactly as generate does. The last line is
`speedup: X.XXx` (the export's sentences/s over generate's).

- Default: the tiny pretrained model of --which (what `make demo` fine-tunes), on the shipped held-out sentences
  of its first source language; `--model DIR` benchmarks a merged model of yours instead (with --data for your
  held-out pairs).
- `--random-init`: the registry model's real architecture (its shipped config) with random weights, on synthetic
  CSAS-like source lengths, each engine decoding exactly --decode-length tokens per sentence (random weights end
  sentences at random). No probe check: the export is converted directly.

Threads: by default each engine uses its own default on a CPU (torch: all cores for one batch; the export: one
batch per core, one thread each: see inference/ctranslate.py). `--threads N` gives both N.

Examples:
    python scripts/bench_translate.py --which opus_mt_en_fr --quantization int8
    python scripts/bench_translate.py --which opus_mt_en_fr --random-init --sentences 32 --rounds 2
    python scripts/bench_translate.py --which m2m100_418m --device cuda --quantization int8_float16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csas_cli.registry import MODEL_KEYS, REGISTRY  # noqa: E402 - after the path set-up

ENGINES = ("generate", "ctranslate2")


class DevicePeak:
    """Peak memory between start() and read(): on a CPU the resident set (csas_cli.memory.PeakMemory); on a GPU the
    device's used memory, sampled every 5 ms (CTranslate2 does not allocate through torch)."""

    def __init__(self, device: str) -> None:
        from csas_cli.memory import PeakMemory

        self.device = device
        self.cpu = PeakMemory(device) if device == "cpu" else None
        self.stop = threading.Event()
        self.base = self.high = 0
        self.thread: threading.Thread | None = None

    @staticmethod
    def used() -> int:
        import torch

        free, total = torch.cuda.mem_get_info()
        return total - free

    def start(self) -> None:
        if self.cpu is not None:
            self.cpu.start(release=True)
            return
        import torch

        torch.cuda.synchronize()
        self.base = self.high = self.used()
        self.stop.clear()

        def sample() -> None:
            while not self.stop.wait(0.005):
                self.high = max(self.high, self.used())

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def read(self) -> int | None:
        """Bytes above what was held at start()."""
        if self.cpu is not None:
            return self.cpu.read().rise
        import torch

        torch.cuda.synchronize()
        self.stop.set()
        assert self.thread is not None
        self.thread.join()
        return max(self.high, self.used()) - self.base


class VocabularyShim:
    """What CTranslate2's converter reads of a tokenizer, for a random-init model whose stand-in tokenizer knows
    only the special tokens: one made-up token per embedding row, the config's special ids named."""

    def __init__(self, config: Any) -> None:
        size = int(getattr(config, "decoder_vocab_size", None) or config.vocab_size)
        self.tokens = [f"t{i}" for i in range(size)]
        names = {"pad_token_id": "<pad>", "eos_token_id": "</s>", "bos_token_id": "<s>", "unk_token_id": "<unk>"}
        for attribute, name in names.items():
            index = getattr(config, attribute, None)
            if isinstance(index, int) and 0 <= index < size and self.tokens[index].startswith("t"):
                self.tokens[index] = name
        self.pad_token, self.eos_token = self.name(config.pad_token_id), self.name(config.eos_token_id)
        self.bos_token = self.name(getattr(config, "bos_token_id", None) or config.eos_token_id)
        self.unk_token = "<unk>" if "<unk>" in self.tokens else self.eos_token
        self.unk_token_id = self.tokens.index(self.unk_token)
        self.special_tokens_map: dict[str, Any] = {}

    def name(self, index: int) -> str:
        return self.tokens[index]

    def get_vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    def convert_ids_to_tokens(self, ids: Any) -> Any:
        return self.tokens[ids] if isinstance(ids, int) else [self.tokens[i] for i in ids]


def timed(run: Callable[[], Any], device: str) -> tuple[Any, float, int | None]:
    """(result, seconds, peak memory rise) of run()."""
    peak = DevicePeak(device)
    peak.start()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return result, time.perf_counter() - start, peak.read()


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


# --- the two workloads ----------------------------------------------------------------------------------------------


def heldout(which: str, data: str | None, sentences: int) -> tuple[Any, list[str], list[str]]:
    """(direction, sources, references): the rows of `which`'s first source language in `data` (default: the
    shipped held-out pairs), the first `sentences` of them (0: all)."""
    from csas_cli.shipped import HELDOUT_PAIRS
    from csas_cli.data.pairs import load_examples
    from csas_cli.languages import Direction
    from csas_cli.registry import other_language

    first = REGISTRY[which].source_langs[0]
    direction = Direction(first, other_language(first))
    examples = load_examples(Path(data) if data else HELDOUT_PAIRS, [direction.source]).examples
    examples = examples[:sentences] if sentences else examples
    return direction, [ex.source for ex in examples], [ex.target for ex in examples]


def tiny_workload(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Engines over csas's translate_texts on real sentences: the tiny (or given) merged model and its export."""
    from csas_cli.commands.export import export_model
    from csas_cli.commands.tiny import build_tiny_model
    from csas_cli.inference.generation import GenerationSettings, Runtime, load_for_inference, translate_texts
    from csas_cli.inference.source import resolve_source

    spec = REGISTRY[args.which]
    model_dir = Path(args.model) if args.model else build_tiny_model(args.which, workdir / "model")
    print(f"exporting {model_dir} ({args.quantization})", file=sys.stderr)
    exported = export_model(model_dir, workdir / "export", which=args.which, quantization=args.quantization).out_dir
    direction, sources, references = heldout(args.which, args.data, args.sentences)
    settings = GenerationSettings(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size)  # fmt: skip
    runtime = Runtime("cpu" if args.device == "cpu" else "cuda", args.threads)
    sources_of = {"generate": resolve_source(model_dir, args.which, None), "ctranslate2": resolve_source(exported,
                                                                                                         None, None)}
    loaded, load_memory = {}, {}
    for engine in ENGINES:
        loaded[engine], _, load_memory[engine] = timed(lambda: load_for_inference(sources_of[engine], runtime=runtime),
                                                       args.device)  # fmt: skip
    tokenizer = loaded["generate"].tokenizer

    def run(engine: str) -> Callable[[], list[str]]:
        return lambda: translate_texts(loaded[engine], sources, direction, settings).lines

    def warm(engine: str) -> None:
        translate_texts(loaded[engine], sources[: args.batch_size], direction, settings)

    def target_tokens(lines: Sequence[str]) -> int:
        from csas_cli.languages import set_languages

        set_languages(tokenizer, spec.family, direction.source, direction.target)
        return sum(len(ids) for ids in tokenizer(text_target=list(lines))["input_ids"])

    return {"run": run, "warm": warm, "tokens": target_tokens, "references": references, "n": len(sources),
            "load_memory": load_memory,
            "what": f"{args.model or 'tiny ' + args.which} ({direction}, {len(sources)} sentences)"}  # fmt: skip


def random_workload(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Engines on random ids of CSAS-like lengths, each decoding exactly --decode-length tokens."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from csas_cli.training.workloads import architecture_config, synthetic_lengths, synthetic_pairs
    from csas_cli.inference.ctranslate import convert, import_ctranslate2, translator_threads

    ctranslate2 = import_ctranslate2()
    spec = REGISTRY[args.which]
    name = args.preset or spec.hub_id
    config = architecture_config(name)
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(config, dtype=torch.float32).eval()
    model_dir = workdir / "model"
    config.save_pretrained(model_dir)  # what the converter reads before it takes the loaded model
    shim = VocabularyShim(config)
    print(f"converting the random {name} architecture ({args.quantization})", file=sys.stderr)
    convert(model, shim, model_dir, workdir / "export", args.quantization)
    pairs = synthetic_pairs(synthetic_lengths(args.sentences or 64, seed=0, max_len=256), config, seed=0)
    sources = [list(p.input_ids) for p in pairs]
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))
    batches = [[sources[i] for i in order[s : s + args.batch_size]] for s in range(0, len(order), args.batch_size)]
    length = args.decode_length
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    model.to(device)
    load_memory: dict[str, int | None] = {"generate": None}
    workers, threads = translator_threads(device, args.threads)
    translator, _, load_memory["ctranslate2"] = timed(lambda: ctranslate2.Translator(
        str(workdir / "export"), device=device, inter_threads=workers, intra_threads=threads), device)  # fmt: skip
    pad = int(config.pad_token_id)

    def generate(batch: list[list[int]]) -> int:
        width = max(len(ids) for ids in batch)
        ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
        mask = (torch.arange(width, device=device)[None, :] < torch.tensor([len(i) for i in batch], device=device)[:, None])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask.long(), num_beams=args.num_beams,
                                 min_new_tokens=length, max_new_tokens=length, do_sample=False)  # fmt: skip
        return int(out.shape[0] * (out.shape[1] - 1))

    def ctranslate(batches_: Sequence[list[list[int]]]) -> int:
        pending = [translator.translate_batch([shim.convert_ids_to_tokens(ids) for ids in batch],
                                              beam_size=args.num_beams, min_decoding_length=length,
                                              max_decoding_length=length, max_input_length=0, asynchronous=True)
                   for batch in batches_]  # fmt: skip
        return sum(len(r.result().hypotheses[0]) for results in pending for r in results)

    def run(engine: str) -> Callable[[], int]:
        if engine == "generate":
            return lambda: sum(generate(b) for b in batches)
        return lambda: ctranslate(batches)

    def warm(engine: str) -> None:
        generate(batches[-1]) if engine == "generate" else ctranslate(batches[-1:])

    return {"run": run, "warm": warm, "tokens": None, "references": None, "n": len(sources),
            "load_memory": load_memory,
            "what": f"random {name} ({len(sources)} synthetic sources, {length} tokens each)"}  # fmt: skip


# --- main -----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", default="opus_mt_en_fr", choices=MODEL_KEYS)
    parser.add_argument("--quantization", default="int8", choices=["int8", "int8_float16", "float16", "float32"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--random-init", action="store_true", help="the real architecture with random weights")
    parser.add_argument("--preset", choices=["tiny", "small"], help="with --random-init: a small Marian preset "
                        "architecture (bench-marian-*) instead of --which's")
    parser.add_argument("--model", help="a merged model directory (default: the tiny pretrained model of --which)")
    parser.add_argument("--data", help="held-out pairs for --model (default: the shipped held-out pairs)")
    parser.add_argument("--sentences", type=int, default=0, help="sentences (default: all; 64 with --random-init)")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--decode-length", type=int, default=32, help="tokens per sentence with --random-init")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both engines (0: their defaults)")
    args = parser.parse_args()
    if args.preset and not args.random_init:
        parser.error("--preset goes with --random-init")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from csas_cli.inference.scoring import score
    from csas_cli.modeling import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="csas-bench-translate-") as tmp:
        work = (random_workload if args.random_init else tiny_workload)(args, Path(tmp))
        for engine in ENGINES:
            work["warm"](engine)
        seconds: dict[str, list[float]] = {e: [] for e in ENGINES}
        peaks: dict[str, list[int]] = {e: [] for e in ENGINES}
        outputs: dict[str, Any] = {}
        for round_ in range(args.rounds):
            for engine in ENGINES:
                result, elapsed, peak = timed(work["run"](engine), args.device)
                seconds[engine].append(elapsed)
                if peak is not None:
                    peaks[engine].append(peak)
                outputs[engine] = result
                print(f"round {round_ + 1} {engine}: {work['n'] / elapsed:.1f} sentences/s", file=sys.stderr)
    n = work["n"]
    print(f"{work['what']}; beam {args.num_beams}, batches of {args.batch_size}, {args.device}, export "
          f"{args.quantization}, {args.rounds} rounds (medians)")  # fmt: skip
    rates = {}
    for engine in ENGINES:
        elapsed = statistics.median(seconds[engine])
        rates[engine] = n / elapsed
        tokens = work["tokens"](outputs[engine]) if work["tokens"] else outputs[engine]
        line = (f"{engine:12s} {rates[engine]:8.1f} sentences/s {tokens / elapsed:9.1f} target tokens/s  load "
                f"{mib(work['load_memory'][engine])}, peak {mib(max(peaks[engine]) if peaks[engine] else None)}")
        if work["references"] is not None:
            line += f"  chrF {score(outputs[engine], work['references'])[1]:.2f}"
            if engine == "ctranslate2":
                same = sum(a == b for a, b in zip(outputs["ctranslate2"], outputs["generate"]))
                line += f"  {same}/{n} as generate"
        print(line)
    print(f"speedup: {rates['ctranslate2'] / rates['generate']:.2f}x")


if __name__ == "__main__":
    main()
