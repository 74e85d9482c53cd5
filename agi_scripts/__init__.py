"""FastAGI server and the handlers that tag calls; plain AGI scripts reuse the same handlers."""
