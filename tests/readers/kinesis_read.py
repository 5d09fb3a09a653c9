"""Independent reader for the Kinesis sink's stream, used by tests/e2e/kinesis.rs.

    python kinesis_read.py ENDPOINT STREAM

A plain boto3 client (region us-east-1, test credentials): lists the
stream's shards and reads every one from TRIM_HORIZON to its end. Prints one
JSON object: {"records": [{"shard", "seq", "pk", "key", "data"}]}, shard by
shard in sequence order, with the partition key parsed as JSON into "key"
when it is JSON (else null) and the data parsed as JSON when it is JSON
(else text). A missing stream reads as {"records": [], "missing": true}.
"""
import json
import sys

import boto3


def parse(b):
    try:
        return json.loads(b)
    except ValueError:
        return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def main():
    endpoint, stream = sys.argv[1], sys.argv[2]
    k = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test")
    try:
        shards = []
        kwargs = {"StreamName": stream}
        while True:
            page = k.list_shards(**kwargs)
            shards += [s["ShardId"] for s in page["Shards"]]
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}
    except k.exceptions.ResourceNotFoundException:
        print(json.dumps({"records": [], "missing": True}))
        return
    out = []
    for shard in sorted(shards):
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = k.get_records(ShardIterator=it, Limit=10000)
            for r in page["Records"]:
                pk = r["PartitionKey"]
                key = parse(pk)
                out.append({"shard": shard, "seq": r["SequenceNumber"], "pk": pk,
                            "key": key if isinstance(key, dict) else None,
                            "data": parse(r["Data"])})
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            it = page.get("NextShardIterator")
    print(json.dumps({"records": out}))


if __name__ == "__main__":
    main()
