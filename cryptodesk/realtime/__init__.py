"""Real time: the `/ws/v1/` socket (Django Channels), its auth, and what it publishes after commits."""
