"""Canonical order content and its hash: the golden vector of the Fig. 5 order (spec R14)."""

from kessai.canonical import canonical_bytes, content_hash
from schemas.v1 import LineItem, OrderContent

FIG5 = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                     LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)
# SHA-256 over "kessai/order-content/v1\0" + msgpack([currency, sorted items, tax, total]).
FIG5_HASH = "0b74e005a8b8b4bafff943ae90ba2d0eb835c65fc827e3f07ba8028bbb72236d"


def test_fig5_order_hashes_to_the_golden_vector() -> None:
    assert content_hash(FIG5).hex() == FIG5_HASH


def test_item_order_and_unicode_width_do_not_change_the_hash() -> None:
    other = OrderContent([LineItem("ＹＹＹＹ", " グレープゼリー", 600, 1),
                          LineItem("XXXX", "ピーナッツバター", 500, 1)], "jpy", 55, 1155)
    assert content_hash(other) == content_hash(FIG5)


def test_any_amount_change_changes_the_hash() -> None:
    for changed in (OrderContent(FIG5.items, "JPY", 55, 1150),
                    OrderContent(FIG5.items, "JPY", 50, 1155),
                    OrderContent(FIG5.items, "USD", 55, 1155),
                    OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 2), FIG5.items[1]],
                                 "JPY", 55, 1155)):
        assert content_hash(changed) != content_hash(FIG5)


def test_canonical_bytes_hold_amounts_as_integers() -> None:
    import msgpack

    decoded = msgpack.unpackb(canonical_bytes(FIG5))
    assert decoded[0] == "JPY" and decoded[2:] == [55, 1155]
    assert all(isinstance(x, int) for item in decoded[1] for x in item[2:])
