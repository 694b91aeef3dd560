#!/usr/bin/env python3
"""A token server for tests: mints RS256 JWTs that the distribution registry 2.8 accepts.

Usage:
  token_server.py --dir DIR [--port 0] [--port-file FILE] [--issuer ISS] [--service SVC]
                  [--user U --password P] [--ttl SECONDS]

It creates DIR/key.pem and DIR/cert.pem (a self-signed certificate made by `openssl req -x509`)
unless they exist; point the registry's `auth.token.rootcertbundle` at DIR/cert.pem. It listens
on 127.0.0.1:PORT (0 = any free port) and writes the bound port to --port-file once listening.

Endpoints:
  GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]
       Authorization: Basic ... is checked against --user/--password when given; wrong ones get
       401. With no credentials configured every requested scope is granted; with credentials
       configured an anonymous request gets a token with no access.
       Reply: {"token","access_token","expires_in","issued_at"}.
  POST /token  OAuth2 form (grant_type=password, username, password, service, scope): same rules.
  GET  /control?ttl=N[&advertise=M]  sets the lifetime of tokens issued from now on (seconds,
       >= 1). With `advertise`, the reply's expires_in says M instead of N: the client then
       holds a token it believes valid after the registry stopped accepting it (0 = say N).
  GET  /stats          {"issued": n, "refused": m, "ttl": t, "last_scopes": [...]}.

The JWT header carries `x5c` (the base64 DER certificate) and `kid` (the libtrust key id the
registry also understands). Signing uses the `openssl` CLI, so only the standard library is needed.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ensure_key_and_cert(directory: str) -> tuple[str, str]:
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    if not (os.path.exists(key) and os.path.exists(cert)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=hoist-test-token-server"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


def cert_der(cert: str) -> bytes:
    return subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                          check=True, capture_output=True).stdout


def libtrust_kid(cert: str) -> str:
    """libtrust key id: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo)."""
    pub_pem = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"],
                             check=True, capture_output=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub_pem,
                          check=True, capture_output=True).stdout
    b32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class State:
    def __init__(self, args, key, cert):
        self.args = args
        self.key = key
        self.x5c = base64.b64encode(cert_der(cert)).decode()
        self.kid = libtrust_kid(cert)
        self.ttl = args.ttl
        self.advertise = 0
        self.issued = 0
        self.refused = 0
        self.last_scopes = []
        self.lock = threading.Lock()

    def sign(self, signing_input: bytes) -> bytes:
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                              input=signing_input, check=True, capture_output=True).stdout

    def mint(self, subject: str, scopes: list[str], grant: bool, service: str):
        access = []
        if grant:
            for scope in scopes:
                parts = scope.split(":")
                if len(parts) < 3:
                    continue
                # "repository:a/b:pull,push"; a name may itself hold ':' only with a port, which
                # repository names cannot, so the first and last fields are type and actions.
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]),
                               "actions": [a for a in parts[-1].split(",") if a]})
        with self.lock:
            ttl = self.ttl
            advertised = self.advertise or ttl
            self.issued += 1
            self.last_scopes = scopes
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256"}
        if "x5c" in self.args.key_id:
            header["x5c"] = [self.x5c]
        if "kid" in self.args.key_id:
            header["kid"] = self.kid
        # The registry accepts a token until exp + 60 s (its clock-skew leeway), so exp is set
        # that much earlier: the token really stops working `ttl` seconds from now.
        exp = now + ttl - self.args.registry_leeway
        claims = {"iss": self.args.issuer, "sub": subject, "aud": service or self.args.service,
                  "exp": exp, "nbf": min(now - 1, exp - 1), "iat": min(now, exp - 1),
                  "jti": uuid.uuid4().hex,
                  "access": access}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
        token = signing_input.decode() + "." + b64url(self.sign(signing_input))
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": advertised,
                "issued_at": issued_at}


def make_handler(state: State):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("token_server: %s %s\n" % (self.address_string(), fmt % args))

        def reply(self, code: int, body: dict, extra_headers=()):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra_headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def authenticate(self, user, password):
            """Returns (ok, subject, grant)."""
            want_user = state.args.user
            if user is None:
                # Anonymous: everything when no credentials are configured, nothing otherwise.
                return True, "anonymous", want_user is None
            if want_user is None or (user == want_user and password == state.args.password):
                return True, user, True
            return False, user, False

        def basic_credentials(self):
            auth = self.headers.get("Authorization")
            if not auth:
                return None, None
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "basic":
                return "", ""
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except Exception:
                return "", ""
            return user, password

        def issue(self, user, password, scopes, service):
            ok, subject, grant = self.authenticate(user, password)
            if not ok:
                with state.lock:
                    state.refused += 1
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "invalid username or password"}]},
                           [("WWW-Authenticate", 'Basic realm="hoist-test-token-server"')])
                return
            self.reply(200, state.mint(subject, scopes, grant, service))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/token":
                user, password = self.basic_credentials()
                self.issue(user, password, query.get("scope", []),
                           query.get("service", [""])[0])
            elif url.path == "/control":
                with state.lock:
                    if "ttl" in query:
                        state.ttl = max(1, int(query["ttl"][0]))
                        state.advertise = max(0, int(query.get("advertise", ["0"])[0]))
                    self.reply(200, {"ttl": state.ttl, "advertise": state.advertise})
            elif url.path == "/stats":
                with state.lock:
                    self.reply(200, {"issued": state.issued, "refused": state.refused,
                                     "ttl": state.ttl, "last_scopes": state.last_scopes})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            if url.path != "/token" or form.get("grant_type", [""])[0] != "password":
                self.reply(404, {"error": "unsupported"})
                return
            scopes = []
            for s in form.get("scope", []):
                scopes.extend(s.split(" "))
            self.issue(form.get("username", [""])[0], form.get("password", [""])[0], scopes,
                       form.get("service", [""])[0])

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--issuer", default="hoist-test-issuer")
    parser.add_argument("--service", default="hoist-test-registry")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--ttl", type=int, default=300)
    parser.add_argument("--registry-leeway", type=int, default=60,
                        help="seconds the registry accepts a token after its exp")
    parser.add_argument("--key-id", default="x5c", choices=["x5c", "kid", "x5c,kid"],
                        help="how the JWT header names the signing key")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    key, cert = ensure_key_and_cert(args.dir)
    state = State(args, key, cert)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    sys.stderr.write("token_server: listening on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
