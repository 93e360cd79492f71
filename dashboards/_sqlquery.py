"""A raw-SQL query for Grafana's SQL data sources, as a grafana-foundation-sdk dataquery.

The SDK ships no builder for the mssql and PostgreSQL data sources' queries; this follows its
"custom query type" recipe: a `Dataquery` variant with `to_json`/`from_json`, a builder, and a
registration so that dashboards read back from JSON keep the type.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

Format = Literal["time_series", "table"]
# Grafana's plugin ids of the two data sources (Grafana 11 renamed "postgres").
MSSQL_TYPE = "mssql"
POSTGRES_TYPE = "grafana-postgresql-datasource"


class SQLQuery(cogvariants.Dataquery):
    """rawSql in code mode, with the format Grafana turns the rows into."""

    def __init__(self, raw_sql: str = "", format: Format = "table", ref_id: str | None = None,
                 datasource: DataSourceRef | None = None, hide: bool | None = None) -> None:
        self.raw_sql = raw_sql
        self.format = format
        self.ref_id = ref_id
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"editorMode": "code", "format": self.format,
                                      "rawQuery": True, "rawSql": self.raw_sql}
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        source = data.get("datasource")
        return cls(raw_sql=data.get("rawSql", ""), format=data.get("format", "table"),
                   ref_id=data.get("refId"), hide=data.get("hide"),
                   datasource=DataSourceRef.from_json(source) if source else None)


class SQLQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for `SQLQuery`, in the SDK's fluent style."""

    def __init__(self) -> None:
        self._internal = SQLQuery()

    def build(self) -> SQLQuery:
        return self._internal

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def format(self, format: Format) -> Self:
        self._internal.format = format
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def datasource(self, datasource: DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self


def register() -> None:
    """Let the SDK's JSON decoding map both data sources' queries to `SQLQuery`."""
    for identifier in (MSSQL_TYPE, POSTGRES_TYPE):
        cogruntime.register_dataquery_variant(
            cogruntime.DataqueryConfig(identifier=identifier, from_json_hook=SQLQuery.from_json))
