"""The privacy page's handlers: the page, its static files and its JSON API (routed by
:mod:`._router`).

Imported on the page's first request: a host that mounts the page keeps only its routes in
memory until someone opens it. Errors are JSON ``{"error": <code>, "detail": <sentence>}`` with
a 4xx status (503 when the local store cannot be used), answered here (a router cannot install
exception handlers on the host's app); state-changing requests must come from the page's own
origin (:mod:`._guard`). Which path and method each handler answers is in the route table.
"""

from __future__ import annotations

import asyncio
import html
import json
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..consent import MODES
from ..errors import InvalidModeError, UsageError
from ..telemetry import UsageTelemetry
from ._guard import (
    NO_STORE,
    ApiError,
    agreed_version,
    error_response,
    json_object,
    same_origin_only,
)
from ._language import LANGUAGES, negotiate, texts

__all__ = ["Api", "answer", "not_allowed"]

STATIC_FILES = {"app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8",
                "icon.svg": "image/svg+xml",
                "en.json": "application/json", "de.json": "application/json"}
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'self'")


async def answer(api: Api, handler: str, request: Request) -> Response:
    """`api`'s `handler` for `request`: what another site's page asks to change is refused;
    refusals and the library's errors become JSON answers, never a bare 500 page."""
    try:
        same_origin_only(request)
        response: Response = await getattr(api, handler)(request)
        return response
    except ApiError as exc:
        return error_response(exc)
    except UsageError as exc:
        return error_response(ApiError(503, "store_unavailable", str(exc)))


def not_allowed(allowed: list[str], request: Request) -> Response:
    """405, naming the methods `allowed` on the path."""
    return error_response(ApiError(
        405, "method_not_allowed",
        f"{request.method} is not allowed here: use {' or '.join(allowed)}",
        {"Allow": ", ".join(allowed)}))


def _json(data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, headers={**NO_STORE, **(headers or {})})


