"""/api/v1/…, without trailing slashes. Ids are matched as strings so a malformed id gets the
API's JSON 404 rather than the site's HTML one."""

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("agents", views.AgentListApi.as_view(), name="api-agents"),
    path("agents/<str:agent_id>", views.AgentDetailApi.as_view(), name="api-agent"),
    path("agents/<str:agent_id>/knowledge", views.KnowledgeListApi.as_view(), name="api-knowledge"),
    path("agents/<str:agent_id>/knowledge/<str:source_id>", views.KnowledgeDetailApi.as_view(),
         name="api-knowledge-source"),
    path("agents/<str:agent_id>/schedules", views.ScheduleListApi.as_view(), name="api-schedules"),
    path("agents/<str:agent_id>/schedules/<str:schedule_id>", views.ScheduleDetailApi.as_view(),
         name="api-schedule"),
    path("budget", views.BudgetApi.as_view(), name="api-budget"),
    path("provider-keys", views.ProviderKeyListApi.as_view(), name="api-provider-keys"),
    path("provider-keys/<str:provider_key_id>", views.ProviderKeyDetailApi.as_view(), name="api-provider-key"),
    path("contact-attributes", views.ContactAttributeListApi.as_view(), name="api-contact-attributes"),
    path("contacts", views.ContactListApi.as_view(), name="api-contacts"),
    path("contacts/<str:contact_id>", views.ContactDetailApi.as_view(), name="api-contact"),
    path("connections", views.ConnectionListApi.as_view(), name="api-connections"),
    path("connections/<str:connection_id>", views.ConnectionDetailApi.as_view(), name="api-connection"),
    path("connections/<str:connection_id>/templates", views.ConnectionTemplatesApi.as_view(),
         name="api-connection-templates"),
    path(
        "connections/<str:connection_id>/catch-up", views.ConnectionCatchUpApi.as_view(), name="api-connection-catch-up"
    ),
    path("threads", views.ThreadListApi.as_view(), name="api-threads"),
    path("threads/<str:thread_id>", views.ThreadDetailApi.as_view(), name="api-thread"),
    path("threads/<str:thread_id>/export", views.ThreadExportApi.as_view(), name="api-thread-export"),
    path("threads/<str:thread_id>/erase", views.ThreadEraseApi.as_view(), name="api-thread-erase"),
    path("threads/<str:thread_id>/messages", views.ThreadMessagesApi.as_view(), name="api-thread-messages"),
    path("threads/<str:thread_id>/runs", views.ThreadRunsApi.as_view(), name="api-thread-runs"),
    re_path(r"^(?P<path>.*)$", views.not_found),
]
