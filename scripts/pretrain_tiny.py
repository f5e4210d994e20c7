#!/usr/bin/env python3
"""Pretrain the four tiny offline base models and write their weights to csas_cli/assets/tiny/.

    python scripts/pretrain_tiny.py [--only BASE ...] [--steps N] [--retrain-spm]

Each base is the architecture `csas_cli.commands.tiny` builds (TINY_DIMS; the family's real config and tokenizer),
trained from its seeded random initialisation with all parameters (full fine-tuning, AdamW, float32, CPU) on
csas_cli/assets/pretrain_pairs.jsonl: general English/French sentences about the subjects of the domain file
sample_pairs.jsonl, from templates disjoint from the domain file's. Teacher forcing as csas trains: decoder inputs are
the labels shifted right from config.decoder_start_token_id; the loss is label-smoothed cross-entropy (0.1), the
objective csas fine-tunes with; dropout PRETRAIN_DROPOUT (the shipped configs have none). Four bases:

    marian-en-fr   opus_mt_en_fr    English -> French only, as on the hub
    marian-fr-en   opus_mt_fr_en    French -> English only
    m2m100         m2m100_418m      both directions, language codes "en"/"fr"
    mbart50        mbart50_mmt_fr, mbart50_mmt_en   both directions, codes "en_XX"/"fr_XX"

The weights are stored as float16 safetensors (`<base>.safetensors`, the tensors save_pretrained writes; tied and
sinusoidal ones are rebuilt on load), which `csas_cli.commands.tiny.build_tiny_model` loads as float32. The script
prints each base's final training loss, its held-out losses on pretraining-style and on domain text, and a few greedy
translations. Seeded, so a rerun on the same machine and library versions retrains the same weights (other CPUs or
versions may differ in the last bits, which is why the weights are committed rather than rebuilt).

Two bases train at once (--jobs 2), one torch thread each (--threads 1), which stays fast when another process
shares the CPU (two threads per process slow down badly then). The committed bases (2000 steps each) took 33 minutes
on two cores that other jobs were also using.

The SentencePiece model (assets/tiny/spm.model) is committed too; --retrain-spm rewrites it from the domain and
pretraining files first, after which every base must be retrained (the weights belong to one vocabulary).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from csas_cli.commands.tiny import (  # noqa: E402
    PRETRAIN_DROPOUT,
    SPM_MODEL,
    TINY_ASSETS,
    base_name,
    build_tiny_model,
    train_sentencepiece,
)
from csas_cli.registry import REGISTRY  # noqa: E402
from csas_cli.shipped import PRETRAIN_PAIRS, SAMPLE_PAIRS  # noqa: E402

BASES = {"marian-en-fr": "opus_mt_en_fr", "marian-fr-en": "opus_mt_fr_en", "m2m100": "m2m100_418m",
         "mbart50": "mbart50_mmt_fr"}  # fmt: skip
"""Base -> the registry key whose architecture and tokenizer it is built with."""

SEED = 20240919
STEPS = 2000
BATCH_SIZE = 32
LEARNING_RATE = 1.5e-3
WARMUP = 200
WEIGHT_DECAY = 0.01
LABEL_SMOOTHING = 0.1
MAX_GRAD_NORM = 1.0
HELD_OUT = 200  # pretraining rows kept out of training for the held-out loss
SAMPLES = 3  # greedy translations printed per base and text


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(English, French) of every row."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        en, fr = (row["source"], row["target"]) if row["source_lang"] == "en" else (row["target"], row["source"])
        pairs.append((en, fr))
    return pairs


def directions(key: str) -> list[tuple[str, str]]:
    """(source, target) languages a base is trained in: one for Marian, both for the multilingual families."""
    spec = REGISTRY[key]
    if spec.family.language_codes is None:
        source = spec.source_langs[0]
        return [(source, "fr" if source == "en" else "en")]
    return [("en", "fr"), ("fr", "en")]


def set_langs(tokenizer, key: str, source: str, target: str) -> None:
    family = REGISTRY[key].family
    if family.language_codes is not None:
        tokenizer.src_lang = family.code(source)
        tokenizer.tgt_lang = family.code(target)


def tokenize(tokenizer, key: str, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) for every pair in every direction of the base."""
    out = []
    for source, target in directions(key):
        set_langs(tokenizer, key, source, target)
        texts = {"en": [en for en, _ in pairs], "fr": [fr for _, fr in pairs]}
        encoded = tokenizer(texts[source], text_target=texts[target], max_length=256, truncation=True)
        out += list(zip(encoded["input_ids"], encoded["labels"]))
    return out


