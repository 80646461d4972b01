"""The organization's canned replies ("ready answers"), inserted in a reply by typing `/`; and the
contacts export."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.contacts.selectors import contacts_csv
from apps.conversations import team
from apps.conversations.models import CannedReply
from apps.orgs.access import get_for_org_or_404

from ..decorators import org_view


@require_http_methods(["GET", "POST"])
@org_view()
def canned_replies(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            reply = team.canned_reply_create(org=request.org, shortcut=request.POST.get("shortcut", ""),
                                             text=request.POST.get("text", ""))
        except team.TeamInvalid as invalid:
            messages.error(request, str(invalid))
        else:
            messages.success(request, f"Saved. Type /{reply.shortcut} in a reply to use it.")
        return redirect("canned-replies", org_slug=request.org.slug)
    replies = CannedReply.objects.filter(org=request.org)
    return render(request, "dashboard/canned_replies.html", {"replies": replies})


@require_POST
@org_view()
def canned_reply_delete(request: HttpRequest, reply_id: str) -> HttpResponse:
    get_for_org_or_404(CannedReply, request.org, reply_id).delete()
    return redirect("canned-replies", org_slug=request.org.slug)


@require_GET
@org_view()
def contacts_export(request: HttpRequest) -> HttpResponse:
    """Every contact record of the organization as CSV, one column per attribute."""
    response = HttpResponse(contacts_csv(org=request.org), content_type="text/csv; charset=utf-8")
    name = f"contacts-{request.org.slug}-{timezone.now():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
