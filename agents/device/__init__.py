"""The portable device and its UIM of seed 002 (EP 1 280 115, Figs. 3, 4, 12, 14, 15): local
user authentication, the short-range hand-over, the wake-up mail and the payment session."""
