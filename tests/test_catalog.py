"""The catalog loads, is complete in both languages, and rejects malformed definitions."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from catalog_support import grown_raw, to_toml, write_catalog

from otel_usage.catalog import (
    CATALOG_PATH,
    Breakdown,
    CatalogError,
    MetricRelease,
    ResourceRelease,
    load_catalog,
)
from otel_usage.printernizer.vocabulary import ERROR_CODES


def test_the_compiled_catalog_is_the_checked_toml_and_is_up_to_date() -> None:
    """`catalog.json` is what compiling `catalog.toml` writes now (run `python -m
    otel_usage.catalog.source` after editing it), and loads as the same values as reading and
    checking the TOML, a role's metric being the catalog's own."""
    from otel_usage.catalog import COMPILED_PATH
    from otel_usage.catalog.source import compiled, read

    source = read(CATALOG_PATH)
    loaded = load_catalog()
    assert COMPILED_PATH.read_text(encoding="utf-8") == compiled(
        source, CATALOG_PATH.read_bytes())
    assert loaded == source
    assert all(role.metric is loaded.metrics[role.metric.name]
               for role in loaded.roles.values())


def test_a_compiled_catalog_not_compiled_from_the_toml_beside_it_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited catalog.toml is read and checked itself until it is compiled again; a
    damaged, misshapen or missing compiled catalog too."""
    import otel_usage.catalog as catalog_module

    toml = tmp_path / "catalog.toml"
    toml.write_text(CATALOG_PATH.read_text(encoding="utf-8").replace(
        "version = 2", "version = 2  # edited", 1), encoding="utf-8")
    compiled = tmp_path / "catalog.json"
    packaged = catalog_module.COMPILED_PATH.read_text(encoding="utf-8")
    monkeypatch.setattr(catalog_module, "CATALOG_PATH", toml)
    monkeypatch.setattr(catalog_module, "COMPILED_PATH", compiled)
    outcomes = []
    import zlib

    crc = zlib.crc32(toml.read_bytes())
    misshapen = [json.dumps({"source_crc32": crc, "catalog": catalog}) for catalog in (
        {"$": "Catalog", "version": {"$": "Nothing"}}, {"$map": ["not", "a", "mapping"]},
        {"$metric": "printernizer.jobs"})]
    nested = "[" * 100_000 + "]" * 100_000
    deep = f'{{"source_crc32": {crc}, "catalog": {nested}}}'
    for text in (packaged, "{not json", *misshapen, deep, None):
        if text is None:
            compiled.unlink()
        else:
            compiled.write_text(text, encoding="utf-8")
        outcomes.append(catalog_module._load_compiled())
    assert outcomes == [None] * 7
    assert load_catalog.__wrapped__() == load_catalog()


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
    path.write_text(to_toml(raw), encoding="utf-8")
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
    path.write_text(to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError, match="'other' is implicit"):
        load_catalog(path)


def test_the_policy_names_a_window_for_each_thing_the_server_keeps() -> None:
    policy = load_catalog().policy
    windows = {name: getattr(policy, name) for name in (
        "publish_after_days", "raw_weeks_after_publication", "tombstone_days",
        "installation_silent_days")}
    assert windows == {"publish_after_days": 14, "raw_weeks_after_publication": 0,
                       "tombstone_days": 28, "installation_silent_days": 90}
    assert policy.raw_days == 21


def test_windows_that_contradict_each_other_are_refused(tmp_path: Path) -> None:
    """A tombstone must outlive the acceptance of a report sent before its erasure, and an
    installation's credential the raw weeks it guards."""
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["policy"] |= {"publish_after_days": 21, "raw_weeks_after_publication": 1,
                      "tombstone_days": 28, "installation_silent_days": 35,
                      "outbox_max_age_weeks": -1}
    path = tmp_path / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value).splitlines()[1:] == [
        "- policy: outbox_max_age_weeks must be a whole number of at least 0",
        "- policy: tombstone_days must be at least publish_after_days + 8: a report sent "
        "before an erasure may arrive that late",
        "- policy: installation_silent_days must be more than the days a raw week is kept "
        "(35): the credential guards its erasure",
    ]


