"""The URL map of a node: its pages, the staff console and admin, the wizard, the peer API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from wizard.views import Logout

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", Logout.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/peer/v1/", include("appliance.peer_urls")),
    path("wizard/", include("wizard.urls")),
    path("", include("appliance.urls")),
]
