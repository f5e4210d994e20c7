"""Exact, safe resume: a run stopped by a signal or killed outright continues to the same adapter.

The runs are marked slow; the pure tests of csas_cli.training.resume (and of the stop request) are not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SAMPLE
from safetensors.torch import load_file

from csas_cli.options import bare_resume_means_auto
from csas_cli.errors import EXIT_CODES, Preempted, SettingsError
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.training.checkpoints import step_dir_name
from csas_cli.training.preemption import StopRequest
from csas_cli.training.resume import choose_checkpoint, plan_differences

KEY = "opus_mt_en_fr"
STOPPED = EXIT_CODES["stopped"]
slow = pytest.mark.slow


def plan_of(**values):
    """The plan of KEY's run with these settings (flat names)."""
    return build_plan(FinetuneSettings.create(which=KEY, **values))


def command(tiny_models, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "csas_cli", "finetune", "--which", KEY, "--model-id", str(tiny_models[KEY]),
        "--data", str(SAMPLE), "--output-dir", str(out), "--max-steps", "16", "--lr", "3e-3", "--batch-size", "4",
        "--save-steps", "4", "--eval-steps", "8", "--logging-steps", "4", "--disable-tqdm", *extra,
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def kill_after_checkpoint(tiny_models, out: Path, step: int) -> None:
    """Start a LoRA run and SIGKILL it as soon as checkpoint `step` exists, before it can finish."""
    proc = start(command(tiny_models, out, "--no-qlora"))
    wait_for(out / KEY / "checkpoints" / step_dir_name(step), proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert not (out / KEY / "finished.json").exists()


def adapter(run_dir: Path, folder: str = "lora") -> dict:
    return load_file(str(run_dir / folder / "adapter_model.safetensors"))


def curve(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r.get("loss", r.get("eval_loss"))) for r in map(json.loads, lines)]


@pytest.fixture(scope="module")
def uninterrupted(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    for extra in ([], ["--no-qlora"]):
        done = run(command(tiny_models, out / ("lora" if extra else "qlora"), *extra))
        assert done.returncode == 0, done.stderr
    return {"qlora": out / "qlora" / KEY, "lora": out / "lora" / KEY}


def assert_same_adapter(resumed: Path, reference: Path, folder: str = "lora") -> None:
    a, b = adapter(resumed, folder), adapter(reference, folder)
    assert a.keys() == b.keys() and a
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, (folder, name)


def assert_same_best(resumed: Path, reference: Path) -> None:
    """The best evaluation survived the interruption: the same step, value and adapter in best/ and finished.json."""
    got, want = (json.loads((run / "finished.json").read_text()) for run in (resumed, reference))
    fields = ("steps", "stopped_early", "best", "best_step", "best_metric")
    assert {k: got[k] for k in fields} == {k: want[k] for k in fields}
    assert got["best_value"] == pytest.approx(want["best_value"], rel=1e-5)
    got, want = (json.loads((run / "best" / "best.json").read_text()) for run in (resumed, reference))
    assert (got["step"], got["metric"]) == (want["step"], want["metric"])
    assert got["value"] == pytest.approx(want["value"], rel=1e-5)
    assert_same_adapter(resumed, reference, "best")


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert_same_adapter(resumed, reference)
    assert json.loads((resumed / "finished.json").read_text())["steps"] == 16
    got, want = curve(resumed), curve(reference)
    assert [step for step, _ in got] == [step for step, _ in want]
    assert [value for _, value in got] == pytest.approx([value for _, value in want], rel=1e-5)
    assert_same_best(resumed, reference)


@slow
@pytest.mark.parametrize("variant", ["qlora", "lora"])
def test_sigterm_checkpoints_then_resume_matches_uninterrupted(tiny_models, tmp_path, uninterrupted, variant):
    extra = [] if variant == "qlora" else ["--no-qlora"]
    proc = start(command(tiny_models, tmp_path, *extra))
    wait_for(tmp_path / KEY / "checkpoints" / step_dir_name(8), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == STOPPED, stderr
    assert "csas: stopped: SIGTERM after step" in stderr and "--resume auto" in stderr and "Traceback" not in stderr
    assert not (tmp_path / KEY / "finished.json").exists()

    resumed = run(command(tiny_models, tmp_path, *extra, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted[variant])
    assert json.loads((tmp_path / KEY / "run.json").read_text())["resumed"][0]["from_step"] >= 8
    finished = json.loads((tmp_path / KEY / "finished.json").read_text())
    # The resumed session alone, and the run's time with the session that wrote the checkpoint it resumed from.
    assert finished["seconds_total"] > finished["seconds"] > 0


@slow
def test_ctrl_c_checkpoints_exits_130_then_resume_matches_uninterrupted(tiny_models, tmp_path, uninterrupted):
    """Ctrl-C is a stop request like SIGTERM: the step finishes, a checkpoint is written, exit 130 with the hint."""
    proc = start(command(tiny_models, tmp_path, "--no-qlora"))
    wait_for(tmp_path / KEY / "checkpoints" / step_dir_name(8), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_CODES["interrupted"], stderr
    assert "csas: Ctrl-C: stopping after this step and writing a checkpoint (Ctrl-C again aborts at once)" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("csas: interrupted: SIGINT after step ") and last.endswith(
        "written; run the same command with --resume auto"), last  # fmt: skip
    assert "Traceback" not in stderr and not (tmp_path / KEY / "finished.json").exists()
    stopped_at = int(last.split("after step ")[1].split()[0])
    assert (tmp_path / KEY / "checkpoints" / step_dir_name(stopped_at)).is_dir()

    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {stopped_at})" in resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted["lora"])


@slow
def test_sigkill_between_checkpoints_then_resume_matches_uninterrupted(tiny_models, tmp_path, uninterrupted):
    kill_after_checkpoint(tiny_models, tmp_path, 8)
    # A checkpoint interrupted half-way through its save is left as a .tmp folder and must be ignored.
    (tmp_path / KEY / "checkpoints" / (step_dir_name(12) + ".tmp")).mkdir(exist_ok=True)
    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted["lora"])


@slow
def test_damaged_newest_checkpoint_is_skipped_with_a_warning(tiny_models, tmp_path, uninterrupted):
    kill_after_checkpoint(tiny_models, tmp_path, 8)
    newest = sorted((tmp_path / KEY / "checkpoints").glob("step-*"))[-1]
    (newest / "optimizer.pt").unlink()
    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping damaged checkpoint" in resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted["lora"])


@slow
def test_resume_refuses_other_hyperparameters(tiny_models, tmp_path):
    kill_after_checkpoint(tiny_models, tmp_path, 4)
    changed = command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto")
    changed[changed.index("--lr") + 1] = "1e-3"
    done = run(changed)
    assert done.returncode == 2
    assert "--resume" in done.stderr and "learning_rate 0.003 -> 0.001" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    unchanged = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto", "--save-steps", "5"))
    assert unchanged.returncode == 0, unchanged.stderr  # intervals may change


@slow
def test_resume_of_a_finished_run_is_a_no_op(uninterrupted, tiny_models):
    before = (uninterrupted["lora"] / "finished.json").read_text()
    done = run(command(tiny_models, uninterrupted["lora"].parent, "--no-qlora", "--resume", "auto"))
    assert done.returncode == 0 and "nothing to resume" in done.stderr
    assert (uninterrupted["lora"] / "finished.json").read_text() == before


def test_plan_differences_are_named():
    plan = plan_of()
    recorded = {"plan": plan.to_dict(), "data_sha256": "abc"}
    assert plan_differences(recorded, plan, "abc") == []
    other = plan_of(lora_r=8, eval_steps=7)
    assert plan_differences(recorded, other, "abd") == [
        "lora_r 32 -> 8", f"data file content changed ({plan.corpus.data})"
    ]  # fmt: skip


def test_other_sample_caps_refuse_a_resume():
    plan = plan_of(max_train_samples=100)
    recorded = {"plan": plan.to_dict(), "data_sha256": "abc"}
    other = plan_of(max_train_samples=50, max_eval_samples=5)
    assert plan_differences(recorded, other, "abc") == ["max_train_samples 100 -> 50", "max_eval_samples None -> 5"]
    # A run.json written before the caps existed has neither key: resuming it without caps is fine.
    before_caps = plan_of().to_dict()
    del before_caps["max_train_samples"], before_caps["max_eval_samples"]
    old = {"plan": before_caps, "data_sha256": "abc"}
    assert plan_differences(old, plan_of(), "abc") == []


def test_another_batching_refuses_a_resume():
    fixed = plan_of()
    budget = plan_of(max_tokens=2048)
    recorded = {"plan": fixed.to_dict(), "data_sha256": "abc"}
    assert plan_differences(recorded, budget, "abc") == ["max_tokens None -> 2048", "global_batch 16 -> None"]
    # A run.json from before --max-tokens existed trained fixed batches: resuming it without the flag is fine.
    del recorded["plan"]["max_tokens"]
    assert plan_differences(recorded, fixed, "abc") == []


def test_choose_checkpoint(tmp_path):
    assert choose_checkpoint(tmp_path, "auto", warn=print) is None
    with pytest.raises(SettingsError, match="incomplete checkpoint"):
        choose_checkpoint(tmp_path, str(tmp_path / "checkpoints" / "step-000004"), warn=print)


def test_bare_resume_means_auto():
    assert bare_resume_means_auto(["finetune", "--resume"]) == ["finetune", "--resume", "auto"]
    assert bare_resume_means_auto(["--resume", "--which", "x"]) == ["--resume", "auto", "--which", "x"]
    assert bare_resume_means_auto(["--resume", "auto"]) == ["--resume", "auto"]
    assert bare_resume_means_auto(["--resume", "runs/x/checkpoints/step-000004"])[-1].endswith("step-000004")


def test_resume_and_overwrite_exclude_each_other():
    with pytest.raises(SettingsError, match="--resume and --overwrite"):
        FinetuneSettings.create(which=KEY, resume="auto", overwrite=True)


# --- evaluation during training: what must match, and the best evaluation across a resume ----------------------


def test_chrf_settings_must_match_only_when_a_run_scores_chrf():
    loss_only = plan_of()
    recorded = {"plan": loss_only.to_dict(), "data_sha256": "abc"}
    # --patience and the chrF sample size of a run that scores no chrF change no value it compares.
    assert plan_differences(recorded, plan_of(patience=3, eval_chrf_samples=9), "abc") == []
    with_chrf = plan_of(eval_chrf=True)
    assert plan_differences(recorded, with_chrf, "abc") == ["eval_chrf False -> True"]
    recorded = {"plan": with_chrf.to_dict(), "data_sha256": "abc"}
    other_sample = plan_of(eval_chrf=True, eval_chrf_samples=50, eval_num_beams=4)
    assert plan_differences(recorded, other_sample, "abc") == ["eval_chrf_samples 200 -> 50", "eval_num_beams 1 -> 4"]
    assert plan_differences(recorded, plan_of(eval_chrf=True, eval_max_len=64), "abc") == [
        "eval_max_len None -> 64"]  # fmt: skip
    assert plan_differences(recorded, loss_only, "abc") == ["eval_chrf True -> False"]
    # A run.json written before evaluation during training existed has none of the keys.
    before = {k: v for k, v in loss_only.to_dict().items() if k not in ("eval_chrf", "eval_chrf_samples",
                                                                           "eval_num_beams", "eval_max_len",
                                                                           "patience")}  # fmt: skip
    assert plan_differences({"plan": before, "data_sha256": "abc"}, loss_only, "abc") == []


SCRIPTED_LOSSES = {2: 5.0, 4: 3.0, 6: 4.0, 8: 4.5, 10: 1.0, 12: 1.0}
"""A validation loss by step: best at 4, then two evaluations without improvement (6, 8) end a --patience 2 run."""


def scripted_recipe(tiny_models, out: Path, resume_from: Path | None = None, stop_after: int | None = None):
    """A real recipe whose evaluations return SCRIPTED_LOSSES; `stop_after`: SIGTERM arrives during that step."""
    import signal as signals

    from csas_cli.training.run import build_recipe, prepare_run

    settings = FinetuneSettings.create(
        which=KEY, model_id=str(tiny_models[KEY]), data=SAMPLE, output_dir=out, qlora=False, max_steps=12,
        eval_steps=2, save_steps=100, logging_steps=2, patience=2, learning_rate=3e-3, batch_size=4,
        disable_tqdm=True,
    )  # fmt: skip
    recipe = build_recipe(prepare_run(settings, environ={}), resume_from=resume_from)
    recipe.evaluator.loss = lambda loss_sum, device: SCRIPTED_LOSSES[recipe.steps_done]  # type: ignore[method-assign]
    if stop_after is not None:
        real_step = recipe.optimizer_step

        def step_then_signal(*args, **kwargs):
            if recipe.steps_done == stop_after - 1:
                assert signals.getsignal(signals.SIGTERM) not in (signals.SIG_DFL, None)  # the handler is installed
                os.kill(os.getpid(), signals.SIGTERM)
            return real_step(*args, **kwargs)

        recipe.optimizer_step = step_then_signal  # type: ignore[method-assign]
    return recipe


def run_recipe(recipe) -> None:
    try:
        recipe.setup()
        recipe.train()
        recipe.finish()
    finally:
        recipe.cleanup()


@slow
def test_resume_keeps_the_best_evaluation_and_the_patience_count(tiny_models, tmp_path):
    reference = tmp_path / "reference"
    run_recipe(scripted_recipe(tiny_models, reference))
    finished = json.loads((reference / KEY / "finished.json").read_text())
    fields = ("steps", "stopped_early", "best_step", "best_value")
    assert tuple(finished[k] for k in fields) == (8, True, 4, 3.0)

    stopped = tmp_path / "stopped"
    with pytest.raises(Preempted, match="after step 6 of 12"):
        run_recipe(scripted_recipe(tiny_models, stopped, stop_after=6))
    checkpoint = stopped / KEY / "checkpoints" / step_dir_name(6)
    assert json.loads((checkpoint / "trainer_state.json").read_text())["best"] == {
        "metric": "eval_loss", "step": 4, "value": 3.0, "bad_evaluations": 1,
    }  # fmt: skip
    # As if an evaluation after the checkpoint had replaced best/ before the process was killed: the resumed run
    # must compare against, and keep, the best that the checkpoint knew.
    (stopped / KEY / "best" / "best.json").write_text(json.dumps({"step": 7, "metric": "eval_loss", "value": 0.1}))
    (stopped / KEY / "best" / "adapter_model.safetensors").unlink()

    run_recipe(scripted_recipe(tiny_models, stopped, resume_from=checkpoint))
    # Restored, the count reaches --patience at step 8; a fresh tracker would have taken step 8 as its best.
    assert_same_best(stopped / KEY, reference / KEY)
    assert_same_adapter(stopped / KEY, reference / KEY)
    assert not list((stopped / KEY).glob("best.*"))


def chrf_recipe(tiny_models, out: Path, resume_from: Path | None = None):
    """A real recipe scoring chrF every 4 of 8 steps, in two batches of 4 validation rows each time."""
    from csas_cli.training.run import build_recipe, prepare_run

    settings = FinetuneSettings.create(
        which=KEY, model_id=str(tiny_models[KEY]), data=SAMPLE, output_dir=out, qlora=False, max_steps=8,
        eval_steps=4, save_steps=100, logging_steps=2, learning_rate=3e-3, batch_size=4, eval_chrf=True,
        eval_chrf_samples=8, disable_tqdm=True,
    )  # fmt: skip
    return build_recipe(prepare_run(settings, environ={}), resume_from=resume_from)


@slow
@pytest.mark.parametrize("signal_name,at_call,step", [("SIGTERM", 1, 4), ("SIGINT", 3, 8)])
def test_a_signal_during_an_evaluation_stops_it_and_a_resume_evaluates_again(
    tiny_models, tmp_path, monkeypatch, capfd, signal_name, at_call, step
):
    """The stop comes during the chrF translations after step 4 (a periodic evaluation) or step 8 (the last): the
    evaluation is abandoned after its first batch, the checkpoint of the step is written, and the resumed run, which
    evaluates again, ends as the uninterrupted one with each evaluation logged once."""
    from csas_cli.training import evaluation

    reference = tmp_path / "reference"
    run_recipe(chrf_recipe(tiny_models, reference))

    real, calls = evaluation.translate_encoded, []

    def translate_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            os.kill(os.getpid(), getattr(signal, signal_name))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "translate_encoded", translate_then_signal)
    stopped = tmp_path / "stopped"
    with pytest.raises(Preempted, match=f"{signal_name} during the evaluation after step {step} of 8; checkpoint "
                       f"checkpoints/{step_dir_name(step)} written") as caught:  # fmt: skip
        run_recipe(chrf_recipe(tiny_models, stopped))
    assert caught.value.exit_code == (EXIT_CODES["interrupted"] if signal_name == "SIGINT" else STOPPED)
    assert len(calls) == at_call  # the batch under way ended, the second of that evaluation never started
    if signal_name == "SIGINT":
        assert "csas: Ctrl-C: stopping this evaluation and writing a checkpoint" in capfd.readouterr().err
    checkpoint = stopped / KEY / "checkpoints" / step_dir_name(step)
    assert json.loads((checkpoint / "trainer_state.json").read_text())["pending_evaluation"]["epoch"] == 0
    assert [r["step"] for r in map(json.loads, (stopped / KEY / "metrics.jsonl").read_text().splitlines())
            if "eval_loss" in r] == ([] if step == 4 else [4])  # fmt: skip

    monkeypatch.setattr(evaluation, "translate_encoded", real)
    resumed = chrf_recipe(tiny_models, stopped, resume_from=checkpoint)
    run_recipe(resumed)
    records = [json.loads(line) for line in (stopped / KEY / "metrics.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (reference / KEY / "metrics.jsonl").read_text().splitlines()]
    keys = lambda rs: [(r["step"], "eval_loss" in r) for r in rs]  # noqa: E731
    assert keys(records) == keys(want) and keys(want).count((step, True)) == 1
    for got, expected in zip(records, want):
        assert got.keys() == expected.keys()
        for name in {"loss", "eval_loss", "eval_chrf"} & got.keys():
            assert got[name] == pytest.approx(expected[name], rel=1e-5), (got, expected)
    assert_same_adapter(stopped / KEY, reference / KEY)
    assert_same_best(stopped / KEY, reference / KEY)


@slow
def test_a_signal_while_the_model_loads_stops_before_the_first_step(tiny_models, tmp_path, uninterrupted):
    # The signal arrives inside load_model, before the first step could run.
    script = (
        "import os, signal, sys\n"
        "import csas_cli.modeling as modeling\n"
        "real = modeling.load_model\n"
        "def load_model(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*args, **kwargs)\n"
        "modeling.load_model = load_model\n"
        "from csas_cli.cli import main\n"
        "sys.argv[0] = 'csas'\n"
        "main()\n"
    )
    args = command(tiny_models, tmp_path, "--no-qlora")[3:]  # from `finetune` on
    stopped = run([sys.executable, "-c", script, *args])
    assert stopped.returncode == STOPPED, stopped.stderr
    assert "csas: stopped: SIGTERM before step 1 of 16; no checkpoint written; run the same command with --resume auto" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    run_dir = tmp_path / KEY
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "finished.json").exists()

    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" not in resumed.stderr  # nothing to resume from: a clean fresh start
    assert "resumed" not in json.loads((run_dir / "run.json").read_text())
    assert_same_run(run_dir, uninterrupted["lora"])


def test_stop_requests_nest_and_restore_the_previous_handlers():
    import signal as signals

    before = signals.getsignal(signals.SIGTERM)
    stop = StopRequest()
    with stop:
        installed = signals.getsignal(signals.SIGTERM)
        assert installed != before
        with stop:  # the training loop enters the request run_finetune installed
            assert signals.getsignal(signals.SIGTERM) == installed
        assert signals.getsignal(signals.SIGTERM) == installed
    assert signals.getsignal(signals.SIGTERM) == before


def test_a_second_ctrl_c_aborts_at_once_and_the_first_names_the_stop(capsys):
    stop = StopRequest()
    with stop:
        stop.training = True  # the loop is running steps
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop.requested and stop.signal_name == "SIGINT"
        assert "Ctrl-C again aborts at once" in capsys.readouterr().err
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun's forwarded SIGTERM does not rename the stop
        time.sleep(0.01)
        assert stop.signal_name == "SIGINT"
        error = stop.stopped("after step 3 of 16; checkpoint written")
        assert (type(error).__name__, error.exit_code, error.label) == ("Interrupted", 130, "interrupted")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_scheduler_stop_is_preempted_with_exit_75():
    stop = StopRequest()
    with stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    error = stop.stopped("before step 1 of 16; no checkpoint written")
    assert type(error) is Preempted and error.exit_code == STOPPED


def test_ctrl_c_without_a_step_to_finish_aborts_at_once():
    """While the model loads (or the adapter is saved) there is no step to finish: Ctrl-C interrupts."""
    with StopRequest() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert stop.signal_name is None


def test_ctrl_c_after_a_scheduler_signal_still_aborts_on_the_second(capsys):
    stop = StopRequest()
    with stop:
        stop.training = True
        os.kill(os.getpid(), signal.SIGUSR1)  # SLURM's warning: stop after this step
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C waits for the step, like the warning
        time.sleep(0.01)
        assert "Ctrl-C again aborts at once" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert type(stop.stopped("after step 2 of 16")) is Preempted  # the job was told to stop: exit 75


def test_a_run_recorded_before_term_annotation_existed_still_resumes():
    plan = plan_of()
    recorded = {"plan": {k: v for k, v in plan.to_dict().items() if k != "term_annotation"}, "data_sha256": "x"}
    assert plan_differences(recorded, plan, "x") == []
    recorded["plan"]["term_annotation"] = 0.5
    assert plan_differences(recorded, plan, "x") == ["term_annotation 0.5 -> 0.0"]