def test_the_client_names_no_metric_and_the_demo_only_catalog_ones() -> None:
    """The client takes every metric it records or sums from the catalog (its roles); the demo
    and Printernizer's switch-over (its old event types mapped onto the catalog) name catalog
    metrics only: none can drift from the catalog."""
    import ast

    catalog = load_catalog()

    def names(path: Path) -> set[str]:
        """String constants of the code (not its docstrings) that look like metric names."""
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        return {n.value for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and id(n) not in docstrings and n.value.startswith("printernizer.")
                and n.value not in catalog.resource}

    switch_over = CATALOG_PATH.parent / "printernizer"
    client = {str(p.relative_to(CATALOG_PATH.parent)): names(p)
              for p in sorted(CATALOG_PATH.parent.rglob("*.py"))
              if names(p) and switch_over not in p.parents}
    assert client == {}
    printernizer = set().union(*(names(p) for p in switch_over.glob("*.py")))
    assert printernizer and printernizer <= set(catalog.metrics), printernizer - set(
        catalog.metrics)
    demo = names(CATALOG_PATH.parent.parent / "demo" / "fleet.py")
    assert demo and demo <= set(catalog.metrics), demo - set(catalog.metrics)


def test_each_role_names_a_catalog_metric_and_its_attributes() -> None:
    roles = {name: (r.metric.name, r.key, dict(r.where))
             for name, r in load_catalog().roles.items()}
    assert roles == {
        "app_starts": ("printernizer.app.starts", None, {}),
        "uptime": ("printernizer.uptime", None, {}),
        "printers": ("printernizer.printers", "printer.type", {}),
        "features": ("printernizer.features.enabled", "feature.name", {}),
        "jobs_completed": ("printernizer.jobs", None, {"job.status": "completed"}),
        "files_downloaded": ("printernizer.file.downloads", None, {}),
        "errors": ("printernizer.errors", None, {}),
    }


def test_a_role_must_name_a_catalog_metric_key_and_value(tmp_path: Path) -> None:
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["roles"]["errors"] = {"metric": "printernizer.crashes"}
    raw["roles"]["printers"]["key"] = "printer.serial"
    raw["roles"]["jobs_completed"]["where"] = {"job.status": "done"}
    del raw["roles"]["uptime"]
    path = tmp_path / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value).splitlines()[1:] == [
        "- roles: 'uptime' is missing",
        "- role 'printers': printernizer.printers has no attribute 'printer.serial'",
        "- role 'jobs_completed': 'done' is not a value of 'job.status'",
        "- role 'errors': unknown metric 'printernizer.crashes'",
    ]


def test_as_of_gives_exactly_what_a_version_lets_leave(tmp_path: Path) -> None:
    """Each item carries the version that added it: a version's view holds the metrics, keys,
    values and resource attributes added up to it, and nothing newer."""
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    packaged = load_catalog().as_of(1)
    one = grown.as_of(1)
    assert (one.version, one.metrics, one.resource) == (
        1, packaged.metrics, packaged.resource)
    two = grown.as_of(2)
    assert two.version == 2
    assert list(two.metrics) == list(packaged.metrics)
    jobs = two.metrics["printernizer.jobs"].attributes
    assert {k: a.values for k, a in jobs.items()} == {
        "job.status": ("created", "started", "completed", "failed", "cancelled"),
        "printer.type": ("bambu_lab", "prusa_core", "octoprint", "unknown", "creality"),
        "job.origin": ("ui",),
    }
    assert list(two.resource) == [*packaged.resource, "printernizer.ui.language"]
    assert two.resource["os.type"].values == packaged.resource["os.type"].values
    assert grown.as_of(3) is grown


def test_additions_list_what_is_new_after_a_version(tmp_path: Path) -> None:
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    assert [a.describe("en") for a in grown.additions(1)] == [
        "printernizer.jobs, printer.type: new value 'creality'",
        "printernizer.jobs: now also by job.origin",
        "printernizer.file.downloads, printer.type: new value 'creality'",
        "printernizer.file.uploads, printer.type: new value 'creality'",
        "printernizer.printers, printer.type: new value 'creality'",
        "printernizer.printer.connections, printer.type: new value 'creality'",
        "New metric printernizer.slicer.uses: Slicer runs in the week.",
        "os.type: new value 'haiku'",
        "New report detail printernizer.ui.language: The page's language.",
    ]
    assert [(a.version, a.kind, a.metric, a.key, a.value) for a in grown.additions(2)] == [
        (3, "value", "printernizer.jobs", "job.origin", "api"),
        (3, "metric", "printernizer.slicer.uses", None, None, ),
        (3, "value", None, "os.type", "haiku"),
    ]
    assert grown.additions(2)[0].describe("de") == "printernizer.jobs, job.origin: neuer Wert 'api'"
    assert grown.additions(3) == ()
    # The packaged catalog: version 2 speaks Printernizer's words (its job statuses and the
    # rest of its 25 error codes), which users who agreed to version 1 do not send yet.
    codes = [c.lower() for c in ERROR_CODES if c.lower() not in load_catalog().as_of(1).metrics[
        "printernizer.errors"].attributes["error.type"].values]
    assert [(a.version, a.kind, a.metric, a.key, a.value)
            for a in load_catalog().additions(1)] == [
        *[(2, "value", "printernizer.jobs", "job.status", s)
          for s in ("pending", "running", "printing", "paused", "unknown")],
        *[(2, "value", "printernizer.errors", "error.type", c) for c in codes],
        (2, "pattern", None, "service.version", DEV_VERSION)]
    assert load_catalog().additions(1)[-1].describe("en") == (
        f"service.version: now also values of the form {DEV_VERSION}")
    assert len(codes) == 20
    assert load_catalog().additions(2) == ()


