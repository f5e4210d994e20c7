"""The README's `csas finetune` flag tables, read and compared with the command's real options.

Kept apart from the tests so that a subprocess can run the comparison against another copy of the package (see
test_readme.py): `python -c "import readme_flags; print(readme_flags.differences(text))"`.
"""

from __future__ import annotations

import math
import re
from typing import Any

ROW = re.compile(r"^\|(?P<flags>[^|]*)\|(?P<default>[^|]*)\|")
FLAG = re.compile(r"`(--[a-z0-9-]+)`")


def readme_defaults(text: str) -> dict[str, str]:
    """flag -> its default as the README writes it, from every table whose header is `| flag | default | ... |`
    in the section on fine-tuning one model; a row of several flags gives each its own default, or one for all."""
    section = text.split("## Fine-tuning one model", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    in_table = False
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:2] == ["flag", "default"]:
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        match = ROW.match(line)
        if not in_table or match is None or set(match["flags"].strip()) <= {"-"}:
            continue
        flags = FLAG.findall(match["flags"])
        defaults = [d.strip() for d in match["default"].split(",")] if len(flags) > 1 else [match["default"].strip()]
        if len(defaults) == 1:  # one default for every flag of the row (`--bf16`, `--fp16` | off)
            defaults *= len(flags)
        if len(defaults) != len(flags):
            raise ValueError(f"README row {line!r}: {len(flags)} flags but {len(defaults)} defaults")
        found.update(zip(flags, defaults))
    return found


def cli_defaults(command_name: str = "finetune") -> dict[str, Any]:
    """flag -> the default the real command declares (`required` for a required option), from its click command."""
    import typer

    from csas_cli.cli import app

    command = typer.main.get_command(app).commands[command_name]  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for param in command.params:
        dashed = [o for o in param.opts if o.startswith("--") and "_" not in o]
        if not dashed or dashed[0] == "--help":
            continue
        out[dashed[0]] = "required" if param.required else param.default
    return out


def same(text: str, value: Any) -> bool:
    """Whether the README's `text` says `value`."""
    text = text.strip("`")
    if value == "required" or text == "required":
        return text == value
    if isinstance(value, bool):
        return text == ("on" if value else "off")
    if value is None:
        return text == "none"
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(text), float(value))
        except ValueError:
            return False
    return text == str(value)


def differences(text: str, command_name: str = "finetune") -> list[str]:
    """What the README's tables and the command disagree on: missing flags either way, or another default."""
    documented, declared = readme_defaults(text), cli_defaults(command_name)
    problems = [f"{flag}: not in the README's tables" for flag in declared if flag not in documented]
    problems += [f"{flag}: in the README, but csas {command_name} has no such option" for flag in documented
                 if flag not in declared]  # fmt: skip
    problems += [
        f"{flag}: the README says {documented[flag]}, csas {command_name} says {declared[flag]!r}"
        for flag in declared
        if flag in documented and not same(documented[flag], declared[flag])
    ]
    return problems
