"""`retailopt serve`: the planning API and the whole event chain on one machine.

POST /runs publishes the same start message as in the cloud; the in-process bus carries it
through import, forecast and plan. Binds to loopback by default. Token checks run when
`--audience` is given, against keys from `--trust-jwks` (a local JWKS file) or Google's.
"""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path

import uvicorn

from retailopt.config import ConfigError, load_settings
from retailopt.services import logs
from retailopt.services.auth import GoogleCerts, IdTokenVerifier, StaticKeys
from retailopt.services.local import start_local
from retailopt.services.settings import load_service_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retailopt serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", type=Path, help="warehouse and default folders (default: settings)")
    parser.add_argument("--raw-dir", type=Path, help="folder standing in for the raw bucket (<data-dir>/raw)")
    parser.add_argument("--artifacts-dir", type=Path, help="folder for artifacts (<data-dir>/artifacts)")
    parser.add_argument("--audience", help="check ID tokens for this audience")
    parser.add_argument("--allowed-callers", default="", help="comma-separated service account emails")
    parser.add_argument("--trust-jwks", type=Path, help="JWKS file of keys to trust instead of Google's")
    return parser


def _settle_memory() -> None:
    """Collect now and keep what survives out of the collector's sight.

    The process holds millions of long-lived objects (pandas, OR-Tools, statsforecast, what a
    planning run leaves cached): a full collection among them would stall every request in
    flight. It runs at start-up and whenever the bus has finished a run's steps instead.
    """
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()
    try:
        settings = load_settings({"data_dir": args.data_dir} if args.data_dir else None)
        service = load_service_settings()
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    verifier = None
    if args.audience:
        callers = tuple(c.strip() for c in args.allowed_callers.split(",") if c.strip())
        if not callers:
            print("error: --allowed-callers is required with --audience")
            return 2
        keys = StaticKeys.from_jwks_file(args.trust_jwks) if args.trust_jwks else GoogleCerts()
        verifier = IdTokenVerifier(args.audience, callers, keys)
    # One process owns the embedded warehouse file: uvicorn's event loop answers the API (what
    # is in memory on the loop, the rest in its thread pool) and the bus thread runs the steps.
    chain = start_local(settings, raw_dir=args.raw_dir, artifacts_dir=args.artifacts_dir, verifier=verifier,
                        service=service, on_idle=_settle_memory)
    _settle_memory()
    logs.log(logging.INFO, f"serving on http://{args.host}:{args.port}", step="serve",
             data_dir=str(settings.data_dir), auth=bool(verifier))
    print(f"retailopt serve: http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    try:
        uvicorn.run(chain.asgi, host=args.host, port=args.port, log_level="warning", access_log=False,
                    timeout_keep_alive=5, lifespan="off")
    finally:
        chain.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
