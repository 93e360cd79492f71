"""The client's rooms follow the data path and no room reaches back; outside code (the demo, the
benchmark) uses only the public API; the READMEs name every folder and module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otel_usage"

# What each room of the client may import of the client (besides itself). The shared contract
# and the time modules import nothing; recording, the report and sending each see only the
# rooms before them; what the user sees comes next, and the facade wires them all; the entry
# points above the facade (the command, the page, Printernizer's switch-over) come last.
SHARED = {"catalog", "clock", "weeks", "errors", "log"}
ALLOWED = {
    "catalog": set(), "clock": set(), "weeks": {"clock"}, "errors": set(), "log": set(),
    "store": {"errors", "weeks"},
    "consent": {"catalog", "errors", "log", "store"},
    "record": SHARED | {"store", "consent"},
    "report": SHARED | {"store"},
    "send": SHARED | {"store", "consent", "report"},
    "user": SHARED | {"store", "consent", "report"},
    "telemetry": SHARED | {"store", "consent", "record", "report", "send", "user"},
    "testing": SHARED | {"store", "report", "telemetry"},
    "cli": SHARED | {"consent", "telemetry", "user"},
    "web": SHARED | {"consent", "telemetry", "user"},
    # Printernizer's switch-over: its old service, API and data, over the facade (its API
    # answers and refuses requests as the page's does).
    "printernizer": SHARED | {"consent", "store", "telemetry", "web"},
    "__init__": SHARED | {"consent", "report", "telemetry"},
}
PUBLIC_MODULES = {"otel_usage", "otel_usage.catalog", "otel_usage.clock", "otel_usage.weeks",
                  "otel_usage.testing", "otel_usage.web"}


def module_name(path: Path) -> str:
    """`otel_usage/send/retry.py` -> `otel_usage.send.retry` (a package's `__init__`: itself)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = (".".join(base + ([node.module] if node.module else [])) if node.level
                      else node.module or "")
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}"
                found.add(candidate if _is_module(candidate) else prefix)
    return found


def room(module: str) -> str:
    """The room of a module of the client: `otel_usage.send.retry` -> `send`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_room_of_the_client_reaches_back() -> None:
    wrong = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path in PACKAGE.rglob("*.py")
        for module in imported_modules(path)
        if module.startswith("otel_usage.")
        and room(module) != room(module_name(path))
        and room(module) not in ALLOWED[room(module_name(path))])
    assert wrong == []


def room_imports() -> dict[str, set[str]]:
    """Each room of the client and the other rooms its modules import."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        own = room(module_name(path))
        found.setdefault(own, set()).update(
            room(module) for module in imported_modules(path)
            if module.startswith("otel_usage.") and room(module) != own)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of rooms that import each other, directly or through others (the strongly
    connected components of more than one room, or of one that imports itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_cycles_finds_rooms_that_import_each_other_directly_or_through_others() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"},
             "g": {"g"}, "h": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"], ["g"]]


def test_no_two_rooms_of_the_client_import_each_other() -> None:
    """Neither directly nor through other rooms: the layout is a line, read in one direction."""
    assert cycles(room_imports()) == []
    assert cycles(ALLOWED) == []  # and the table of what may be imported allows none either


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def facade_private_names() -> set[str]:
    """Every private name of UsageTelemetry: its methods, and the attributes it sets on self."""
    tree = ast.parse((PACKAGE / "telemetry.py").read_text(encoding="utf-8"))
    (facade,) = [node for node in tree.body
                 if isinstance(node, ast.ClassDef) and node.name == "UsageTelemetry"]
    names = {node.name for node in facade.body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name)}
    names |= {node.attr for node in ast.walk(facade)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "self" and _private(node.attr)}
    return names


