"""The privacy page's routes: the page, its static files and its JSON API.

Every URL the page uses is relative, so the router works under any prefix, including Home
Assistant's ingress path (``/api/hassio_ingress/<token>/...``, which the Supervisor strips
before the request reaches Printernizer and reports in ``X-Ingress-Path``).

The routes are made at mount; their handlers (:mod:`._api`, with the guard of what a request
must show to change anything, :mod:`._guard`) are imported on the page's first request: a host
keeps the page's code in memory only once someone opens it. Errors are JSON
``{"error": <code>, "detail": <sentence>}`` with a 4xx status (503 when the local store cannot
be used), answered by the router itself (a router cannot install exception handlers on the
host's app).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..telemetry import UsageTelemetry

if TYPE_CHECKING:
    from ._api import Api

__all__ = ["privacy_router"]

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
Handler = Callable[[Request], Awaitable[Response]]

_DELETE = 'Delete every statistic on this machine; needs ``{"confirm": true}``.'
# Each path's methods and their handlers (methods of :class:`._api.Api`), with the description
# the host's OpenAPI schema shows for the JSON API.
ROUTES: dict[str, dict[str, tuple[str, str]]] = {
    "/": {"GET": ("page", "The page, in the language of ``?lang=`` or of the browser.")},
    "/static/{name}": {"GET": ("static", "")},
    "/api/mode": {"GET": ("get_mode", ""),
                  "PUT": ("put_mode", "Store the user's choice; ``on`` is an agreement, and "
                          "names the catalog version the page showed "
                          '(``{"mode": "on", "catalog_version": N}``).')},
    "/api/statistics": {"GET": ("statistics", "The local statistics viewer, with when a report "
                                "last reached the server.")},
    "/api/catalog": {"GET": ("catalog", "What we collect and what we don't, in the asked "
                             "language, from the catalog.")},
    "/api/privacy": {"GET": ("privacy", "The privacy policy, as Markdown and HTML.")},
    "/api/report": {"GET": ("report", "The next report (readable and OTLP JSON) and its "
                            "difference from the last sent.")},
    "/api/history": {"GET": ("history", "")},
    "/api/comparison": {"GET": ("comparison", "This installation's numbers beside the public "
                                "statistics kept, and whether a fetch is due (nothing is "
                                "contacted).")},
    "/api/comparison/fetch": {"POST": ("fetch_comparison", "Fetch the public statistics now: "
                                       "``{}`` as the user asked (mode on or local), "
                                       '``{"automatic": true}`` by the automatic rule (mode '
                                       "on, when due).")},
    "/api/send-now": {"POST": ("send_now", "Send what is due now (erasure requests in any "
                               "mode, reports only in mode on).")},
    "/api/export": {"GET": ("export", "Everything stored locally, as a JSON file download.")},
    "/api/data": {"DELETE": ("delete_all", _DELETE)},
    "/api/data/delete": {"POST": ("delete_all", _DELETE)},
}


def privacy_router(usage: UsageTelemetry, *, prefix: str = "/usage") -> APIRouter:
    """The privacy page and its API for `usage`, under `prefix` (any prefix works)."""
    router = APIRouter(prefix=prefix.rstrip("/"), tags=["usage statistics"])
    handlers = _Handlers(usage)
    routes = dict(ROUTES)
    if router.prefix:
        routes[""] = {"GET": ("add_slash", "")}
    # The JSON API's routes are FastAPI's, for its OpenAPI schema; the page's own and the 405
    # answers are plain Starlette routes, a fraction of the memory of a FastAPI route each.
    for path, methods in routes.items():
        for method, (name, description) in methods.items():
            endpoint = handlers.endpoint(name, description)
            if path.startswith("/api/"):
                router.add_api_route(path, endpoint, methods=[method])
            else:
                router.add_route(router.prefix + path, endpoint, methods=[method],
                                 include_in_schema=False)
        others = [m for m in ALL_METHODS if m not in methods]
        router.add_route(router.prefix + path, _not_allowed(sorted(methods)), methods=others,
                         include_in_schema=False)
    return router


class _Handlers:
    """The page's handlers for one UsageTelemetry, made on the first request."""

    def __init__(self, usage: UsageTelemetry) -> None:
        self._usage = usage
        self._api: Api | None = None

    def endpoint(self, name: str, description: str) -> Handler:
        """The endpoint of handler `name` (named and described for the OpenAPI schema)."""

        async def endpoint(request: Request) -> Response:
            from ._api import Api, answer

            if self._api is None:
                self._api = Api(self._usage)
            return await answer(self._api, name, request)

        endpoint.__name__ = name
        endpoint.__doc__ = description or None
        return endpoint


def _not_allowed(allowed: list[str]) -> Handler:
    async def method_not_allowed(request: Request) -> Response:
        from ._api import not_allowed

        return not_allowed(allowed, request)

    return method_not_allowed
