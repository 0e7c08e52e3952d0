#!/usr/bin/env python3
"""Verifies a connect-manager token with an independent JWT library (PyJWT + cryptography).

Usage: verify_token.py JWKS_JSON_FILE TOKEN_FILE EXPECTED_JSON_FILE

EXPECTED holds what the token must say: issuer, server id (sub), token id (jti), account id,
vault scopes and whether it expires. Every claim of SPEC T1 is checked. Exit 0 when all hold.
"""
import json
import sys

import jwt
from jwt.algorithms import ECAlgorithm


def main() -> int:
    jwks = json.load(open(sys.argv[1]))
    token = open(sys.argv[2]).read().strip()
    expected = json.load(open(sys.argv[3]))

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256", header
    assert header["typ"] == "JWT", header
    keys = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in keys, f"kid {header['kid']} not in the JWKS"
    jwk = keys[header["kid"]]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256", jwk
    public_key = ECAlgorithm.from_jwk(json.dumps(jwk))

    claims = jwt.decode(
        token,
        public_key,
        algorithms=["ES256"],
        audience="com.1password.connect",
        issuer=expected["iss"],
        options={"require": ["iss", "aud", "sub", "jti", "iat"]},
    )
    assert claims["aud"] == ["com.1password.connect"], claims["aud"]
    assert claims["sub"] == expected["sub"], claims
    assert claims["jti"] == expected["jti"], claims
    assert isinstance(claims["iat"], int)
    if expected["expires"]:
        assert isinstance(claims["exp"], int) and claims["exp"] > claims["iat"], claims
    else:
        assert "exp" not in claims, claims
    assert claims["1password.com/auuid"] == expected["auuid"], claims
    value = claims["1password.com/token"]
    assert len(value) == 32 and all(c.isalnum() or c in "-_" for c in value), value
    assert claims["1password.com/fts"] == ["vaultaccess"], claims
    assert sorted(claims["1password.com/vts"], key=lambda v: v["u"]) == sorted(
        expected["vts"], key=lambda v: v["u"]
    ), claims["1password.com/vts"]
    expected_keys = {
        "iss", "aud", "sub", "jti", "iat", "1password.com/auuid", "1password.com/token",
        "1password.com/fts", "1password.com/vts",
    } | ({"exp"} if expected["expires"] else set())
    assert set(claims) == expected_keys, sorted(claims)

    # A changed signature must not verify.
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    try:
        jwt.decode(forged, public_key, algorithms=["ES256"], audience="com.1password.connect")
    except jwt.InvalidSignatureError:
        pass
    else:
        raise AssertionError("a forged signature verified")
    print("verify_token.py: token verified with PyJWT against the JWKS; every T1 claim holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
