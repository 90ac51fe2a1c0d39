"""Event Hubs: connection strings, SAS tokens, and the senders (REST, AMQP) behind one interface."""
