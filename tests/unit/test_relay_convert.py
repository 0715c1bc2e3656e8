"""The relay's contents conversion (seed 000 FIG. 5, claims 4–7, 11, 13, 14; spec R18–R28,
R30–R34): templates, summarizing, dividing, hidden session strings, relay-only targets."""

from __future__ import annotations

import html
import re

import pytest

from agents.relay.pages import (
    Action,
    ForeignTarget,
    Input,
    Page,
    convert,
    error_page,
    progress_page,
    visible_chars,
    wallet_selection_page,
)
from agents.relay.profiles import Profile, UnknownProfile, load_profiles, profile
from agents.relay.sessions import new_token
from agents.relay.templates import (
    KINDS,
    MissingItem,
    extract,
    fill,
    load_template,
    parse_template,
)
from kessai.errors import ConfigError
from kessai.money import Money
from protocols.contents import tagged_payment_information
from schemas.v1 import LineItem, OrderContent

TOKEN = new_token(b"k" * 32, "rs-1")
PHONE, GAME, PC = profile("phone"), profile("game"), profile("pc")
ACTIONS = [Action("Approve payment", "/approve"), Action("Cancel", "/cancel")]

# FIG. 5 (A): the wallet's contents, with markup and text that identify nothing to pay.
FIG5 = """<html><head><title>Wallet A</title><script>track()</script></head><body>
<h1>Wallet A</h1><p>Thank you for shopping with us! Our new autumn range is here.</p>
<img src="http://wallet-a.example/banner.png"><a href="http://wallet-a.example/help">Help</a>
<table><tr><td><Item><Product>personal computer</Product><UnitCost>150000 JPY</UnitCost>
<Quant>1</Quant></Item></td></tr></table>
<p>Total: <Total>150000 JPY</Total></p><p>No. <TxnId>txn-42</TxnId></p>
</body></html>"""
NOISE = ("Thank you for shopping", "autumn range", "Wallet A", "track()", "Help", "banner")


def _pages(kind: str, source: str, prof: Profile, actions: list[Action] = ACTIONS,
           txn_id: str = "txn-42") -> list[Page]:
    return convert(kind, source, prof, txn_id=txn_id, session_token=TOKEN, actions=actions)


def _text(page: Page) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page.html)))


def _within(page: Page, prof: Profile) -> bool:
    return (len(page.html.encode()) <= prof.max_content_bytes
            and visible_chars(page.html) <= prof.max_chars)


def _targets(page_html: str) -> list[str]:
    return [html.unescape(v) for v in
            re.findall(r"""\s(?:href|action|src|formaction)\s*=\s*["']([^"']*)""", page_html, re.I)]


