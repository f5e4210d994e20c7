"""Session fixtures: the tiny checkpoints of every registry model, and tiny finished runs trained on demand; and
the rule that a test which trains through the CLI is marked `slow` (`make test-fast` leaves those out).

Defined here, once, so that every test module shares one instance of each for the whole session.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from helpers import invoke, write_pairs

from csas_cli.commands.tiny import build_tiny_models

RUN_ROWS_PER_LANGUAGE = 24


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny offline checkpoints of all five registry models, built once per session: key -> directory."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


class TinyRuns:
    """Finished runs for the inference, translate, evaluate and merge tests: the first test that asks for
    (key, qlora) trains it with the real CLI (3 steps, a high learning rate so that the adapter visibly changes the
    translations); later tests reuse the folder."""

    def __init__(self, root: Path, models: dict[str, Path]) -> None:
        self.root = root
        self.models = models
        self.data = write_pairs(root / "pairs.jsonl", RUN_ROWS_PER_LANGUAGE)
        self.runs: dict[tuple[str, bool], Path] = {}
        self.training = False

    def __call__(self, key: str, qlora: bool = False) -> Path:
        """A finished run of `key` (plain LoRA unless `qlora`), trained on first use."""
        run = self.runs.get((key, qlora))
        if run is not None and (run / "finished.json").is_file():
            return run
        out = self.root / ("qlora" if qlora else "lora")
        self.training = True  # the session's shared runs, trained once for every test that asks: not the test's own
        try:
            result = invoke(
                "finetune", "--which", key, "--model-id", self.models[key], "--data", self.data, "--output-dir", out,
                "--max-steps", 3, "--lr", "1e-2", "--batch-size", 4, "--grad-accum", 1, "--disable-tqdm",
                *([] if qlora else ["--no-qlora"]),
            )  # fmt: skip
        finally:
            self.training = False
        assert result.exit_code == 0, result.output
        self.runs[(key, qlora)] = out / key
        return out / key


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> TinyRuns:
    """tiny_runs(key, qlora=False) -> a finished run directory."""
    runs = TinyRuns(tmp_path_factory.mktemp("tiny-runs"), tiny_models)
    SHARED_RUNS.append(runs)
    return runs


SHARED_RUNS: list[TinyRuns] = []


@pytest.fixture(autouse=True)
def trains_through_the_cli_only_when_slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A test not marked `slow` that trains through the CLI (csas finetune, finetune-all, sweep, or the API's
    finetune_model) fails, naming the marker it needs; the shared tiny runs are the session's, not the test's."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    from csas_cli.training.recipe import FinetuneRecipe

    train, trained = FinetuneRecipe.train, []

    def watched(recipe: FinetuneRecipe) -> None:
        callers = {frame.filename.replace("\\", "/") for frame in inspect.stack(0)}
        through_cli = any(name.endswith(("csas_cli/cli.py", "csas_cli/api.py")) for name in callers)
        if through_cli and not any(runs.training for runs in SHARED_RUNS):
            trained.append(recipe)
        return train(recipe)

    monkeypatch.setattr(FinetuneRecipe, "train", watched)
    yield
    if trained:
        pytest.fail(f"{request.node.nodeid} trains through the CLI: mark it @pytest.mark.slow", pytrace=False)
