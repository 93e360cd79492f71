"""The demo: the whole data path on one machine, on embedded defaults (``otel-usage-demo``).

A simulated fleet of installations (:mod:`demo.fleet`), each running the real client, sends its
weekly reports to the ingest service started on loopback; the dashboards' own queries then show
what the maintainers would see. It lives outside the client package, which every Printernizer
installation embeds, and uses only the client's public API.
"""
