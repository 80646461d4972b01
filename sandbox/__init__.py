"""A local stand-in for Kapso (docs/kapso.md): its Platform API, its Meta proxy, hosted setup pages,
a phone page per number where a person chats as a WhatsApp contact, and signed webhooks.

Mounted under /sandbox/ only when KAPSO_SANDBOX is on. It never imports product apps: it talks to
Switchboard over HTTP only, exactly as Kapso does, so pointing KAPSO_API_BASE_URL at it is the only
change Switchboard sees.
"""
