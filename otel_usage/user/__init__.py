"""What the user sees and does: the viewer, the preview and history, export and delete, and the
privacy text. The privacy page (:mod:`otel_usage.web`) and the ``otel-usage`` command
(:mod:`otel_usage.cli`) show the same through the same functions; this room imports neither
them nor the facade.
"""
