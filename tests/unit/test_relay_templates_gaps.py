"""Gaps `make mutate` found in the relay's template reader and item extraction
(docs/testing.md)."""

from __future__ import annotations

import pytest

from agents.relay.templates import (
    BadTemplate,
    Block,
    MissingItem,
    check_required,
    extract,
    parse_template,
)


def test_a_template_without_directives_is_titled_by_its_kind() -> None:
    t = parse_template("result", "compact", "&Total&\n")
    assert (t.kind, t.level, t.required, t.title, t.body) == (
        "result", "compact", (), "result", ("&Total&",))


def test_directives_set_the_title_and_required_items() -> None:
    t = parse_template("result", "standard",
                       "# title: Your result: done\n# required: Total TxnId\n&Total&\n"
                       "&Item[&\n&Product&\n&]Item&\n")
    assert t.title == "Your result: done"  # split at the first colon only
    assert t.required == ("Total", "TxnId")
    assert t.body == ("&Total&", Block("Item", ("&Product&",)))
    with pytest.raises(BadTemplate):
        parse_template("result", "standard", "# colour: red\n")


def test_a_block_must_be_closed_by_its_own_name() -> None:
    with pytest.raises(BadTemplate):
        parse_template("r", "compact", "&Item[&\n&]Other&\n")
    with pytest.raises(BadTemplate):
        parse_template("r", "compact", "&]Item&\n")


def test_a_missing_item_names_the_template_kind() -> None:
    t = parse_template("confirming", "compact", "# required: Total\n&Total&\n")
    with pytest.raises(MissingItem) as caught:
        check_required(t, {"Total": "  "})
    assert caught.value.kind == "confirming" and "Total" in str(caught.value)


def test_extraction_drops_comments_and_scripts_and_inner_markup_without_residue() -> None:
    found = extract("<Total>1<!-- x -->1<script>y</script>55 <b>JPY</b></Total>")
    assert found == {"Total": "1155 JPY"}


def test_nested_items_join_their_group_and_stray_end_tags_are_skipped() -> None:
    found = extract("</Product><Item><Product>pc</Product></Stray><Quant>1</Quant></Item>"
                    "<Item><Product>mug</Product><Quant>2</Quant></Item><Total>5</Total>")
    assert found == {"Item": [{"Product": "pc", "Quant": "1"},
                              {"Product": "mug", "Quant": "2"}], "Total": "5"}


def test_items_deeper_than_one_level_join_the_outer_group_first_one_wins() -> None:
    found = extract("<Order><Item><Product>pc</Product><Product>other</Product></Item>"
                    "<Note>n</Note></Order>")
    assert found == {"Order": [{"Product": "pc", "Note": "n"}]}


def test_items_never_closed_inside_another_are_dropped_and_their_text_kept() -> None:
    assert extract("<Item><Product>pc<Quant>1</Item><Total>5</Total>") == {
        "Item": "pc1", "Total": "5"}
