"""The user terminal of seed 003 (利用者端末), simulated: the users' devices and wallets.

``agent`` is the worker (faust shell); ``wallet`` builds the 2nd settlement request and handles
the result, without I/O, so the relay can reuse it.
"""
