"""The monitor: a cycle over every watch, what changed, the outbox delivered, the scheduler."""
