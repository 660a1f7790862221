"""The modes of tables.yaml and the op of a change, as ``StrEnum``s: compared by name, printed as written."""

from __future__ import annotations

from enum import StrEnum


class Deletes(StrEnum):
    """What a route does with a REMOVE."""

    HARD = "hard"        # delete the row, keep a tombstone
    SOFT = "soft"        # keep the row, set _cdc_deleted_at
    IGNORE = "ignore"    # keep the row untouched


class DeleteReason(StrEnum):
    """Why a row was soft-deleted (``_cdc_delete_reason``, on routes with ``ttl_deletes: soft``)."""

    DELETE = "delete"  # a user's (or an application's) DeleteItem
    TTL = "ttl"        # DynamoDB's TTL process expired the item


class Mode(StrEnum):
    """What a route's target table holds (``mode:``)."""

    CURRENT = "current"  # one row per item: its current state
    HISTORY = "history"  # one row per version, valid from its change's time to the next one's (SCD type 2)
    LOG = "log"          # one row per change record, duplicates ignored


class OnError(StrEnum):
    """What a route does with a record that can never be applied."""

    FAIL = "fail"                # stop the batch there; Lambda retries from it
    DEAD_LETTER = "dead_letter"  # store it with the reason; the stream moves on


class NewAttribute(StrEnum):
    """What a route does with an attribute no column reads (``on_new_attribute:``, issue 15)."""

    ADD_COLUMN = "add_column"    # add a column for it to the target, in the batch's transaction (auto routes)
    EXTRAS = "extras"            # keep it in the route's extras column
    IGNORE = "ignore"            # leave it out
    DEAD_LETTER = "dead_letter"  # set the record aside with the reason


class Mask(StrEnum):
    """How a column hides its value before it leaves the function (``mask:``)."""

    HMAC_SHA256 = "hmac_sha256"  # keyed: equal values hash equally across routes and runs, unguessable without the key
    SHA256 = "sha256"            # unkeyed: anyone can hash a guess and compare
    REDACT = "redact"            # NULL


class Unrouted(StrEnum):
    """What the pipeline does with a record of a table no route reads."""

    FAIL = "fail"
    SKIP = "skip"


class MergeStrategy(StrEnum):
    """How a sink writes a row that may exist (``Capabilities.merge_strategy``)."""

    UPSERT = "upsert"                # INSERT .. ON CONFLICT: columns other routes write survive
    DELETE_INSERT = "delete-insert"  # replace whole rows (Redshift)


class Op(StrEnum):
    """The op of a change, with one encoding everywhere: in memory, in the Postgres batch document and
    the Redshift stage."""

    UPSERT = "u"
    DELETE = "d"
    KEEP = "k"   # a soft delete that keeps the values of an upsert before it (``Change.keeps_values``)


class SourceKind(StrEnum):
    """What delivered a change record."""

    DYNAMODB_STREAMS = "dynamodb_streams"
    KINESIS = "kinesis"                      # Kinesis Data Streams for DynamoDB
    BACKFILL = "backfill"                    # a Scan or an export: version 0, below every stream version


class VersionSource(StrEnum):
    """Where a route's version comes from (``version:`` in tables.yaml); see ``router.versions``."""

    SEQUENCE_NUMBER = "sequence_number"
    APPROXIMATE_CREATION_TIME = "approximate_creation_time"
    ATTRIBUTE = "attribute"


class EpochUnit(StrEnum):
    """The unit of epoch numbers in a date or time column (``epoch:``)."""

    S = "s"
    MS = "ms"
    US = "us"


class ViewType(StrEnum):
    """A DynamoDB stream's StreamViewType: which images its records carry."""

    NEW_AND_OLD_IMAGES = "NEW_AND_OLD_IMAGES"
    NEW_IMAGE = "NEW_IMAGE"
    KEYS_ONLY = "KEYS_ONLY"
    OLD_IMAGE = "OLD_IMAGE"


class Fix(StrEnum):
    """What a drift's fix does to the data, hence when ``cdc-router schema --apply`` runs it."""

    ADDITIVE = "additive"        # a new table, column or index: nothing stored changes; always run
    DESTRUCTIVE = "destructive"  # a type, key or dropped column: may fail or lose values; with --allow-destructive
    BY_HAND = "by hand"          # the database cannot do it in place: never run; the drift's note says what to do
