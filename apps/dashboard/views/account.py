"""Signing in lands here: which organization to open, and joining one through an invitation."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.orgs.models import Membership

from .. import services
from ..forms import JoinForm


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The last organization this person used, their only one, or the list to choose from."""
    memberships = list(Membership.objects.filter(user=request.user).select_related("org").order_by("org__name"))
    remembered = request.session.get("org")
    chosen = next((m for m in memberships if m.org.slug == remembered), None)
    if chosen is None and len(memberships) == 1:
        chosen = memberships[0]
    if chosen is not None:
        return redirect("inbox", org_slug=chosen.org.slug)
    return render(request, "dashboard/org_list.html", {"memberships": memberships})


@login_required
def org_list(request: HttpRequest) -> HttpResponse:
    memberships = Membership.objects.filter(user=request.user).select_related("org").order_by("org__name")
    return render(request, "dashboard/org_list.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The one-time link from the invitation email. Signed in: join with this account. Not signed
    in: an existing account signs in first; a new person picks a name and a password."""
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return render(request, "dashboard/invitation.html", {"invalid": True}, status=404)
    from django.contrib.auth import get_user_model

    has_account = get_user_model().objects.filter(email__iexact=invitation.email).exists()
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            return _join(request, invitation, request.user)
    elif not has_account:
        form = JoinForm(request.POST or None, email=invitation.email)
        if request.method == "POST" and form.is_valid():
            try:
                user = services.invitation_accept_as_new_user(
                    invitation=invitation, name=form.cleaned_data["name"], password=form.cleaned_data["password"])
            except services.MemberChangeRefused as refused:
                messages.error(request, str(refused))
                return redirect(request.path)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to {invitation.org.name}!")
            return redirect("inbox", org_slug=invitation.org.slug)
    context = {"invitation": invitation, "form": form, "has_account": has_account,
               "login_url": f"{reverse('login')}?next={request.path}"}
    return render(request, "dashboard/invitation.html", context)


def _join(request: HttpRequest, invitation, user) -> HttpResponse:
    try:
        services.invitation_accept(invitation=invitation, user=user)
    except services.MemberChangeRefused as refused:
        messages.error(request, str(refused))
        return redirect("home")
    messages.success(request, f"You joined {invitation.org.name}.")
    return redirect("inbox", org_slug=invitation.org.slug)
