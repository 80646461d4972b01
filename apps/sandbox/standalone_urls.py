"""Switchboard's URLs with the sandbox mounted whatever KAPSO_SANDBOX says (tests use it as
ROOT_URLCONF). The sandbox's own guard still refuses to mount with DEBUG off unless allowed."""

from django.urls import include, path

from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("sandbox/", include("apps.sandbox.urls")),
    *[pattern for pattern in product_urlpatterns if str(pattern.pattern) != "sandbox/"],
]
