#!/usr/bin/env python3
"""Make the SMART test bed's service key pair once: an ES384 (P-384) private key and its public JWK Set.

    python3 tools/smart/keygen.py [DIR]      (default DIR: tools/smart/.run)

Writes DIR/service-key.pem (PKCS#8, mode 0600) and DIR/service-jwks.json (the public JWK Set that the
Keycloak realm registers for the service's client), and prints the key id: the RFC 7638 thumbprint
of the public key, the same kid that `infusion-fhir` derives from the key when none is configured.
An existing key is kept (the JWK Set is rewritten from it), so running it again changes nothing.
Needs only python3 and the openssl command (no virtualenv), since `make smart-up` runs it first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

KEY_FILE = "service-key.pem"
JWKS_FILE = "service-jwks.json"
P384_COORDINATE_BYTES = 48


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True).stdout


def public_jwk(key_file: Path) -> dict[str, str]:
    # The DER SubjectPublicKeyInfo of a P-384 key ends with the uncompressed point 0x04 || X || Y.
    der = openssl("pkey", "-in", str(key_file), "-pubout", "-outform", "DER")
    point = der[-(1 + 2 * P384_COORDINATE_BYTES) :]
    if point[0] != 0x04 or b"\x2b\x81\x04\x00\x22" not in der:  # 1.3.132.0.34 = secp384r1
        raise SystemExit(f"keygen: {key_file} is not a P-384 EC key")
    x, y = point[1 : 1 + P384_COORDINATE_BYTES], point[1 + P384_COORDINATE_BYTES :]
    members = {"crv": "P-384", "kty": "EC", "x": b64url(x), "y": b64url(y)}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    kid = b64url(hashlib.sha256(canonical).digest())
    return {"kty": "EC", "crv": "P-384", "x": members["x"], "y": members["y"], "kid": kid, "alg": "ES384", "use": "sig"}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent / ".run")
    out.mkdir(parents=True, exist_ok=True)
    key_file, jwks_file = out / KEY_FILE, out / JWKS_FILE
    if not key_file.exists():
        pem = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        print(f"keygen: new ES384 key {key_file}", file=sys.stderr)
    jwk = public_jwk(key_file)
    text = json.dumps({"keys": [jwk]}, indent=2) + "\n"
    if not jwks_file.exists() or jwks_file.read_text(encoding="utf-8") != text:
        jwks_file.write_text(text, encoding="utf-8")
    print(jwk["kid"])


if __name__ == "__main__":
    main()
