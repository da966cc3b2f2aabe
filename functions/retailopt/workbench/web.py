"""Server-side rendering of the workbench, its CSRF protection, roles and static files.

Pages are Jinja2 templates with autoescaping on: every string from input files (store and
product names, ids, reasons) is escaped. No inline script or style: the Content-Security-Policy
allows only the app's own files. Forms post to the same origin and carry a CSRF token: an HMAC of
the caller's identity keyed by a random nonce held in a SameSite=Strict, HttpOnly cookie, so a
token works only with that browser's cookie and for that identity, on every instance.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import mimetypes
import os
import re
import secrets
from datetime import date, datetime
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any, Mapping
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import jinja2
import pandas as pd

CSRF_COOKIE = "retailopt_csrf"
CSRF_FIELD = "csrf_token"
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_STATIC_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),  # "no-referrer" makes Chrome send Origin: null on our own forms
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)
# The routes page's basemap: OpenStreetMap's tiles unless RETAILOPT_TILE_URL names others ({z}/{x}/{y}
# in an https URL) or is empty (no basemap). The browser shows them only if it can reach the server;
# the map is drawn on a plain background otherwise.
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_ATTRIBUTION = "© OpenStreetMap contributors"
_TILE_RE = re.compile(r"^(https://[A-Za-z0-9.-]+(?::\d{1,5})?)/[A-Za-z0-9._~/{}-]*\{z\}[A-Za-z0-9._~/{}-]*$")


def security_headers(image_origin: str | None = None) -> tuple[tuple[str, str], ...]:
    """The pages' headers; `image_origin` (a tile server) is added to the images the page may load."""
    if not image_origin:
        return SECURITY_HEADERS
    csp = CSP.replace("img-src 'self' data:", f"img-src 'self' data: {image_origin}")
    return (("Content-Security-Policy", csp),) + SECURITY_HEADERS[1:]


def tile_server(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """{url, origin, attribution, probe} of the basemap's tile server, or None for no basemap."""
    environ = os.environ if environ is None else environ
    url = environ.get("RETAILOPT_TILE_URL", DEFAULT_TILES).strip()
    match = _TILE_RE.match(url) if url else None
    if match is None or "{x}" not in url or "{y}" not in url:
        return None
    attribution = environ.get("RETAILOPT_TILE_ATTRIBUTION", DEFAULT_ATTRIBUTION if url == DEFAULT_TILES else "")
    return {"url": url, "origin": match.group(1), "attribution": attribution[:200],
            "probe": url.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0").replace("{s}", "a")}


def local_identity() -> str:
    """Who acts in open local mode (no token check): the OS user, or local-user."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return name if name and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name) else "local-user"


def identity_of(runtime: Any, caller: str | None) -> str:
    return caller if caller else local_identity()


def is_planner(runtime: Any, caller: str | None) -> bool:
    """With a token check, the verified e-mail must be in RETAILOPT_PLANNERS; in open local mode
    the local user is a planner unless a planner list is set."""
    planners = tuple(runtime.service.planners)
    if runtime.verifier is None and caller is None:
        return not planners
    return caller is not None and caller.lower() in planners


def is_driver(runtime: Any, caller: str | None) -> bool:
    """Drivers (RETAILOPT_DRIVERS) and planners record delivery outcomes; in open local mode the
    local user may unless a driver or planner list is set."""
    drivers = tuple(runtime.service.drivers)
    if runtime.verifier is None and caller is None:
        return not drivers and is_planner(runtime, caller)
    return caller is not None and (caller.lower() in drivers or is_planner(runtime, caller))


# --- CSRF ------------------------------------------------------------------------------------

def cookie(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get("cookie") or headers.get("Cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def csrf_nonce(headers: Mapping[str, str]) -> tuple[str, bool]:
    """The browser's nonce, or a new one (True: it must be set as a cookie)."""
    nonce = cookie(headers, CSRF_COOKIE)
    if nonce and _NONCE_RE.match(nonce):
        return nonce, False
    return secrets.token_urlsafe(32), True


def csrf_token(nonce: str, identity: str) -> str:
    return hmac.new(nonce.encode(), identity.encode(), hashlib.sha256).hexdigest()


def csrf_cookie_header(nonce: str, headers: Mapping[str, str]) -> tuple[str, str]:
    secure = "; Secure" if (headers.get("x-forwarded-proto") or "").lower() == "https" else ""
    return ("Set-Cookie", f"{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict{secure}")


def csrf_ok(headers: Mapping[str, str], form: Mapping[str, list[str]], identity: str) -> bool:
    """The form's token matches the cookie's nonce and the identity; a cross-origin post fails."""
    origin = headers.get("origin")
    host = headers.get("host")
    if origin and host and re.sub(r"^https?://", "", origin.rstrip("/")) != host:
        return False
    if (headers.get("sec-fetch-site") or "same-origin") not in ("same-origin", "none"):
        return False
    nonce = cookie(headers, CSRF_COOKIE)
    sent = (form.get(CSRF_FIELD) or [""])[0]
    if not nonce or not _NONCE_RE.match(nonce) or not sent:
        return False
    return hmac.compare_digest(sent, csrf_token(nonce, identity))


def parse_form(body: bytes) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return parse_qs(text, keep_blank_values=True, max_num_fields=5000)


def parse_query(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query or "", max_num_fields=50).items() if v}


# --- formatting ------------------------------------------------------------------------------

def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_num(value: Any, digits: int = 0) -> str:
    if _is_missing(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def fmt_money(value: Any) -> str:
    if _is_missing(value):
        return "–"
    value = float(value)
    sign = "−" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if abs(value) < 1000 else f"{sign}${abs(value):,.0f}"


def fmt_delta(value: Any, money: bool = False, digits: int = 0) -> str:
    if _is_missing(value):
        return "–"
    value = float(value)
    if value == 0:
        return "0"
    text = fmt_money(abs(value)) if money else fmt_num(abs(value), digits)
    return ("+" if value > 0 else "−") + text


def fmt_pct(value: Any) -> str:
    return "–" if _is_missing(value) else f"{float(value) * 100:.1f} %"


def fmt_time(value: Any, tz: str) -> str:
    """A UTC timestamp in the chain's time zone, to the minute."""
    if _is_missing(value):
        return "–"
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    local = stamp.tz_convert(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M %Z")


def fmt_date(value: Any) -> str:
    if _is_missing(value):
        return "–"
    if isinstance(value, (date, datetime, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%a %Y-%m-%d")
    return str(value)[:10]


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("retailopt.workbench", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=fmt_num, money=fmt_money, delta=fmt_delta, pct=fmt_pct, day=fmt_date)
    env.globals["urlencode"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")})
    return env


def render(template: str, **context: Any) -> bytes:
    return environment().get_template(template).render(**context).encode("utf-8")


# --- static files ----------------------------------------------------------------------------

@functools.cache
def static_file(name: str) -> tuple[bytes, str] | None:
    if not _STATIC_RE.match(name) or ".." in name:
        return None
    node = resources.files("retailopt.workbench").joinpath("static").joinpath(name)
    if not node.is_file():
        return None
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript",):
        kind += "; charset=utf-8"
    return node.read_bytes(), kind
