"""The privacy page: a FastAPI router Printernizer mounts in its app.

    from otel_usage.web import privacy_router
    app.include_router(privacy_router(usage, prefix="/usage"))   # page at /usage/

The page lets a user pick off / local / on, read what is collected (from the catalog), look at
the local statistics, the next report exactly as it will leave and the upload history, export
everything and delete it, and set its own week beside the public statistics (fetched by the
library, never by the browser). It is plain HTML, CSS and JavaScript served by the router, with
relative URLs only, so it works under any prefix, including Home Assistant's ingress path.

This package and Printernizer's old API (:mod:`otel_usage.printernizer.api`) are the only parts
of the client that import FastAPI (the ``web`` extra).
"""

from ._router import privacy_router

__all__ = ["privacy_router"]
