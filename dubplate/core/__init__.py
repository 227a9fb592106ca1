"""Host-agnostic pipeline stages. Nothing in here imports `dubplate.hosts` or `dubplate.plugin`."""
