"""From outbox to hub: the deliverer, partition counts, dead letters, and the Event Hubs senders."""
