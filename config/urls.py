from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics_view, name="metrics"),
    path("webhook/kapso/", include("apps.webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file, not inline, so a strict Content-Security-Policy holds.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("apps.api.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.dashboard.urls")),
]

if apps.is_installed("sandbox"):  # only with KAPSO_SANDBOX=1 (config/settings/base.py)
    urlpatterns.insert(0, path("sandbox/", include("sandbox.urls")))
