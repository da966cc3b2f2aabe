"""`retailopt serve`: the planning API and the whole event chain on one machine.

POST /runs publishes the same start message as in the cloud; the in-process bus carries it
through import, forecast and plan. Binds to loopback by default. Token checks run when
`--audience` is given, against keys from `--trust-jwks` (a local JWKS file) or Google's.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable

import gunicorn.app.base

from retailopt.config import ConfigError, load_settings
from retailopt.services import logs
from retailopt.services.auth import GoogleCerts, IdTokenVerifier, StaticKeys
from retailopt.services.local import start_local
from retailopt.services.settings import load_service_settings


class _Server(gunicorn.app.base.BaseApplication):
    """gunicorn with the gthread worker, the server functions-framework runs on Cloud Run."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retailopt serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=16, help="request threads (default 16)")
    parser.add_argument("--data-dir", type=Path, help="warehouse and default folders (default: settings)")
    parser.add_argument("--raw-dir", type=Path, help="folder standing in for the raw bucket (<data-dir>/raw)")
    parser.add_argument("--artifacts-dir", type=Path, help="folder for artifacts (<data-dir>/artifacts)")
    parser.add_argument("--audience", help="check ID tokens for this audience")
    parser.add_argument("--allowed-callers", default="", help="comma-separated service account emails")
    parser.add_argument("--trust-jwks", type=Path, help="JWKS file of keys to trust instead of Google's")
    return parser


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
    holder: dict[str, Any] = {}

    def app() -> Any:
        # Built in the worker process: the warehouse connection and the bus thread live there.
        holder["chain"] = start_local(settings, raw_dir=args.raw_dir, artifacts_dir=args.artifacts_dir,
                                      verifier=verifier, service=service)
        return holder["chain"].wsgi

    def worker_exit(server: Any, worker: Any) -> None:
        if "chain" in holder:
            holder["chain"].close()

    options = {
        "bind": f"{args.host}:{args.port}", "workers": 1, "worker_class": "gthread", "threads": args.threads,
        # One process owns the embedded warehouse file; threads serve the requests, keep-alive
        # connections wait in the worker's poller.
        "keepalive": 5, "timeout": 0, "loglevel": "warning", "worker_exit": worker_exit,
    }
    logs.log(logging.INFO, f"serving on http://{args.host}:{args.port}", step="serve",
             data_dir=str(settings.data_dir), auth=bool(verifier))
    print(f"retailopt serve: http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    _Server(app, options).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
