"""Panasonic SMDR, Segal / Danjeh caller-ID boxes and Telsa recordings → the same call records."""
