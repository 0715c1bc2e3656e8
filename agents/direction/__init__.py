"""The direction server of seed 002 (EP 1 280 115, direction server 160): a mail server with
push — one mailbox per device, the reception message, the mail with the command."""
