"""The payment gateway of seed 002 (EP 1 280 115, payment server 150): transaction numbers,
the wake-up of the phone, the device session, method filtering and the credit request."""
