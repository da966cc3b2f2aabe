"""Shared helpers of the services tests: locally signed Google-style ID tokens, free ports."""

from __future__ import annotations

import socket
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from retailopt.services.auth import IdTokenVerifier, StaticKeys

AUDIENCE = "https://retailopt-api.example.run.app"
CALLER = "scheduler@retailopt-test.iam.gserviceaccount.com"


class TokenFactory:
    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def keys(self) -> StaticKeys:
        return StaticKeys({self.kid: self.private_key.public_key()})

    def verifier(self, callers: tuple[str, ...] = (CALLER,)) -> IdTokenVerifier:
        return IdTokenVerifier(AUDIENCE, callers, self.keys())

    def token(self, email: str = CALLER, audience: str = AUDIENCE, issuer: str = "https://accounts.google.com",
              lifetime_s: int = 3600, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": issuer, "aud": audience, "sub": "1234567890", "email": email, "email_verified": True,
                   "iat": now, "exp": now + lifetime_s, **claims}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid})

    def header(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
