"""THE COMPARISON, NOT cdc-router: the per-record Lambda of the AWS Database Blog post
"Continuously replicate Amazon DynamoDB changes to Amazon Aurora PostgreSQL using AWS
Lambda" (the code quoted in ../shared/reference/), kept as close to the article as the
benchmark allows so that the numbers compare against what the article describes.

Per invocation: read the secret, connect. Per record: log it, run one INSERT, UPDATE or
DELETE, log again. Then ``SELECT *`` of the whole table "to verify", commit, and log
every row read. What differs from the article, and why:

- psycopg 3 instead of psycopg2: the same libpq and the same protocol (one statement,
  one round trip per call); psycopg2 is not a dependency of this project.
- the secret is a JSON string held in memory: there is no Secrets Manager here (and
  Powertools would serve the article's ``get_secret`` from its cache most of the time).
- its table has ``text`` instead of ``varchar(20)``/``varchar(10)`` columns: the
  generated names that do not fit would make the article's code log the error and drop
  the rest of the batch uncommitted, which measures nothing. It also has an unused
  ``_cdc_version`` column, so that it is prefilled with the same rows as cdc-router's.
- the connection is closed at the end of each invocation (the article leaves it to the
  garbage collector), and the log goes to /dev/null instead of CloudWatch.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
from aws_lambda_powertools import Logger
from psycopg import sql

from router.model import VERSION_COLUMN


def create_table_sql(schema: str, table: str) -> sql.Composed:
    return sql.SQL('CREATE TABLE IF NOT EXISTS {} ("Id" bigint PRIMARY KEY, "Name" text, "Department" text, {} numeric)'
                   ).format(sql.Identifier(schema, table), sql.Identifier(VERSION_COLUMN))


class ReferenceHandler:
    """``handler(event, context)`` as in the article, against ``schema.table``."""

    def __init__(self, dsn: str, schema: str, table: str):
        self.secret = json.dumps({"dsn": dsn})
        self.logger = Logger(service="sql-replicator", stream=open(os.devnull, "w"))
        target = sql.Identifier(schema, table)
        self.insert = sql.SQL("INSERT INTO {} VALUES (%s,%s,%s)").format(target)
        self.update = sql.SQL('UPDATE {} SET "Name" = %s, "Department" = %s WHERE "Id" = %s').format(target)
        self.delete = sql.SQL('DELETE FROM {} WHERE "Id" = %s').format(target)
        self.select_all = sql.SQL("SELECT * FROM {}").format(target)

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        logger = self.logger
        secret_value = json.loads(self.secret)
        mydb = psycopg.connect(secret_value["dsn"])
        try:
            mycursor = mydb.cursor()
            for record in event["Records"]:
                event_name = record["eventName"]
                if event_name == "INSERT":
                    logger.info("Inserting record", extra={"record": record})
                    image = record.get("dynamodb", {}).get("NewImage", {})
                    sql_value = (image.get("Id", {}).get("N"),
                                 image.get("empName", {}).get("S", "NA"),
                                 image.get("empDepartment", {}).get("S", "NA"))
                    mycursor.execute(self.insert, sql_value)
                    logger.info("Record inserted successfully into Employees table")
                elif event_name == "MODIFY":
                    logger.info("Modifying record", extra={"record": record})
                    image = record.get("dynamodb", {}).get("NewImage", {})
                    sql_value = (image.get("empName", {}).get("S", "NA"),
                                 image.get("empDepartment", {}).get("S", "NA"),
                                 image.get("Id", {}).get("N"))
                    mycursor.execute(self.update, sql_value)
                    logger.info("Record modified successfully into Employees table")
                elif event_name == "REMOVE":
                    logger.info("Removing record", extra={"record": record})
                    sql_value = (record.get("dynamodb", {}).get("Keys", {}).get("Id", {}).get("N"),)
                    mycursor.execute(self.delete, sql_value)
                    logger.info("Record removed successfully from Employees table")
            # Verifying with the select statement
            mycursor.execute(self.select_all)
            records = mycursor.fetchall()
            mydb.commit()
            logger.info("Received event: ", extra={"records": records})
        except (Exception, psycopg.Error) as error:
            logger.exception("Error while fetching data from PostgreSQL", extra={"error": error})
            raise  # the article swallows it; a benchmark must not measure a failed batch as a fast one
        finally:
            mydb.close()
