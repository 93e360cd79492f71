"""The maintainers' Grafana dashboards, built as code, and their provisioning.

`queries` lists every panel with its SQL per dialect and runs it on a store; the `build`
command writes the dashboards JSON and the provisioning files (`otel-usage-dashboards build`);
`testing` is a testing API (a simulated fleet loaded through the ingest). Panels read the
ingest's reporting views only: differentially private numbers with their 95 % margins.
"""

from __future__ import annotations

__all__: list[str] = []
