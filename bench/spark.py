#!/usr/bin/env python3
"""schemas/sql/spark.sql run by PySpark in local mode: each metric's results as
CSV files with duckdb.sql's columns, for bench/analyzer.py --check to compare
with netrec-analyze's. One Spark session for all the traces and metrics asked."""
import csv
import glob
import os
import re

from analyzer import SCHEMA, sql_blocks

SPARK_TYPES = {"utf8": "string", "uint16": "int", "uint32": "bigint", "uint64": "decimal(20,0)", "int32": "int", "int64": "bigint"}


def statements(block):
    """(result name or None, statement) in order."""
    out = []
    for stmt in block.split(";"):
        name = None
        lines = []
        for line in stmt.strip().splitlines():
            m = re.match(r"--\s*out:\s*(\w+)", line)
            if m:
                name = m.group(1)
            elif not line.lstrip().startswith("--"):
                lines.append(line)
        if lines:
            out.append((name, "\n".join(lines)))
    return out


def cell(v):
    if v is None:
        return ""
    if isinstance(v, list):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def session():
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master("local[2]").appName("netrec-sql-check")
            .config("spark.sql.legacy.parquet.nanosAsLong", "true")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate())


def events_view(spark, segments):
    """The `events` view of spark.sql: the segments, ts_ns, host and capture_id.
    capture_id comes from each footer; host too, but in a tree of
    host=<h>/date=<d>/ directories (netrec-capture --layout hive) from the
    partition, as Spark reads a fleet's bucket (and skips hosts by it)."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    files = sorted(glob.glob(os.path.join(segments, "**", "*.parquet"), recursive=True))
    hive = bool(files) and all(re.search(r"/host=[^/]+/date=[^/]+/[^/]+$", f) for f in files)
    meta = []
    for f in files:
        kv = pq.ParquetFile(f).metadata.metadata
        meta.append((os.path.abspath(f), kv[b"netrec.hostname"].decode(), kv[b"netrec.capture_id"].decode()))
    if hive:
        df = spark.read.option("mergeSchema", "true").parquet(segments)
        assert {"host", "date"} <= set(df.columns), f"{segments}: Spark found no host/date partitions"
    else:
        df = spark.read.option("mergeSchema", "true").parquet(*files)
    for c in SCHEMA["columns"]:  # columns newer than every segment here read as nulls
        if c["name"] not in df.columns:
            df = df.withColumn(c["name"], F.lit(None).cast(SPARK_TYPES[c["type"]]))
    # input_file_name() is a URI (file:///…); the footer table is keyed the same way.
    footers = spark.createDataFrame([(f"file://{p}", h, cid) for p, h, cid in meta], ["segment_file", "footer_host", "capture_id"])
    df = (df.withColumn("segment_file", F.input_file_name()).withColumn("ts_ns", F.col("ts"))
          .join(F.broadcast(footers), "segment_file"))
    df = df.drop("footer_host") if hive else df.withColumnRenamed("footer_host", "host")
    df.createOrReplaceTempView("events")


def run(jobs, short_ns):
    """jobs: (metric, segments dir, output dir) each."""
    spark = session()
    spark.sparkContext.setLogLevel("ERROR")
    sql = sql_blocks("spark")
    try:
        for metric, segments, out in jobs:
            events_view(spark, segments)
            todo = statements(sql["connections"]) if "state_rows" in sql[metric] or "conns" in sql[metric] else []
            for name, stmt in todo + statements(sql[metric]):
                result = spark.sql(stmt.format(short_ns=short_ns))
                if name is None:
                    continue
                with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(result.columns)
                    for row in result.collect():
                        w.writerow([cell(v) for v in row])
    finally:
        spark.stop()
