"""The two distributions as a release makes them: `python -m build` builds each one's sdist and,
from it, its wheel, and `twine check` accepts them; each wheel installs into a clean virtualenv
(the client's at Printernizer's pinned versions) from a wheelhouse kept outside the checkout,
with no package index, and brings exactly its own packages and commands; everything installed,
and everything in the development environment, is under a licence on the allowlist.

The wheels are built once per test session. The wheelhouse (the dependencies of both, as
wheels) is filled from the package index the first time a set of dependency specifications is
seen, and reused after: it is keyed by a hash of them (see `wheelhouse`).
"""

from __future__ import annotations

import contextlib
import email.parser
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import otel_usage

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VERSION = otel_usage.__version__
CLIENT, SERVER = "otel-usage", "otel-usage-server"
# What each distribution is installed with in its test: the client as Printernizer installs it,
# the server with both databases' drivers.
EXTRAS = {CLIENT: "web", SERVER: "postgresql,mssql"}


@dataclass(frozen=True)
class Built:
    """The four files of a release, by distribution."""

    wheels: dict[str, Path]
    sdists: dict[str, Path]
    folder: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Both distributions built as a release builds them: the sdist, then the wheel from it
    (offline: the build backend is the development environment's, no build isolation)."""
    folder = tmp_path_factory.mktemp("dist")
    for project in (ROOT, ROOT / "server"):
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(folder),
                        str(project)], check=True, capture_output=True, timeout=300)
    return Built(
        wheels={CLIENT: folder / f"otel_usage-{VERSION}-py3-none-any.whl",
                SERVER: folder / f"otel_usage_server-{VERSION}-py3-none-any.whl"},
        sdists={CLIENT: folder / f"otel_usage-{VERSION}.tar.gz",
                SERVER: folder / f"otel_usage_server-{VERSION}.tar.gz"},
        folder=folder)


def test_a_release_builds_exactly_a_wheel_and_an_sdist_of_each_distribution(built: Built) -> None:
    assert sorted(p.name for p in built.folder.iterdir()) == sorted(
        p.name for p in [*built.wheels.values(), *built.sdists.values()])


def test_twine_accepts_every_file_of_the_release(built: Built) -> None:
    names = sorted(p.name for p in built.folder.iterdir())
    done = subprocess.run([sys.executable, "-m", "twine", "--no-color", "check", "--strict",
                           *names], cwd=built.folder, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert (done.returncode, sorted(done.stdout.splitlines())) == (
        0, [f"Checking {name}: PASSED" for name in names])


def _wheel_names(wheel: Path) -> set[str]:
    return set(zipfile.ZipFile(wheel).namelist())


def _checkout_files(*folders: str) -> set[str]:
    """The files git tracks in these top-level folders of the checkout."""
    done = subprocess.run(["git", "ls-files", "--", *folders], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return set(done.stdout.splitlines())


def test_the_client_wheel_holds_the_client_alone_with_its_types_catalog_and_page(
        built: Built) -> None:
    """Every tracked file of `otel_usage/` (py.typed, catalog.toml and its compiled
    catalog.json, the page's static files among them) and nothing of the server, the tests or
    the examples."""
    names = _wheel_names(built.wheels[CLIENT])
    dist_info = f"otel_usage-{VERSION}.dist-info"
    assert {n for n in names if not n.startswith(dist_info)} == _checkout_files("otel_usage")
    assert {"otel_usage/py.typed", "otel_usage/catalog.toml", "otel_usage/catalog.json",
            "otel_usage/web/static/index.html"} <= names


def test_the_server_wheel_holds_the_ingest_the_dashboards_and_the_demo_and_no_client(
        built: Built) -> None:
    names = _wheel_names(built.wheels[SERVER])
    dist_info = f"otel_usage_server-{VERSION}.dist-info"
    assert {n for n in names if not n.startswith(dist_info)} == _checkout_files(
        "ingest", "dashboards", "demo")


def test_each_wheel_built_straight_from_the_checkout_is_the_one_built_from_its_sdist(
        built: Built, tmp_path: Path) -> None:
    """An install from the repository at a tag builds the wheel without an sdist: the server's
    build then takes its packages from the checkout's top-level folders, not the sdist's."""
    for project in (ROOT, ROOT / "server"):
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir",
                        str(tmp_path), str(project)], check=True, capture_output=True,
                       timeout=300)
    for wheel in built.wheels.values():
        straight = zipfile.ZipFile(tmp_path / wheel.name)
        from_sdist = zipfile.ZipFile(wheel)
        assert {n: straight.read(n) for n in straight.namelist()} == {
            n: from_sdist.read(n) for n in from_sdist.namelist()}


