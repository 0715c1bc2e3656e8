"""Seed 002 V3: the web shop (web server 130) in place of the POS and the mobile terminal."""
