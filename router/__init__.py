"""cdc-router: replicate DynamoDB Streams changes into PostgreSQL (and Redshift)."""

__version__ = "0.1.0"