def test_each_sdist_holds_its_wheels_sources_the_licence_and_its_readme(built: Built) -> None:
    def members(sdist: Path) -> set[str]:
        with tarfile.open(sdist) as archive:
            return {name.partition("/")[2] for name in archive.getnames()}

    client = members(built.sdists[CLIENT])
    server = members(built.sdists[SERVER])
    assert client - _checkout_files("otel_usage") == {
        "PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PRIVACY.md",
        ".gitignore"}
    assert server - _checkout_files("ingest", "dashboards", "demo") == {
        "PKG-INFO", "pyproject.toml", "hatch_build.py", "README.md", "LICENSE", ".gitignore"}
    assert _checkout_files("otel_usage") <= client
    assert _checkout_files("ingest", "dashboards", "demo") <= server


def _metadata(wheel: Path) -> email.message.Message:
    (name,) = [n for n in _wheel_names(wheel) if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(zipfile.ZipFile(wheel).read(name).decode())


def test_the_server_pins_the_client_at_its_own_exact_version(built: Built) -> None:
    """One version, `otel_usage.__version__`, for both; the server needs exactly that client."""
    client, server = _metadata(built.wheels[CLIENT]), _metadata(built.wheels[SERVER])
    assert (client["Version"], server["Version"]) == (VERSION, VERSION)
    assert [r for r in server.get_all("Requires-Dist") or [] if r.startswith(CLIENT)] == [
        f"{CLIENT}=={VERSION}"]
    assert [r for r in client.get_all("Requires-Dist") or [] if r.startswith(SERVER)] == []


def test_both_distributions_are_apache_2_0_and_carry_the_licence_text(built: Built) -> None:
    licence = (ROOT / "LICENSE").read_bytes()
    for dist, wheel in built.wheels.items():
        meta = _metadata(wheel)
        stem = wheel.name.split("-py3")[0]
        text = zipfile.ZipFile(wheel).read(f"{stem}.dist-info/licenses/LICENSE")
        assert (dist, meta["License-Expression"], meta.get_all("License-File"), text) == (
            dist, "Apache-2.0", ["LICENSE"], licence)
    # The server's project keeps a copy, as licence files must lie inside a project.
    assert (ROOT / "server" / "LICENSE").read_bytes() == licence
    assert licence.startswith(b"\n                                 Apache License\n")


# The wheelhouse: outside the checkout, like the collector's build.
def _cache_root() -> Path:
    chosen = os.environ.get("OTEL_USAGE_CACHE_DIR")
    if chosen:
        return Path(chosen)
    system = Path("/var/cache/otel-usage")
    with contextlib.suppress(OSError):
        system.mkdir(parents=True, exist_ok=True)
    if os.access(system, os.W_OK):
        return system
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-usage"


def _requirements(built: Built) -> list[str]:
    """What pip downloads: each wheel with its tested extras (the client at Printernizer's
    versions, by scripts/lowest.txt)."""
    return [f"{built.wheels[name]}[{EXTRAS[name]}]" for name in (CLIENT, SERVER)]


def _wheelhouse_key(built: Built) -> str:
    """A hash of everything that decides the wheelhouse's contents: both wheels' dependency
    specifications, the client's pinned versions, the interpreter and the platform."""
    specs = [sorted(_metadata(w).get_all("Requires-Dist") or []) for w in built.wheels.values()]
    facts = [specs, (ROOT / "scripts" / "lowest.txt").read_text(encoding="utf-8"),
             sys.implementation.cache_tag, sys.platform, os.uname().machine, EXTRAS]
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _download(built: Built, into: Path) -> None:
    """Both closures as wheels: the client's at the lowest versions, then the server's."""
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "--only-binary", ":all:", "--dest", str(into), "--find-links", str(built.folder)]
    client, server = _requirements(built)
    subprocess.run([*base, "-c", str(ROOT / "scripts" / "lowest.txt"), client], check=True,
                   capture_output=True, timeout=600)
    subprocess.run([*base, server], check=True, capture_output=True, timeout=600)
    for own in into.glob("otel_usage*"):  # the release's own wheels come from the build
        own.unlink()


