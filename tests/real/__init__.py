"""The real tier: a real Asterisk 22.10.1, real SIP phones (pjsua) with tones, and our service (DESIGN §8)."""
