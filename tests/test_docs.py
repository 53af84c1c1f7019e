"""Every command in the README and docs/ runs as written, as far as that can be checked without training, and every
relative link points at a file (and heading) that exists.

A command is a line of a fenced `bash` block (lines ending in `\\` continue; comment lines and `pip install` are
skipped). What is checked, by program:
- `python run_htc.py ARGS` (or `-m run_htc`): `run_htc.parse_args(ARGS)` succeeds;
- `python SCRIPT.py ARGS`, `python -m MODULE ARGS`: the script or module exists and its own argparse parser accepts
  ARGS (the script runs until it parses its arguments, then stops);
- `accelerate launch ... run_htc.py ARGS`: accelerate's launch parser accepts the command and ARGS parse as above;
- `make TARGET`: the Makefile has the target;
- `hf SUBCOMMAND ...`: the subcommand exists and lists every option given;
- `curl`: its `-d` body is JSON with `inputs` (the endpoint it calls needs a Hub account).
Repository paths named in a command, or in a config file it passes, exist; only the benchmarks' data under
`../shared/data` may be absent. Outputs (`outputs/...`) and the user's own files (`train.jsonl`) need not exist.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from accelerate.commands.launch import launch_command_parser

import run_htc

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ABSENT_DATA = "../shared/data/"  # the benchmarks' data sets, outside the repository
PYTHONS = {"python", "python3", ".venv/bin/python", "../../.venv/bin/python"}
# transformers' refusal of bf16 training without a GPU
GPU_ONLY = "doesn't support bf16/gpu"
# Top-level entries of the repository whose paths a command must find; `outputs/` is what runs write.
REPOSITORY_DIRS = {"benchmarks", "docs", "examples", "modeling_htla", "tests"}


@dataclass
class Command:
    page: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}, line {self.line}: {self.text}"


def fenced_blocks(page: Path):
    """(language, [(line number, line)]) for each fenced block of a Markdown page."""
    language, block = None, []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            if language is None:
                language, block = line[3:].strip(), []
            else:
                yield language, block
                language = None
        elif language is not None:
            block.append((number, line))


def bash_commands(page: Path) -> list[Command]:
    commands = []
    for language, block in fenced_blocks(page):
        if language != "bash":
            continue
        start, parts = None, []
        for number, line in block:
            stripped = line.strip()
            if not parts and (not stripped or stripped.startswith("#") or stripped.startswith("pip install")):
                continue
            start = start or number
            parts.append(stripped.removesuffix("\\").strip())
            if not stripped.endswith("\\"):
                commands.append(Command(page, start, " ".join(parts)))
                start, parts = None, []
    return commands


COMMANDS = [command for page in PAGES for command in bash_commands(page)]


class Parsed(Exception):
    """Raised by argparse once a script's parser has accepted its arguments, so the script stops there."""


