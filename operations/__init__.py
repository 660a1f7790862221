"""Operations above sources and sinks: backfill, hand-over, verify, dead-letter redrive, the stream runner."""
