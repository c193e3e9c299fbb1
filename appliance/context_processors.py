"""Puts this node's identity and maintenance state into every page (for the header and banner)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from appliance.models import Node


def node(request: HttpRequest) -> dict[str, Any]:
    """`this_node`: the node's identity and state, or None before the database is ready.
    Read only when a template uses it (partials do not)."""
    return {"this_node": SimpleLazyObject(lambda: Node.objects.filter(id=1).first())}
