"""The audiencehub engine: profiles, FilterQL, membership, outboxes and Event Hub senders.

Plain Python with no Celery import, so every piece is testable on its own; ``tasks`` wraps it.
"""
