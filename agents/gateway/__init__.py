"""The payment gateway of seeds 000/001 (payment GW 70): checks the user's certificate,
decodes the SET payment request, picks the settlement host and returns the approval."""
