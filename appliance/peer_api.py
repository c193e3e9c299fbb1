"""The peer API (`/api/peer/v1/...`): what a node answers when another system migrates from it.

JSON over HTTPS. `POST auth` trades the Admin User password for a short-lived bearer token;
every other endpoint wants `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from appliance import credentials, services
from appliance.middleware import client_address
from appliance.models import SITE_BOUND_GROUPS
from appliance.peer_auth import peer_login, peer_token_revoke, peer_token_valid

View = Callable[..., HttpResponse]


class BadRequest(ValueError):
    """The request's body is not what the endpoint needs; the message says what is."""


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise BadRequest(f"'{name}' is required and must be a {kind.__name__}.")
    return value


def endpoint(*methods: str, token: bool = True) -> Callable[[View], View]:
    """Make a view a peer-API endpoint: allowed methods, bearer token, JSON body, JSON errors."""

    def wrap(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return _error(405, f"Use {' or '.join(methods)} here.")
            if token and not peer_token_valid(_bearer(request)):
                return _error(401, "A valid token is required: log in at auth first.")
            try:
                return view(request, _body(request), *args, **kwargs)
            except (BadRequest, credentials.CredentialError) as problem:
                return _error(400, str(problem))
            except services.LicenceError as problem:
                return _error(409, str(problem))

        return wrapper

    return wrap


def _client(request: HttpRequest) -> str:
    return client_address(request) or ""


@endpoint("POST", "DELETE", token=False)
def auth(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """POST: log in with the Admin User password. DELETE: log out (end the token)."""
    if request.method == "DELETE":
        peer_token_revoke(_bearer(request))
        return JsonResponse({"ok": True})
    password = body.get("password")
    if not isinstance(password, str) or not password:
        return _error(400, "The Admin User password is required.")
    address = client_address(request)
    if address is None:
        return _error(
            400,
            "This system cannot tell the address this login comes from, so it cannot limit "
            "password guesses and refuses it. Behind a front server, set APPLIANCE_FRONT_SERVER=1 "
            "and have it pass on X-Real-IP.",
        )
    result = peer_login(password=password, client_address=address)
    if result.retry_after:
        response = _error(429, result.error, retry_after=result.retry_after)
        response["Retry-After"] = str(result.retry_after)
        return response
    if not result.ok:
        return _error(401, result.error)
    assert result.expires_at is not None
    credentials.credentials_revoke_expired()
    return JsonResponse({"token": result.token, "expires_at": result.expires_at.isoformat()})


@endpoint("GET")
def info(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Identity, role, licence, versions, sizes and fingerprints of this node."""
    return JsonResponse(services.node_info())


@endpoint("GET")
def settings_export(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """All system settings by group, and which groups are site-bound."""
    return JsonResponse(
        {"settings": services.settings_export(), "site_bound_groups": sorted(SITE_BOUND_GROUPS)}
    )


@endpoint("POST")
def maintenance(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Switch maintenance mode on or off."""
    enabled = _field(body, "enabled", bool)
    node = services.maintenance_set(enabled=enabled, reason=str(body.get("reason", "")))
    return JsonResponse({"maintenance": node.maintenance})


@endpoint("POST")
def round_robin(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Set the HA round-robin hosts (an empty list takes this node out of the rotation)."""
    hosts = _field(body, "hosts", list)
    if not all(isinstance(host, str) for host in hosts):
        raise BadRequest("'hosts' must be a list of host names or addresses.")
    return JsonResponse({"round_robin_hosts": services.round_robin_hosts_set(hosts)})


@endpoint("POST")
def replication(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Start or stop the replication with the HA peer."""
    node = services.replication_set(running=_field(body, "running", bool))
    return JsonResponse({"replication_running": node.replication_running})


@endpoint("POST")
def licence_release(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Invalidate this node's licence because the caller took it over."""
    licence = services.licence_release(
        guid=_field(body, "guid", str), transferred_to=str(body.get("transferred_to", ""))
    )
    return JsonResponse({"guid": licence.guid, "state": licence.state})


@endpoint("POST")
def configuration(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Replace whole setting groups, take another identity, and/or mark this node as migrated."""
    new_settings = body.get("settings", {})
    if not isinstance(new_settings, dict) or not all(
        isinstance(pairs, dict) for pairs in new_settings.values()
    ):
        raise BadRequest("'settings' must map group names to objects of key/value pairs.")
    services.settings_replace(new_settings)
    identity = body.get("identity")
    if identity is not None:
        if not isinstance(identity, dict) or set(identity) != {
            "host_name",
            "domain_name",
            "ip_address",
        }:
            raise BadRequest("'identity' must hold host_name, domain_name and ip_address.")
        try:
            services.identity_set(**{key: str(value) for key, value in identity.items()})
        except ValidationError as problem:
            raise BadRequest(f"'identity' is not valid: {problem.messages[0]}") from None
    if "migrated_to" in body:
        services.mark_migrated(migrated_to=str(body["migrated_to"] or ""))
    return JsonResponse(
        {
            "settings": services.settings_export(set(new_settings)),
            "identity": services.identity_get(),
        }
    )


@endpoint("POST")
def database_account(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Create the run's account on the data database: it reads over TLS (the answer carries the
    server's certificate to pin), and may replicate only when `replication` is true."""
    replication = body.get("replication", False)
    if not isinstance(replication, bool):
        raise BadRequest("'replication' must be true or false when given.")
    try:
        account = credentials.database_account_issue(
            run_ref=_field(body, "run", str),
            client_address=_client(request),
            replication=replication,
        )
    except credentials.CredentialUnavailable as problem:
        return _error(409, str(problem))
    return JsonResponse(account, status=201)


@endpoint("POST")
def ssh_key(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Authorise the run's SSH public key, for logins from the caller's address only; answers
    with the host key to pin."""
    grant = credentials.ssh_key_authorise(
        run_ref=_field(body, "run", str),
        public_key=_field(body, "public_key", str),
        client_address=_client(request),
    )
    return JsonResponse(grant, status=201)


@endpoint("POST")
def revoke(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """Revoke the run's database account and SSH key (or one kind of them)."""
    kind = body.get("kind")
    if kind not in (None, "database", "ssh_key"):
        raise BadRequest("'kind' must be 'database' or 'ssh_key' when given.")
    count = credentials.credentials_revoke(run_ref=_field(body, "run", str), kind=kind)
    return JsonResponse({"revoked": count})
