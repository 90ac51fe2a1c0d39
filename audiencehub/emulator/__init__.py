"""The local Azure Event Hubs stand-in ("hub emulator"): REST face, shared store, fault injection.

Azure's own emulator is a container speaking AMQP and Kafka only, so the project carries this one:
it checks what a real hub checks, keeps what it receives for tests and people to read back, and can
be told at run time to throttle, fail, delay or drop. See docs/emulator.md.
"""
