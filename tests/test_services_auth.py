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
