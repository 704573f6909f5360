"""Artifact store throughput and memory: a 100 MB blob put and got on file:// and S3.

asm: ``FsspecArtifactStore.put_file`` and ``get_file`` (both streaming: 8 MiB
upload parts and read blocks, sha256 computed on the way in and checked on the
way out) on a local folder and on moto's S3 server on loopback. Baseline, in
the same run: ``shutil.copyfile`` for the folder, boto3's ``upload_file`` /
``download_file`` (s3transfer, several threads) for S3.

Every measurement runs in a fresh subprocess that reports its time and its
RSS growth: the peak resident size (VmHWM) during the operation minus the
resident size (VmRSS) before it. Streaming must keep that growth under 64 MB.

    python benchmarks/artifacts.py [--size-mb N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section

RSS_LIMIT_MB = 64


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(op: str, url: str, options: dict[str, Any], key: str, path: str) -> None:
    """Run one operation in this (fresh) process and print its time and RSS growth."""
    import trio

    before = 0

    if op.startswith("asm-"):
        from asm_fsspec import FsspecArtifactStore

        store = FsspecArtifactStore(url, storage_options=options)

        async def run() -> None:
            async with store:
                if op == "asm-put":
                    await store.put_file(key, path, content_type="application/octet-stream")
                else:
                    await store.get_file(key, path)

        async def warm() -> None:
            async with store:  # connect (and load botocore's models) before measuring, as for boto3
                await store.list("bench/warm-up/")

        trio.run(warm)
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        trio.run(run)
    elif op.startswith("boto-"):
        client = _boto_client(options)
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        client.list_buckets()  # connect before measuring
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        if op == "boto-put":
            client.upload_file(path, bucket, f"{prefix}/{key}")
        else:
            client.download_file(bucket, f"{prefix}/{key}", path)
    else:  # copy-put / copy-get: a local copy
        root = Path(url.removeprefix("file://"))
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        if op == "copy-put":
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / key)
        else:
            shutil.copyfile(root / key, path)
    elapsed = time.perf_counter() - start
    growth_kb = _status_kb("VmHWM") - before
    print(json.dumps({"seconds": elapsed, "rss_growth_mb": growth_kb / 1024}))


def _boto_client(options: dict[str, Any]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=options["endpoint_url"], region_name="us-east-1")


def measure(op: str, url: str, options: dict[str, Any], key: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", op, url, json.dumps(options), key, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{op} on {url} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def make_blob(path: Path, size: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for index in range(size // len(block)):
            # Different blocks, so nothing along the way can deduplicate them.
            handle.write(index.to_bytes(8, "big") + block[8:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument("--child", nargs=5, metavar=("OP", "URL", "OPTIONS", "KEY", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        op, url, options, key, path = args.child
        child(op, url, json.loads(options), key, path)
        return

    from asm_fsspec.testing import moto_server

    size = args.size_mb * 1024 * 1024
    rows: list[tuple[str, str, str, list[dict[str, float]]]] = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, moto_server() as server:
        source = Path(tmp) / "blob.bin"
        make_blob(source, size)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        server.create_bucket(bucket)
        backends = [
            ("file://", (Path(tmp) / "store").as_uri(), {}, "copy", "`shutil.copyfile`"),
            ("S3 (moto)", f"s3://{bucket}/asm", server.storage_options, "boto", "boto3 `upload_file`/`download_file`"),
        ]
        for label, url, options, base, base_label in backends:
            for direction in ("put", "get"):
                for who, name in ((f"asm-{direction}", f"asm `{direction}_file`"), (f"{base}-{direction}", base_label)):
                    results = []
                    for repeat in range(args.repeats):
                        key = f"bench/{who.split('-')[0]}/blob-{repeat}.bin"
                        target = source if direction == "put" else Path(tmp) / f"out-{who}-{repeat}.bin"
                        results.append(measure(who, url, options, key, target))
                        if direction == "get":
                            assert target.stat().st_size == size, f"{who} got {target.stat().st_size} bytes"
                            target.unlink()
                    rows.append((label, direction, name, results))
                    print(label, direction, name, results, flush=True)
    load_end = os.getloadavg()[0]

    lines = [
        "| store | op | who | best MB/s | median MB/s | peak RSS growth |",
        "|---|---|---|---|---|---|",
    ]
    worst_asm = 0.0
    for label, direction, name, results in rows:
        speeds = [args.size_mb / r["seconds"] for r in results]
        growth = max(r["rss_growth_mb"] for r in results)
        if name.startswith("asm"):
            worst_asm = max(worst_asm, growth)
        best, median = max(speeds), statistics.median(speeds)
        lines.append(f"| {label} | {direction} | {name} | {best:.0f} | {median:.0f} | {growth:.1f} MB |")
    verdict = "meets" if worst_asm < RSS_LIMIT_MB else "MISSES"
    body = f"""
A {args.size_mb} MB blob of random bytes, put from a file and got to a file, {args.repeats} times each, every
run in a fresh subprocess. asm: `FsspecArtifactStore.put_file` / `get_file` (asm-fsspec): 8 MiB upload
parts and read blocks on worker threads, the sha256 computed on the way in and checked on the way out,
written atomically (temporary name + rename on file://; one multipart upload on S3). S3 is moto's
server on loopback (a Python process: its speed, not the network's, bounds the S3 rows). Baselines
in the same run: `shutil.copyfile`, and boto3's managed transfers (s3transfer, several threads, no
checksum of their own). Peak RSS growth: the process's peak resident size during the operation
minus its resident size just before. Load average {load_start:.1f} at the start, {load_end:.1f} at the end.

{chr(10).join(lines)}

Largest RSS growth of an asm operation: **{worst_asm:.1f} MB**; limit < {RSS_LIMIT_MB} MB: {verdict} it
(the blob is {args.size_mb} MB: nothing holds it whole).
"""
    print(body)
    if not args.no_write:
        write_section("artifacts", body)


if __name__ == "__main__":
    main()
