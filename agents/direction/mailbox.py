"""Mailbox 164a as pure functions (seed 002 [0059], Se5–Se7, W1, W2).

One mailbox per device (its e-mail account). The mail id is derived from the transaction, so
a repeated request for the same transaction never puts a second mail in the box.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.wakeup import START_PAYMENT_APP
from schemas.wakeup import Mail, MailFetch, MailRequest, ReceptionNotice


@dataclass(frozen=True)
class Stored:
    """A mail in a mailbox, and the fetch (message id) that last delivered it."""

    mail: Mail
    fetched_by: str = ""


def mail_id_for(request: MailRequest) -> str:
    return f"mail-{request.transaction_number}"


def compose(request: MailRequest, gateway_mail: str) -> Mail:
    """Se5: the mail from the payment gateway's address carrying the predetermined command."""
    return Mail(request.device_id, mail_id_for(request), gateway_mail, [START_PAYMENT_APP])


def on_request(box: dict[str, Stored], request: MailRequest, gateway_mail: str,
               folded: bool) -> tuple[dict[str, Stored], ReceptionNotice | Mail | None]:
    """W1: store the mail in the device's box and announce it to that device only (or, in the
    folded form [X], push the mail itself). A repeat of the request announces nothing."""
    mail = compose(request, gateway_mail)
    if mail.mail_id in box:
        return box, None
    new_box = {**box, mail.mail_id: Stored(mail)}
    return new_box, (mail if folded else ReceptionNotice(request.device_id, mail.mail_id))


def on_fetch(box: dict[str, Stored], fetch: MailFetch, fetch_id: str
             ) -> tuple[dict[str, Stored], Mail | None, str | None]:
    """W2: deliver the stored mail to its box's owner (the caller checked the owner).
    Returns the new box, the mail to send (None for a redelivered fetch) or why not."""
    stored = box.get(fetch.mail_id)
    if stored is None:
        return box, None, "no_such_mail"
    if stored.fetched_by == fetch_id:
        return box, None, None
    return {**box, fetch.mail_id: Stored(stored.mail, fetch_id)}, stored.mail, None
