"""Independent reader for the Parquet sink's output, used by tests/e2e/parquet.rs.

    python parquet_read.py ROOT [--s3-endpoint URL]

ROOT is the sink's path (a local directory or s3://bucket/prefix). Prints one
JSON object: {"tables": {"<schema>.<table>": {"files": [...], "schema": [...],
"rows": [...]}}, "manifests": [...]}. Each table is read as one pyarrow
dataset over its directory with the files' schemas unified, the way a user
would read it. Values are printed exactly and JSON-safely: temporal values as
their integer storage (days, microseconds), decimals as strings, binary as
hex, floats NaN/Infinity as strings, extension types through their storage.
"""
import json
import math
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs


def conv(arr):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        arr = arr.storage
        t = arr.type
    if pa.types.is_date32(t):
        return arr.cast(pa.int32()).to_pylist()
    if pa.types.is_time64(t) or pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return arr.cast(pa.int64()).to_pylist()
    if pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in arr.to_pylist()]
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_large_binary(t):
        return [None if v is None else v.hex() for v in arr.to_pylist()]
    if pa.types.is_floating(t):
        out = []
        for v in arr.to_pylist():
            if v is None or not (math.isnan(v) or math.isinf(v)):
                out.append(v)
            elif math.isnan(v):
                out.append("NaN")
            else:
                out.append("Infinity" if v > 0 else "-Infinity")
        return out
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = arr.offsets.to_pylist()
        values = conv(arr.values)
        valid = arr.is_valid().to_pylist()
        return [values[offsets[i]:offsets[i + 1]] if valid[i] else None for i in range(len(arr))]
    if pa.types.is_struct(t):
        cols = {t.field(i).name: conv(arr.field(i)) for i in range(t.num_fields)}
        valid = arr.is_valid().to_pylist()
        return [({k: v[i] for k, v in cols.items()} if valid[i] else None) for i in range(len(arr))]
    return arr.to_pylist()


def field_info(f):
    meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
    t = f.type
    info = {"name": f.name, "type": str(t), "nullable": f.nullable, "metadata": meta}
    if isinstance(t, pa.BaseExtensionType):
        info["extension"] = t.extension_name
        info["storage"] = str(t.storage_type)
    return info


def main():
    root = sys.argv[1]
    endpoint = None
    if "--s3-endpoint" in sys.argv:
        endpoint = sys.argv[sys.argv.index("--s3-endpoint") + 1]
    if root.startswith("s3://"):
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=False)
        base = root[len("s3://"):].rstrip("/")
    else:
        fs = pafs.LocalFileSystem()
        base = root.rstrip("/")
    out = {"tables": {}, "manifests": []}
    top = fs.get_file_info(pafs.FileSelector(base))
    for info in sorted(top, key=lambda i: i.path):
        name = info.path.rsplit("/", 1)[-1]
        if info.type != pafs.FileType.Directory or name.startswith(("_", ".")):
            continue
        files = sorted(
            i.path for i in fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
            if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        )
        schemas = [ds.dataset(f, format="parquet", filesystem=fs).schema for f in files]
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        table = ds.dataset(info.path, format="parquet", filesystem=fs, schema=schema).to_table()
        cols = {n: conv(table.column(n)) for n in table.column_names}
        for n, values in cols.items():
            try:
                json.dumps(values)
            except (TypeError, ValueError) as e:
                raise SystemExit(f"column {n} ({table.schema.field(n).type}) is not printable: {e}")
        rows = [{n: cols[n][i] for n in table.column_names} for i in range(table.num_rows)]
        out["tables"][name] = {
            "files": [f[len(base) + 1:] for f in files],
            "file_schemas": [[field_info(f) for f in s] for s in schemas],
            "schema": [field_info(f) for f in schema],
            "rows": rows,
        }
    manifests = sorted(
        i.path for i in fs.get_file_info(pafs.FileSelector(base + "/_outflow", allow_not_found=True))
        if i.type == pafs.FileType.File and i.path.rsplit("/", 1)[-1].startswith("manifest-")
    )
    for m in manifests:
        with fs.open_input_stream(m) as f:
            out["manifests"].append(json.loads(f.read()))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
