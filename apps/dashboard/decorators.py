"""The one decorator every organization page goes through: signed in, a member, the right role."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from apps.orgs.access import get_membership_or_404, require_role
from apps.orgs.models import Membership, Role


def org_view(role: str = Role.OPERATOR) -> Callable:
    """`view(request, ...)` under `/o/<org_slug>/…`: sets `request.org` and `request.membership`.

    Not signed in → the sign-in page (an htmx request gets a client redirect, so a fragment never
    turns into a login form inside the page). Not a member → 404. Role too low → 403.
    """

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, org_slug: str, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.htmx:
                    return HttpResponseClientRedirect(redirect_to_login(request.get_full_path()).url)
                return redirect_to_login(request.get_full_path())
            membership = get_membership_or_404(request.user, org_slug)
            request.org = membership.org
            request.membership = membership
            # Lazy: evaluated only when a full page renders the organization switcher.
            request.user_memberships = (
                Membership.objects.filter(user=request.user).select_related("org").order_by("org__name")
            )
            require_role(membership, role)  # after the above, so the 403 page still shows the navigation
            if request.session.get("org") != org_slug:
                request.session["org"] = org_slug  # where "/" takes this person next time
            return view(request, *args, **kwargs)

        wrapper.minimum_role = role  # read by the tests that walk every page
        return wrapper

    return decorate


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The `next` a form posted, if it points into this site; else `fallback` (no open redirects)."""
    candidate = request.POST.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return fallback
