"""The catalog loads, is complete in both languages, and rejects malformed definitions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from otel_usage.catalog import CATALOG_PATH, CatalogError, load_catalog


def test_catalog_lists_the_plans_metrics_and_printernizers_vocabulary() -> None:
    catalog = load_catalog()
    assert catalog.version >= 1
    assert set(catalog.metrics) == {
        "printernizer.jobs", "printernizer.file.downloads", "printernizer.file.uploads",
        "printernizer.printers", "printernizer.printer.connections",
        "printernizer.features.enabled", "printernizer.feature.uses", "printernizer.errors",
        "printernizer.app.starts", "printernizer.uptime",
    }
    printers = catalog.metrics["printernizer.printers"].attributes["printer.type"]
    assert printers.values == ("bambu_lab", "prusa_core", "octoprint", "unknown")
    errors = catalog.metrics["printernizer.errors"].attributes
    assert errors["error.category"].values == (
        "database", "api", "printer", "file_operation", "network", "validation",
        "authentication", "authorization", "configuration", "system", "unknown")
    assert {"connection_timeout", "connection_refused", "download_failed"} <= set(
        errors["error.type"].values or ())
    features = catalog.metrics["printernizer.feature.uses"].attributes["feature.name"]
    assert features.values == ("library", "library_search", "timelapse", "auto_job_creation",
                               "german_business", "watch_folders")


def test_every_metric_and_resource_attribute_is_described_in_english_and_german() -> None:
    catalog = load_catalog()
    for metric in catalog.metrics.values():
        assert metric.text.en and metric.text.de and metric.text.en != metric.text.de
    for attribute in catalog.resource.values():
        assert attribute.text is not None and attribute.text.en and attribute.text.de
    assert all(t.en and t.de for t in catalog.never)


def test_resource_keys_follow_semantic_conventions() -> None:
    assert set(load_catalog().resource) == {
        "service.name", "service.version", "service.instance.id",
        "printernizer.deployment.mode", "os.type", "host.arch", "process.runtime.version",
        "geo.country.iso_code", "otel_usage.catalog.version",
    }


@pytest.mark.parametrize(
    ("key", "value", "scrubbed"),
    [
        ("service.version", "2.7.0", "2.7.0"),
        ("service.version", "2.7.0-dev+jane@example.com", "other"),
        ("service.instance.id", "0b7c5a52-3f7e-4c1a-9e0f-2d9a3b1c4e5f", "0b7c5a52-3f7e-4c1a-9e0f-2d9a3b1c4e5f"),
        ("service.instance.id", "/home/jane/printernizer", "other"),
        ("geo.country.iso_code", "DE", "DE"),
        ("geo.country.iso_code", "192.168.1.20", "other"),
        ("printernizer.deployment.mode", "homeassistant", "homeassistant"),
        ("printernizer.deployment.mode", "kubernetes", "other"),
        ("process.runtime.version", "3.11.7", "3.11.7"),
        ("process.runtime.version", 3.11, "other"),
    ],
)
def test_scrub_keeps_allowed_values_and_turns_the_rest_into_other(
    key: str, value: object, scrubbed: str
) -> None:
    assert load_catalog().resource[key].scrub(value) == scrubbed


def test_a_malformed_catalog_is_refused_with_every_problem_listed(tmp_path: Path) -> None:
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["metric"][0]["instrument"] = "sparkline"
    raw["metric"][1]["attributes"]["printer.type"] = {"enum": "no_such_enum"}
    raw["metric"][2]["since"] = raw["version"] + 1
    path = tmp_path / "catalog.toml"
    path.write_text(_to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert "metric 'printernizer.jobs': instrument must be one of" in message
    assert "metric 'printernizer.file.downloads': unknown enum 'no_such_enum'" in message
    assert "metric 'printernizer.file.uploads': since must be between 1 and" in message


def test_other_must_not_be_listed_as_an_enum_value(tmp_path: Path) -> None:
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["enums"]["printer_type"].append("other")
    path = tmp_path / "catalog.toml"
    path.write_text(_to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError, match="'other' is implicit"):
        load_catalog(path)


def _to_toml(raw: dict) -> str:  # type: ignore[type-arg]
    """A tiny TOML writer for the catalog's shapes (tests only: tomllib cannot write)."""
    import json

    def value(v: object) -> str:
        return json.dumps(v, ensure_ascii=False)

    def inline(d: dict) -> str:  # type: ignore[type-arg]
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
    for item in raw["never"]:
        lines.append("[[never]]")
        lines += [f"{k} = {value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def test_the_clients_own_references_to_catalog_metrics_exist() -> None:
    """The facade and the viewer name a few catalog metrics and keys: they must not drift."""
    import re

    root = CATALOG_PATH.parent
    catalog = load_catalog()
    keys = {k for m in catalog.metrics.values() for k in m.attributes}
    for module in ("_facade.py", "_reads.py", "_fleet.py"):
        source = (root / module).read_text(encoding="utf-8")
        names = set(re.findall(r"""["'](printernizer\.[a-z_.]+)["']""", source))
        assert names and names <= set(catalog.metrics), (module, names - set(catalog.metrics))
        used_keys = set(re.findall(r"""\$\."([a-z_.]+)\"""", source))
        assert used_keys <= keys, (module, used_keys - keys)
