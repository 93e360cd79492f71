"""OPERATING.md, the operator's reference, against the code, both ways.

Commands: each command's argparse parser is walked (its subcommands and their flags, a flag's
default and choices); OPERATING.md has a section per command and subcommand, titled
"### `prog subcommand`", whose table's first column names each flag (a positional by its name
in capitals). A subcommand or flag added to a parser fails here until it is documented; one
documented that the parser lacks fails too.

Environment variables: the first column of every table headed "variable". What the code reads:
the client's, the ingest's, the dashboards' and the demo's Python (``environ.get("X")``,
``environ["X"]``, ``"X" in environ``, a module's ``*_ENV = "X"``), the gateway's
``${env:X:-default}`` (a variable without a default is documented as required), what
``collector-config/build.sh`` reads, Grafana's ``${X}`` in the provisioning files, and every
``OTEL_USAGE_*`` name in any tracked file. Documented variables the project's code does not read
are those of the libraries the client sends through (the OTLP exporter and its requests
session, the OpenTelemetry SDK): each must occur in their source, or, for the proxy variables,
change where requests sends (checked by calling it). Which of those libraries' variables matter
was decided by reading the code the client sends through (`otel_usage/send/transport.py`): that
direction is not checked.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import subprocess
from pathlib import Path

import pytest
import requests.utils

from dashboards import cli as dashboards_cli
from demo import cli as demo_cli
from ingest import cli as ingest_cli
from otel_usage import cli as client_cli

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "OPERATING.md"
PARSERS = {"otel-usage": client_cli._parser, "otel-usage-ingest": ingest_cli._parser,
           "otel-usage-dashboards": dashboards_cli._parser, "otel-usage-demo": demo_cli._parser}
# The Python that reads the environment on the project's behalf.
PACKAGES = ("otel_usage", "ingest", "dashboards", "demo")
# The modules of the libraries the client sends through that read the documented variables.
SENDING_PATH = ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                "opentelemetry.exporter.otlp.proto.http._common",
                "opentelemetry.sdk.metrics._internal", "requests.sessions")
_NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")


# The reference, read.

def _sections(text: str) -> dict[str, list[str]]:
    """Each heading's text and the lines under it, up to the next heading."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("#").strip(), [])
        else:
            current.append(line)
    return sections


def _rows(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Every table row under its table's first header cell: (header, cells)."""
    rows: list[tuple[str, list[str]]] = []
    header = None
    for line in lines:
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells[0]
        elif not set(cells[0]) <= set("-: "):
            rows.append((header, cells))
    return rows


def _names(cell: str) -> list[str]:
    """The first word of every `code span` of a cell."""
    return [span.split()[0] for span in re.findall(r"`([^`]+)`", cell)]


def documented_commands(text: str) -> dict[str, dict[str, str]]:
    """"prog sub" -> {flag: its row's default cell}, for each "### `prog ...`" section."""
    found: dict[str, dict[str, str]] = {}
    for title, lines in _sections(text).items():
        match = re.fullmatch(r"`([a-z-]+(?: [a-z-]+)?)`", title)
        if match is None or match.group(1).split()[0] not in PARSERS:
            continue
        found[match.group(1)] = {name: cells[1] for header, cells in _rows(lines)
                                 if header == "flag" for name in _names(cells[0])}
    return found


def documented_variables(text: str) -> dict[str, str]:
    """Every variable of a table headed "variable" -> its row's default cell."""
    return {name: cells[1] for lines in _sections(text).values()
            for header, cells in _rows(lines) if header == "variable"
            for name in _names(cells[0])}


# The code, read.

def _arguments(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A parser's own flags (a positional by its name in capitals), without help."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        for name in action.option_strings or [action.dest.upper()]:
            found[name] = action
    return found


def coded_commands() -> dict[str, dict[str, argparse.Action]]:
    """"prog sub" -> its flags, for every subcommand, and "prog" for a command's own flags."""
    found: dict[str, dict[str, argparse.Action]] = {}
    for prog, make in PARSERS.items():
        parser = make()
        if _arguments(parser):
            found[prog] = _arguments(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prog} {name}"] = _arguments(sub)
    return found


def _is_environment(node: ast.expr) -> bool:
    """`os.environ`, `environ`, `env`, `self.environ`: a name that says it is the environment."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return "env" in name.lower()


def python_reads(source: str) -> set[str]:
    """The variables Python source reads from a mapping named as the environment, and the
    values of its `*_ENV` constants."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        key: ast.expr | None = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                and (node.func.attr == "getenv" or (node.func.attr == "get"
                                                    and _is_environment(node.func.value)))):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environment(node.value):
            key = node.slice
        elif (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn)
              and _is_environment(node.comparators[0])):
            key = node.left
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name) and node.targets[0].id.endswith("_ENV")):
            key = node.value
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and _NAME.fullmatch(
                key.value):
            found.add(key.value)
    return found


