"""Protocol pieces two or more agents share, so that no agent imports another.

- ``sealed``: what is sealed to a wallet server or the CA, and the HPKE context it is bound to
  (relay → wallet, CA → wallet, relay → CA);
- ``contents``: the tagged contents (``<Tag>value</Tag>``) wallet and CA produce and the relay
  converts (seed 000 FIG. 5);
- ``cards``: card-number and expiry rules (FI host, CA);
- ``user``: the user's side of the two-sided settlement, seed 003 (terminal, relay).

Pure functions and plain data: nothing here imports an agent, the runtime's context or faust.
"""
