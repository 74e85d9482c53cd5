"""The ARI Stasis application: our own ARI client, live state, call flows and the AMI watcher."""
