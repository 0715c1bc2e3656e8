"""The survivor review tool (tests/mutation_review.py) sorts text-only mutants from code."""

from __future__ import annotations

from tests.mutation_review import is_prose, short_name


def diff(before: str, after: str) -> str:
    return f"# name: survived\n--- f.py\n+++ f.py\n@@ -1 +1 @@\n-{before}\n+{after}\n"


def test_names_are_the_ones_docs_testing_uses() -> None:
    assert short_name("agents.pos.sales.x_receipt__mutmut_44") == "x_receipt#44"
    assert short_name("agents.shop.orders.xǁOrderDBǁadd__mutmut_10") == "OrderDB.add#10"


def test_a_changed_or_dropped_message_is_prose_a_changed_code_is_not() -> None:
    assert is_prose(diff('raise E("the session is not one we issued")',
                         'raise E("XXthe session is not one we issuedXX")'))
    assert is_prose(diff('raise E(f"a {NAME} cannot carry that value")', "raise E(None)"))
    assert not is_prose(diff('if outcome in ("COMPLETED", "X"):',
                             'if outcome in ("completed", "X"):'))  # a code, no space
    assert is_prose(diff('Show("error", "There is nothing to agree to.")',
                         'Show("error", None)'))
    assert not is_prose(diff('Show("error", "a b")', 'Show(None, "a b")'))  # the code
    assert not is_prose(diff('show("a b", x)', 'show("a b", None)'))  # code changed too
    assert not is_prose(diff("n = total + 1", "n = total - 1"))
    two_lines = ("# n: survived\n--- f.py\n+++ f.py\n@@ -1,2 +1 @@\n"
                 '-        raise Refused(f"{kind} from {who} is not the "\n'
                 '-                      "gateway\'s approval response")\n'
                 "+        raise Refused(None)\n")
    assert is_prose(two_lines)
    assert is_prose(diff('return Verdict(REJECTED, f"amount {a} is not {b}")',
                         "return Verdict(REJECTED, )"))  # the detail left out
