"""The otel-usage ingest: receives weekly OTLP reports, checks them against the catalog,
stores them with SQLAlchemy Core and keeps the k-anonymous reporting views up to date.

Public: `create_app`, `Settings`, the view names in `ingest.views`, and the CLI in `ingest.cli`.
Importing this package stays light (the dashboards import `ingest.views` without FastAPI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Settings", "create_app"]

if TYPE_CHECKING:
    from ._settings import Settings
    from .app import create_app


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from ._settings import Settings

        return Settings
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
