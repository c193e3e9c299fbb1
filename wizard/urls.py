"""URLs of the wizard's steps."""

from django.urls import path

from wizard import views

app_name = "wizard"

urlpatterns = [
    path("", views.welcome, name="welcome"),
]
