"""The pipeline's own use of csas, as its model_finetuning module would write it: run as a script, outside the
package, by test_api.py (`python tests/pipeline_example.py TINY_OPUS_MT_SNAPSHOT WORK_DIR`).

It fine-tunes with keywords, loads the adapter with peft, and checks that a bad data file raises a CsasError whose
message names the file and line. It prints nothing itself: what csas says goes to the `csas` logger, which this
script collects.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from csas_cli import CsasError, finetune_model


def main(model_dir: str, work: str) -> None:
    work_dir = Path(work)
    rows = [
        {"source": f"The stock is in the Cautious Zone in {2000 + i}.", "target": f"Le stock est dans la zone de "
         f"prudence en {2000 + i}.", "source_lang": "en", "pub_number": f"2024/{i:03d}"}
        for i in range(40)
    ]  # fmt: skip
    data = work_dir / "training_data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("csas").addHandler(handler)
    logging.getLogger("csas").setLevel(logging.INFO)

    result = finetune_model(
        which="opus_mt_en_fr", data_path=data, output_directory=work_dir / "outputs", learning_rate=3e-3,
        batch_size=4, grad_accum=1, epochs=1.0, max_source_len=64, max_target_len=64, bf16=False, fp16=False,
        no_qlora=True, max_steps=6, eval_steps=3, model_id=model_dir,
    )  # fmt: skip
    assert result.status == "ok" and result.steps == 6, result
    assert result.adapter == work_dir / "outputs" / "opus_mt_en_fr" / "lora", result.adapter
    assert result.best_adapter is not None and result.eval_loss is not None and result.train_loss is not None
    assert result.plan["learning_rate"] == 3e-3 and result.plan["qlora"] is False
    assert any("adapter saved to" in r.getMessage() for r in records), [r.getMessage() for r in records]

    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    base = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    tuned = PeftModel.from_pretrained(base, str(result.adapter))
    assert any("lora_A" in name for name, _ in tuned.named_parameters())

    bad = work_dir / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + '{"source": "no closing brace"\n', encoding="utf-8")
    try:
        finetune_model("opus_mt_en_fr", bad, work_dir / "outputs-bad", model_id=model_dir, no_qlora=True)
    except CsasError as exc:
        assert str(exc).startswith(f"{bad}:2: "), exc  # the file and the line, as the CLI says them
    else:
        raise AssertionError("a broken data file was accepted")
    assert not (work_dir / "outputs-bad" / "opus_mt_en_fr" / "run.json").exists()


if __name__ == "__main__":
    main(*sys.argv[1:])
