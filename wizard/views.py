"""The wizard's pages."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@staff_member_required
def welcome(request: HttpRequest) -> HttpResponse:
    """Step 1: what will happen and what is needed."""
    return render(request, "wizard/welcome.html")
