"""Adapters that bring calls from PBXs other than Asterisk into the call store."""
