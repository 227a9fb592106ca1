"""Quality checks any stage can use."""
