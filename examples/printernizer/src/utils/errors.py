"""Its error hierarchy and central exception handlers (``main.py`` imports the first under an
alias)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse


class PrinternizerError(Exception):
    """Its errors: a status and a code made from the class name."""

    status_code = 500


class PrinterNotFoundError(PrinternizerError):
    status_code = 404


class PrinterBusyError(PrinternizerError):
    status_code = 409


def _code(exc: PrinternizerError) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


async def printernizer_exception_handler(request: Request, exc: PrinternizerError) -> JSONResponse:
    """Answer a Printernizer error with its status and code."""
    return JSONResponse({"status": "error", "error_code": _code(exc)},
                        status_code=exc.status_code)


async def generic_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer what nothing else handled with a 500."""
    return JSONResponse({"status": "error", "error_code": "INTERNAL_SERVER_ERROR"},
                        status_code=500)


async def http_exception_handler(request: Request, exc: HTTPException) -> JSONResponse:
    """Answer an HTTPException with its status and detail."""
    return JSONResponse({"status": "error", "message": exc.detail},
                        status_code=exc.status_code)
