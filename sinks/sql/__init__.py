"""The SQL sink base: state tables, tombstones, dead letters, purge, DDL and drift for every SQL sink."""
