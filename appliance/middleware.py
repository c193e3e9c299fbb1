"""The node's middleware: the maintenance notice, and the client's address behind a front server.

While maintenance mode is on, the peer API, static files, the login page and staff stay
reachable: staff must be able to switch maintenance off, and a migrating peer drives the node
through its API.
"""

from __future__ import annotations

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


class FrontServerMiddleware:
    """Take the client's address from the front server's X-Real-IP (it sets it on every request
    it passes on, overwriting what the client sent): lockouts count per real address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.META["REMOTE_ADDR"] = request.META.get("HTTP_X_REAL_IP", "")
        return self.get_response(request)
