"""The otel-usage ingest: receives weekly OTLP reports, checks them against the catalog,
stores them with SQLAlchemy Core, publishes each closed week through one differentially
private mechanism (noise drawn once, stored with its scale and the week's privacy loss), and
then forgets the week's raw reports.

Public: `create_app`, `Settings`, `publish`, the view names in `ingest.views`, the public
statistics in `ingest.site`, and the CLI in `ingest.cli`; `ingest.testing` and `ingest.audit`
are testing APIs. Importing this package stays light (the dashboards import `ingest.views`
without FastAPI).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

__all__ = ["Settings", "create_app", "publish"]

if TYPE_CHECKING:
    from ._settings import Settings
    from .app import create_app


def publish(settings: Settings) -> list[datetime]:
    """Publish every week due at `settings`' clock, then forget what publication no longer
    needs (what the service does on its own, and `otel-usage-ingest publish`); the Mondays of
    the weeks published."""
    from ._maintenance import forget, publish_due
    from ._store import Store, create_engine

    store = Store(create_engine(settings.database_url))
    try:
        store.migrate()
        published = [publication.week for publication in publish_due(store, settings)]
        forget(store, settings)
        return published
    finally:
        store.dispose()


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from ._settings import Settings

        return Settings
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
