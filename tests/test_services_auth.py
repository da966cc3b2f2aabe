import datetime as dt
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from retailopt.services.auth import AuthError, GoogleCerts, IdTokenVerifier, StaticKeys
from services_support import AUDIENCE, CALLER, TokenFactory


@pytest.fixture(scope="module")
def tokens():
    return TokenFactory()


def test_valid_token_returns_the_caller(tokens):
    caller = tokens.verifier().verify_header(f"Bearer {tokens.token()}")
    assert caller.email == CALLER


@pytest.mark.parametrize("kwargs, status", [
    ({"audience": "https://other.example"}, 401),
    ({"issuer": "https://evil.example"}, 401),
    ({"lifetime_s": -120}, 401),
    ({"kid": "unknown"}, 401),
    ({"email": "someone@else.iam.gserviceaccount.com"}, 403),
    ({"email_verified": False}, 403),
])
def test_wrong_tokens_are_refused(tokens, kwargs, status):
    with pytest.raises(AuthError) as err:
        tokens.verifier().verify(tokens.token(**kwargs))
    assert err.value.status == status


def test_missing_malformed_and_unsigned_tokens(tokens):
    verifier = tokens.verifier()
    for header in (None, "", "Basic abc", "Bearer ", "Bearer not.a.jwt"):
        with pytest.raises(AuthError) as err:
            verifier.verify_header(header)
        assert err.value.status == 401
    forged = jwt.encode({"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": CALLER,
                         "email_verified": True, "sub": "1", "iat": 1, "exp": 2**31}, "x" * 40, algorithm="HS256",
                        headers={"kid": tokens.kid})
    with pytest.raises(AuthError, match="not RS256"):
        verifier.verify(forged)
    other = TokenFactory(kid=tokens.kid)  # same kid, another key: signature check must fail
    with pytest.raises(AuthError) as err:
        verifier.verify(other.token())
    assert err.value.status == 401


def test_google_certs_are_cached_for_max_age(tokens):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(tokens.private_key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(tokens.private_key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    calls = []

    def fetch(url):
        calls.append(url)
        return {tokens.kid: pem}, 3600.0

    verifier = IdTokenVerifier(AUDIENCE, [CALLER], GoogleCerts(fetch=fetch))
    for _ in range(3):
        assert verifier.verify(tokens.token()).email == CALLER
    assert len(calls) == 1
    with pytest.raises(AuthError):
        verifier.verify(tokens.token(kid="rotated"))  # an unknown kid forces one refetch
    assert len(calls) == 2


def test_static_keys_from_jwks_file(tmp_path, tokens):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(tokens.private_key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": tokens.kid, "alg": "RS256", "use": "sig"}]}))
    verifier = IdTokenVerifier(AUDIENCE, [CALLER], StaticKeys.from_jwks_file(path))
    assert verifier.verify(tokens.token()).email == CALLER


# An Eventarc receiver: Eventarc Standard sets no audience, Cloud Run accepts any of the service's
# run.app URLs (checking them itself), so the import service accepts its own run.app hosts.
IMPORT_URL = "https://retailopt-import-123456789012.europe-west1.run.app"


@pytest.mark.parametrize("aud, accepted", [
    (IMPORT_URL, True),
    (IMPORT_URL + "/", True),
    (IMPORT_URL + "?__GCP_CloudEventsMode=GCS_NOTIFICATION", True),  # a push endpoint URL
    ("https://retailopt-import-abcdef1234-ew.a.run.app", True),  # the service's other URL
    ("https://retailopt-import-abcdef1234-ew.a.run.app/?__GCP_CloudEventsMode=GCS_NOTIFICATION", True),
    ([IMPORT_URL, "https://other.example"], True),
    ("https://retailopt-plan-abcdef1234-ew.a.run.app", False),  # another service
    ("https://retailopt-plan-123456789012.europe-west1.run.app", False),
    ("https://retailopt-importer-abcdef1234-ew.a.run.app", False),
    ("https://retailopt-import-x-abcdef1234-ew.a.run.app", False),  # the service retailopt-import-x
    ("http://retailopt-import-abcdef1234-ew.a.run.app", False),
    ("https://retailopt-import-abcdef1234-ew.a.run.app:8443", False),
    ("https://user@retailopt-import-abcdef1234-ew.a.run.app", False),
    ("https://retailopt-import-abcdef1234-ew.a.run.app.evil.example", False),
    ("https://evil.example/https://retailopt-import-abcdef1234-ew.a.run.app", False),
    ("", False),
    ([], False),
])
def test_an_eventarc_receiver_accepts_its_own_run_app_urls_only(tokens, aud, accepted):
    verifier = IdTokenVerifier(IMPORT_URL, [CALLER], tokens.keys(), run_service="retailopt-import")
    token = tokens.token(audience=aud)
    if accepted:
        assert verifier.verify(token).email == CALLER
    else:
        with pytest.raises(AuthError) as err:
            verifier.verify(token)
        assert err.value.status == 401 and "audience" in err.value.reason
    # Without run_service (Pub/Sub push, Scheduler: audience set explicitly) only the exact URL.
    plain = IdTokenVerifier(IMPORT_URL, [CALLER], tokens.keys())
    assert plain.audience_ok(aud) is (aud == IMPORT_URL or (isinstance(aud, list) and IMPORT_URL in aud))


def test_run_service_must_be_a_service_name(tokens):
    with pytest.raises(ValueError):
        IdTokenVerifier(IMPORT_URL, [CALLER], tokens.keys(), run_service="a.run.app|.*")
