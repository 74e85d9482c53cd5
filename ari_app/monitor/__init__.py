"""Supervisor monitoring: listen, whisper, barge and take over (DESIGN §4). See README.md."""
