"""The gateway's own Go components (collector-config/components) pass their Go unit tests.

`go test` runs with the module cache and build cache Go keeps outside the checkout (the same
ones build.sh's builds fill), so after the collector's build it compiles only the tests, and a
second run with nothing changed answers from Go's test cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from collector_harness import CONFIG_DIR, build_collector

pytestmark = pytest.mark.collector

COMPONENTS = CONFIG_DIR / "components"
PACKAGES = ["credentialheadersextension", "credentialprocessor", "scrubprocessor"]


def test_every_component_has_go_unit_tests() -> None:
    packages = sorted(p.name for p in COMPONENTS.iterdir() if p.is_dir())
    assert packages == PACKAGES
    assert [p for p in PACKAGES if not list((COMPONENTS / p).glob("*_test.go"))] == []


def test_go_unit_tests_of_the_components_pass() -> None:
    build_collector()  # fills the module cache the tests need, or fails with the reason
    go = shutil.which("go")
    assert go is not None, "Go is needed (scripts/setup test installs golang-go)"
    result = subprocess.run(
        [go, "test", "-mod=readonly", "./..."], cwd=COMPONENTS, capture_output=True, text=True,
        timeout=900, env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = sorted(line.split()[1] for line in result.stdout.splitlines()
                    if line.startswith("ok"))
    assert passed == [f"otel-usage.local/collector/{p}" for p in PACKAGES], result.stdout
