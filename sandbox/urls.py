"""/sandbox/…: Kapso's API under the same paths as api.kapso.ai, and the pages people use.

Point KAPSO_API_BASE_URL at `<this server>/sandbox` and Switchboard's client finds
`/platform/v1/...` and `/meta/whatsapp/{version}/...` where it expects them.
"""

from django.urls import include, path, re_path

from . import api, pages

VERSION = r"(?P<version>v\d+(?:\.\d+)?)"

platform = [
    path("customers", api.customers),
    path("customers/<str:customer_id>", api.customer),
    path("customers/<str:customer_id>/setup_links", api.setup_links),
    path("customers/<str:customer_id>/setup_links/<str:link_id>", api.setup_link),
    path("whatsapp/phone_numbers", api.phone_numbers),
    path("whatsapp/phone_numbers/<str:phone_number_id>", api.phone_number),
    path("whatsapp/phone_numbers/<str:phone_number_id>/health", api.phone_number_health),
    path("whatsapp/phone_numbers/<str:phone_number_id>/webhooks", api.number_webhooks),
    path("whatsapp/phone_numbers/<str:phone_number_id>/webhooks/<str:webhook_id>", api.number_webhook),
    path("whatsapp/webhooks", api.project_webhooks),
    path("whatsapp/webhooks/<str:webhook_id>", api.project_webhook),
    path("whatsapp/webhooks/<str:webhook_id>/test", api.webhook_test),
    path("whatsapp/messages", api.platform_messages),
    path("whatsapp/messages/<str:message_id>", api.platform_message),
    path("webhook_deliveries", api.webhook_deliveries),
    re_path(r"^(?P<rest>.*)$", api.not_implemented, {"surface": "platform"}),
]

meta = [
    path("media_download", api.media_download),
    re_path(rf"^{VERSION}/(?P<phone_number_id>\d+)$", api.meta_phone_number),
    re_path(rf"^{VERSION}/(?P<phone_number_id>\d+)/messages$", api.meta_messages),
    re_path(rf"^{VERSION}/(?P<phone_number_id>\d+)/media$", api.meta_media),
    re_path(rf"^{VERSION}/(?P<business_account_id>\d+)/message_templates$", api.meta_templates),
    re_path(rf"^{VERSION}/(?P<phone_number_id>\d+)/messages/(?P<message_id>[^/]+)$", api.meta_message),
    re_path(r"^(?P<rest>.*)$", api.not_implemented, {"surface": "meta"}),
]

app_name = "sandbox"
urlpatterns = [
    path("", pages.index, name="index"),
    path("setup/<str:token>", pages.setup, name="setup"),
    path("phone/<str:phone_number_id>/", pages.phone, name="phone"),
    path("phone/<str:phone_number_id>/chat", pages.phone_chat, name="phone-chat"),
    path("phone/<str:phone_number_id>/send", pages.phone_send, name="phone-send"),
    path("phone/<str:phone_number_id>/business-reply", pages.phone_business_reply, name="phone-business-reply"),
    path("phone/<str:phone_number_id>/failures", pages.phone_failures, name="phone-failures"),
    path("phone/<str:phone_number_id>/traffic", pages.phone_traffic, name="phone-traffic"),
    path("phone/<str:phone_number_id>/buffering", pages.phone_buffering, name="phone-buffering"),
    path("phone/<str:phone_number_id>/deliveries", pages.phone_deliveries, name="phone-deliveries"),
    path("phone/<str:phone_number_id>/delete", pages.phone_delete, name="phone-delete"),
    path("deliveries/<str:delivery_id>/redeliver", pages.delivery_redeliver, name="delivery-redeliver"),
    path("media-files/<str:media_id>", api.media_file, name="media-file"),
    path("platform/v1/", include(platform)),
    path("meta/whatsapp/", include(meta)),
]