@pytest.fixture(scope="session")
def wheelhouse(built: Built) -> Path:
    """The dependencies of both distributions as wheels, in a cache outside the checkout keyed
    by `_wheelhouse_key`: downloaded once (under a lock, moved into place whole), then reused."""
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    house = root / f"wheelhouse-{_wheelhouse_key(built)}"
    with (root / ".wheelhouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not house.is_dir():
            partial = root / f"{house.name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            _download(built, partial)
            partial.rename(house)
    return house


@dataclass(frozen=True)
class Installed:
    """One distribution in an environment: what it put at the top of site-packages, its
    commands, and its licence as its metadata states it."""

    name: str
    version: str
    top_level: frozenset[str]
    commands: frozenset[str]
    licence: str


# Run inside an environment: every installed distribution, as JSON.
_INTROSPECT = """
import json
from importlib import metadata
found = []
for d in metadata.distributions():
    files = d.files or []
    top = {f.parts[0].removesuffix(".py") for f in files
           if f.parts[0] not in ("..", "__pycache__") and not f.parts[0].endswith(
               (".dist-info", ".pth", ".libs", ".data"))}
    meta = d.metadata
    licence = meta.get("License-Expression") or " OR ".join(
        c.rpartition(" :: ")[2] for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")) or (meta.get("License") or "").strip()
    found.append({"name": meta["Name"], "version": d.version, "top_level": sorted(top),
                  "commands": sorted(e.name for e in d.entry_points
                                     if e.group == "console_scripts"),
                  "licence": licence})
print(json.dumps(found))
"""


def _installed(python: Path, cwd: Path) -> dict[str, Installed]:
    """Every distribution `python` sees (run in `cwd`, so the checkout is not on its path);
    of two of one name, the first, which is the one it imports."""
    done = subprocess.run([str(python), "-c", _INTROSPECT], capture_output=True, text=True,
                          check=True, timeout=60, cwd=cwd)
    found: dict[str, Installed] = {}
    for d in json.loads(done.stdout):
        name = _normal(d["name"])
        found.setdefault(name, Installed(name, d["version"], frozenset(d["top_level"]),
                                         frozenset(d["commands"]), d["licence"]))
    return found


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _environment(folder: Path, built: Built, house: Path, requirement: str,
                 *constraints: str) -> dict[str, Installed]:
    """A clean virtualenv with `requirement` installed from the wheelhouse and the built
    wheels only (no index), and what it then holds."""
    uv = [str(BIN / "uv")]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(folder)], check=True,
                   capture_output=True, timeout=120)
    python = folder / "bin" / "python"
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(python), "--no-index",
                    "--find-links", str(house), "--find-links", str(built.folder),
                    *constraints, requirement], check=True, capture_output=True, timeout=300)
    return _installed(python, folder)


