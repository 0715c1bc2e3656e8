"""Seeds 000/001 claims 2, 3, 4, 11, 12 and 13 at the level of the relay's own code (its flows
behind the runtime's door, the shop's pages, the conversion), no broker.

- cl. 2/3: the terminal never holds the payment information (the relay forwards the shop's
  signed record to the wallet byte for byte, and no page it serves carries it); the shop's
  confirm page is the shop's, and its final-payment form posts to the relay;
- cl. 4: the conversion follows the terminal's receiving capability (its limits), not just a
  title per profile;
- cl. 11: the communication-continuing information is a progress page whose button asks the
  relay again, and an inquiry is answered with the result once it is there;
- cl. 12/13: the CA's answer to a real registration: the certificate goes to the wallet the
  user chose and nowhere else, the CA's contents reach the terminal converted.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from agents.ca import agent as ca_agent
from agents.ca.store import CAStore
from agents.relay.enrol import Enrolment
from agents.relay.pages import convert, visible_chars
from agents.relay.profiles import Profile, profile
from agents.relay.sessions import new_token
from agents.shop.http import confirm_page
from agents.wallet import contents as wallet_contents
from kessai import keys
from kessai.money import Money
from protocols.contents import tagged_payment_information
from schemas.relay import (
    AuthenticationInformation,
    CAContents,
    CARegistration,
    PaymentInformation,
    WalletContents,
    WalletFinalApproval,
    WalletPaymentInformation,
)
from schemas.v1 import LineItem, OrderContent
from tests.recording import CLOCK, context, inbound, signed
from tests.unit.test_relay_flow import (
    FIG5,
    PAYMENT_INFORMATION,
    WALLET_CONTENTS,
    _approval,
    deliver,
    keydir,  # noqa: F401  (the module-scoped key set fixture)
    make_ctx,
    record,
    relay_of,
    took,
)

CA_CONTENTS = "kessai.relay.ca-contents"
REGISTRATIONS = "kessai.ca.registrations"
PAN = "4012888888881881"
TOKEN = new_token(b"k" * 32, "rs-1")


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page)))


# -- cl. 2 / 3 --------------------------------------------------------------------------------

def test_the_shops_confirm_page_posts_the_final_payment_to_the_relay() -> None:
    page = confirm_page("shop-1", "cart-1", FIG5, "phone", "http://relay.example:8460")
    forms = re.findall(r'<form[^>]*action="([^"]*)"', page)
    assert forms == ["http://relay.example:8460/pay"]  # the only form: to the relay
    assert "1155" in text_of(page)  # the confirming list and total come from the shop


async def test_no_page_the_relay_serves_holds_the_payment_information(
        keydir: Path, tmp_path: Path) -> None:  # noqa: F811
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("phone"), "shop-1", "cart-1", "alice", CLOCK.now_ms())
    (_, _, txn, _), = took(ctx)
    session = view.session
    info = PaymentInformation(txn, "shop-1", "0000000001", FIG5, Money(1155, "JPY"),
                              ["wallet-a"])
    info_in = record(keydir, info, "shop-1", txn)
    await deliver(ctx, PAYMENT_INFORMATION, info_in)
    (topic, forwarded, _, sender), = took(ctx)
    # The relay, not the terminal, carries the payment information on: the shop's signed
    # record, byte for byte, to the designated wallet.
    assert (topic, sender) == ("kessai.wallet.inbox", "relay")
    assert isinstance(forwarded, WalletPaymentInformation)
    assert forwarded.payment_information == info_in.raw
    pages = [view.html, (await relay.inquire(await relay.db.get(session.sid))).html]
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "login", wallet_contents.login("wallet-a", info),
        "session_id=wallet-cookie-1; Path=/"), "wallet-a", txn))
    pages.append((await relay.inquire(await relay.db.get(session.sid))).html)
    for page in pages[:2]:  # before the wallet answers, nothing of the order at all
        assert "ピーナッツバター" not in page and "1155" not in page
    for page in pages:  # after: the wallet's contents, summarized; never the shop's record
        assert "0000000001" not in page  # the shop's order number
        assert "wallet-cookie-1" not in page
        hidden = re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]*)"', page)
        assert set(hidden) <= {"s"}, hidden  # the terminal carries back only the session
    await relay.db.close()


# -- cl. 4 ------------------------------------------------------------------------------------

def _order(lines: int) -> OrderContent:
    items = [LineItem(f"IT{i:02d}", f"Item number {i} with a long description", 100, 1)
             for i in range(lines)]
    return OrderContent(items, "JPY", 0, 100 * lines)


def _fits(page: str, prof: Profile) -> bool:
    return (len(page.encode()) <= prof.max_content_bytes
            and visible_chars(page) <= prof.max_chars)


def test_the_conversion_follows_the_terminals_receiving_capability() -> None:
    source = tagged_payment_information(_order(12), "txn-4")
    pages = {name: convert("confirming", source, profile(name), txn_id="txn-4",
                           session_token=TOKEN, actions=[])
             for name in ("phone", "game", "pc")}
    # Each terminal gets pages within its own limits, and the smaller terminal more of them.
    for name, got in pages.items():
        assert all(_fits(p.html, profile(name)) for p in got), name
    assert len(pages["phone"]) > len(pages["game"]) >= 1
    assert any(not _fits(p.html, profile("phone")) for p in pages["game"])
    # The same contents, only the capability changed: a phone with a game's limits gets
    # what the game gets (apart from the template level the profile names).
    roomy = Profile(**{**profile("phone").__dict__,
                       "max_chars": profile("game").max_chars,
                       "max_content_bytes": profile("game").max_content_bytes})
    assert len(convert("confirming", source, roomy, txn_id="txn-4", session_token=TOKEN,
                       actions=[])) == len(pages["game"])
    # A PC-class browser gets the contents themselves, the others only the template's items.
    assert "<Item>" in pages["pc"][0].html
    assert all("<Item>" not in p.html for p in pages["phone"] + pages["game"])


# -- cl. 11 -----------------------------------------------------------------------------------

async def test_the_continuing_information_is_a_progress_page_with_an_inquiry_button(
        keydir: Path, tmp_path: Path) -> None:  # noqa: F811
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    relay = relay_of(ctx, tmp_path)
    view = await relay.pay(profile("phone"), "shop-1", "cart-1", "alice", CLOCK.now_ms())
    (_, _, txn, _), = took(ctx)
    session = view.session
    info = PaymentInformation(txn, "shop-1", "0000000001", FIG5, Money(1155, "JPY"),
                              ["wallet-a"])
    await deliver(ctx, PAYMENT_INFORMATION, record(keydir, info, "shop-1", txn))
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "login", wallet_contents.login("wallet-a", info),
        "session_id=wallet-cookie-1; Path=/"), "wallet-a", txn))
    await relay.login(await relay.db.get(session.sid), "alice", "alice-wallet-pw",
                      CLOCK.now_ms())
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "conditions", wallet_contents.conditions("wallet-a", info, ["visa"])),
        "wallet-a", txn))
    await relay.conditions(await relay.db.get(session.sid), "visa", "lump-sum", CLOCK.now_ms())
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "confirming", wallet_contents.confirming(info, "visa", "lump-sum")),
        "wallet-a", txn))
    took(ctx)
    s = await relay.db.get(session.sid)
    approved = await relay.approve(s, CLOCK.now_ms())
    assert [type(m) for _, m, _, _ in took(ctx)] == [WalletFinalApproval]
    # No result yet: the continuing information, a progress page whose one button asks the
    # relay again for this session.
    assert approved.kind == "progress"
    forms = re.findall(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', approved.html, re.S)
    assert [action for action, _ in forms] == ["/inquire"]
    assert f'name="s" value="{session.token}"' in forms[0][1] and "<button" in forms[0][1]
    # The user's inquiry before the result: progress again, nothing sent.
    asked = await relay.inquire(await relay.db.get(session.sid))
    assert asked.kind == "progress" and took(ctx) == []
    # After the result: the inquiry gets it.
    approval = wallet_contents.approval(_approval(txn))
    await deliver(ctx, WALLET_CONTENTS, record(keydir, WalletContents(
        "wallet-a", txn, "approval", approval), "wallet-a", txn))
    result = await relay.inquire(await relay.db.get(session.sid))
    assert result.kind == "approval" and "1155 JPY" in result.html
    assert took(ctx) == []
    await relay.db.close()


# -- cl. 12 / 13 ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["phone", "game"])
async def test_the_cas_answer_certificate_to_the_wallet_only_contents_converted(
        keydir: Path, tmp_path: Path, name: str) -> None:  # noqa: F811
    ctx = make_ctx(keydir, tmp_path, "relay", ["relay"])
    enrol = relay_of(ctx, tmp_path, Enrolment)
    ca_ctx = context(keydir, tmp_path, "ca", ca_agent.ACTORS)
    ca = ca_agent.CA(ca_ctx, CAStore(tmp_path / "ca.sqlite"))
    ca_agent.declare(ca_ctx, ca)
    relay_keys = keys.load_actor(keydir, "relay")
    try:
        form = await enrol.form(profile(name))
        session = form.session
        await enrol.register(session, "erin", "wallet-b", "visa", PAN, "2030-04",
                             "erin-wallet-pw", CLOCK.now_ms())
        (topic, registration, request_id, _), = took(ctx)
        assert topic == REGISTRATIONS and isinstance(registration, CARegistration)
        reg_in = inbound(signed(registration, relay_keys, request_id), ca_ctx.registry,
                         REGISTRATIONS)
        await ca_ctx.door.receive(REGISTRATIONS, reg_in.partition, reg_in.offset, reg_in.key,
                                  reg_in.raw)
        answers = ca_ctx.take(CA_CONTENTS)
        assert {type(a.msg) for a in answers} == {AuthenticationInformation, CAContents}
        for answer in answers:  # the CA's own records, through the relay's door
            await deliver(ctx, CA_CONTENTS, record(keydir, answer.msg, "ca", request_id))
        info = next(a.msg for a in answers if isinstance(a.msg, AuthenticationInformation))
        ca_page = next(a.msg for a in answers if isinstance(a.msg, CAContents))

        # Cl. 12: the authentication information goes to the wallet the user chose, and
        # nowhere else: one record, on the wallet inbox.
        sent = took(ctx)
        assert [(t, s) for t, _, _, s in sent] == [("kessai.wallet.inbox", "relay")]
        forwarded = sent[0][1]
        assert isinstance(forwarded, AuthenticationInformation)
        assert (forwarded.wallet_id, forwarded.forwarded_by) == ("wallet-b", "relay")
        assert forwarded.certificate == info.certificate
        # Cl. 13: the terminal's page is the CA's contents converted for its profile.
        page = enrol.view(await enrol.db.get(session.sid)).html
        assert _fits(page, profile(name))
        assert "Your visa card ending 1881 is registered with wallet-b for erin." in \
            text_of(page)
        assert "<Result>" not in page and "<Serial>" not in page  # not passed through
        assert ca_page.html not in page
        assert info.certificate.serial not in page and PAN not in page
        for secret in (info.certificate.ca_signature, info.certificate.public_key,
                       info.card_sealed, info.signing_key_sealed):
            assert secret.hex() not in page and secret.hex().upper() not in page
    finally:
        await ca.store.close()
        await enrol.db.close()
