"""Facts about the machine, read once: deployment mode, OS, architecture, Python, country.

Printernizer used to detect its deployment mode in four places that disagreed; this is the one
detector. The country comes from the local time-zone name and the system's zone table (every
zone, and every backward-compatible alias), never from the network.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "Environment",
    "country_from_timezone",
    "detect_deployment_mode",
    "detect_environment",
    "local_timezone_name",
]

DEPLOYMENT_MODES = ("homeassistant", "docker", "pi", "standalone")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm32", "armv6l": "arm32", "i386": "x86", "i686": "x86",
         "ppc64le": "ppc64", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Environment:
    deployment_mode: str
    os_type: str
    host_arch: str
    python_version: str
    country_code: str | None


def detect_environment(
    environ: Mapping[str, str] | None = None, root: Path = Path("/")
) -> Environment:
    env = os.environ if environ is None else environ
    return Environment(
        deployment_mode=detect_deployment_mode(env, root),
        os_type=_os_type(),
        host_arch=_ARCH.get(platform.machine().lower(), platform.machine().lower()),
        python_version="{}.{}.{}".format(*sys.version_info[:3]),
        country_code=country_from_timezone(local_timezone_name(env, root), root),
    )


def detect_deployment_mode(environ: Mapping[str, str], root: Path = Path("/")) -> str:
    """homeassistant, docker, pi or standalone, from the signals Printernizer has.

    An explicit DEPLOYMENT_MODE wins; then the Home Assistant Supervisor's token; then a
    Raspberry Pi's device-tree model (Printernizer's Pi set-up runs in Docker, so this comes
    before Docker's marker file); then /.dockerenv.
    """
    declared = environ.get("DEPLOYMENT_MODE", "").strip().lower()
    if declared in DEPLOYMENT_MODES:
        return declared
    if environ.get("SUPERVISOR_TOKEN") or environ.get("HASSIO_TOKEN"):
        return "homeassistant"
    if _is_raspberry_pi(root):
        return "pi"
    if (root / ".dockerenv").exists():
        return "docker"
    return "standalone"


def _is_raspberry_pi(root: Path) -> bool:
    for candidate in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        try:
            model = (root / candidate).read_bytes()
        except OSError:
            continue
        if b"raspberry pi" in model.lower():
            return True
    return False


def _os_type() -> str:
    name = sys.platform
    if name.startswith("linux"):
        return "linux"
    if name == "win32":
        return "windows"
    for prefix in ("darwin", "freebsd", "openbsd", "netbsd"):
        if name.startswith(prefix):
            return prefix
    return name


def local_timezone_name(environ: Mapping[str, str], root: Path = Path("/")) -> str | None:
    """The IANA name of the local zone: $TZ, /etc/timezone, or the /etc/localtime link."""
    tz = environ.get("TZ", "").strip().lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    if tz.startswith("/") and "zoneinfo/" in tz:
        return tz.split("zoneinfo/", 1)[1]
    try:
        name = (root / "etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink(root / "etc/localtime")
    except OSError:
        return None
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None


def country_from_timezone(zone: str | None, root: Path = Path("/")) -> str | None:
    """The ISO country code of a zone (or one of its aliases), from the system zone table."""
    if not zone:
        return None
    countries, links = _zone_tables(str(root / "usr/share/zoneinfo"))
    seen = 0
    while zone not in countries and zone in links and seen < 8:
        zone, seen = links[zone], seen + 1
    return countries.get(zone)


@cache
def _zone_tables(zoneinfo: str) -> tuple[dict[str, str], dict[str, str]]:
    """zone -> country (zone.tab) and alias -> zone (the link lines of tzdata.zi)."""
    countries: dict[str, str] = {}
    links: dict[str, str] = {}
    try:
        with open(os.path.join(zoneinfo, "zone.tab"), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) >= 3:
                    countries[parts[2].strip()] = parts[0].strip()
    except OSError:
        return {}, {}
    try:
        with open(os.path.join(zoneinfo, "tzdata.zi"), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("L "):
                    _, target, alias = line.split()
                    links[alias] = target
    except OSError:
        pass
    return countries, links
