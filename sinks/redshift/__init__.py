"""The Amazon Redshift sink (through the Redshift Data API), for warehouse pilots beside Aurora."""

from sinks.redshift.sink import RedshiftSink

__all__ = ["RedshiftSink"]