class Api:
    """The handlers, bound to one UsageTelemetry."""

    def __init__(self, usage: UsageTelemetry) -> None:
        self.usage = usage

    # The page.

    async def add_slash(self, request: Request) -> Response:
        """``<prefix>`` → ``<prefix>/``, relative, so it holds behind any proxy prefix."""
        last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{last}/{query}", status_code=307)

    async def page(self, request: Request) -> Response:
        """The page, in the language of ``?lang=`` or of the browser."""
        asked = request.query_params.get("lang")
        language = asked if asked in LANGUAGES else negotiate(
            request.headers.get("accept-language"))
        return Response(_render_page(language), media_type="text/html; charset=utf-8",
                        headers={**NO_STORE, "Content-Language": language,
                                 "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                 "Vary": "Accept-Language"})

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            raise ApiError(404, "not_found", f"no static file named {name!r}")
        return Response(_static(name), media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "no-cache"})

    # Reading.

    async def get_mode(self, request: Request) -> Response:
        return _json(await self._mode())

    async def _mode(self) -> dict[str, Any]:
        state = await asyncio.to_thread(self.usage.mode_state)
        consent = await asyncio.to_thread(self.usage.catalog_additions)
        return {"mode": state.mode, "forced_by_environment": state.forced_by_environment,
                "modes": list(MODES), "stored": state.stored,
                "consented_version": consent["consented_version"],
                "catalog_version": consent["catalog_version"],
                "additions": consent["additions"]}

    async def statistics(self, request: Request) -> Response:
        """The local statistics viewer, with when a report last reached the server."""
        return _json(await self.usage.statistics())

    async def catalog(self, request: Request) -> Response:
        """What we collect and what we don't, in the asked language, from the catalog."""
        return _json(catalog_texts(self.usage, _language(request)))

    async def privacy(self, request: Request) -> Response:
        """The privacy policy, as Markdown and HTML. (Its renderer is imported on the first
        request: the host does not keep the policy's texts in memory for a page seldom read.)"""
        from ..user.privacy import render_privacy_markdown
        from ._markdown import markdown_to_html

        language = _language(request)
        markdown = render_privacy_markdown(self.usage.catalog, language)
        return _json({"language": language, "markdown": markdown,
                      "html": markdown_to_html(markdown)})

    async def report(self, request: Request) -> Response:
        """The next report (readable and OTLP JSON) and its difference from the last sent."""
        return _json(await asyncio.to_thread(self.usage.preview))

    async def history(self, request: Request) -> Response:
        return _json({"uploads": await asyncio.to_thread(self.usage.history)})

    async def export(self, request: Request) -> Response:
        """Everything stored locally, as a JSON file download."""
        data = await self.usage.export_json()
        day = self.usage.clock.now().date().isoformat()
        body = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        return Response(body, media_type="application/json", headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="otel-usage-export-{day}.json"'})

    async def comparison(self, request: Request) -> Response:
        """This installation's numbers beside the public statistics kept, and whether a fetch
        is due: nothing is contacted (any site's page can make a browser send a GET, and so
        choose when the installation would contact the public server). In mode on the page's
        script then asks for the fetch with a POST (:meth:`fetch_comparison`)."""
        fetch = await asyncio.to_thread(self.usage.public_statistics_status)
        return _json({**await asyncio.to_thread(self.usage.compare), "fetch": fetch})

    # Changing.

    async def fetch_comparison(self, request: Request) -> Response:
        """Fetch the public statistics now: ``{}`` as the user asked (the button says from
        where), in mode on or local; ``{"automatic": true}`` by the automatic rule (the page
        in mode on, at most once per published week and once a day). 403 ``fetch_refused``
        when the rule says no (off, DO_NOT_TRACK, automatic in local). When they could not be
        fetched or read (nothing new is kept): 502 ``fetch_failed`` to the user who asked; an
        automatic fetch answers what is kept, its ``fetch`` saying it ``failed`` (the page
        shows it; a fetch the user did not ask for is no failed request)."""
        body = await json_object(request)
        automatic = body.get("automatic", False)
        if not isinstance(automatic, bool):
            raise ApiError(422, "invalid_automatic",
                           'send {} (the user asks) or {"automatic": true} (the page, by the '
                           "automatic rule)")
        fetch = await asyncio.to_thread(self.usage.fetch_public_statistics,
                                        asked=not automatic)
        if fetch["refused"]:
            raise ApiError(403, "fetch_refused", fetch["detail"])
        if fetch["failed"] and not automatic:
            raise ApiError(502, "fetch_failed", f"the public statistics at {fetch['url']}: "
                                                f"{fetch['detail']}")
        return _json({**await asyncio.to_thread(self.usage.compare), "fetch": fetch})

    async def put_mode(self, request: Request) -> Response:
        """Store the user's choice; ``on`` is an agreement, and names the catalog version the
        page showed (``{"mode": "on", "catalog_version": N}``)."""
        body = await json_object(request)
        mode = body.get("mode")
        if not isinstance(mode, str):
            raise ApiError(422, "mode_required",
                           'send {"mode": "off" | "local" | "on"}')
        if mode.strip().lower() == "on":
            agreed_version(self.usage, body, '{"mode": "on", "catalog_version": N}')
        try:
            await self.usage.aset_mode(mode)
        except InvalidModeError as exc:
            raise ApiError(422, "invalid_mode", str(exc)) from exc
        return _json(await self._mode())

    async def send_now(self, request: Request) -> Response:
        """Send what is due now (erasure requests in any mode, reports only in mode on)."""
        await json_object(request)
        return _json(await asyncio.to_thread(self.usage.send_now))

    async def delete_all(self, request: Request) -> Response:
        """Delete every statistic on this machine; needs ``{"confirm": true}``."""
        body = await json_object(request)
        if body.get("confirm") is not True:
            raise ApiError(400, "confirmation_required",
                           'deleting every statistic on this machine needs {"confirm": true}')
        kept = await asyncio.to_thread(self.usage.delete_all_now)
        return _json({"deleted": True, "mode_kept": kept})


def _language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked is None:
        return negotiate(request.headers.get("accept-language"))
    if asked not in LANGUAGES:
        raise ApiError(400, "unsupported_language",
                       f"unsupported language {asked!r}: choose one of en, de")
    return asked


def catalog_texts(usage: UsageTelemetry, language: str) -> dict[str, Any]:
    """The page's "what we collect / what we don't" lists, generated from the catalog."""
    catalog = usage.catalog
    return {
        "language": language,
        "catalog_version": catalog.version,
        "collect": [{"name": m.name, "text": m.text.get(language), "unit": m.unit,
                     "attributes": {k: a.describe_values() for k, a in m.attributes.items()}}
                    for m in catalog.metrics.values()],
        "resource": [{"key": k, "text": a.text.get(language) if a.text else ""}
                     for k, a in catalog.resource.items()],
        "never": [n.get(language) for n in catalog.never],
        "policy": {**{name: getattr(catalog.policy, name) for name in _POLICY_NUMBERS},
                   "weekly_epsilon": catalog.policy.privacy.weekly_epsilon},
    }


# The policy's numbers the page's data carries: how long the server keeps what, the outbox (and,
# beside them, the week's privacy budget).
_POLICY_NUMBERS = ("publish_after_days", "raw_weeks_after_publication", "tombstone_days",
                   "installation_silent_days", "outbox_max_age_weeks")


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _render_page(language: str) -> str:
    """index.html with ``{{key}}`` filled from the language's texts (escaped)."""
    words = texts(language)
    page = _static("index.html").replace("{{lang}}", language)
    for key, value in words.items():
        if isinstance(value, str):
            page = page.replace("{{" + key + "}}", html.escape(value))
    # Inside <script type="application/json"> nothing is decoded: escape only what could end it.
    data = json.dumps(words, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return page.replace("{{texts_json}}", data.replace("&", "\\u0026"))
