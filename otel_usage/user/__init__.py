"""What the user sees and does: the viewer, the preview and history, export and delete, the
privacy text, and the user's place in the public statistics (:mod:`.public` fetches them when
the mode allows, through the transport the facade hands it; :mod:`.compare` sets the user's
week beside them). The privacy page (:mod:`otel_usage.web`) and the ``otel-usage`` command
(:mod:`otel_usage.cli`) show the same through the same functions; this room imports neither
them nor the facade.
"""
