"""The docs cannot drift: every command README.md and docs/ show is checked against what runs it.

Commands are taken from fenced shell blocks and from inline code that starts with a command
(``aerialseg …``, ``dvc exp run …``, ``make …``). An ``aerialseg`` command must parse with the CLI's
own parser (its options exist, their values pass the options' declarations); every ``-S key=value``
given to ``dvc exp run`` must name a key of ``params.yaml`` and, applied to it, give params that
load; a ``make`` target must be one of the Makefile's; a ``python bench/…`` script must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from aerialseg.cli import build_parser
from aerialseg.core.config.params import load_params
from aerialseg.core.errors import ParamsError

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:bash|sh|shell|console)\s*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:aerialseg|dvc exp run|dvc repro|make) [^`]*)`")
COMMANDS = ("aerialseg", "dvc", "make", "python")


def shell_commands(text: str) -> list[str]:
    """The whole commands of a markdown text's fenced shell blocks (continuations joined, split at
    && ; |, environment variables as 0)."""
    found = []
    for block in FENCE.findall(text):
        for line in re.sub(r"\$\{?\w+\}?", "0", block.replace("\\\n", " ")).splitlines():
            for part in re.split(r"&&|;|\|", line):
                words = shlex.split(part, comments=True)
                if words and words[0] in COMMANDS:
                    found.append(shlex.join(words))
    return found


def inline_fragments(text: str) -> list[str]:
    """Inline code that shows a command or a part of one (not a bare name like `aerialseg predict`, not
    a message it prints like `aerialseg predict: error: …`)."""
    spans = [span.split() for span in INLINE.findall(text)]
    return [" ".join(words) for words in spans if len(words) > 2 and not words[1].endswith(":")]


CASES = sorted({(doc.relative_to(ROOT).as_posix(), command, "whole") for doc in DOCS
                for command in shell_commands(doc.read_text())}
               | {(doc.relative_to(ROOT).as_posix(), command, "fragment") for doc in DOCS
                  for command in inline_fragments(doc.read_text())})


def test_the_docs_show_commands_of_every_kind():
    kinds = {command.split()[0] for _, command, _ in CASES}
    assert {"aerialseg", "dvc", "make"} <= kinds and len(CASES) > 30


def _options_known(words: list[str]) -> str | None:
    """A fragment's options are options of its subcommand (its values are not checked)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if len(words) < 2 or words[1] not in commands:
        return f"no subcommand {words[1:2]}"
    known = commands[words[1]]._option_string_actions
    unknown = [w for w in words[2:] if w.startswith("-") and w.split("=")[0] not in known and not w[1:2].isdigit()]
    return f"unknown options {unknown}" if unknown else None


def _aerialseg(words: list[str]) -> str | None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exit_:
            return None if exit_.code == 0 else err.getvalue().strip()  # 0: --help, --version
    return None


def _overrides(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-S", "--set-param")]


def _dvc(words: list[str], tmp_path: Path) -> str | None:
    """All -S overrides applied together (as DVC applies them), then each sweep's other values."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    sweeps = []
    for override in _overrides(words):
        key, _, value = override.partition("=")
        *parents, last = key.split(".")
        section = params
        for name in parents:
            if not isinstance(section.get(name), dict):
                return f"-S {override}: params.yaml has no section {name}"
            section = section[name]
        if last not in section:
            return f"-S {override}: params.yaml has no key {key} (dvc refuses unknown keys)"
        values = [value] if value.startswith("[") else value.split(",")  # a sweep: -S key=a,b
        section[last] = yaml.safe_load(values[0])
        sweeps += [(section, last, other, override) for other in values[1:]]
    for section, last, other, override in [(None, "", "", "all -S"), *sweeps]:
        if section is not None:
            section[last] = yaml.safe_load(other)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        try:
            load_params(tmp_path / "params.yaml")
        except ParamsError as err:
            return f"{override}: {err}"
    return None


def _make(words: list[str]) -> str | None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    missing = [word for word in words[1:] if not word.startswith("-") and word not in targets]
    return f"no make target {missing}" if missing else None


@pytest.mark.parametrize("doc, command, kind", CASES)
def test_a_documented_command_works_as_written(doc, command, kind, tmp_path):
    words = shlex.split(command)
    if words[0] == "aerialseg":
        problem = _aerialseg(words) if kind == "whole" else _options_known(words)
    elif words[0] == "dvc":
        problem = _dvc(words, tmp_path)
    elif words[0] == "make":
        problem = _make(words)
    else:  # python: the scripts the docs run
        scripts = [word for word in words[1:] if word.endswith(".py")]
        problem = next((f"{s} does not exist" for s in scripts if not (ROOT / s).is_file()), None)
    assert problem is None, f"{doc}: `{command}`: {problem}"


def test_the_checks_catch_what_drifts(tmp_path):
    """The checks above fail on the kinds of drift they exist for."""
    assert _aerialseg(["aerialseg", "predict", "m.keras", "x.tif", "-o", "y.tif", "--windw", "64"])
    assert _aerialseg(["aerialseg", "export", "m.keras", "--format", "onnx", "-o", "m.onnx", "--params", "p.yaml"])
    assert _aerialseg(["aerialseg", "predict", "m.keras", "x.tif", "-o", "y.tif", "--window", "7"])
    assert _dvc(["dvc", "exp", "run", "-S", "resize.scale=0.5"], tmp_path)
    assert _dvc(["dvc", "exp", "run", "-S", "epochs=-1"], tmp_path)
    assert _dvc(["dvc", "exp", "run", "-S", "model.encoder=vgg16"], tmp_path)
    assert _make(["make", "benchmarks"])
    assert _options_known(["aerialseg", "export", "--quantize", "int8", "--calibrate", "x"])
    assert inline_fragments("`aerialseg predict` `aerialseg predict: error: x y` `aerialseg export --gsd 1`") == [
        "aerialseg export --gsd 1"]
    assert shell_commands("```bash\naerialseg predict a \\\n  b -o c  # note\n```\n") == ["aerialseg predict a b -o c"]


def test_aerialseg_says_its_version(capsys):
    from importlib.metadata import version

    from aerialseg.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"aerialseg {version('aerialseg')}"