def script_parses(run, name: str, argv: list[str], monkeypatch) -> str | None:
    """Run a script until its argparse parser has parsed `argv`: None when it accepts them, else its error."""
    real_parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(real_parse_args(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported
            run()
    except Parsed:
        return None
    except SystemExit as exit:
        return f"exit {exit.code}: {stderr.getvalue().strip()}"
    return "the script never parsed its arguments"


def missing_paths(tokens: list[str]) -> list[str]:
    missing = []
    for token in tokens:
        for value in token.split("=", 1)[-1:] if token.startswith("-") else [token]:
            if value.startswith(ABSENT_DATA) or "://" in value:
                continue
            if value.split("/", 1)[0] in REPOSITORY_DIRS | {"run_htc.py", "Makefile"} and not (ROOT / value).exists():
                missing.append(value)
    return missing


def check_run_htc(argv: list[str]) -> list[str]:
    """Problems with `run_htc.py ARGS`: the parse error, or repository paths missing from ARGS or its config file."""
    problems = missing_paths(argv)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")) and (ROOT / argv[0]).exists():
        problems += [f"{argv[0]} names {path}" for path in missing_paths(as_flags(argv))]
    try:
        run_htc.parse_args(argv)
    except ValueError as err:
        if GPU_ONLY not in str(err) or torch.cuda.is_available():
            problems.append(f"run_htc.parse_args rejects it: {err}")
        else:  # the paper's configs train in bf16 on a GPU: everything else must parse on this CPU
            problems += check_run_htc(argv + ["--use_cpu", "true"])  # flags after a file override its values
    except SystemExit as err:
        problems.append(f"run_htc.parse_args rejects it: {err}")
    return problems


def as_flags(argv: list[str]) -> list[str]:
    """`run_htc.py` arguments as flags: a config file's settings, or the flags given."""
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        return run_htc.settings_to_argv(run_htc.read_mapping(argv[0], "arguments", "a mapping"))
    return argv


def check_python(argv: list[str], monkeypatch) -> list[str]:
    if argv[:2] == ["-m", "run_htc"] or argv[:1] == ["run_htc.py"]:
        return check_run_htc(argv[2:] if argv[0] == "-m" else argv[1:])
    if argv[0] == "-m":
        module, args = argv[1], argv[2:]
        if find_spec(module) is None:
            return [f"no module {module}"]
        error = script_parses(lambda: runpy.run_module(module, run_name="__main__"), module, args, monkeypatch)
    else:
        script, args = ROOT / argv[0], argv[1:]
        if not script.is_file():
            return [f"no script {argv[0]}"]
        monkeypatch.syspath_prepend(str(script.parent))  # the benchmarks import their `common` module
        error = script_parses(lambda: runpy.run_path(str(script), run_name="__main__"), argv[0], args, monkeypatch)
    return missing_paths(args) + ([f"its parser rejects the arguments ({error})"] if error else [])


def check_accelerate(argv: list[str]) -> list[str]:
    if argv[:1] != ["launch"]:
        return [f"unknown accelerate command {argv[:1]}"]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = launch_command_parser().parse_args(argv[1:])
    except SystemExit:
        return [f"accelerate launch rejects it: {stderr.getvalue().strip()}"]
    problems = [f"no accelerate config {args.config_file}"] if args.config_file and not (ROOT / args.config_file).is_file() else []
    if args.training_script != "run_htc.py":
        return problems + [f"launches {args.training_script}, not run_htc.py"]
    return problems + check_run_htc(args.training_script_args)


def check_make(argv: list[str]) -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = [arg for arg in argv if "=" not in arg and not arg.startswith("-")]
    return [f"no make target {target}" for target in targets if not re.search(rf"^{re.escape(target)}:", makefile, re.M)]


def check_hf(argv: list[str]) -> list[str]:
    words = argv[: next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))]
    result = subprocess.run([str(Path(sys.executable).with_name("hf")), *words, "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        return [f"`hf {' '.join(words)} --help` fails: {result.stderr.strip()}"]
    return [f"hf {words[0]} has no option {option}" for option in argv
            if option.startswith("--") and not re.search(rf"{re.escape(option)}\b", result.stdout)]


def check_curl(argv: list[str]) -> list[str]:
    body = argv[argv.index("-d") + 1] if "-d" in argv else None
    try:
        return [] if "inputs" in json.loads(body) else ["the request body has no `inputs`"]
    except (TypeError, json.JSONDecodeError) as err:
        return [f"the request body is not JSON ({err})"]


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_command_runs_as_written(command, monkeypatch):
    monkeypatch.chdir(ROOT)
    tokens = shlex.split(command.text, comments=True)
    if tokens[:2] == ["/usr/bin/time", "-v"]:
        tokens = tokens[2:]
    program, argv = tokens[0], tokens[1:]
    if program in PYTHONS:
        problems = check_python(argv, monkeypatch)
    elif program == "accelerate":
        problems = check_accelerate(argv)
    elif program == "make":
        problems = check_make(argv)
    elif program in {"hf", ".venv/bin/hf"}:
        problems = check_hf(argv)
    elif program == "curl":
        problems = check_curl(argv)
    else:
        problems = [f"no check for the program {program}: add one to tests/test_docs.py"]
    assert not problems, f"{command}\n" + "\n".join(problems)


def test_commands_are_found():
    """The extraction finds the commands it should: one per line, continuations joined, comments skipped."""
    found = {(command.page.name, command.text) for command in COMMANDS}
    assert any(page == "README.md" and shlex.split(text, comments=True) == ["make", "demo"] for page, text in found)
    assert any(text.startswith("python run_htc.py --train_file train.jsonl") and text.endswith("--do_predict")
               for _, text in found)
    assert not any(text.startswith(("#", "pip install")) for _, text in found)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    text = re.sub(r"``.*?``|`[^`\n]*`", "", text)
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in heading_anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)