DEV_VERSION = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(-dev)?$"


def test_a_widened_pattern_keeps_its_older_form_for_an_older_version() -> None:
    """service.version took builds from source (-dev) only in version 2: version 1's view
    allows releases only, so a version-1 consent never covers a -dev version."""
    catalog = load_catalog()
    versions = ("2.7.0", "2.7.0-dev", "2.7")
    allowed = {v: [catalog.as_of(v).resource["service.version"].allows(x) for x in versions]
               for v in (1, 2)}
    assert allowed == {1: [True, False, False], 2: [True, True, False]}
    assert catalog.as_of(1).resource["service.version"].scrub("2.7.0-dev") == "other"
    assert catalog.resource["service.version"].pattern.pattern == DEV_VERSION


def test_every_value_the_scrubber_gives_is_one_a_receiver_accepts() -> None:
    """One rule for both sides: whatever `scrub` sends, under any catalog version, is
    `sendable` (the ingest's check), "other" for a pattern included; and `sendable` takes
    nothing else."""
    catalog = load_catalog()
    odd = ("2.7.0", "2.7.0-dev", "4.0.0", "Germany", "DE", "kubernetes", "", "other", 3.11)
    for version in range(1, catalog.version + 1):
        for attribute in catalog.as_of(version).resource.values():
            scrubbed = {attribute.scrub(value) for value in odd}
            assert all(attribute.sendable(value) for value in scrubbed), attribute.key
            assert {value for value in odd if attribute.sendable(value)} <= scrubbed | {"other"}
    assert catalog.as_of(1).resource["service.version"].sendable("other") is True
    assert catalog.as_of(1).resource["service.version"].sendable("2.7.0-dev") is False


def test_pattern_forms_out_of_order_are_refused(tmp_path: Path) -> None:
    raw = grown_raw()
    version = next(r for r in raw["resource"] if r["key"] == "service.version")
    version["pattern"] = [{"pattern": "^[0-9]+(-dev)?$", "since": 2}, "^[0-9]+$", 7]
    raw["policy"]["privacy"]["resource"]["service.version"]["values"] = ["2.43.0"]
    with pytest.raises(CatalogError) as info:
        load_catalog(write_catalog(raw, tmp_path))
    assert str(info.value).splitlines()[1:] == [
        "- resource service.version attribute 'service.version': 7 is neither a pattern nor "
        "{ pattern = ..., since = N }",
        "- resource service.version attribute 'service.version': a pattern's forms must be "
        "listed oldest first, each of a later version",
        # The released versions the privacy policy lists no longer match a pattern so broken.
        "- policy.privacy.resource 'service.version': values must be distinct values of "
        "service.version",
    ]


def test_a_since_beyond_the_version_is_refused_wherever_it_stands(tmp_path: Path) -> None:
    raw = grown_raw()
    raw["version"] = 2
    with pytest.raises(CatalogError) as info:
        load_catalog(write_catalog(raw, tmp_path))
    assert str(info.value).splitlines()[1:] == [
        "- enum 'os_type' value 'haiku': since must be between 1 and the catalog version",
        "- metric 'printernizer.jobs' attribute 'job.origin' value 'api': since must be "
        "between 1 and the catalog version",
        "- metric 'printernizer.slicer.uses': since must be between 1 and the catalog version",
    ]


