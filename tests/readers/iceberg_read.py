"""Independent reader for the Iceberg sink's tables, used by tests/e2e/iceberg.rs and iceberg_upsert.rs.

    python iceberg_read.py CATALOG_DB CATALOG_NAME [--s3-endpoint URL]

Opens the SQLite catalog with pyiceberg's SqlCatalog (the same JDBC-style
tables the sink commits to) and prints one JSON object:
{"tables": {"<namespace>.<table>": {"schema": [{"id", "name", "type",
"required"}], "identifier_field_ids": [...], "format_version": N,
"properties": {...}, "rows": [...], "snapshots": [{"id", "summary"}]}}}.
Every table of every namespace is scanned the way a user would
(`table.scan().to_arrow()`, which applies position deletes: an upsert table
prints its current rows). Values are printed exactly and JSON-safely with
the Parquet reader's conversion: temporal values as their integer storage,
decimals as strings, binary and uuid as hex.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from parquet_read import conv  # noqa: E402
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402


def main():
    db, name = sys.argv[1], sys.argv[2]
    props = {}
    if "--s3-endpoint" in sys.argv:
        props = {
            "s3.endpoint": sys.argv[sys.argv.index("--s3-endpoint") + 1],
            "s3.access-key-id": "test",
            "s3.secret-access-key": "test",
            "s3.region": "us-east-1",
        }
    catalog = SqlCatalog(name, uri=f"sqlite:///{db}", **props)
    out = {"tables": {}}
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            table = catalog.load_table(ident)
            arrow = table.scan().to_arrow()
            cols = {n: conv(arrow.column(n)) for n in arrow.column_names}
            rows = [{n: cols[n][i] for n in arrow.column_names} for i in range(arrow.num_rows)]
            schema = [
                {"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required}
                for f in table.schema().fields
            ]
            snapshots = [
                {"id": s.snapshot_id, "summary": s.summary.additional_properties if s.summary else {}}
                for s in table.snapshots()
            ]
            out["tables"][".".join(ident)] = {
                "schema": schema,
                "identifier_field_ids": list(table.schema().identifier_field_ids),
                "format_version": table.format_version,
                "properties": dict(table.properties),
                "rows": rows,
                "snapshots": snapshots,
            }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
