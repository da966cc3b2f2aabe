"""Verification of Google-signed ID tokens (the second layer after Cloud Run IAM).

The verifier checks signature, expiry, audience, issuer and that the caller's service account is
on the allow-list.

Audience. Pub/Sub push subscriptions and Cloud Scheduler jobs set it explicitly (Terraform: the
receiving service's deterministic URL), so it must equal `audience`. An Eventarc Standard
trigger has no audience setting: Google documents only that Cloud Run accepts, and checks itself
before the request reaches the container, an `aud` matching one of the receiving service's
`*.run.app` URLs (https://cloud.google.com/run/docs/configuring/custom-audiences), and that a
push token without a set audience is minted for the push endpoint URL
(https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#oidctoken), which
for an Eventarc destination is the service's URL with Eventarc's query. Which of the service's
two URLs (`https://SERVICE-PROJECT_NUMBER.REGION.run.app` or `https://SERVICE-HASH-REGION.a.run.app`)
that is, is not documented. So a verifier given `run_service` (the receiving Cloud Run service's
name) also accepts an `aud` whose origin is one of that service's run.app URLs, with any path or
query; everything else about the token is checked as before. Keys come from a `KeySource`: Google's published certificates in production
(fetched with google-auth's HTTP transport and cached for their max-age), or keys injected by
tests and local mode. Callers get only 401 or 403; the reason goes to the log.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
_MAX_AGE_RE = re.compile(r"max-age=(\d+)")


class AuthError(Exception):
    """Token rejected. `status` is 401 (no or invalid token) or 403 (valid token, caller not allowed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class KeySource(Protocol):
    def key(self, kid: str) -> Any: ...


class StaticKeys:
    """Public keys given up front (tests, local mode): kid -> RSA public key."""

    def __init__(self, keys: Mapping[str, RSAPublicKey]) -> None:
        self._keys = dict(keys)

    def key(self, kid: str) -> Any:
        return self._keys.get(kid)

    @classmethod
    def from_jwks_file(cls, path: Path) -> "StaticKeys":
        jwks = json.loads(Path(path).read_text("utf-8"))
        return cls({k["kid"]: jwt.PyJWK(k).key for k in jwks.get("keys", [])})


class GoogleCerts:
    """Google's signing certificates, cached for the Cache-Control max-age of the response."""

    def __init__(self, url: str = GOOGLE_CERTS_URL, fetch: Callable[[str], tuple[dict[str, str], float]] | None = None):
        self.url = url
        self._fetch = fetch or _fetch_with_google_auth
        self._keys: dict[str, Any] = {}
        self._expires = 0.0
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any:
        with self._lock:
            if time.monotonic() >= self._expires or kid not in self._keys:
                certs, max_age = self._fetch(self.url)
                self._keys = {k: x509.load_pem_x509_certificate(v.encode()).public_key() for k, v in certs.items()}
                self._expires = time.monotonic() + max(60.0, max_age)
            return self._keys.get(kid)


def _fetch_with_google_auth(url: str) -> tuple[dict[str, str], float]:
    import google.auth.transport.requests

    response = google.auth.transport.requests.Request()(url, method="GET")
    if response.status != 200:
        raise RuntimeError(f"could not fetch Google certificates: HTTP {response.status}")
    match = _MAX_AGE_RE.search(response.headers.get("cache-control", ""))
    return json.loads(response.data), float(match.group(1)) if match else 300.0


# A Cloud Run service name: lower-case letters, digits and hyphens, starting with a letter.
_RUN_SERVICE_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?")


@dataclass(frozen=True)
class Caller:
    email: str
    subject: str


class IdTokenVerifier:
    def __init__(self, audience: str, allowed_callers: tuple[str, ...] | list[str], keys: KeySource,
                 issuers: tuple[str, ...] = GOOGLE_ISSUERS, leeway_s: float = 30.0,
                 run_service: str | None = None) -> None:
        if not audience or not allowed_callers:
            raise ValueError("an audience and at least one allowed caller are required")
        if run_service is not None and not _RUN_SERVICE_RE.fullmatch(run_service):
            raise ValueError(f"invalid Cloud Run service name {run_service!r}")
        self.audience = audience
        # With run_service (an Eventarc receiver): the run.app hosts the token may name.
        self._run_hosts: re.Pattern[str] | None = None
        if run_service:
            own = urllib.parse.urlsplit(audience).hostname or ""
            self._run_hosts = re.compile(
                rf"{re.escape(own)}|{re.escape(run_service)}-[a-z0-9]+-[a-z0-9]+\.a\.run\.app")
        self.allowed = frozenset(c.lower() for c in allowed_callers)
        self.keys = keys
        self.issuers = tuple(issuers)
        self.leeway = leeway_s
        # Verified tokens until they expire: callers reuse a token for its hour of validity and
        # the RSA check need not run on every request.
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._verified_lock = threading.Lock()

    def audience_ok(self, aud: Any) -> bool:
        """`aud` (a string, or a list of which one must do) names this receiver: it equals
        `audience`; or, with `run_service`, it is an https URL on one of that service's run.app
        hosts, without credentials or port (see the module doc)."""
        if isinstance(aud, list):
            return any(self.audience_ok(a) for a in aud)
        if not isinstance(aud, str) or not aud:
            return False
        if aud == self.audience:
            return True
        if self._run_hosts is None:
            return False
        try:
            url = urllib.parse.urlsplit(aud)
            port = url.port
        except ValueError:
            return False
        return (url.scheme == "https" and port is None and not url.username and url.password is None
                and url.hostname is not None and url.netloc == url.hostname
                and self._run_hosts.fullmatch(url.hostname) is not None)

    def verify_header(self, authorization: str | None, cached_only: bool = False) -> Caller | None:
        """The caller; with `cached_only`, None unless this token was verified before."""
        if not authorization:
            raise AuthError(401, "no Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "Authorization is not a bearer token")
        return self.verify(token.strip(), cached_only)

    def verify(self, token: str, cached_only: bool = False) -> Caller | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._verified_lock:
            hit = self._verified.get(digest)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        if cached_only:
            return None
        caller, expires = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= 4096:
                self._verified.clear()
            self._verified[digest] = (caller, expires)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"malformed token: {exc}") from exc
        if header.get("alg") != "RS256":
            raise AuthError(401, f"token algorithm {header.get('alg')!r} is not RS256")
        key = self.keys.key(str(header.get("kid")))
        if key is None:
            raise AuthError(401, f"unknown signing key {header.get('kid')!r}")
        try:
            claims = jwt.decode(token, key=key, algorithms=["RS256"], leeway=self.leeway,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_aud": False})
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid token: {type(exc).__name__}: {exc}") from exc
        if not self.audience_ok(claims.get("aud")):
            raise AuthError(401, f"invalid token: audience {claims.get('aud')!r} not accepted")
        if claims.get("iss") not in self.issuers:
            raise AuthError(401, f"issuer {claims.get('iss')!r} not accepted")
        email = str(claims.get("email") or "").lower()
        if not email or claims.get("email_verified") is not True:
            raise AuthError(403, "token has no verified email")
        if email not in self.allowed:
            raise AuthError(403, f"caller {email} is not on the allow-list")
        return Caller(email=email, subject=str(claims["sub"])), float(claims["exp"])
