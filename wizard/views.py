"""The wizard's pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from appliance.decorators import staff_required


@staff_required
def welcome(request: HttpRequest) -> HttpResponse:
    """Step 1: what will happen and what is needed."""
    return render(request, "wizard/welcome.html")
