"""The client's rooms follow the data path and no room reaches back; outside code (the demo, the
benchmark) uses only the public API; the package ships its type information."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otel_usage"

# What each room of the client may import of the client (besides itself). The shared contract
# and the time modules import nothing; recording, the report and sending each see only the
# rooms before them; what the user sees and the facade wire them; the page comes last.
SHARED = {"catalog", "clock", "weeks", "errors", "log"}
ALLOWED = {
    "catalog": set(), "clock": set(), "weeks": set(), "errors": set(), "log": set(),
    "store": {"errors", "weeks"},
    "consent": {"errors", "log", "store"},
    "record": SHARED | {"store", "consent"},
    "report": SHARED | {"store"},
    "send": SHARED | {"store", "consent", "report"},
    "user": SHARED | {"store", "consent", "report", "telemetry"},
    "telemetry": SHARED | {"store", "consent", "record", "report", "send", "user"},
    "testing": SHARED | {"store", "report", "telemetry"},
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


def test_recording_does_not_import_the_report_or_the_sender() -> None:
    """Start and record in mode local: neither the report builder nor the sender is loaded."""
    code = (
        "import sys, tempfile, math\n"
        "from otel_usage import UsageTelemetry\n"
        "u = UsageTelemetry(tempfile.mkdtemp(), export_interval_s=math.inf)\n"
        "u.start()\n"
        "u.meter().create_counter('printernizer.jobs').add(1, {'job.status': 'created'})\n"
        "u.flush(); u.shutdown()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('otel_usage.send', "
        "'otel_usage.report.build', 'otel_usage.user', 'opentelemetry.proto', 'requests'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "OTEL_USAGE_ENDPOINT":
                                          "http://127.0.0.1:9"})
    assert out.stdout.strip() == "[]"


def test_the_demo_and_the_client_benchmark_use_only_the_public_api() -> None:
    outside = [*sorted((ROOT / "demo").glob("*.py")), ROOT / "benchmarks" / "client.py"]
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    used = sorted(f"{path.relative_to(ROOT)} imports {module}"
                  for path in outside for module in imported_modules(path)
                  if (module.startswith("otel_usage") and module not in PUBLIC_MODULES)
                  or module.split(".")[0] in test_modules)
    assert used == []
    assert "sys.path" not in (ROOT / "benchmarks" / "client.py").read_text(encoding="utf-8")


@pytest.mark.dateless
def test_the_wheel_ships_the_type_information_the_catalog_and_the_page(tmp_path: Path) -> None:
    """Built from a copy of the sources, so the checkout gains no build folders."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("otel_usage", "ingest", "dashboards", "demo"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("otel_usage-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = {p.name for p in (PACKAGE / "web" / "static").iterdir()}
    assert {"otel_usage/py.typed", "otel_usage/catalog.toml"} | {
        f"otel_usage/web/static/{name}" for name in static} <= names


def test_the_readme_layout_names_every_folder_and_room_and_nothing_that_is_not_there() -> None:
    """README.md's layout table: every folder of the checkout and every room of the client
    (subpackage or top-level module) is in it, and every path it names exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| folder | what it is |"):].split("\n\n")[0].splitlines()[2:]
    named = {word.strip("`,") for line in table for word in line.split("|")[1].split()}
    # A bare file name is at the top, or continues the client's folder (`catalog.py`).
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
    modules = [p for folder in ("otel_usage", "ingest", "dashboards", "demo", "benchmarks")
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