def _order(lines: int) -> OrderContent:
    items = [LineItem(f"P{i:02d}", f"product number {i:02d}", 100 + i, 1 + i % 3)
             for i in range(lines)]
    total = sum(i.unit_price * i.quantity for i in items)
    return OrderContent(items=items, currency="JPY", tax=total // 20, total=total + total // 20)


# -- FIG. 5: extraction and templates ------------------------------------------------------------

def test_fig5_items_are_extracted() -> None:
    assert extract(FIG5) == {
        "Item": [{"Product": "personal computer", "UnitCost": "150000 JPY", "Quant": "1"}],
        "Total": "150000 JPY",
        "TxnId": "txn-42",
    }


def test_fig5_template_puts_values_in_place_and_nothing_else() -> None:
    template = parse_template("confirming", "test", (
        "#required: Total TxnId\n"
        "<p>Confirm</p>\n"
        "&Item[&\n"
        "<p>&Product&: &UnitCost& x &Quant&</p>\n"
        "&]Item&\n"
        "<p>Total &Total& (&TxnId&)</p>\n"))
    assert fill(template, extract(FIG5)) == (
        "<p>Confirm</p>\n"
        "<p>personal computer: 150000 JPY x 1</p>\n"
        "<p>Total 150000 JPY (txn-42)</p>")


@pytest.mark.parametrize("name", ["phone", "game"])
def test_summarized_page_holds_the_items_and_no_other_source_text(name: str) -> None:
    [page] = _pages("confirming", FIG5, profile(name))
    text = _text(page)
    for value in ("personal computer", "150000 JPY", "txn-42"):
        assert value in text
    for noise in NOISE:
        assert noise not in page.html


def test_the_same_confirming_contents_differ_by_profile_and_pass_through_for_pc() -> None:
    [phone], [game], [pc] = (_pages("confirming", FIG5, p) for p in (PHONE, GAME, PC))
    assert phone.html != game.html
    assert "Thank you for shopping" in pc.html  # R18: a full browser gets the contents
    assert "track()" not in pc.html  # but not the wallet's scripts
    for page in (phone, game, pc):
        assert "150000 JPY" in _text(page)


@pytest.mark.parametrize("name", ["phone", "game", "pc"])
def test_missing_total_is_a_conversion_error(name: str) -> None:
    source = FIG5.replace("<Total>150000 JPY</Total>", "")
    with pytest.raises(MissingItem) as caught:
        _pages("confirming", source, profile(name))
    assert caught.value.missing == ("Total",)
    assert "Total" in str(caught.value)
    assert "personal computer" not in str(caught.value)


def test_confirming_and_approval_require_amount_and_identifier() -> None:
    for kind in ("confirming", "approval", "payment-request"):
        for level in ("compact", "standard"):
            assert {"Total", "TxnId"} <= set(load_template(kind, level).required)
    with pytest.raises(MissingItem):
        _pages("approval", "<TxnId>t</TxnId><Total></Total>", PHONE, txn_id="")


def test_every_kind_has_both_levels() -> None:
    for kind in KINDS:
        for level in ("compact", "standard"):
            assert load_template(kind, level).kind == kind


def test_the_relay_names_the_payment_when_the_contents_do_not() -> None:
    [page] = _pages("approval", "<Total>500 JPY</Total>", PHONE, txn_id="txn-9")
    assert "txn-9" in _text(page)


def test_values_are_escaped_and_cannot_add_markup() -> None:
    source = ("<Item><Product>&lt;script&gt;x()&lt;/script&gt; &amp;Total&amp;</Product></Item>"
              "<Total>1 JPY</Total><TxnId>t</TxnId>")
    [page] = _pages("confirming", source, PHONE)
    assert "<script>" not in page.html
    assert "&lt;script&gt;x()&lt;/script&gt; &amp;Total&amp;" in page.html


def test_html_in_capitals_and_comments_are_not_items() -> None:
    source = ("<BODY><TABLE><TR><TD><Total>5 JPY</Total></TD></TR></TABLE>"
              "<!-- <Total>1 JPY</Total> --></BODY>")
    assert extract(source) == {"Total": "5 JPY"}


def test_an_absent_optional_item_leaves_no_label() -> None:
    [page] = _pages("confirming", "<Total>5 JPY</Total><TxnId>t</TxnId>", GAME)
    assert "Shop:" not in page.html and "Tax:" not in page.html


# -- R27: values unchanged --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["phone", "game", "pc"])
def test_the_shown_amount_is_the_source_total(name: str) -> None:
    content = _order(2)
    source = tagged_payment_information(content, "txn-7")
    assert extract(source)["Total"] == str(content.amount)
    pages = _pages("confirming", source, profile(name))
    assert any(str(content.amount) in _text(p) for p in pages)
    odd = source.replace(str(content.amount), "1,155.00 JPY (incl. tax)")
    assert any("1,155.00 JPY (incl. tax)" in _text(p) for p in _pages("confirming", odd, PHONE))


def test_tagged_payment_information_formats_money() -> None:
    content = OrderContent(items=[LineItem("XXXX", "Tea & cake", 500, 2)], currency="JPY",
                           tax=50, total=1050)
    assert tagged_payment_information(content, "o-1") == (
        "<Item><Product>Tea &amp; cake</Product><UnitCost>500 JPY</UnitCost><Quant>2</Quant>"
        "</Item><Tax>50 JPY</Tax><Total>1050 JPY</Total><TxnId>o-1</TxnId>")
    assert extract(tagged_payment_information(content, "o-1"))["Item"] == [
        {"Product": "Tea & cake", "UnitCost": "500 JPY", "Quant": "2"}]
    usd = OrderContent(items=[], currency="USD", tax=0, total=1999)
    assert "<Total>19.99 USD</Total>" in tagged_payment_information(usd, "o-2")
    assert str(Money(1999, "USD")) == "19.99 USD"


# -- R24: dividing -------------------------------------------------------------------------------------

def test_long_contents_are_divided_in_order_within_the_phone_limits() -> None:
    content = _order(30)
    pages = _pages("confirming", tagged_payment_information(content, "txn-8"), PHONE)
    assert len(pages) > 1
    assert [(p.index, p.total) for p in pages] == [(i, len(pages)) for i in range(1, len(pages) + 1)]
    for page in pages:
        assert _within(page, PHONE), (page.index, len(page.html.encode()), visible_chars(page.html))
    shown = " ".join(_text(p) for p in pages)
    positions = [shown.index(item.name) for item in content.items]
    assert positions == sorted(positions)  # order kept across pages
    assert shown.index(content.items[-1].name) < shown.index(str(content.amount))
    for page in pages[:-1]:
        assert f'href="/page?s={TOKEN}&amp;p={page.index + 1}">next</a>' in page.html
        assert "<form" not in page.html  # the actions are on the last page
    for page in pages[1:]:
        assert f'href="/page?s={TOKEN}&amp;p={page.index - 1}">previous</a>' in page.html
    assert pages[-1].html.count("<form") == len(ACTIONS)
    assert ">next</a>" not in pages[-1].html


def test_a_single_huge_item_is_cut_into_pages_that_fit() -> None:
    name = " ".join(f"word{i}" for i in range(400))
    source = f"<Item><Product>{name}</Product></Item><Total>1 JPY</Total><TxnId>t</TxnId>"
    pages = _pages("confirming", source, PHONE)
    assert all(_within(p, PHONE) for p in pages)
    assert " ".join(_text(p) for p in pages).count("word") == 400


def test_pc_gets_the_template_when_the_contents_exceed_its_limits() -> None:
    small_pc = Profile("small-pc", max_chars=500, max_gray_levels=256, max_content_bytes=2000,
                       cookies=True, full_html=True)
    padded = FIG5.replace("</body>", "<p>" + "lorem ipsum " * 200 + "</p></body>")
    pages = _pages("confirming", padded, small_pc)
    assert all(_within(p, small_pc) for p in pages)
    assert "lorem" not in "".join(p.html for p in pages)


# -- R25: images -------------------------------------------------------------------------------------

def test_images_are_dropped_for_terminals_without_full_gray() -> None:
    source = FIG5.replace("<h1>", '<img src="/static/logo.png" alt="logo"><h1>')
    [pc] = _pages("confirming", source, PC)
    assert '<img src="/static/logo.png"' in pc.html  # a relay image stays for the PC
    gray_pc = Profile("gray-pc", max_chars=10**5, max_gray_levels=16, max_content_bytes=10**6,
                      cookies=True, full_html=True)
    for prof in (PHONE, GAME, gray_pc):
        assert all("<img" not in p.html.lower() for p in _pages("confirming", source, prof))


# -- R26, R28: relay targets, hidden session string, no raw cookie ----------------------------------

def _all_pages() -> list[Page]:
    cookie_source = FIG5.replace("<head>", '<head><meta http-equiv="Set-Cookie" '
                                 'content="session_id=w-secret; Path=/">')
    long_source = tagged_payment_information(_order(30), "txn-8")
    pages = [p for prof in (PHONE, GAME, PC)
             for src in (FIG5, cookie_source, long_source)
             for p in _pages("confirming", src, prof)]
    pages += [progress_page(p, txn_id="t", session_token=TOKEN, auto_refresh_s=5)
              for p in (PHONE, PC)]
    pages += wallet_selection_page(PHONE, txn_id="t", session_token=TOKEN,
                                   wallets=[("wallet-a", "Wallet A"), ("wallet-b", "Wallet B")])
    pages.append(error_page(PHONE, "expired", session_token=TOKEN))
    return pages


def test_every_page_carries_the_hidden_token_and_never_a_raw_cookie() -> None:
    for page in _all_pages():
        assert page.html.count(f"<!--kessai-session:{TOKEN}-->") == 1
        forms = re.findall(r"<form\b.*?</form>", page.html, re.S)
        for form in forms:
            assert f'<input type="hidden" name="s" value="{TOKEN}">' in form
        assert "session_id=" not in page.html
        assert "w-secret" not in page.html


def test_every_target_is_a_relay_path() -> None:
    for page in _all_pages():
        targets = _targets(page.html) + re.findall(r"url=([^\"]+)", page.html)
        for target in targets:
            assert target.startswith("/") and not target.startswith("//"), target
        assert "http://" not in page.html and "https://" not in page.html


def test_actions_must_point_at_the_relay() -> None:
    for bad in ("http://wallet-a/approve", "//wallet-a/approve", "approve", "/\\evil"):
        with pytest.raises(ForeignTarget):
            Action("Approve", bad)
    with pytest.raises(ConfigError):
        Action("Approve", "/approve", fields={"s": "other"})


def test_a_password_input_never_holds_a_value() -> None:
    login = Action("Log in", "/login", inputs=(Input("user_name", "User"),
                                               Input("password", "Password", "password")))
    [page] = _pages("login", "<TxnId>t</TxnId><Total>5 JPY</Total>", PHONE, [login])
    assert '<input type="password" name="password">' in page.html
    assert re.search(r'type="password"[^>]*value=', page.html) is None
    with pytest.raises(ConfigError):
        Input("brand", "Card", "select")


# -- FIG. 4: progress page -----------------------------------------------------------------------

def test_progress_page_has_an_inquiry_button_and_optional_auto_refresh() -> None:
    manual = progress_page(PHONE, txn_id="txn-3", session_token=TOKEN, auto_refresh_s=None)
    assert '<form method="post" action="/inquire">' in manual.html
    assert "refresh" not in manual.html
    assert "txn-3" in _text(manual)
    auto = progress_page(GAME, txn_id="txn-3", session_token=TOKEN, auto_refresh_s=7)
    assert f'<meta http-equiv="refresh" content="7;url=/inquire?s={TOKEN}">' in auto.html
    assert _within(manual, PHONE) and _within(auto, GAME)


# -- FIG. 7: wallet selection --------------------------------------------------------------------

def test_wallet_selection_lists_exactly_the_designated_wallets() -> None:
    wallets = [("wallet-a", "Wallet A"), ("wallet-b", "Wallet B"), ("wallet-a", "again")]
    for prof in (PHONE, GAME, PC):
        pages = wallet_selection_page(prof, txn_id="t", session_token=TOKEN, wallets=wallets)
        joined = "".join(p.html for p in pages)
        assert re.findall(r'name="wallet" value="([^"]*)"', joined) == ["wallet-a", "wallet-b"]
        assert joined.count('action="/select-wallet"') == 2
        assert "again" not in joined


def test_many_wallets_are_divided_for_the_phone() -> None:
    wallets = [(f"wallet-{i}", f"Wallet server number {i}") for i in range(40)]
    pages = wallet_selection_page(PHONE, txn_id="t", session_token=TOKEN, wallets=wallets)
    assert len(pages) > 1 and all(_within(p, PHONE) for p in pages)
    joined = "".join(p.html for p in pages)
    assert re.findall(r'name="wallet" value="([^"]*)"', joined) == [w for w, _ in wallets]
    with pytest.raises(ConfigError):
        wallet_selection_page(PHONE, txn_id="t", session_token=TOKEN, wallets=[])


# -- errors --------------------------------------------------------------------------------------

def test_error_page_fits_and_withholds_card_numbers() -> None:
    page = error_page(PHONE, "card 4111 1111 1111 1111 refused; " + "x" * 3000)
    assert _within(page, PHONE)
    assert "4111" not in page.html
    assert "<!--kessai-session" not in page.html  # no session, no marker
    marked = error_page(PHONE, "the session string has expired", session_token=TOKEN)
    assert "the session string has expired" in _text(marked)
    assert f"<!--kessai-session:{TOKEN}-->" in marked.html


def test_profiles() -> None:
    profiles = load_profiles()
    assert {"pc", "phone", "game"} <= set(profiles)
    assert (PHONE.max_chars, PHONE.max_gray_levels, PHONE.max_content_bytes) == (400, 4, 2048)
    assert (GAME.max_chars, GAME.max_gray_levels, GAME.max_content_bytes) == (900, 16, 6000)
    assert not PHONE.cookies and not GAME.cookies
    assert PC.full_html and PC.cookies and not PHONE.full_html
    with pytest.raises(UnknownProfile, match="known: game, pc, phone") as caught:
        profile("toaster")
    assert isinstance(caught.value, ConfigError)


def test_error_page_leaves_out_a_malformed_session_string() -> None:
    page = error_page(PHONE, "forged", session_token="<b>")
    assert "<b>" not in page.html and "kessai-session" not in page.html
