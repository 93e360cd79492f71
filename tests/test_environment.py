"""One deployment-mode detector, and a country for every zone of the system's table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from otel_usage import detect_deployment_mode, detect_environment
from otel_usage.report.environment import country_from_timezone, local_timezone_name

ZONEINFO = Path("/usr/share/zoneinfo")


def fake_root(tmp_path: Path, *, dockerenv: bool = False, model: bytes | None = None) -> Path:
    if dockerenv:
        (tmp_path / ".dockerenv").touch()
    if model is not None:
        (tmp_path / "proc/device-tree").mkdir(parents=True)
        (tmp_path / "proc/device-tree/model").write_bytes(model)
    return tmp_path


@pytest.mark.parametrize(
    ("environ", "dockerenv", "model", "expected"),
    [
        ({}, False, None, "standalone"),
        ({}, True, None, "docker"),
        ({}, True, b"Raspberry Pi 4 Model B Rev 1.4\x00", "pi"),
        ({}, False, b"Raspberry Pi 5 Model B Rev 1.0\x00", "pi"),
        ({}, False, b"Hardkernel ODROID-N2Plus\x00", "standalone"),
        ({"SUPERVISOR_TOKEN": "abc"}, True, None, "homeassistant"),
        ({"DEPLOYMENT_MODE": "homeassistant", "HA_INGRESS": "true"}, True, None, "homeassistant"),
        ({"DEPLOYMENT_MODE": "docker"}, False, b"Raspberry Pi 4\x00", "docker"),
        ({"DEPLOYMENT_MODE": "Standalone "}, True, None, "standalone"),
        ({"DEPLOYMENT_MODE": "kubernetes"}, True, None, "docker"),
    ],
)
def test_deployment_mode(tmp_path: Path, environ: dict[str, str], dockerenv: bool,
                         model: bytes | None, expected: str) -> None:
    root = fake_root(tmp_path, dockerenv=dockerenv, model=model)
    assert detect_deployment_mode(environ, root) == expected


def zone_table() -> list[tuple[str, str]]:
    rows = []
    for line in (ZONEINFO / "zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _, zone = line.split("\t")[:3]
            rows.append((zone, code))
    return rows


def test_every_zone_of_the_system_table_has_its_country() -> None:
    table = zone_table()
    assert len(table) > 300
    assert {zone: country_from_timezone(zone) for zone, _ in table} == dict(table)


@pytest.mark.parametrize(
    ("zone", "country"),
    [("US/Eastern", "US"), ("Europe/Kiev", "UA"), ("Asia/Calcutta", "IN"), ("Japan", "JP"),
     ("Europe/Berlin", "DE"), ("Etc/UTC", None), ("UTC", None), ("Mars/Olympus_Mons", None),
     (None, None)],
)
def test_aliases_resolve_and_zones_without_a_country_give_none(
    zone: str | None, country: str | None
) -> None:
    assert country_from_timezone(zone) == country


def test_the_local_zone_comes_from_tz_then_etc_timezone_then_the_localtime_link(
    tmp_path: Path,
) -> None:
    (tmp_path / "etc").mkdir()
    assert local_timezone_name({}, tmp_path) is None
    os.symlink("/usr/share/zoneinfo/America/Sao_Paulo", tmp_path / "etc/localtime")
    assert local_timezone_name({}, tmp_path) == "America/Sao_Paulo"
    (tmp_path / "etc/timezone").write_text("Europe/Vienna\n")
    assert local_timezone_name({}, tmp_path) == "Europe/Vienna"
    assert local_timezone_name({"TZ": ":Europe/Oslo"}, tmp_path) == "Europe/Oslo"


def test_detect_environment_reports_runtime_facts(tmp_path: Path) -> None:
    root = fake_root(tmp_path, dockerenv=True)
    env = detect_environment({"TZ": "Europe/Berlin"}, root)
    assert env.deployment_mode == "docker"
    assert env.os_type == "linux"
    assert env.python_version == "{}.{}.{}".format(*sys.version_info[:3])
    assert env.host_arch in ("amd64", "arm64", "arm32", "x86")
    assert env.country_code is None  # the fake root has no zone table


def test_detect_environment_reads_the_real_zone_table() -> None:
    env = detect_environment({"TZ": "Europe/Berlin"})
    assert env.country_code == "DE"
