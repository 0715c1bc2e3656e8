"""The POS terminal of seed 002 (EP 1 280 115, POS 11 and mobile terminal 17): the clerk's
sale, the user id from the phone, the transaction number, the completion and the receipt."""
