"""Signing in lands here: which organization to open, and joining one through an invitation."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.core.limits import client_ip, limit_hit, limit_reached, locked_message
from apps.orgs import members
from apps.orgs.models import Membership

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
    # Unknown links count per address (there is no account to key on yet): guessing stops at
    # ACCOUNT_ACTION_RATE. Failures on a real invitation count per invited account and address,
    # as sign-in does: ten in 15 minutes lock that pair, even for a correct attempt.
    guesses = {"group": "invitation", "key": client_ip(request), "rate": settings.ACCOUNT_ACTION_RATE}
    usage = limit_reached(request, **guesses)
    if usage:
        return _invitation_locked(request, usage)
    invitation = members.invitation_for_token(token)
    if invitation is None:
        limit_hit(request, **guesses)
        return render(request, "dashboard/invitation.html", {"invalid": True}, status=404)
    failures = {"group": "invitation-account", "key": f"{invitation.email.strip().lower()}|{client_ip(request)}",
                "rate": settings.ACCOUNT_ACTION_RATE}
    usage = limit_reached(request, **failures)
    if usage:
        return _invitation_locked(request, usage)
    from django.contrib.auth import get_user_model

    has_account = get_user_model().objects.filter(email__iexact=invitation.email).exists()
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            return _join(request, invitation, request.user, failures)
    elif not has_account:
        form = JoinForm(request.POST or None, email=invitation.email)
        if request.method == "POST" and not form.is_valid():
            limit_hit(request, **failures)
        elif request.method == "POST":
            try:
                user = members.invitation_accept_as_new_user(
                    invitation=invitation, name=form.cleaned_data["name"], password=form.cleaned_data["password"])
            except members.MemberChangeRefused as refused:
                limit_hit(request, **failures)
                messages.error(request, str(refused))
                return redirect(request.path)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to {invitation.org.name}!")
            return redirect("inbox", org_slug=invitation.org.slug)
    wrong_account = request.user.is_authenticated and request.user.email.lower() != invitation.email.lower()
    context = {"invitation": invitation, "form": form, "has_account": has_account, "wrong_account": wrong_account,
               "login_url": f"{reverse('login')}?next={request.path}"}
    return render(request, "dashboard/invitation.html", context)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset flow, with requests for one account from one address limited (each request
    sends an email: unlimited, it is a way to flood someone's inbox)."""

    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        key = f"{form.cleaned_data['email'].strip().lower()}|{client_ip(self.request)}"
        usage = limit_hit(self.request, group="password-reset", key=key, rate=settings.ACCOUNT_ACTION_RATE)
        if usage:
            form.add_error("email", locked_message(usage, "password-reset requests for this account"))
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().form_valid(form)


def _invitation_locked(request: HttpRequest, usage: dict) -> HttpResponse:
    locked = locked_message(usage, "attempts to use this invitation")
    return render(request, "dashboard/invitation.html", {"locked": locked}, status=429)


def _join(request: HttpRequest, invitation, user, failures: dict) -> HttpResponse:
    try:
        members.invitation_accept(invitation=invitation, user=user)
    except members.MemberChangeRefused as refused:
        limit_hit(request, **failures)
        messages.error(request, str(refused))
        return redirect("home")
    messages.success(request, f"You joined {invitation.org.name}.")
    return redirect("inbox", org_slug=invitation.org.slug)