def test_the_privacy_policy_is_read_with_its_budget_and_bounds() -> None:
    """The publication's budget and contribution bounds come from `[policy.privacy]`."""
    privacy = load_catalog().policy.privacy
    assert (privacy.weekly_epsilon, privacy.delta, privacy.selection_delta,
            privacy.yearly_epsilon) == (2.0, 1e-7, 1e-9, 19.1)
    assert privacy.resource["process.runtime.version"] == ResourceRelease(1.5, None, "minor")
    assert privacy.metrics["printernizer.errors"] == MetricRelease(
        distribution=2.0, total=4.0, clamp=50,
        by={"error.category": Breakdown(3.0, 3), "error.type": Breakdown(5.0, 3)})


def test_every_catalog_version_is_a_published_value() -> None:
    """A new catalog version must add its number to the published values, or its
    installations would count as "other"."""
    catalog = load_catalog()
    listed = catalog.policy.privacy.resource["otel_usage.catalog.version"].values
    assert listed == tuple(str(v) for v in range(1, catalog.version + 1))


def test_a_privacy_policy_naming_what_the_catalog_lacks_is_refused_with_every_problem(
        tmp_path: Path) -> None:
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    privacy = raw["policy"]["privacy"]
    privacy["selection_delta"] = privacy["delta"]
    privacy["yearly_epsilon"] = 1.5
    privacy["resource"]["host.name"] = {"weight": 1}
    privacy["resource"]["os.type"] = {"weight": 1, "values": ["linux"]}
    privacy["resource"]["service.version"] = {"weight": 1}
    privacy["resource"]["geo.country.iso_code"] = {"weight": 1, "values": ["DE", "Germany"]}
    privacy["metrics"]["printernizer.files"] = {"distribution": 1}
    privacy["metrics"]["printernizer.printers"] = {
        "total": {"weight": 1, "clamp": 5000}, "by": {"job.status": {"weight": 1, "values": 1}}}
    privacy["metrics"]["printernizer.jobs"]["by"]["job.status"]["values"] = 12
    privacy["active"] = -1
    path = tmp_path / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    problems = str(info.value).splitlines()[1:]
    assert problems == [
        "- policy.privacy: needs weekly_epsilon > 0, 0 < delta < 1 and selection_delta below "
        "delta for a year of weeks (52)",
        "- policy.privacy: yearly_epsilon (a year of weeks) is below weekly_epsilon",
        "- policy.privacy.resource 'service.version': a pattern attribute needs either values "
        "or select",
        "- policy.privacy.resource 'os.type': an enum is published by its own values",
        "- policy.privacy.resource 'geo.country.iso_code': values must be distinct values of "
        "geo.country.iso_code",
        "- policy.privacy.resource 'host.name': not a resource attribute of the catalog",
        "- policy.privacy.metrics 'printernizer.printers': a total needs a clamp from 1 to the "
        "metric's max",
        "- policy.privacy.metrics 'printernizer.printers': 'job.status' is not an enum attribute "
        "of the metric",
        "- policy.privacy.metrics 'printernizer.jobs': 'job.status' needs values from 1 to its "
        "number of values",
        "- policy.privacy.metrics 'printernizer.files': not a metric of the catalog",
        "- policy.privacy: active must be a number of at least 0",
    ]


def test_a_catalog_without_a_privacy_policy_is_refused(tmp_path: Path) -> None:
    raw = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    del raw["policy"]["privacy"]
    path = tmp_path / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value) == (
        "invalid catalog:\n- policy: privacy (the publication's budget and bounds) is missing")


def test_the_public_section_names_the_stats_path_format_and_a_schema_that_exists() -> None:
    public = load_catalog().public
    schema = json.loads(public.schema.read_text(encoding="utf-8"))
    assert (public.path, public.format, public.schema.name) == ("/stats/", 1, "public.schema.json")
    assert schema["$defs"]["index"]["properties"]["format"] == {"const": public.format}
    assert schema["$defs"]["weekfile"]["properties"]["format"] == {"const": public.format}


def test_a_public_path_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    text = CATALOG_PATH.read_text(encoding="utf-8").replace('path = "/stats/"', 'path = "stats"')
    (tmp_path / "catalog.toml").write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match="public: path 'stats' must start and end with /"):
        load_catalog(tmp_path / "catalog.toml")


def test_the_public_schema_is_a_valid_json_schema_that_refuses_an_unknown_format() -> None:
    schema = json.loads(load_catalog().public.schema.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    index = {"format": 1, "generated_on": "2026-12-07", "catalog_version": 2, "weeks": [],
             "active_installations": [], "added_later": True}
    jsonschema.validate(index, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**index, "format": 2}, schema)
