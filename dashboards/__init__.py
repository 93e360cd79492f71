"""The maintainers' Grafana dashboards, built as code, and their provisioning.

`queries` lists every panel with its SQL per dialect and runs it on a store; `build` writes the
dashboards JSON and the provisioning files (`otel-usage-dashboards build`). Panels read the
ingest's k-anonymous reporting views only.
"""

from __future__ import annotations

__all__: list[str] = []
