from django.urls import path

from . import views

urlpatterns = [
    path("project", views.ProjectWebhookView.as_view(), name="webhook-kapso-project"),
    path("messages", views.MessagesWebhookView.as_view(), name="webhook-kapso-messages"),
]
