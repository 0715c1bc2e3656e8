"""Direction server worker of seed 002 (direction server 160; W1, W2).

1. Se4/Se5 ``MailRequest`` from the payment gateway → the command mail goes into the mailbox
           of the device the gateway named (the one registered for the user id), and
2. (Se6)   a ``ReceptionNotice`` on ``kessai.device.wakeups``, keyed by and naming that device
           (the two-stage form; ``KESSAI_DIRECTION_FOLDED=1`` pushes the mail itself [X]);
3. Se7     ``MailFetch`` from the mailbox's owner (the signer must be that device) → the mail.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

import msgpack

from agents.direction import mailbox
from kessai.errors import ConfigError
from kessai.runtime import AgentContext, Inbound
from schemas.wakeup import Mail, MailFetch, MailRequest

log = logging.getLogger("kessai.direction")

ACTORS = ["direction"]
REQUESTS = "kessai.direction.mail-requests"
FETCH = "kessai.direction.mail-fetch"
WAKEUPS = "kessai.device.wakeups"
MAIL = "kessai.device.mail"


def register(ctx: AgentContext) -> None:
    cfg = ctx.actor_keys("direction").secrets
    if "mail_address" not in cfg:
        raise ConfigError("the direction server's key file names no gateway mail address; "
                          f"recreate the key set with 'kessai keys init --force "
                          f"{ctx.settings.keys_dir}'")
    gateway_mail = str(cfg["mail_address"])
    folded = os.environ.get("KESSAI_DIRECTION_FOLDED", "0") == "1"
    boxes = ctx.table("direction-mailboxes", partitions=4)

    def load(device_id: str) -> dict[str, mailbox.Stored]:
        raw = boxes.get(device_id.encode())
        if not raw:
            return {}
        return {k: mailbox.Stored(Mail(**v["mail"]), v["fetched_by"])
                for k, v in msgpack.unpackb(raw).items()}

    def store(device_id: str, box: dict[str, mailbox.Stored]) -> None:
        boxes[device_id.encode()] = msgpack.packb({k: asdict(v) for k, v in box.items()},
                                                  use_bin_type=True)

    async def on_request(inbound: Inbound) -> None:
        req: MailRequest = inbound.message
        box, out = mailbox.on_request(load(req.device_id), req, gateway_mail, folded)
        if out is None:
            return  # the same transaction's mail is in the box already
        await ctx.emit(MAIL if folded else WAKEUPS, out, req.transaction_number,
                       key=req.device_id)
        store(req.device_id, box)
        log.info("direction: mail for txn %s in the box of device %s", req.transaction_number,
                 req.device_id)

    async def on_fetch(inbound: Inbound) -> None:
        fetch: MailFetch = inbound.message
        if inbound.sender != f"device-{fetch.device_id}":
            await ctx.dead_letter("not_mailbox_owner", f"{inbound.sender} fetched from the box "
                                  f"of {fetch.device_id}", inbound.topic, inbound.partition,
                                  inbound.offset, inbound.raw, inbound.key)
            return
        box, mail, problem = mailbox.on_fetch(load(fetch.device_id), fetch,
                                              inbound.opened.envelope.id)
        if problem is not None:
            await ctx.dead_letter(problem, f"{fetch.mail_id} for {fetch.device_id}",
                                  inbound.topic, inbound.partition, inbound.offset,
                                  inbound.raw, inbound.key)
            return
        if mail is not None:
            await ctx.emit(MAIL, mail, inbound.opened.envelope.correlation_id,
                           key=fetch.device_id)
            store(fetch.device_id, box)

    ctx.handle(REQUESTS, on_request, types=(MailRequest,), senders=("paygate",))
    ctx.handle(FETCH, on_fetch, types=(MailFetch,), senders=("device",))
