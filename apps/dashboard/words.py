"""What Kapso's and WhatsApp's codes mean, in words an operator can act on."""

# Setup-link failures: the `error_code` Kapso appends to failure_redirect_url (docs/kapso.md §2.3).
SETUP_ERRORS: dict[str, tuple[str, str]] = {
    "facebook_auth_failed": (
        "Facebook sign-in did not finish.",
        "The Facebook (Meta) login window was closed, or the permissions were not granted. Try again and "
        "accept every permission Meta asks for; use the Facebook account that manages your business.",
    ),
    "phone_verification_failed": (
        "The phone number could not be verified.",
        "Meta could not confirm the code sent to the number. Make sure the number can receive an SMS or a "
        "voice call, that it is not in use by another WhatsApp account, then try again.",
    ),
    "waba_limit_reached": (
        "Your business has reached Meta's limit of WhatsApp accounts.",
        "Meta limits how many WhatsApp Business Accounts one business portfolio may create. Remove an "
        "unused account in Meta Business Manager, or connect the number to an existing account.",
    ),
    "token_exchange_failed": (
        "Meta did not hand over access to the number.",
        "This is usually temporary. Wait a minute and try again; if it keeps happening, contact support "
        "with the time it failed.",
    ),
    "link_expired": (
        "The setup link expired.",
        "Setup links are valid for 30 days, and only the newest one works. Start again with a fresh link.",
    ),
    "already_used": (
        "This setup link was already used.",
        "Each link connects one number once. If the number is not listed on the Connections page, start "
        "again with a fresh link.",
    ),
}

# Send failures: WhatsApp (Meta) error codes and Kapso's own codes, as stored on failed messages.
SEND_ERRORS: dict[str, str] = {
    "131047": "Not delivered: more than 24 hours passed since the customer last wrote. WhatsApp only allows "
              "approved templates until they write again.",
    "131026": "Not delivered: this number cannot receive the message (it may not use WhatsApp, or its app is "
              "too old).",
    "131049": "Not delivered: Meta held it back to protect the customer's experience (too many business "
              "messages lately). Try again later.",
    "131050": "Not delivered: the customer stopped marketing messages from this business.",
    "131048": "Not delivered: WhatsApp limited this number for sending too many messages that were marked as spam.",
    "131056": "Not delivered: too many messages to this customer in a short time. Wait a bit and retry.",
    "130429": "Not delivered yet: WhatsApp's sending rate for this number was reached.",
    "131000": "Not delivered: WhatsApp had an internal error. Retrying later usually works.",
    "131021": "Not delivered: a business cannot message its own number.",
    "131031": "Not delivered: the WhatsApp Business account is locked or restricted by Meta.",
    "368": "Not delivered: the account is temporarily blocked for a WhatsApp policy violation.",
    "131051": "Not delivered: WhatsApp does not support this message type.",
    "131052": "Not delivered: the media could not be downloaded.",
    "131053": "Not delivered: the media could not be uploaded.",
    "1026": "Not delivered: the customer's WhatsApp cannot receive this kind of message.",
    "not_connected": "Not sent: the WhatsApp number was not connected at the time.",
    "insufficient_credits": "Not sent: the Kapso balance does not cover Meta's fee for this message. Add credit "
                            "to the Kapso account (link below), then send it again.",
    "delivery_unknown": "Not resent: Kapso did not answer and its history could not be checked, so this message "
                        "may or may not have been delivered. Sending it again could send it twice.",
    "marketing_preference_stopped": "Not sent: the customer stopped marketing messages from this number.",
    "messaging_account_mismatch": "Not sent: the messaging account does not match this WhatsApp number.",
}


def send_error_words(code: str, text: str) -> str:
    words = SEND_ERRORS.get((code or "").strip())
    if words:
        return words
    return f"Not delivered: {text}" if text else "Not delivered."
