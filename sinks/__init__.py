"""Sinks: where reduced changes are written. ``base`` has the interface, one module per kind."""
