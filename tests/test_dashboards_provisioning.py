"""One database's provisioning tree, as Grafana reads it: `otel-usage-dashboards build --only`.

Grafana cannot run here, so each file is checked against the fields Grafana's provisioning
readers require (pkg/services/provisioning: datasources, dashboards, alerting rules, contact
points, notification policies) and against each other: one folder, one data source, and the
alert's labels routed to the provisioned contact point.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import cli
from dashboards._build import DATA_SOURCES, FOLDER
from dashboards._panels import grafana_unit
from dashboards._provisioning import PROVISIONING_DIR, REPEAT_INTERVAL, tree
from otel_usage.catalog import load_catalog

DATABASES = [source.dialect for source in DATA_SOURCES]
TREE = ("alerting/otel-usage-contact-point.yaml", "alerting/otel-usage-policy.yaml",
        "alerting/otel-usage-rules.yaml", "dashboards/otel-usage.yaml",
        "datasources/otel-usage.yaml")
# Prometheus' model.ParseDuration, which Grafana's alerting provisioning uses.
DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


def _seconds(duration: str) -> int:
    match = DURATION.match(duration)
    assert match and duration, f"not a Prometheus duration: {duration!r}"
    units = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1)
    return sum(int(match.group(2 * i + 2) or 0) * unit for i, unit in enumerate(units))


@pytest.fixture(params=DATABASES)
def built(request: pytest.FixtureRequest, tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    """`build --only <db> --out DIR`: one database's tree, written as DIR itself."""
    database: str = request.param
    assert cli.main(["build", "--only", database, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    return database, tmp_path


def _load(root: Path, relative: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / relative).read_text("utf-8"))
    assert data["apiVersion"] == 1, relative
    return data


def test_the_tree_holds_one_database_only(built: tuple[str, Path]) -> None:
    database, root = built
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert names == sorted([*TREE, f"dashboards/otel-usage-fleet-{database}.json"])
    other = next(d for d in DATABASES if d != database)
    for path in root.rglob("*"):
        if path.is_file():
            assert f"otel-usage-{other}" not in path.read_text("utf-8"), path


def test_the_committed_tree_is_what_build_only_writes(built: tuple[str, Path]) -> None:
    database, root = built
    for relative in tree(database):  # type: ignore[arg-type]
        assert (root / relative).read_bytes() == (PROVISIONING_DIR / database / relative
                                                  ).read_bytes()


def test_data_source_as_grafana_provisions_it(built: tuple[str, Path]) -> None:
    database, root = built
    (entry,) = _load(root, "datasources/otel-usage.yaml")["datasources"]
    source = next(s for s in DATA_SOURCES if s.dialect == database)
    assert (entry["name"], entry["type"], entry["uid"], entry["access"]) == (
        source.name, source.type, source.uid, "proxy")
    assert entry["editable"] is False and set(entry["secureJsonData"]) == {"password"}


def test_dashboards_and_alert_rules_share_one_folder_by_title(built: tuple[str, Path]) -> None:
    """Grafana provisions alert rules first and finds their folder by title, with a uid of
    its own: the dashboard provider must look the folder up by that title too (no folderUid),
    or it makes a second folder of the same name."""
    _, root = built
    (provider,) = _load(root, "dashboards/otel-usage.yaml")["providers"]
    (group,) = _load(root, "alerting/otel-usage-rules.yaml")["groups"]
    assert provider["folder"] == group["folder"] == FOLDER
    assert "folderUid" not in provider
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards"


def test_the_dashboard_is_read_only_and_uses_the_one_data_source(built: tuple[str, Path]) -> None:
    database, root = built
    board = json.loads((root / f"dashboards/otel-usage-fleet-{database}.json").read_text())
    source = next(s for s in DATA_SOURCES if s.dialect == database)
    ref = {"type": source.type, "uid": source.uid}
    assert board["editable"] is False
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert [p["title"] for p in panels if not p.get("description")] == []
    assert all(p["datasource"] == ref and p["targets"][0]["datasource"] == ref for p in panels)
    (releases,) = board["annotations"]["list"]
    assert releases["datasource"] == ref and releases["target"]["format"] == "table"
    assert "service.version" in releases["target"]["rawSql"]


def test_units_come_from_the_catalog(built: tuple[str, Path]) -> None:
    """A published total per installation is in the catalog's unit (jobs, a count: a plain
    number); a metric published as a distribution shows a share; days are days."""
    database, root = built
    board = json.loads((root / f"dashboards/otel-usage-fleet-{database}.json").read_text())
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in board["panels"]
             if p["type"] != "row"}
    catalog = load_catalog()
    assert catalog.metrics["printernizer.jobs"].unit == "{job}"
    assert units["printernizer.jobs per installation"] == "short"
    assert units["printernizer.uptime: installations with any"] == "percent"
    assert grafana_unit(catalog.metrics["printernizer.uptime"].unit) == "d"


