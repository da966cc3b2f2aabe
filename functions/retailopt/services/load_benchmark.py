"""`retailopt bench-api`: latency of the API under concurrent authenticated reads, on loopback.

Starts `retailopt serve` in a subprocess on a free loopback port with a locally generated signing
key, runs one real planning run through the local chain (POST /runs), then measures two loads of
status and result requests over `--concurrency` keep-alive connections: bursts (every
connection sends one request at the same moment, round after round) and sustained (each
connection sends its next request as soon as the previous answer arrives, `--requests` in all).
Prints p50/p95/p99 latency and the error count, and writes them as JSON. Target: p99 of the
200-request bursts under 200 ms, zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "https://retailopt-api.local"
CALLER = "bench@retailopt-local.iam.gserviceaccount.com"
CHAIN = "bench"
RUN_DATE = "2026-01-15"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keys(folder: Path) -> tuple[str, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "bench", "alg": "RS256", "use": "sig"}]}))
    now = int(time.time())
    token = jwt.encode({"iss": "https://accounts.google.com", "aud": AUDIENCE, "sub": "1", "email": CALLER,
                        "email_verified": True, "iat": now, "exp": now + 3600}, key, algorithm="RS256",
                       headers={"kid": "bench"})
    return token, jwks


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


async def _load(port: int, token: str, paths: list[str], concurrency: int, total: int,
                burst: bool = False) -> tuple[list[float], list[str], float]:
    """`concurrency` keep-alive connections sending GETs until `total` requests are done.

    A small asyncio HTTP/1.1 client: the load generator shares the machine with the server, so
    it must cost far less per request than the server does.
    """
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(total))
    start = asyncio.Event()
    rounds = max(1, total // concurrency)
    barrier = asyncio.Barrier(concurrency) if burst else None

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await start.wait()
        try:
            for i in (range(rounds) if burst else counter):
                if barrier is not None:
                    await barrier.wait()  # the whole round starts together
                request = (f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode()
                t0 = time.perf_counter()
                try:
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                    status = int(head.split(b" ", 2)[1])
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    await asyncio.wait_for(reader.readexactly(length), 30)
                    latencies.append(time.perf_counter() - t0)
                    if status != 200:
                        errors.append(f"HTTP {status}")
                    if b"connection: close" in head.lower():
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                    latencies.append(time.perf_counter() - t0)
                    errors.append(type(exc).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)  # every connection open before the first request
    # The client's own garbage collections would count as server latency.
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return latencies, errors, time.perf_counter() - t0
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-api", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200, help="simultaneous clients (default 200)")
    parser.add_argument("--requests", type=int, default=2000, help="total requests, bounded (default 2000)")
    parser.add_argument("--stores", type=int, default=6)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--out", type=Path, default=Path("bench-api.json"))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for the planning run")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 1000 or not 1 <= args.requests <= 100_000:
        parser.error("--concurrency must be 1..1000 and --requests 1..100000")

    from retailopt.sample import generate_sample_chain

    with tempfile.TemporaryDirectory(prefix="retailopt-bench-api-") as tmp:
        folder = Path(tmp)
        drop = folder / "raw" / CHAIN / RUN_DATE
        generate_sample_chain(drop, n_stores=args.stores, n_products=args.products, days=args.days,
                              end_date=date.fromisoformat(RUN_DATE) - timedelta(days=1))
        token, jwks = _keys(folder)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "RETAILOPT_CHAIN_ID": CHAIN, "RETAILOPT_ROUTING_TIME_LIMIT_S": "5"}
        server = subprocess.Popen(
            [sys.executable, "-m", "retailopt.services.serve", "--port", str(port), "--data-dir",
             str(folder / "data"), "--raw-dir", str(folder / "raw"), "--audience", AUDIENCE,
             "--allowed-callers", CALLER, "--trust-jwks", str(jwks)],
            stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT, env=env)
        try:
            return _run(args, base, token, server, folder)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def _run(args: argparse.Namespace, base: str, token: str, server: subprocess.Popen, folder: Path) -> int:
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                break
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            print((folder / "server.log").read_text()[-3000:])
            print("error: the server did not start")
            return 1
        time.sleep(0.2)

    started = time.perf_counter()
    response = requests.post(f"{base}/runs", json={"run_date": RUN_DATE, "source_prefix": f"{CHAIN}/{RUN_DATE}"},
                             headers=auth, timeout=30)
    response.raise_for_status()
    run_id = response.json()["run_id"]
    status = "RUNNING"
    while status == "RUNNING" and time.perf_counter() - started < args.timeout:
        time.sleep(1.0)
        status = requests.get(f"{base}/runs/{run_id}", headers=auth, timeout=30).json().get("status")
    chain_s = time.perf_counter() - started
    if status != "COMPLETE":
        print((folder / "server.log").read_text()[-3000:])
        print(f"error: run {run_id} ended {status} after {chain_s:.0f} s")
        return 1

    paths = [f"/runs/{run_id}", f"/runs/{run_id}/transfers", f"/runs/{run_id}/orders",
             f"/runs/{run_id}/routes", "/plans/latest"]
    port = int(base.rsplit(":", 1)[1])
    # One unmeasured round first: it opens the per-run result caches and the server's threads.
    asyncio.run(_load(port, token, paths, args.concurrency, args.concurrency, burst=True))
    burst_latencies, burst_errors, _ = asyncio.run(
        _load(port, token, paths, args.concurrency, args.requests, burst=True))
    latencies, errors, wall = asyncio.run(_load(port, token, paths, args.concurrency, args.requests))

    figures = {
        "benchmark": "bench-api", "concurrency": args.concurrency,
        "burst_rounds": len(burst_latencies) // args.concurrency, "burst_requests": len(burst_latencies),
        "burst_errors": len(burst_errors),
        "burst_p50_ms": round(1000 * statistics.median(burst_latencies), 1),
        "burst_p99_ms": round(1000 * _percentile(burst_latencies, 0.99), 1),
        "requests": len(latencies),
        "errors": len(errors), "error_kinds": sorted(set(errors)),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * _percentile(latencies, 0.95), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "throughput_rps": round(len(latencies) / wall, 1),
        "chain_run_s": round(chain_s, 1), "run_id": run_id,
        "sample": {"stores": args.stores, "products": args.products, "days": args.days},
        "target": {"p99_ms": 200, "errors": 0},
    }
    figures["meets_target"] = (figures["burst_p99_ms"] < 200 and figures["burst_errors"] == 0
                               and figures["errors"] == 0)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{'metric':<22}{'value':>12}")
    for key in ("concurrency", "burst_rounds", "burst_requests", "burst_errors", "burst_p50_ms", "burst_p99_ms",
                "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "throughput_rps", "chain_run_s",
                "load_average", "meets_target"):
        print(f"{key:<22}{str(figures[key]):>12}")
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {args.out.resolve()}")
    return 0 if figures["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
