"""The weekly report: one ISO week of the local store, scrubbed against the catalog, as OTLP.

:mod:`.build` aggregates and scrubs a week and encodes it (the exact bytes that leave);
:mod:`.environment` reads the facts about the machine a report names once. Nothing here sends.
"""