def batches(examples, batch_size: int, rng: random.Random):
    """Endless length-grouped batches: shuffle, sort chunks of 50 batches by length, shuffle the batches."""
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        chunk = 50 * batch_size
        epoch = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: len(examples[i][1]))
            epoch += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
        rng.shuffle(epoch)
        for batch in epoch:
            yield [examples[i] for i in batch]


def collate(batch, pad_id: int, decoder_start_id: int):
    import torch

    src_len = max(len(s) for s, _ in batch)
    tgt_len = max(len(t) for _, t in batch)
    input_ids = torch.full((len(batch), src_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), src_len), dtype=torch.long)
    decoder_input_ids = torch.full((len(batch), tgt_len), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), tgt_len), -100, dtype=torch.long)
    for row, (source, target) in enumerate(batch):
        input_ids[row, : len(source)] = torch.tensor(source)
        attention_mask[row, : len(source)] = 1
        labels[row, : len(target)] = torch.tensor(target)
        decoder_input_ids[row, : len(target)] = torch.tensor([decoder_start_id, *target[:-1]])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
            "labels": labels}  # fmt: skip


def loss_sum(model, batch, label_smoothing: float = LABEL_SMOOTHING):
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=batch["decoder_input_ids"]).logits  # fmt: skip
    return F.cross_entropy(logits.view(-1, logits.size(-1)), batch["labels"].view(-1), ignore_index=-100,
                           label_smoothing=label_smoothing, reduction="sum")  # fmt: skip


