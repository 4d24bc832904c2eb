"""Block Kit rendering, one module per kind of message or view."""
