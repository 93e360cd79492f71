"""Synthetic catalogs for tests: the packaged catalog as data, written back as TOML, and a
catalog grown to version 3 (a metric, keys, values and a resource attribute added later)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from otel_usage.catalog import CATALOG_PATH


def raw_catalog() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def to_toml(raw: dict[str, Any]) -> str:
    """A tiny TOML writer for the catalog's shapes (tests only: tomllib cannot write)."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return inline(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    def inline(d: dict[str, Any]) -> str:
        return "{ " + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in d.items()) + " }"

    lines = [f"version = {raw['version']}"]
    for table in ("policy", "protocol", "enums"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {value(v)}" for k, v in raw[table].items()]
    for item in raw["resource"]:
        lines.append("[[resource]]")
        lines += [f"{json.dumps(k)} = {value(v)}" for k, v in item.items()]
    for item in raw["metric"]:
        lines.append("[[metric]]")
        lines += [f"{json.dumps(k)} = {value(v)}" for k, v in item.items() if k != "attributes"]
        if item.get("attributes"):
            lines.append("[metric.attributes]")
            lines += [f"{json.dumps(k)} = {inline(v)}" for k, v in item["attributes"].items()]
    if raw.get("roles"):
        lines.append("[roles]")
        lines += [f"{json.dumps(k)} = {inline(v)}" for k, v in raw["roles"].items()]
    for item in raw["never"]:
        lines.append("[[never]]")
        lines += [f"{k} = {value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def raw_catalog_v1() -> dict[str, Any]:
    """The packaged catalog as version 1 had it: every item added later left out."""
    raw = raw_catalog()

    def old(item: object) -> bool:
        return not isinstance(item, dict) or int(item.get("since", 1)) <= 1

    def values(spec: dict[str, Any]) -> None:
        if isinstance(spec.get("values"), list):
            spec["values"] = [v for v in spec["values"] if old(v)]
        if isinstance(spec.get("pattern"), list):
            spec["pattern"] = [p for p in spec["pattern"] if old(p)]

    raw["version"] = 1
    raw["enums"] = {k: [v for v in vs if old(v)] for k, vs in raw["enums"].items()}
    raw["resource"] = [r for r in raw["resource"] if old(r)]
    raw["metric"] = [m for m in raw["metric"] if old(m)]
    for item in raw["resource"]:
        values(item)
    for metric in raw["metric"]:
        metric["attributes"] = {k: a for k, a in metric.get("attributes", {}).items() if old(a)}
        for spec in metric["attributes"].values():
            values(spec)
    return raw


def grown_raw() -> dict[str, Any]:
    """The catalog of version 1 grown to version 3: version 2 adds the printer type "creality",
    the key "job.origin" of printernizer.jobs (its value "api" only in 3) and the resource
    attribute "printernizer.ui.language"; version 3 adds the metric printernizer.slicer.uses
    and the os type "haiku"."""
    raw = raw_catalog_v1()
    raw["version"] = 3
    raw["enums"]["printer_type"].append({"value": "creality", "since": 2})
    raw["enums"]["os_type"].append({"value": "haiku", "since": 3})
    jobs = next(m for m in raw["metric"] if m["name"] == "printernizer.jobs")
    jobs["attributes"]["job.origin"] = {"values": ["ui", {"value": "api", "since": 3}],
                                        "since": 2}
    raw["resource"].append({"key": "printernizer.ui.language", "values": ["en", "de"],
                            "required": False, "since": 2,
                            "en": "The page's language.", "de": "Die Sprache der Seite."})
    raw["metric"].append({
        "name": "printernizer.slicer.uses", "instrument": "counter", "unit": "{use}",
        "weekly": "sum", "since": 3, "en": "Slicer runs in the week.",
        "de": "Slicer-Läufe der Woche.",
        "attributes": {"printer.type": {"enum": "printer_type"}}})
    return raw


def write_catalog(raw: dict[str, Any], directory: Path) -> Path:
    path = directory / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    return path
