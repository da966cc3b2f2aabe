"""`retailopt bench-api`: latency of the API under concurrent authenticated reads, on loopback.

Starts `retailopt serve` in a subprocess on a free loopback port with a locally generated signing
key, runs one real planning run through the local chain (POST /runs), then measures three
scenarios over `--concurrency` keep-alive connections: `cached` (the complete run's status and
results), `misses` (run ids that do not exist, each request another one; answered 404) and
`latest` (`/plans/latest`). Each gets one unmeasured warm-up round, then bursts (every
connection sends one request at the same moment, round after round) and a sustained load (each
connection sends its next request as soon as the previous answer arrives, `--requests` in all).
Prints p50/p99 latency, throughput and errors per scenario with the machine's load average, and
writes them as JSON. Target: every p99 under `--target-p99-ms` (100 ms), zero errors.
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
from typing import Any

import jwt
import requests
import uvloop
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "https://retailopt-api.local"
CALLER = "bench@retailopt-local.iam.gserviceaccount.com"
CHAIN = "bench"
RUN_DATE = "2026-01-15"
# name -> (paths of one complete run `{run}`, status every answer must have).
SCENARIOS: dict[str, tuple[tuple[str, ...], int]] = {
    "cached": (("/runs/{run}", "/runs/{run}/transfers", "/runs/{run}/orders", "/runs/{run}/routes"), 200),
    "misses": (("/runs/{unknown}", "/runs/{unknown}/orders"), 404),
    "latest": (("/plans/latest",), 200),
}


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


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


async def _load(port: int, token: str, paths: list[str], concurrency: int, total: int,
                burst: bool = False, expect: int = 200) -> tuple[list[float], list[str], float]:
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

    # One request's bytes per path, built once: the client's work per request must stay small.
    requests_by_index = [(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Authorization: Bearer {token}\r\n\r\n").encode() for path in paths]

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await start.wait()
        try:
            for i in (range(rounds) if burst else counter):
                if barrier is not None:
                    await barrier.wait()  # the whole round starts together
                request = requests_by_index[i % len(paths)]
                t0 = time.perf_counter()
                try:
                    # One timeout scope per request (asyncio.wait_for would start a task per read).
                    async with asyncio.timeout(30):
                        writer.write(request)
                        head = await reader.readuntil(b"\r\n\r\n")
                        status = int(head.split(b" ", 2)[1])
                        length = 0
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value)
                        await reader.readexactly(length)
                    latencies.append(time.perf_counter() - t0)
                    if status != expect:
                        errors.append(f"HTTP {status}")
                    if b"connection: close" in head.lower():
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
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
    parser.add_argument("--target-p99-ms", type=float, default=100.0, help="p99 every scenario must beat")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not args.scenarios or set(args.scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios must name some of {', '.join(SCENARIOS)}")
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


def wait_until_serving(base: str, server: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    """Wait for a `retailopt serve` subprocess to answer /healthz; RuntimeError with the end of
    its log if it stops or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


def _run(args: argparse.Namespace, base: str, token: str, server: subprocess.Popen, folder: Path) -> int:
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_until_serving(base, server, folder / "server.log", timeout_s=60)
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1

    started = time.perf_counter()
    response = requests.post(f"{base}/runs", json={"run_date": RUN_DATE, "source_prefix": f"{CHAIN}/{RUN_DATE}"},
                             headers=auth, timeout=30)
    response.raise_for_status()
    run_id = response.json()["run_id"]
    status = "ACCEPTED"  # until the import step has recorded the run (GET answers 404 until then)
    while status in ("ACCEPTED", "RUNNING") and time.perf_counter() - started < args.timeout:
        time.sleep(1.0)
        answer = requests.get(f"{base}/runs/{run_id}", headers=auth, timeout=30)
        status = "ACCEPTED" if answer.status_code == 404 else answer.json().get("status")
    chain_s = time.perf_counter() - started
    if status != "COMPLETE":
        print((folder / "server.log").read_text()[-3000:])
        print(f"error: run {run_id} ended {status} after {chain_s:.0f} s")
        return 1

    port = int(base.rsplit(":", 1)[1])
    scenarios = {name: _scenario(args, port, token, run_id, name, server.pid) for name in args.scenarios}
    figures = {
        "benchmark": "bench-api", "concurrency": args.concurrency, "requests": args.requests,
        "scenarios": scenarios, "chain_run_s": round(chain_s, 1), "run_id": run_id,
        "sample": {"stores": args.stores, "products": args.products, "days": args.days},
        "target": {"p99_ms": args.target_p99_ms, "errors": 0},
        "meets_target": all(f["meets_target"] for f in scenarios.values()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    columns = ("burst_p50_ms", "burst_p99_ms", "burst_errors", "p50_ms", "p99_ms", "max_ms", "throughput_rps",
               "server_cpu_us", "client_cpu_us", "errors")
    print(f"{'scenario':<10}" + "".join(f"{c:>16}" for c in columns))
    for name, row in scenarios.items():
        print(f"{name:<10}" + "".join(f"{row[c]!s:>16}" for c in columns))
    print(f"load average {figures['load_average']}, planning run {figures['chain_run_s']} s, "
          f"meets target (p99 < {args.target_p99_ms:g} ms, no errors): {figures['meets_target']}")
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {args.out.resolve()}")
    return 0 if figures["meets_target"] else 1


def _scenario(args: argparse.Namespace, port: int, token: str, run_id: str, name: str,
              server_pid: int) -> dict[str, Any]:
    templates, expect = SCENARIOS[name]
    # Misses: every request asks for another id, so no per-id cache can answer them.
    count = args.requests if name == "misses" else len(templates)
    paths = [templates[i % len(templates)].format(run=run_id, unknown=f"{CHAIN}-00000000-miss{i:06d}")
             for i in range(count)]
    # One unmeasured round first: it fills the caches and starts the server's threads.
    # The load generator runs on uvloop like the server: on two shared cores a slower client's
    # own CPU time would be counted as the server's latency.
    uvloop.run(_load(port, token, paths, args.concurrency, args.concurrency, burst=True, expect=expect))
    burst, burst_errors, _ = uvloop.run(
        _load(port, token, paths, args.concurrency, args.requests, burst=True, expect=expect))
    # CPU per request, server and client apart: unlike latency, it hardly depends on what else
    # the machine runs, so it compares server versions on a busy machine.
    server_cpu, client_cpu = _cpu_s(server_pid), time.process_time()
    latencies, errors, wall = uvloop.run(_load(port, token, paths, args.concurrency, args.requests, expect=expect))
    server_cpu, client_cpu = _cpu_s(server_pid) - server_cpu, time.process_time() - client_cpu
    row = {
        "paths": list(templates), "expected_status": expect,
        "burst_requests": len(burst), "burst_errors": len(burst_errors),
        "burst_p50_ms": round(1000 * statistics.median(burst), 1),
        "burst_p99_ms": round(1000 * _percentile(burst, 0.99), 1),
        "requests": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors + burst_errors)),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * _percentile(latencies, 0.95), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "throughput_rps": round(len(latencies) / wall, 1),
        "server_cpu_us": round(1e6 * server_cpu / len(latencies)),
        "client_cpu_us": round(1e6 * client_cpu / len(latencies)),
    }
    row["meets_target"] = (row["burst_p99_ms"] < args.target_p99_ms and row["p99_ms"] < args.target_p99_ms
                           and not burst_errors and not errors)
    return row


if __name__ == "__main__":
    raise SystemExit(main())