def test_alert_rule_as_grafana_provisions_it(built: tuple[str, Path]) -> None:
    database, root = built
    (group,) = _load(root, "alerting/otel-usage-rules.yaml")["groups"]
    assert group["orgId"] == 1 and group["name"] and _seconds(group["interval"]) == 3600
    (rule,) = group["rules"]
    assert rule["uid"] and rule["title"] and _seconds(rule["for"]) == 0
    refs = [query["refId"] for query in rule["data"]]
    assert refs == ["A", "B", "C"] and rule["condition"] in refs
    a = rule["data"][0]
    assert a["datasourceUid"] == f"otel-usage-{database}" and a["model"]["format"] == "table"
    assert a["relativeTimeRange"]["from"] > a["relativeTimeRange"]["to"] == 0
    assert (rule["noDataState"], rule["execErrState"]) == ("OK", "Error")
    assert rule["labels"] == {"service": "otel-usage", "severity": "warning"}
    assert "error_type" in rule["annotations"]["summary"]
    assert "What to do" in rule["annotations"]["description"]


def test_alerts_reach_the_contact_point_once_a_week(built: tuple[str, Path]) -> None:
    """The policy routes the rule's labels to the provisioned contact point, grouped per
    error type, repeated no more than once a week."""
    _, root = built
    (contact,) = _load(root, "alerting/otel-usage-contact-point.yaml")["contactPoints"]
    (receiver,) = contact["receivers"]
    assert receiver["uid"] and receiver["type"] == "email"
    assert receiver["settings"]["addresses"] == "${OTEL_USAGE_ALERT_EMAIL}"
    (policy,) = _load(root, "alerting/otel-usage-policy.yaml")["policies"]
    (route,) = policy["routes"]
    assert policy["receiver"] == route["receiver"] == contact["name"]
    (rule,) = _load(root, "alerting/otel-usage-rules.yaml")["groups"][0]["rules"]
    for key, operator, value in route["object_matchers"]:
        assert operator == "=" and rule["labels"][key] == value
    assert route["group_by"] == ["alertname", "error_type"]
    assert _seconds(route["repeat_interval"]) == _seconds(REPEAT_INTERVAL) == 7 * 86400
    assert _seconds(route["group_interval"]) <= 3600 and _seconds(route["group_wait"]) == 60


def test_alerting_files_have_no_dollar_for_grafana_to_expand(built: tuple[str, Path]) -> None:
    """Grafana expands environment variables in alerting files: only the contact point's
    address is one, on purpose."""
    _, root = built
    text = "".join((root / name).read_text() for name in TREE if name.startswith("alerting/"))
    assert ENV_VAR.findall(text) == ["OTEL_USAGE_ALERT_EMAIL"]
    assert text.count("$") == 1


def test_every_environment_variable_is_documented(built: tuple[str, Path]) -> None:
    """The operator sets what the tree reads: each ${VAR} is in dashboards/README.md."""
    _, root = built
    readme = (PROVISIONING_DIR.parent / "README.md").read_text("utf-8")
    used = {v for p in root.rglob("*.yaml") for v in ENV_VAR.findall(p.read_text())}
    assert used and {v for v in used if f"`{v}`" not in readme} == set()


def test_only_needs_an_out_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--only", "mssql"]) == 2
    assert "--only needs --out" in capsys.readouterr().err
