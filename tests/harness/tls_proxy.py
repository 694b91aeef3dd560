#!/usr/bin/env python3
"""A TLS front for a plain-TCP test service (a registry, the token server), for tests of clients
that must use a host's own CA and client settings.

Usage:
  tls_proxy.py --cert CERT --key KEY --backend HOST:PORT [--port 0] [--port-file FILE]

It listens on 127.0.0.1:PORT (0 = any free port), writes the bound port to --port-file once
listening, and for each connection completes the TLS handshake with CERT/KEY, then copies bytes
both ways between the client and a new TCP connection to the backend until either side closes.
Only the standard library is used.
"""

import argparse
import os
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(raw, context, backend):
    try:
        client = context.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError) as e:
        sys.stderr.write("tls_proxy: handshake failed: %s\n" % e)
        raw.close()
        return
    try:
        upstream = socket.create_connection(backend)
    except OSError as e:
        sys.stderr.write("tls_proxy: backend %s:%d: %s\n" % (backend[0], backend[1], e))
        client.close()
        return
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    host, _, port = args.backend.rpartition(":")
    backend = (host, int(port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    bound = listener.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % bound)
        os.rename(tmp, args.port_file)
    sys.stderr.write("tls_proxy: listening on 127.0.0.1:%d for %s\n" % (bound, args.backend))
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw, context, backend), daemon=True).start()


if __name__ == "__main__":
    main()