def mean_loss(model, examples, pad_id: int, decoder_start_id: int, batch_size: int = 64) -> float:
    """Token-averaged label-smoothed loss, as csas's eval_loss."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][1]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[start : start + batch_size]]
            total += loss_sum(model, collate(batch, pad_id, decoder_start_id)).item()
            tokens += sum(len(t) for _, t in batch)
    model.train()
    return total / tokens


def translate(model, tokenizer, key: str, texts: list[str], source: str, target: str) -> list[str]:
    """Greedy translations; M2M100 and mBART-50 start with the target language code (forced_bos_token_id)."""
    import copy

    import torch

    set_langs(tokenizer, key, source, target)
    generation = copy.deepcopy(model.generation_config)
    family = REGISTRY[key].family
    if family.language_codes is not None:
        generation.forced_bos_token_id = tokenizer.convert_tokens_to_ids(
            f"__{target}__" if family.name == "m2m100" else family.code(target)
        )
    generation.num_beams, generation.do_sample, generation.max_length = 1, False, 96
    model.eval()
    with torch.no_grad():
        encoded = tokenizer(texts, return_tensors="pt", padding=True)
        out = model.generate(**encoded, generation_config=generation)
    model.train()
    return tokenizer.batch_decode(out, skip_special_tokens=True)


def pretrain(base: str, args, work: Path) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, get_cosine_schedule_with_warmup

    key = BASES[base]
    assert base_name(key) == base, (base, key)
    started = time.monotonic()
    path = build_tiny_model(key, work / "random", random_init=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # The shipped configs have no dropout; pretraining uses PRETRAIN_DROPOUT.
    model = AutoModelForSeq2SeqLM.from_pretrained(
        path, dtype=torch.float32, dropout=PRETRAIN_DROPOUT, attention_dropout=PRETRAIN_DROPOUT
    )
    config = model.config
    pad_id, start_id = config.pad_token_id, config.decoder_start_token_id

    pairs = read_pairs(PRETRAIN_PAIRS)
    random.Random(args.seed).shuffle(pairs)
    held_out, train_pairs = pairs[: HELD_OUT], pairs[HELD_OUT :]
    domain = random.Random(args.seed).sample(read_pairs(SAMPLE_PAIRS), HELD_OUT)
    train = tokenize(tokenizer, key, train_pairs)
    held = tokenize(tokenizer, key, held_out)
    dom = tokenize(tokenizer, key, domain)

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-8,
    )  # fmt: skip
    scheduler = get_cosine_schedule_with_warmup(optimizer, WARMUP, args.steps)
    model.train()
    stream = batches(train, args.batch_size, rng)
    window, window_tokens, last = 0.0, 0, float("nan")
    for step in range(1, args.steps + 1):
        batch = next(stream)
        tokens = sum(len(t) for _, t in batch)
        loss = loss_sum(model, collate(batch, pad_id, start_id)) / tokens
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window += loss.item() * tokens
        window_tokens += tokens
        if step % 250 == 0 or step == args.steps:
            last = window / window_tokens
            # How much the source helps: held-out loss with each target's own source vs. another row's source.
            probe = held[:64]
            shuffled = [(probe[(i + 1) % len(probe)][0], target) for i, (_, target) in enumerate(probe)]
            own, other = (mean_loss(model, x, pad_id, start_id) for x in (probe, shuffled))
            print(f"  {base} step {step}/{args.steps} loss {last:.3f} held-out {own:.3f} with other sources "
                  f"{other:.3f} ({time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
            window, window_tokens = 0.0, 0
    seconds = time.monotonic() - started

    # The tensors save_pretrained writes, as float16.
    model.save_pretrained(work / "trained", safe_serialization=True)
    state = load_file(str(work / "trained" / "model.safetensors"))
    half = {name: state[name].to(torch.float16).contiguous() for name in sorted(state)}
    out = TINY_ASSETS / f"{base}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(out), metadata={"format": "pt", "base": base, "steps": str(args.steps)})
    out.chmod(0o644)

    # What a build from the committed float16 weights gives.
    rebuilt = AutoModelForSeq2SeqLM.from_pretrained(build_tiny_model(key, work / "rebuilt"), dtype=torch.float32)
    result = {
        "base": base,
        "seconds": round(seconds, 1),
        "final_train_loss": round(last, 4),
        "held_out_loss": round(mean_loss(rebuilt, held, pad_id, start_id), 4),
        "domain_loss": round(mean_loss(rebuilt, dom, pad_id, start_id), 4),
        "float32_held_out_loss": round(mean_loss(model, held, pad_id, start_id), 4),
        "ln_vocab": round(math.log(config.vocab_size), 4),
        "bytes": out.stat().st_size,
    }
    print(json.dumps(result), flush=True)
    for source, target in directions(key):
        index = {"en": 0, "fr": 1}
        for name, texts in (("pretrain", held_out[:SAMPLES]), ("domain", domain[:SAMPLES])):
            sources = [pair[index[source]] for pair in texts]
            for text, hyp in zip(sources, translate(rebuilt, tokenizer, key, sources, source, target)):
                print(f"  [{name} {source}->{target}] {text}\n      => {hyp}")
    return result


def run_base(base: str, args: argparse.Namespace) -> dict:
    """Pretrain one base in this process (a worker of --jobs), with --threads torch threads."""
    import warnings

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
    with tempfile.TemporaryDirectory() as work:
        return pretrain(base, args, Path(work))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BASES), default=list(BASES))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--jobs", type=int, default=2, help="bases trained at once, one process each (default 2)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per process (default 1: robust on a shared CPU)"
    )
    parser.add_argument("--retrain-spm", action="store_true", help="rewrite assets/tiny/spm.model first")
    args = parser.parse_args(argv)

    if args.retrain_spm or not SPM_MODEL.exists():
        SPM_MODEL.parent.mkdir(parents=True, exist_ok=True)
        SPM_MODEL.write_bytes(train_sentencepiece())
        print(f"wrote {SPM_MODEL} ({SPM_MODEL.stat().st_size} bytes)")
    started = time.monotonic()
    if args.jobs > 1 and len(args.only) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(args.only))) as pool:
            results = pool.starmap(run_base, [(base, args) for base in args.only])
    else:
        results = [run_base(base, args) for base in args.only]
    print(json.dumps(results, indent=1))
    print(f"pretrained {len(results)} bases in {time.monotonic() - started:.0f} s")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
