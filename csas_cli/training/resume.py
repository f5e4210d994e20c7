"""Resuming a run: which checkpoint to continue from, and whether the run asked for is the run on disk.

A resumed run must see the same data, model and hyperparameters as the run that wrote the checkpoint, or its result
is neither run; the intervals (logging, evaluation, checkpoints) and the progress display may change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import SettingsError
from ..layout import CHECKPOINTS_DIR, RUN_JSON
from ..fields import MATCH, REQUIRED, WITH_CHRF, WITH_GLOSSARY
from ..plan import Plan, jsonable, resume_keys
from ..progress import counted
from ..settings import FIELDS
from .checkpoints import CheckpointError, newest_usable_checkpoint, read_state

MUST_MATCH = resume_keys(MATCH)
"""Plan fields a resumed run must share with the run on disk: they decide the weights after every step (each
field says so: fields.setting's and plan.resolved's `resume`).

`patience` and `eval_steps` are not among them: they decide when the run evaluates and stops, not what any step
computes, and the count of evaluations without improvement comes back from the checkpoint, so a changed value
applies to the run's history from there on."""

CHRF_MUST_MATCH = resume_keys(WITH_CHRF)
"""Plan fields that must match when either run scores chrF. They leave the weights alone (generation runs in eval
mode and draws no random numbers), but they define what an eval_chrf value means, and the best checkpoint and
--patience compare values from before the interruption with values after it."""

GLOSSARY_MUST_MATCH = resume_keys(WITH_GLOSSARY)
"""Plan fields that must match when the glossary counts: it decides the training sources under --term-annotation,
and what eval_term_success means."""

RECORDED_BEFORE = {name: jsonable(FIELDS[name].default)
                   for name in (*MUST_MATCH, *CHRF_MUST_MATCH, *GLOSSARY_MUST_MATCH)
                   if name in FIELDS and FIELDS[name].metadata["record"] and FIELDS[name].default is not REQUIRED}
"""What a run.json without a setting ran with (it was recorded before the setting existed): the setting's
default."""


def plan_differences(
    recorded: dict[str, Any], plan: Plan, data_sha256: str, eval_data_sha256: str | None = None
) -> list[str]:
    """Human-readable differences between the run.json on disk and the plan asked for now (pure)."""
    now = plan.to_dict()
    before = recorded.get("plan", {})
    # A run.json from before --eval-chrf existed has no such key: it scored no chrF, like a plan without the flag.
    keys = MUST_MATCH + (CHRF_MUST_MATCH if now["eval_chrf"] or before.get("eval_chrf") else ())
    if now["term_annotation"] or before.get("term_annotation") or now["eval_chrf"] or before.get("eval_chrf"):
        keys += GLOSSARY_MUST_MATCH
    unused = {"val_ratio"} if now.get("eval_data") and before.get("eval_data") else set()
    # --revision COMMIT names the commit the run's branch or tag resolved to when it started: the same weights.
    same_commit = now.get("revision") is not None and now.get("revision") == recorded.get("base_commit")
    unused |= {"revision"} if same_commit else set()
    # A step larger than the training split is recorded clamped to it; a run.json from before the clamp has the
    # step as asked, which is the same training.
    rows = now.get("train_rows")
    clamped = now["global_batch"] is not None and now["global_batch"] == rows and (before.get("global_batch") or 0) > rows
    unused |= {"global_batch"} if clamped else set()
    # A run.json from before a setting existed ran with its default.
    before = {**RECORDED_BEFORE, **before}
    diffs = [f"{key} {before.get(key)!r} -> {now[key]!r}" for key in keys
             if key not in unused and before.get(key) != now[key]]  # fmt: skip
    if diffs and before.get("config") is not None and before.get("config_sha256") != now.get("config_sha256"):
        diffs.append(f"the settings file {before['config']} changed since")  # where the differences may come from
    if recorded.get("data_sha256") != data_sha256:
        diffs.append(f"data file content changed ({plan.corpus.data})")
    recorded_eval = recorded.get("eval_data_sha256")
    if recorded_eval != eval_data_sha256:
        if recorded_eval and eval_data_sha256:
            diffs.append(f"validation file content changed ({plan.corpus.eval_data})")
        else:
            diffs.append(f"eval_data {before.get('eval_data')!r} -> {now['eval_data']!r}")
    return diffs


def check_resumable(
    run_dir: Path, plan: Plan, data_sha256: str, eval_data_sha256: str | None = None, *, finished: bool = False
) -> None:
    """The run on disk (`finished` or not) was trained with `plan`'s settings and data, or --resume is refused
    naming every difference."""
    try:
        recorded = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"--resume: cannot read {run_dir / RUN_JSON} ({exc}); pass --overwrite to start over") from None
    diffs = plan_differences(recorded, plan, data_sha256, eval_data_sha256)
    if not diffs:
        return
    if finished:
        raise SettingsError(
            f"{run_dir} holds a finished run trained with other settings ({'; '.join(diffs)}); pass "
            "--overwrite to train it again with these, or another --output-dir to keep it"
        )
    trained_by = recorded.get("plan", {}).get("world_size")
    if isinstance(trained_by, int) and trained_by != plan.resolved.world_size:
        raise SettingsError(other_world_size(run_dir, trained_by, plan.resolved.world_size, diffs))
    raise SettingsError(
        f"--resume: {run_dir} was trained with other settings ({'; '.join(diffs)}); "
        "rerun with the original settings, or pass --overwrite to start over"
    )


def other_world_size(run_dir: Path, trained_by: int, launched: int, diffs: list[str]) -> str:
    """The refusal of a resume on another number of processes (pure). A step's pairs are shared out by rank and
    each process draws its dropout masks from its rank, so only the same world size continues the run exactly; and
    another one changes the pairs a step takes unless --grad-accum changes too, which is another run."""
    others = [d for d in diffs if not d.startswith(("world_size ", "global_batch "))]
    also = f", with the original settings ({'; '.join(others)})" if others else ""
    return (
        f"--resume: {run_dir} was trained by {counted(trained_by, 'process', 'processes')} (WORLD_SIZE) and this "
        f"launch has {launched}; a run resumes only on as many processes as it started with: launch it with "
        f"{trained_by} (torchrun --nnodes N --nproc-per-node G, N x G = {trained_by}){also}, or pass --overwrite to "
        "start over"
    )


def choose_checkpoint(run_dir: Path, resume: str, warn: Callable[[str], None]) -> Path | None:
    """`--resume auto`: the newest usable checkpoint (None when there is none yet); `--resume PATH`: that one."""
    if resume == "auto":
        return newest_usable_checkpoint(run_dir / CHECKPOINTS_DIR, warn)
    path = Path(resume)
    try:
        read_state(path)
    except CheckpointError as exc:
        raise SettingsError(f"--resume: {exc}") from None
    if path.resolve().parent != (run_dir / CHECKPOINTS_DIR).resolve():
        raise SettingsError(f"--resume: {path} is not a checkpoint of {run_dir}")
    return path
