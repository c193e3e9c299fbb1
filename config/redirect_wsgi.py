"""A tiny WSGI application for port 80: every request is sent to the same path over HTTPS."""

from collections.abc import Callable, Iterable
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer 301 with the HTTPS address of the requested path."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
    host = host.split(":")[0] if not host.startswith("[") else host.split("]")[0] + "]"
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING")
    location = f"https://{host}{path}" + (f"?{query}" if query else "")
    start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0")])
    return [b""]
