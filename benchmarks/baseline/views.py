"""The bare baseline view: HMAC check, one INSERT … ON CONFLICT DO NOTHING, one Celery .delay()."""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.kapso.signatures import signature_is_valid

from .models import BaselineDelivery
from .tasks import baseline_noop


@csrf_exempt
@require_POST
def receive(request):
    raw = request.body
    if not signature_is_valid(settings.BENCH_BASELINE_SECRET, raw, request.headers.get("X-Webhook-Signature")):
        return JsonResponse({"error": "Invalid or missing signature."}, status=401)
    key = request.headers.get("X-Idempotency-Key") or ""
    BaselineDelivery.objects.bulk_create(
        [BaselineDelivery(idempotency_key=key, body=raw.decode("utf-8", errors="replace"))], ignore_conflicts=True
    )
    baseline_noop.delay(key)
    return JsonResponse({"status": "ok"})
