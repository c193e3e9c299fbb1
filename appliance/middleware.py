"""The node's middleware: the maintenance notice, and the client's address behind a front server.

`client_address` is the one way the node tells who a client is (the peer API's lockout, the
login pages' lockouts, the credentials it hands out).

While maintenance mode is on, the peer API, static files, the login page and staff stay
reachable: staff must be able to switch maintenance off, and a migrating peer drives the node
through its API.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from appliance.routers import maintenance_is_on

OPEN_PREFIXES = ("/api/peer/", "/static/", "/accounts/")


class MaintenanceMiddleware:
    """Answer 503 with the maintenance page for everyone but staff while maintenance is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(OPEN_PREFIXES) or request.user.is_staff:
            return self.get_response(request)
        if maintenance_is_on():
            from appliance.services import node_get

            response = render(request, "appliance/maintenance.html", {"node": node_get()})
            response.status_code = 503
            response["Retry-After"] = "600"
            return response
        return self.get_response(request)


def came_through_front_server(request: HttpRequest) -> bool:
    """Whether the request came over the front server's local socket.

    The front server passes requests on to the web process over a Unix socket, where a
    connection has no peer address: REMOTE_ADDR is empty. A connection over TCP always has one,
    taken from the connection itself and never from a header, so no remote client can pass for
    the front server, whatever it sends.
    """
    return request.META.get("REMOTE_ADDR", "") == ""


def client_address(request: HttpRequest) -> str | None:
    """The address of the client (after FrontServerMiddleware), or None when it is unknown."""
    try:
        return str(ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", ""))))
    except ValueError:
        return None


class FrontServerMiddleware:
    """Believe the front server's X-Real-IP and X-Forwarded-Proto (it sets both on every request
    it passes on, overwriting what the client sent), and nobody else's: lockouts count per real
    address, and a client that reaches the web process directly cannot claim HTTPS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if came_through_front_server(request):
            request.META["REMOTE_ADDR"] = _real_address(request)
        else:
            request.META.pop("HTTP_X_FORWARDED_PROTO", None)
        return self.get_response(request)


def _real_address(request: HttpRequest) -> str:
    """The front server's X-Real-IP if it is an address; empty (unknown) otherwise."""
    try:
        return str(ipaddress.ip_address(request.META.get("HTTP_X_REAL_IP", "").strip()))
    except ValueError:
        return ""
