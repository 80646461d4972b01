"""Celery application: `celery -A config worker -Q default` and `-Q agents -P threads`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
# Celery's Django fix-up otherwise closes the database connection around every task: x2.7-5.8
# slower on this kind of machine (PERFORMANCE.md).
os.environ.setdefault("CELERY_DB_REUSE_MAX", "1000")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