def gateway_variables() -> dict[str, str | None]:
    """Each `${env:NAME}` of the gateway's configuration -> its default (None: required)."""
    found: dict[str, str | None] = {}
    for path in sorted((ROOT / "collector-config").glob("gateway.yaml*")):
        for name, default in re.findall(r"\$\{env:(\w+)(?::-([^}]*))?\}", path.read_text("utf-8")):
            found[name] = default or None
    return found


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def coded_variables() -> set[str]:
    """Every variable the project's code, scripts and configuration read or name."""
    found = {name for package in PACKAGES for path in (ROOT / package).rglob("*.py")
             for name in python_reads(path.read_text("utf-8"))}
    found |= set(gateway_variables())
    found |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)",
                            (ROOT / "collector-config" / "build.sh").read_text("utf-8")))
    for path in (ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        found |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)\}", path.read_text("utf-8")))
    named: set[str] = set()
    for path in tracked_files():
        if path != REFERENCE:
            named |= set(re.findall(r"\bOTEL_USAGE_[A-Z0-9_]*[A-Z0-9]\b",
                                    path.read_text("utf-8", errors="replace")))
    # `OTEL_USAGE_MSSQL_*` names a family, not a variable.
    return found | {name for name in named if not any(o.startswith(f"{name}_") for o in named)}


def _sending_path_source() -> str:
    return "\n".join(inspect.getsource(importlib.import_module(name)) for name in SENDING_PATH)


def _steers_requests_proxies(name: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether setting `name` changes the proxies requests uses for the default endpoint."""
    from otel_usage.telemetry import DEFAULT_ENDPOINT

    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                     "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTPS_PROXY" if name == "NO_PROXY" else name, "http://proxy.invalid:3128")
    before = requests.utils.get_environ_proxies(DEFAULT_ENDPOINT)
    if name == "NO_PROXY":
        monkeypatch.setenv(name, "stats.printernizer.com")
        return bool(before) and requests.utils.get_environ_proxies(DEFAULT_ENDPOINT) == {}
    return bool(before.get("https") == "http://proxy.invalid:3128")


# The tests.

def test_every_command_and_flag_is_documented_and_every_documented_one_exists() -> None:
    documented = documented_commands(REFERENCE.read_text("utf-8"))
    coded = coded_commands()
    assert sorted(set(coded) - set(documented)) == []
    assert sorted(set(documented) - set(coded)) == []
    assert {command: sorted(set(flags) ^ set(documented[command]))
            for command, flags in coded.items()
            if set(flags) != set(documented[command])} == {}


def test_every_flags_default_and_choices_are_those_of_its_parser() -> None:
    documented = documented_commands(REFERENCE.read_text("utf-8"))
    wrong = []
    for command, flags in coded_commands().items():
        for flag, action in flags.items():
            row = documented.get(command, {}).get(flag)  # a missing one fails the test above
            default = action.default
            if row is not None and default not in (None, False, [], argparse.SUPPRESS) and f"`{default}`" not in row:
                wrong.append(f"{command} {flag}: default {default} not in {row!r}")
    assert wrong == []
    text = REFERENCE.read_text("utf-8")
    lines = {title: "\n".join(body) for title, body in _sections(text).items()}
    missing = [f"{command} {flag}: {choice}"
               for command, flags in coded_commands().items()
               for flag, action in flags.items() for choice in action.choices or ()
               if f"`{choice}`" not in lines.get(f"`{command}`", "")]
    assert missing == []


def test_every_variable_the_code_reads_is_documented() -> None:
    documented = documented_variables(REFERENCE.read_text("utf-8"))
    assert sorted(coded_variables() - set(documented)) == []


def test_every_documented_variable_is_read_by_the_project_or_the_libraries_it_sends_through(
        monkeypatch: pytest.MonkeyPatch) -> None:
    documented = documented_variables(REFERENCE.read_text("utf-8"))
    source = _sending_path_source()
    unread = [name for name in sorted(set(documented) - coded_variables())
              if not re.search(rf"\b{name}\b", source)
              and not _steers_requests_proxies(name, monkeypatch)]
    assert unread == []


def test_the_gateways_defaults_are_documented_and_a_variable_without_one_as_required() -> None:
    documented = documented_variables(REFERENCE.read_text("utf-8"))
    assert {name: documented[name] for name in gateway_variables()} == {
        name: f"`{default}`" if default else "required"
        for name, default in gateway_variables().items()}


def test_python_reads_finds_each_way_of_reading_the_environment_and_nothing_else() -> None:
    source = ('import os\nNOW_ENV = "A_NOW"\nOTHER = "NOT_ME"\nos.environ.get("B_GET")\n'
              'env["C_ITEM"]\nif "D_IN" in self.environ: pass\nos.getenv("E_GETENV")\n'
              'settings.get("NOT_ENV")\nenviron.get(name)\n')
    assert python_reads(source) == {"A_NOW", "B_GET", "C_ITEM", "D_IN", "E_GETENV"}


def test_a_subcommand_added_to_a_parser_is_missing_from_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What an undocumented subcommand does to the comparison: it is named as missing."""
    def grown() -> argparse.ArgumentParser:
        parser = ingest_cli._parser()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.add_parser("undocumented").add_argument("--out")
        return parser

    monkeypatch.setitem(PARSERS, "otel-usage-ingest", grown)
    coded = coded_commands()
    assert set(coded) - set(documented_commands(REFERENCE.read_text("utf-8"))) == {
        "otel-usage-ingest undocumented"}
