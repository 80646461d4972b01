"""Dashboard URLs. Everything of an organization lives under /o/<slug>/; public ids are UUIDs."""

from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from .forms import EmailAuthenticationForm
from .views import account, agents, connections, inbox, knowledge, ops, schedules, team

auth_patterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        account.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("password_reset_complete")),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]

org_patterns = [
    path("", inbox.org_home, name="org-home"),
    # Conversations
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/attention/", inbox.attention, name="attention"),
    path("threads/<str:thread_id>/", inbox.thread, name="thread"),
    path("threads/<str:thread_id>/updates/", inbox.thread_updates, name="thread-updates"),
    path("threads/<str:thread_id>/earlier/", inbox.thread_earlier, name="thread-earlier"),
    path("threads/<str:thread_id>/reply/", inbox.thread_reply, name="thread-reply"),
    path("threads/<str:thread_id>/export/", inbox.thread_export, name="thread-export"),
    path("threads/<str:thread_id>/erase/", inbox.thread_erase, name="thread-erase"),
    path("threads/<str:thread_id>/take-over/", inbox.thread_take_over, name="thread-take-over"),
    path("threads/<str:thread_id>/hand-back/", inbox.thread_hand_back, name="thread-hand-back"),
    path("threads/<str:thread_id>/assign/", inbox.thread_assign, name="thread-assign"),
    path("threads/<str:thread_id>/labels/", inbox.thread_labels, name="thread-labels"),
    path("threads/<str:thread_id>/notes/", inbox.thread_note, name="thread-note"),
    path("threads/<str:thread_id>/contact/", inbox.thread_contact, name="thread-contact"),
    path("threads/<str:thread_id>/media/<str:message_id>/", inbox.message_media, name="message-media"),
    path("threads/<str:thread_id>/template/", inbox.thread_template_form, name="thread-template-form"),
    path("threads/<str:thread_id>/template/send/", inbox.thread_template_send, name="thread-template-send"),
    path("ready-answers/", team.canned_replies, name="canned-replies"),
    path("ready-answers/<str:reply_id>/delete/", team.canned_reply_delete, name="canned-reply-delete"),
    path("contacts/export.csv", team.contacts_export, name="contacts-export"),
    # Connections
    path("connections/", connections.connection_list, name="connections"),
    path("connections/connect/", connections.connection_connect, name="connection-connect"),
    path("connections/setup/success/", connections.setup_success, name="connection-setup-success"),
    path("connections/setup/status/", connections.setup_status, name="connection-setup-status"),
    path("connections/setup/failure/", connections.setup_failure, name="connection-setup-failure"),
    path("connections/<str:connection_id>/", connections.connection_detail, name="connection"),
    path("connections/<str:connection_id>/kapso/", connections.connection_kapso_details, name="connection-kapso"),
    path("connections/<str:connection_id>/templates/sync/", connections.connection_templates_sync,
         name="connection-templates-sync"),
    path("connections/<str:connection_id>/agent/", connections.connection_assign_agent, name="connection-agent"),
    path("connections/<str:connection_id>/contacts/", connections.connection_contacts, name="connection-contacts"),
    path("connections/<str:connection_id>/switch/", connections.connection_switch, name="connection-switch"),
    path("connections/<str:connection_id>/reconnect/", connections.connection_reconnect, name="connection-reconnect"),
    path("connections/<str:connection_id>/catch-up/", connections.connection_catch_up, name="connection-catch-up"),
    path(
        "connections/<str:connection_id>/disconnect/", connections.connection_disconnect, name="connection-disconnect"
    ),
    # Agents
    path("agents/", agents.agent_list, name="agents"),
    path("agents/new/", agents.agent_new, name="agent-new"),
    path("agents/preview/", agents.agent_prompt_preview, name="agent-preview"),
    path("agents/<str:agent_id>/", agents.agent_detail, name="agent"),
    path("agents/<str:agent_id>/edit/", agents.agent_edit, name="agent-edit"),
    path("agents/<str:agent_id>/delete/", agents.agent_delete, name="agent-delete"),
    path("agents/<str:agent_id>/knowledge/", knowledge.knowledge_list, name="knowledge"),
    path("agents/<str:agent_id>/knowledge/add/", knowledge.knowledge_add, name="knowledge-add"),
    path("agents/<str:agent_id>/knowledge/<str:source_id>/refetch/", knowledge.knowledge_refetch,
         name="knowledge-refetch"),
    path("agents/<str:agent_id>/knowledge/<str:source_id>/delete/", knowledge.knowledge_delete,
         name="knowledge-delete"),
    path("agents/<str:agent_id>/schedules/", schedules.schedule_list, name="schedules"),
    path("agents/<str:agent_id>/schedules/add/", schedules.schedule_add, name="schedule-add"),
    path("agents/<str:agent_id>/schedules/<str:schedule_id>/pause/", schedules.schedule_pause, name="schedule-pause"),
    path("agents/<str:agent_id>/schedules/<str:schedule_id>/delete/", schedules.schedule_delete,
         name="schedule-delete"),
    path("agents/<str:agent_id>/playground/", agents.playground_send, name="playground-send"),
    path("agents/<str:agent_id>/playground/updates/", agents.playground_updates, name="playground-updates"),
    path("agents/<str:agent_id>/playground/reset/", agents.playground_reset, name="playground-reset"),
    # Operations
    path("webhooks/", ops.webhook_list, name="webhooks"),
    path("webhooks/<str:event_id>/", ops.webhook_detail, name="webhook"),
    path("webhooks/<str:event_id>/reprocess/", ops.webhook_reprocess, name="webhook-reprocess"),
    path("api-keys/", ops.api_key_list, name="api-keys"),
    path("usage/", ops.usage, name="usage"),
    path("usage/keys/<str:key_id>/delete/", ops.provider_key_delete, name="provider-key-delete"),
    path("api-keys/<str:key_id>/revoke/", ops.api_key_revoke, name="api-key-revoke"),
    path("settings/", ops.org_settings, name="org-settings"),
    path("members/", ops.member_list, name="members"),
    path("members/invite/", ops.member_invite, name="member-invite"),
    path("members/<str:membership_id>/role/", ops.member_role, name="member-role"),
    path("members/<str:membership_id>/remove/", ops.member_remove, name="member-remove"),
    path("invitations/<str:invitation_id>/revoke/", ops.invitation_revoke, name="invitation-revoke"),
]

urlpatterns = [
    *auth_patterns,
    path("", account.home, name="home"),
    path("orgs/", account.org_list, name="org-list"),
    path("invite/<str:token>/", account.invitation_accept, name="invitation-accept"),
    path("o/<slug:org_slug>/", include(org_patterns)),
]
