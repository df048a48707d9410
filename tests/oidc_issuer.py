"""A small real OIDC issuer for the negative cases: an HTTP server on a free loopback port that
publishes discovery and a JWKS for RSA keys made here, and signs whatever claims a test asks for
(expired, for another audience, ...). OpenBao is the issuer everywhere else."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from jitaccess.config.oidc import OidcIssuer


class LocalIssuer:
    def __init__(self, audience: str = "jitaccess-test") -> None:
        self.audience = audience
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: set[str] = set()
        self.down = False
        self.requests = 0
        self.add_key("k1")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                if issuer.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.issuer, "jwks_uri": issuer.issuer + "/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [issuer.jwk(kid) for kid in sorted(issuer.published)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_key(self, kid: str, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.add(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        raw = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**raw, "kid": kid, "use": "sig", "alg": "RS256"}

    def public_pem(self, kid: str = "k1") -> bytes:
        from cryptography.hazmat.primitives import serialization

        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def claims(self, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "sub-mallory",
            "preferred_username": "mallory",
            "groups": ["security"],
            "iat": now,
            "exp": now + 600,
            "jti": f"jti-{now}",
        }
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, claims: dict[str, Any] | None = None, kid: str = "k1", **over: Any) -> str:
        return jwt.encode(claims or self.claims(**over), self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def entry(self, **kw: Any) -> OidcIssuer:
        return OidcIssuer(
            name="local-test",
            issuer=self.issuer,
            audience=(self.audience,),
            subject_claim="preferred_username",
            **kw,
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
