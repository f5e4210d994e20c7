"""`csas average RUN`: the mean of a run's last checkpoints (or of the steps named), written as one adapter that
translate, evaluate, compare, merge and export take like `lora/` (training/averaging.py says how it is exact)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..errors import ModelError, OutputError, SettingsError
from ..layout import AVERAGED_DIR, RUN_JSON
from ..progress import say as progress_say
from ..training.averaging import average_run, choose, run_adapters


def parse_steps(value: str | None) -> list[int] | None:
    """--steps S,S,...: optimizer steps, comma-separated."""
    if value is None:
        return None
    try:
        steps = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise SettingsError(f"--steps: expected steps like 800,900,1000, got {value!r}") from None
    if not steps or min(steps) < 1:
        raise SettingsError(f"--steps: expected steps like 800,900,1000, got {value!r}")
    return steps


def run(run_dir: Path, *, last: int | None = None, steps: str | None = None, output: Path | None = None,
        overwrite: bool = False, say: Callable[[str], None] = progress_say) -> Path:  # fmt: skip
    """Average, write, and say what was averaged and how to use it; the averaged adapter's folder."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise ModelError(f"RUN {run_dir}: not a csas run directory (no {RUN_JSON})")
    chosen = choose(run_adapters(run_dir), last, parse_steps(steps))
    out = Path(output) if output is not None else run_dir / AVERAGED_DIR
    check_output(out, run_dir, overwrite)
    record = average_run(run_dir, out, chosen)
    say(f"averaged {describe(record['steps'])} of {run_dir} into {out} (a LoRA of rank {record['rank']}); use "
        f"--model {out}")  # fmt: skip
    return out


def describe(steps: Sequence[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {', '.join(map(str, steps))}"


def check_output(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse to replace what the user did not ask to replace: a non-empty folder without --overwrite, and never a
    run's own lora/, best/ or checkpoints."""
    resolved = out.resolve()
    protected = [run_dir / name for name in ("lora", "best", "checkpoints")]
    if resolved == run_dir.resolve() or any(resolved == p.resolve() or p.resolve() in resolved.parents
                                            for p in protected):  # fmt: skip
        raise OutputError(f"--output {out}: one of the run's own folders; choose another")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--output {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"--output {out}: exists and is not empty; pass --overwrite to replace it")


__all__ = ["parse_steps", "run"]
