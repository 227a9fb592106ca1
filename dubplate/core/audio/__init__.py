"""Audio features for the A2E network and lip-sync checks."""