def private_accesses(source: str, names: set[str]) -> list[str]:
    """Each ``x._name`` (x not ``self`` or ``cls``) and ``getattr(x, "_name")`` of a name in
    `names`, as ``line: name``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in names and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in names):
            found.append((node.lineno, str(node.args[1].value)))
    return [f"{line}: {name}" for line, name in sorted(found)]


def test_private_accesses_finds_another_objects_private_names_only() -> None:
    source = ("usage._wake_uploads()\nself._lock\nservice.usage._store_problem(e)\n"
              "getattr(usage, '_stopped')\nusage.store.read()\nother._unrelated\n")
    assert private_accesses(source, {"_wake_uploads", "_lock", "_store_problem", "_stopped"}) == [
        "1: _wake_uploads", "3: _store_problem", "4: _stopped"]


def test_no_code_outside_the_facade_calls_its_private_methods_or_attributes() -> None:
    """The command, the page, the switch-over, the examples, the demo and the benchmarks use
    UsageTelemetry's public methods; what they need of it is public."""
    names = facade_private_names()
    assert {"_flush_before_change", "_exporter_seen", "_wake_uploads", "_provider"} <= names
    outside = [path for folder in ("otel_usage", "examples", "demo", "benchmarks")
               for path in sorted((ROOT / folder).rglob("*.py"))
               if path != PACKAGE / "telemetry.py"]
    found = [f"{path.relative_to(ROOT)}:{access}" for path in outside
             for access in private_accesses(path.read_text(encoding="utf-8"), names)]
    assert found == []


def test_the_client_imports_nothing_of_the_server_the_dashboards_or_the_demo() -> None:
    found = {f"{path.relative_to(ROOT)}: {module}"
             for path in PACKAGE.rglob("*.py")
             for module in imported_modules(path)
             if module.split(".")[0] in ("ingest", "dashboards", "demo", "tests")}
    assert found == set()


# The modules that may import FastAPI: the privacy page, and Printernizer's old API.
WEB_MODULES = ("web", "printernizer/api.py")


def test_only_the_page_and_printernizers_api_import_fastapi() -> None:
    found = {str(path.relative_to(ROOT))
             for path in PACKAGE.rglob("*.py")
             if not str(path.relative_to(PACKAGE)).startswith(WEB_MODULES)
             for module in imported_modules(path)
             if module.split(".")[0] in ("fastapi", "starlette")}
    assert found == set()


def test_recording_does_not_import_the_report_the_sender_or_a_parser_of_the_catalog() -> None:
    """Start and record in mode local: neither the report builder nor the sender is loaded, nor
    the TOML parser and the catalog's checks (a start loads the compiled catalog), nor
    OpenSSL's hashes (3.7 MiB in a host that has not loaded them)."""
    code = (
        "import sys, tempfile, math\n"
        "from otel_usage import UsageTelemetry\n"
        "u = UsageTelemetry(tempfile.mkdtemp(), export_interval_s=math.inf)\n"
        "u.start()\n"
        "u.meter().create_counter('printernizer.jobs').add(1, {'job.status': 'created'})\n"
        "u.flush(); u.shutdown()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('otel_usage.send', "
        "'otel_usage.report.build', 'otel_usage.user', 'opentelemetry.proto', 'requests', "
        "'tomllib', 'otel_usage.catalog.source', 'hashlib', '_hashlib'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "OTEL_USAGE_ENDPOINT":
                                          "http://127.0.0.1:9"})
    assert out.stdout.strip() == "[]"


# Every module a FastAPI host with the bare OTel SDK adds by starting otel-usage in mode local
# with the privacy page mounted, counting and exporting once: each stays in the host's memory
# for as long as it runs (the budget: at most 1 MiB over the bare SDK, benchmarks/client.py).
# What a feature needs only when it is used (sending, the report, the page's handlers, what the
# user reads, a comparison) is imported then, and this list does not grow.
HOST_START_MODULES = [
    "_sqlite3", "otel_usage", "otel_usage.catalog", "otel_usage.clock", "otel_usage.consent",
    "otel_usage.errors", "otel_usage.log", "otel_usage.record", "otel_usage.record.exporter",
    "otel_usage.record.provider", "otel_usage.record.rebind", "otel_usage.store",
    "otel_usage.telemetry", "otel_usage.web", "otel_usage.web._router",
    "sqlite3", "sqlite3.dbapi2",
]


def test_a_host_that_starts_and_mounts_the_page_imports_exactly_what_recording_needs() -> None:
    """The machine's facts, the report, the sender and its statements, what the user reads, the
    page's handlers, the privacy policy's renderer and the command's argparse are imported when
    they are used, not by a start in mode local with the page mounted: the modules it adds to
    a host with FastAPI and the bare OTel SDK are exactly these."""
    code = (
        "import json, sys, tempfile, math\n"
        "from fastapi import FastAPI\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader\n"
        "host = set(sys.modules)\n"
        "from otel_usage import UsageTelemetry\n"
        "from otel_usage.web import privacy_router\n"
        "u = UsageTelemetry(tempfile.mkdtemp(), export_interval_s=math.inf)\n"
        "FastAPI().include_router(privacy_router(u))\n"
        "u.start()\n"
        "u.meter().create_counter('printernizer.jobs').add(1, {'job.status': 'created'})\n"
        "u.flush(); u.shutdown()\n"
        "print(json.dumps(sorted(set(sys.modules) - host)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "OTEL_USAGE_ENDPOINT":
                                          "http://127.0.0.1:9"})
    assert json.loads(out.stdout) == HOST_START_MODULES


