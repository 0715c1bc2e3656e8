"""Money is integer minor units plus an ISO 4217 currency code. Never floats."""

from __future__ import annotations

from dataclasses import dataclass

from kessai.errors import SchemaError

# Minor-unit exponents for the currencies we format; unknown codes default to 2.
_EXPONENT = {"JPY": 0, "KRW": 0, "USD": 2, "EUR": 2, "GBP": 2, "BHD": 3}


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise SchemaError(f"money amount must be an integer of minor units, got {self.minor!r}")
        if not (isinstance(self.currency, str) and len(self.currency) == 3
                and self.currency.isalpha() and self.currency.isupper()):
            raise SchemaError(
                f"currency must be an ISO 4217 code like 'JPY', got {self.currency!r}")

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise SchemaError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.minor + other.minor, self.currency)

    def times(self, n: int) -> Money:
        return Money(self.minor * n, self.currency)

    def to_wire(self) -> list[object]:
        return [self.minor, self.currency]

    @classmethod
    def from_wire(cls, value: object) -> Money:
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise SchemaError(f"money must be [minor, currency], got {value!r}")
        return cls(value[0], value[1])  # type: ignore[arg-type]

    def __str__(self) -> str:
        exp = _EXPONENT.get(self.currency, 2)
        if exp == 0:
            return f"{self.minor} {self.currency}"
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exp)
        return f"{sign}{whole}.{frac:0{exp}d} {self.currency}"
