"""Which language the page speaks: ``?lang=`` first, then the browser's Accept-Language."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "negotiate", "texts"]

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"


def negotiate(accept_language: str | None) -> str:
    """The supported language the Accept-Language header prefers most (RFC 9110, 12.5.4)."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = _quality(params)
        ranked = q - position * 1e-6  # among equal weights, the first listed wins
        if primary in LANGUAGES and q > 0 and ranked > best_q:
            best, best_q = primary, ranked
    return best


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


@functools.cache
def texts(language: str) -> dict[str, Any]:
    """The page's own words in `language` (``static/<language>.json``)."""
    source = resources.files(__package__).joinpath("static", f"{language}.json")
    loaded: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return loaded
