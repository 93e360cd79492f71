"""Recording: Printernizer's OTel meters, through the catalog's views, into the local store.

The first room of the data path: :mod:`.provider` builds the ``MeterProvider`` (views that keep
only the catalog's attribute keys, the library's own instruments), :mod:`.exporter` adds each
export's deltas into one row per (UTC day, series). Nothing here imports the report builder or
the sender, and nothing here raises into the host.
"""
