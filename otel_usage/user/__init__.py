"""What the user sees and does: the viewer, the preview and history, export and delete, the
``otel-usage`` command and the privacy text (the privacy page in :mod:`otel_usage.web` shows
the same through the same functions).
"""
