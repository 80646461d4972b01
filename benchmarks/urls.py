"""ROOT_URLCONF of benchmarks.settings: the product's URLs plus the baseline endpoint."""

from django.urls import include, path

from benchmarks.baseline import views as baseline

urlpatterns = [
    path("bench/baseline", baseline.receive, name="bench-baseline"),
    path("", include("config.urls")),
]
