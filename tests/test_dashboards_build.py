"""The generated dashboards and provisioning files: fresh, well-formed, wired to the data sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime as cogruntime

import dashboards
from dashboards import cli, queries
from dashboards._build import DATA_SOURCES, build_dashboard
from dashboards._provisioning import PROVISIONING_DIR, files
from dashboards._sqlquery import SQLQuery, register
from otel_usage.catalog import load_catalog

SOURCES = {source.uid: source for source in DATA_SOURCES}


def _yaml(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROVISIONING_DIR / relative).read_text("utf-8"))
    return data


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text("utf-8"))
            for p in sorted(PROVISIONING_DIR.glob("*/dashboards/*.json"))]


def test_committed_files_are_not_stale() -> None:
    """Regenerating gives exactly the committed tree: run `otel-usage-dashboards build`."""
    assert cli.stale_files(PROVISIONING_DIR) == []


def test_build_writes_the_tree_to_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--out", str(tmp_path)]) == 0
    assert cli.stale_files(tmp_path) == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*")) == sorted(files())
    assert "wrote" in capsys.readouterr().out


def test_check_reports_a_hand_edited_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.main(["build", "--out", str(tmp_path)])
    (tmp_path / "mssql" / "dashboards" / "otel-usage.yaml").write_text("edited\n")
    assert cli.stale_files(tmp_path) == ["mssql/dashboards/otel-usage.yaml"]
    monkeypatch.setattr("dashboards._provisioning.PROVISIONING_DIR", tmp_path)
    assert cli.main(["check"]) == 1


def test_one_dashboard_per_data_source_with_the_same_panels() -> None:
    """Same titles in the same places; each target names its own data source and dialect."""
    boards = _dashboards()
    assert sorted(b["uid"] for b in boards) == ["otel-usage-fleet-mssql",
                                                 "otel-usage-fleet-postgresql"]
    layouts = [[(p["title"], p["gridPos"]) for p in b["panels"]] for b in boards]
    assert layouts[0] == layouts[1]
    for board in boards:
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) == len(queries.panels())
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
        for panel in panels:
            (target,) = panel["targets"]
            source = SOURCES[target["datasource"]["uid"]]
            assert panel["datasource"] == target["datasource"] == {"type": source.type,
                                                                   "uid": source.uid}
            assert board["uid"].endswith(source.dialect)
            assert target["format"] in ("table", "time_series") and target["rawQuery"] is True


def test_time_series_panels_use_grafana_time_macros() -> None:
    for panel in queries.panels():
        for dialect in ("mssql", "postgresql"):
            sql = panel.sql(dialect)
            assert "$__time" in sql, panel.key
            if panel.kind == "timeseries":
                assert panel.format == "time_series"


def test_every_catalog_metric_has_a_panel() -> None:
    """The catalog decides which panels exist: one per metric in the catalog row."""
    keys = {p.key for p in queries.panels()}
    assert {f"catalog:{name}" for name in load_catalog().metrics} <= keys


def test_sql_query_round_trips_through_the_sdk_runtime() -> None:
    """The custom dataquery is a registered SDK variant: JSON back to SQLQuery, unchanged."""
    register()
    target = _dashboards()[0]["panels"][1]["targets"][0]
    query = cogruntime.dataquery_from_json(target, "")
    assert isinstance(query, SQLQuery)
    assert query.to_json() == target


def test_datasources_take_secrets_from_the_environment() -> None:
    for source in DATA_SOURCES:
        doc = _yaml(f"{source.dialect}/datasources/otel-usage.yaml")
        (entry,) = doc["datasources"]
        assert doc["apiVersion"] == 1
        assert (entry["uid"], entry["type"]) == (source.uid, source.type)
        prefix = "${OTEL_USAGE_MSSQL_" if source.dialect == "mssql" else "${OTEL_USAGE_POSTGRES_"
        assert entry["secureJsonData"]["password"] == prefix + "PASSWORD}"
        assert entry["url"].startswith(prefix) and entry["user"].startswith(prefix)
    mssql = _yaml("mssql/datasources/otel-usage.yaml")["datasources"][0]
    assert mssql["type"] == "mssql"
    assert {k: mssql["jsonData"][k] for k in ("encrypt", "tlsSkipVerify", "sslRootCertFile",
                                               "servername")} == {
        "encrypt": "true", "tlsSkipVerify": False,
        "sslRootCertFile": "${OTEL_USAGE_MSSQL_ROOT_CERT}",
        "servername": "${OTEL_USAGE_MSSQL_SERVER_NAME}"}


def test_dashboard_provider_points_at_the_json() -> None:
    for source in DATA_SOURCES:
        (provider,) = _yaml(f"{source.dialect}/dashboards/otel-usage.yaml")["providers"]
        assert provider["type"] == "file"
        assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards"


def test_alert_rules_reference_their_data_source_and_dashboard() -> None:
    """A: the anomaly SQL on the data source; B: last value; C: above 0 fires."""
    for source in DATA_SOURCES:
        doc = _yaml(f"{source.dialect}/alerting/otel-usage-rules.yaml")
        (group,) = doc["groups"]
        (rule,) = group["rules"]
        assert doc["apiVersion"] == 1 and group["folder"] and group["interval"] == "1h"
        a, b, c = rule["data"]
        assert a["datasourceUid"] == source.uid == a["model"]["datasource"]["uid"]
        assert a["model"]["format"] == "table" and "$" not in a["model"]["rawSql"]
        assert (b["model"]["type"], b["model"]["reducer"], c["model"]["type"]) == (
            "reduce", "last", "threshold")
        assert c["model"]["conditions"][0]["evaluator"] == {"params": [0], "type": "gt"}
        assert rule["condition"] == "C"
        assert rule["annotations"]["__dashboardUid__"] == f"otel-usage-fleet-{source.dialect}"


def test_dashboard_built_in_memory_matches_the_file() -> None:
    source = DATA_SOURCES[1]
    on_disk = json.loads((PROVISIONING_DIR / source.dialect / "dashboards" /
                          f"otel-usage-fleet-{source.dialect}.json").read_text("utf-8"))
    assert build_dashboard(source) == on_disk


def test_public_surface() -> None:
    assert dashboards.__all__ == []
    assert queries.__all__ == sorted(queries.__all__)
    assert cli.__all__ == ["main"]