@pytest.fixture(scope="session")
def client_environment(built: Built, wheelhouse: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    """The client as Printernizer installs it (`otel-usage[web]`), at Printernizer's pins."""
    return _environment(tmp_path_factory.mktemp("client-env"), built, wheelhouse,
                        _requirements(built)[0], "-c", str(ROOT / "scripts" / "lowest.txt"))


@pytest.fixture(scope="session")
def server_environment(built: Built, wheelhouse: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    """The server with both databases' drivers, as an operator installs it."""
    return _environment(tmp_path_factory.mktemp("server-env"), built, wheelhouse,
                        _requirements(built)[1])


OURS = {"otel_usage", "ingest", "dashboards", "demo"}


def _ours(environment: dict[str, Installed]) -> dict[str, tuple[str, set[str], set[str]]]:
    """Each distribution that brings one of our packages or commands: its version, its
    top-level packages and its commands."""
    return {d.name: (d.version, set(d.top_level), set(d.commands))
            for d in environment.values()
            if d.top_level & OURS or any(c.startswith("otel-usage") for c in d.commands)}


def test_the_client_installs_alone_at_printernizers_versions(
        client_environment: dict[str, Installed]) -> None:
    """Printernizer's environment gains `otel_usage` and `otel-usage`, nothing of the server,
    and keeps its own structlog."""
    assert _ours(client_environment) == {CLIENT: (VERSION, {"otel_usage"}, {"otel-usage"})}
    pins = dict(line.split("==") for line in
                (ROOT / "scripts" / "lowest.txt").read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#"))
    assert client_environment["structlog"].version == pins["structlog"]


def test_the_server_installs_with_the_client_as_a_dependency_not_a_copy(
        server_environment: dict[str, Installed]) -> None:
    assert _ours(server_environment) == {
        SERVER: (VERSION, {"ingest", "dashboards", "demo"},
                 {"otel-usage-ingest", "otel-usage-dashboards", "otel-usage-demo"}),
        CLIENT: (VERSION, {"otel_usage"}, {"otel-usage"}),
    }


# The licences a distribution in any closure may have: permissive ones, the public domain
# (docutils, which twine's README check uses), MPL-2.0 (file-level copyleft: certifi's CA
# bundle, hypothesis, pathspec) and LGPL-3.0 (psycopg, used as a library and unmodified); each
# is compatible with shipping under Apache-2.0 and inside an AGPL-3.0 app.
ALLOWED_LICENCES = {"Apache-2.0", "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "ISC",
                    "PSF-2.0", "MPL-2.0", "LGPL-3.0-only", "LGPL-3.0-or-later", "Public Domain"}
# What metadata without an SPDX expression says, by classifier or by its `License` field.
_SPDX = {"Apache Software License": "Apache-2.0", "MIT License": "MIT",
         "3-Clause BSD License": "BSD-3-Clause",
         "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0"}


def licence_allowed(stated: str) -> bool:
    """Whether a licence as `Installed.licence` states it is allowed: an SPDX expression (or
    classifiers, which are alternatives) of which at least one `OR` alternative has every
    `AND` part on the allowlist. A grouped expression (parentheses) is refused, for a person
    to read."""
    return any(all(_SPDX.get(part, part) in ALLOWED_LICENCES for part in alternative.split(" AND "))
               for alternative in stated.split(" OR "))


# Front-end code the tests vendor from the npm registry (scripts/front-end.txt), never shipped
# nor served by the project, each with the licence it is allowed under: axe-core, the browser
# tests' accessibility checker (MPL-2.0: file-level copyleft, used unmodified).
VENDORED_FRONT_END = {"axe-core": "MPL-2.0"}


def test_vendored_front_end_code_is_pinned_with_an_allowed_licence() -> None:
    """Each package in scripts/front-end.txt is on the allowlist above, with the licence its
    own package.json (in the cache scripts/setup test filled) states."""
    from browser_support import vendored

    pins = [line.split() for line in (ROOT / "scripts" / "front-end.txt").read_text(
        encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    stated = {name: json.loads(vendored(name, "package.json").read_text(encoding="utf-8"))
              ["license"] for name, *_ in pins}
    assert {name: licence for name, _, _, licence in pins} == stated == VENDORED_FRONT_END
    assert [name for name, licence in stated.items() if not licence_allowed(licence)] == []


def test_licence_allowed_reads_expressions_and_classifiers() -> None:
    cases = ["MIT", "Apache-2.0 OR BSD-3-Clause", "MIT AND PSF-2.0", "Apache Software License",
             "Mozilla Public License 2.0 (MPL 2.0)", "DFSG approved OR MIT License",
             "GPL-3.0-only", "MIT AND GPL-2.0-only", "GNU General Public License (GPL)", "",
             "(MIT OR Apache-2.0) AND BSD-3-Clause"]
    assert [licence_allowed(c) for c in cases] == [
        True, True, True, True, True, True, False, False, False, False, False]


def _refused(environment: dict[str, Installed]) -> list[str]:
    return sorted(f"{d.name} {d.version}: {d.licence or 'no licence stated'}"
                  for d in environment.values() if not licence_allowed(d.licence))


def test_everything_the_client_brings_into_printernizer_is_under_an_allowed_licence(
        client_environment: dict[str, Installed]) -> None:
    assert _refused(client_environment) == []


def test_everything_the_server_brings_is_under_an_allowed_licence(
        server_environment: dict[str, Installed]) -> None:
    assert _refused(server_environment) == []


def test_everything_in_the_development_environment_is_under_an_allowed_licence(
        tmp_path: Path) -> None:
    """The development closure (both distributions editable, the test tools, the linters, the
    release tools) as installed in the environment running the tests."""
    environment = _installed(Path(sys.executable), tmp_path)
    assert _refused(environment) == []