def test_the_demo_and_the_client_benchmark_use_only_the_public_api() -> None:
    outside = [*sorted((ROOT / "demo").glob("*.py")), ROOT / "benchmarks" / "client.py"]
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    used = sorted(f"{path.relative_to(ROOT)} imports {module}"
                  for path in outside for module in imported_modules(path)
                  if (module.startswith("otel_usage") and module not in PUBLIC_MODULES)
                  or module.split(".")[0] in test_modules)
    assert used == []
    assert "sys.path" not in (ROOT / "benchmarks" / "client.py").read_text(encoding="utf-8")


def test_no_benchmark_edits_the_import_path_or_imports_the_tests() -> None:
    """Benchmarks run as modules from the checkout's root and take what they need from the
    packages' testing APIs (`ingest.testing`, `dashboards.testing`, `otel_usage.testing`)."""
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    found = sorted(
        f"{path.relative_to(ROOT)}: {what}" for path in sorted((ROOT / "benchmarks").glob("*.py"))
        for what in [*(f"imports {m}" for m in imported_modules(path)
                       if m.split(".")[0] in test_modules),
                     *(["edits sys.path"] if "sys.path" in path.read_text("utf-8") else [])])
    assert found == []


def test_the_readme_layout_names_every_folder_and_room_and_nothing_that_is_not_there() -> None:
    """README.md's layout table: every folder of the checkout and every room of the client
    (subpackage or top-level module) is in it, and every path it names exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| folder | what it is |"):].split("\n\n")[0].splitlines()[2:]
    named = {word.strip("`,") for line in table for word in line.split("|")[1].split()}
    # A bare file name is at the top, or continues the client's folder (`catalog.json`).
    paths = {name if "/" in name or (ROOT / name).exists() else f"otel_usage/{name}"
             for name in named}
    folders = {f"{p.name}/" for p in ROOT.iterdir() if p.is_dir()
               and not p.name.startswith((".", "_")) and p.name not in _NOT_IN_THE_TABLE
               and not p.name.endswith(".egg-info")}
    rooms = {f"otel_usage/{p.name}/" if p.is_dir() else f"otel_usage/{p.name}"
             for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists())
             or (p.suffix == ".py" and p.name != "__init__.py")}
    assert (folders | rooms) - paths == set()
    assert {p for p in paths if not (ROOT / p).exists()} == set()


# Folders a fresh checkout gains by running things, and the tests' and scripts' own.
_NOT_IN_THE_TABLE = {"tests", "scripts", "artifacts", "build", "dist"}


def test_the_ingest_readme_names_every_module_of_the_ingest() -> None:
    text = (ROOT / "ingest" / "README.md").read_text(encoding="utf-8")
    modules = {p.stem for p in (ROOT / "ingest").glob("*.py") if p.stem != "__init__"}
    assert {m for m in modules if f"`{m}`" not in text} == set()


def test_every_module_opens_with_a_comment_on_its_one_job() -> None:
    modules = [p for folder in ("otel_usage", "ingest", "dashboards", "demo", "benchmarks",
                                "server")
               for p in sorted((ROOT / folder).rglob("*.py"))]
    silent = [str(p.relative_to(ROOT)) for p in modules
              if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert silent == []


def test_the_checkout_tracks_nothing_a_run_makes() -> None:
    """No ignored file (a virtualenv, a cache, a database) and no symbolic link is tracked: a
    fresh clone holding a link into another checkout could not set itself up."""
    def git(*args: str) -> list[str]:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True)
        return done.stdout.splitlines()

    ignored = git("ls-files", "--cached", "--ignored", "--exclude-standard")
    links = [line.split("\t")[1] for line in git("ls-files", "--stage")
             if line.startswith("120000 ")]
    assert (ignored, links) == ([], [])
