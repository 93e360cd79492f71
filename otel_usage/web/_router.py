"""The privacy page's routes: the page, its static files and its JSON API.

Every URL the page uses is relative, so the router works under any prefix, including Home
Assistant's ingress path (``/api/hassio_ingress/<token>/...``, which the Supervisor strips
before the request reaches Printernizer and reports in ``X-Ingress-Path``).

The router holds one route for all the page's paths: its path matches exactly the paths of
:data:`ROUTES` (and, under a prefix, the prefix without its slash, which redirects to the
page), so the host's other routes under the same prefix still answer, and it dispatches by
that table. (A route per path and method held about 0.2 MiB of the host's memory for the
page's fourteen paths.) It is a FastAPI route: the dependencies a host includes the router
with apply to it. The page's JSON API is the page's script's, not part of the host's OpenAPI
schema. The handlers
(:mod:`._api`, with the guard of what a request must show to change anything, :mod:`._guard`)
are imported on the page's first request: a host keeps the page's code in memory only once
someone opens it. Errors are JSON ``{"error": <code>, "detail": <sentence>}`` with a 4xx
status (503 when the local store cannot be used), answered by the router itself (a router
cannot install exception handlers on the host's app).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from ..telemetry import UsageTelemetry

if TYPE_CHECKING:
    from ._api import Api

__all__ = ["ROUTES", "privacy_router"]

# Each path of the page (after the prefix) and its methods' handlers, methods of
# :class:`._api.Api`; ``{name}`` is one segment, the static file's name.
ROUTES: dict[str, dict[str, str]] = {
    "/": {"GET": "page"},  # in the language of ``?lang=`` or of the browser
    "/static/{name}": {"GET": "static"},
    "/api/mode": {"GET": "get_mode", "PUT": "put_mode"},  # on names the catalog version shown
    "/api/statistics": {"GET": "statistics"},
    "/api/catalog": {"GET": "catalog"},
    "/api/privacy": {"GET": "privacy"},
    "/api/report": {"GET": "report"},
    "/api/history": {"GET": "history"},
    "/api/comparison": {"GET": "comparison"},  # contacts nothing
    "/api/comparison/fetch": {"POST": "fetch_comparison"},
    "/api/send-now": {"POST": "send_now"},
    "/api/export": {"GET": "export"},
    "/api/data": {"DELETE": "delete_all"},
    "/api/data/delete": {"POST": "delete_all"},
}
# The methods the route takes (for the others than a path's own, a 405 in JSON; HEAD as GET
# for the page's own paths, not its API's).
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_STATIC = "/static/"
_ADD_SLASH = {"GET": "add_slash"}  # the prefix without its slash: to the page
_CONVERTOR = "otel_usage_page"
_ROOT_CONVERTOR = "otel_usage_page_at_root"


class _PagePaths(Convertor[str]):
    """The route's path parameter, after the prefix: exactly the paths of :data:`ROUTES`, or
    nothing (the prefix without its slash)."""

    regex = "|".join(["", *(re.escape(path).replace(r"\{name\}", "[^/]+") for path in ROUTES)])

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _RootPaths(_PagePaths):
    """The same without the leading slash, for a page mounted at the host's root (a route's
    path must begin with one: a path that does not is matched as a host name would be, in
    any letter case)."""

    regex = "|".join(re.escape(path[1:]).replace(r"\{name\}", "[^/]+") for path in ROUTES)


register_url_convertor(_CONVERTOR, _PagePaths())
register_url_convertor(_ROOT_CONVERTOR, _RootPaths())


def privacy_router(usage: UsageTelemetry, *, prefix: str = "/usage") -> APIRouter:
    """The privacy page and its API for `usage`, under `prefix` (any prefix works)."""
    router = APIRouter(prefix=prefix.rstrip("/"))
    page = _Page(usage, at_root=not router.prefix)
    # A FastAPI route, so that what the host includes the router with (its dependencies, an
    # authentication) applies to the page as to its own API. (A FastAPI router puts its
    # prefix before the path itself.)
    path = f"{{path:{_CONVERTOR}}}" if router.prefix else f"/{{path:{_ROOT_CONVERTOR}}}"
    router.add_api_route(path, page.dispatch, methods=_METHODS, include_in_schema=False)
    return router


class _Page:
    """The page's handlers for one UsageTelemetry, made on the first request."""

    def __init__(self, usage: UsageTelemetry, *, at_root: bool) -> None:
        self._usage = usage
        self._at_root = at_root
        self._api: Api | None = None

    async def dispatch(self, request: Request) -> Response:
        """The handler :data:`ROUTES` names for the request's path and method (405 for
        another method, naming those allowed); the prefix without its slash redirects."""
        path = request.path_params["path"]
        if self._at_root:
            path = "/" + path
        if path.startswith(_STATIC):
            request.path_params["name"] = path[len(_STATIC):]
            path = _STATIC + "{name}"
        methods = ROUTES[path] if path else _ADD_SLASH
        head = request.method == "HEAD" and not path.startswith("/api/")
        method = "GET" if head else request.method
        if method not in methods:
            from ._api import not_allowed

            return not_allowed(sorted(methods), request)
        return await self._answer(methods[method], request)

    async def _answer(self, name: str, request: Request) -> Response:
        from ._api import Api, answer

        if self._api is None:
            self._api = Api(self._usage)
        return await answer(self._api, name, request)
