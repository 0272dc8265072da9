"""A webhook server for the tests: HTTPS on 127.0.0.1 (a certificate of the
suite's TLS test CA, sceptest/tls.py), or plain HTTP, in a thread of the
test process. It checks step-ca's signature header, records every call and
answers what the test sets.

    hook = WebhookServer(directory, tls_ca, secret=b'...')
    hook.start()
    hook.answer = 'deny'            # allow, deny, sleep, 500, malformed, close
    ... hook.calls[-1].json, .headers, .signature_ok, .client_cert, .connection
    hook.stop()

The signature is X-Smallstep-Signature: the hex HMAC-SHA256 of the exact
body under the secret's bytes; a request whose signature is missing or
wrong is answered 401 (as a step-ca validator refuses it), and recorded.
With require_client_cert, the TLS handshake asks for a client certificate
of the test CA and refuses a client without one.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import socketserver
import ssl
import threading
import time

from .httpd import free_port

ANSWERS = ('allow', 'deny', 'sleep', '500', 'malformed', 'close')


def secret_text(secret):
    """The secret as step-ca prints it and SCEPChallengeWebhookSecretFile
    holds it: standard base64."""
    return base64.b64encode(secret).decode()


def write_secret(path, secret):
    """A secret file (mode 0600, first line the base64 secret)."""
    with open(path, 'w') as f:
        f.write(secret_text(secret) + '\n')
    os.chmod(path, 0o600)
    return path


class Call:
    """One request the server got."""

    def __init__(self, path, headers, body, signature_ok, client_cert, connection):
        self.path = path
        self.headers = headers          # a dict, names as sent
        self.body = body                # bytes, as sent
        self.signature_ok = signature_ok
        self.client_cert = client_cert  # DER of the client's certificate, or None
        self.connection = connection    # the number of the connection it came on
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive: connections can be reused

    def setup(self):
        super().setup()
        hook = self.server.hook
        with hook.lock:
            hook.connections += 1
            self.connection_number = hook.connections

    def log_message(self, fmt, *args):
        pass

    def _client_cert(self):
        try:
            return self.connection.getpeercert(binary_form=True)
        except (AttributeError, ValueError):
            return None

    def do_POST(self):
        hook = self.server.hook
        length = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(length)
        sent = self.headers.get('X-Smallstep-Signature')
        want = hmac.new(hook.secret, body, hashlib.sha256).hexdigest() if hook.secret else None
        signature_ok = want is None or (sent is not None and hmac.compare_digest(sent, want))
        call = Call(self.path, dict(self.headers.items()), body, signature_ok,
                    self._client_cert(), self.connection_number)
        with hook.lock:
            hook.calls.append(call)
            answer = hook.answer
        if not signature_ok:
            self._send(401, b'{"error": "bad signature"}')
            return
        if answer == 'sleep':
            time.sleep(hook.sleep_seconds)
            answer = 'allow'
        if answer == 'close':
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if answer == '500':
            self._send(500, b'{"error": "internal"}')
        elif answer == 'malformed':
            self._send(200, b'{"allow": "yes"')
        else:
            self._send(200, json.dumps({'allow': answer == 'allow', 'data': {}}).encode())

    def _send(self, status, body):
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookServer:
    """The server; url(path) is where it listens (https://localhost:PORT/...
    with TLS, a name its certificate holds; http://127.0.0.1:PORT/...
    without)."""

    def __init__(self, directory, tls_ca=None, secret=None, port_base=19400,
                 require_client_cert=False, cert_name='webhook'):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.tls_ca = tls_ca
        self.secret = secret
        self.require_client_cert = require_client_cert
        self.port = free_port(port_base)
        self.answer = 'allow'
        self.sleep_seconds = 10
        self.calls = []
        self.connections = 0
        self.lock = threading.Lock()
        self.cert_name = cert_name
        self._server = None
        self._thread = None

    def url(self, path='/challenge'):
        if self.tls_ca is None:
            return 'http://127.0.0.1:%d%s' % (self.port, path)
        return 'https://localhost:%d%s' % (self.port, path)

    def reset(self, answer='allow'):
        with self.lock:
            self.calls = []
            self.connections = 0
            self.answer = answer

    def start(self):
        self._server = _Server(('127.0.0.1', self.port), _Handler)
        self._server.hook = self
        if self.tls_ca is not None:
            crt, key = self.tls_ca.server(self.cert_name, dns=['localhost'], ips=['127.0.0.1'])
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            if self.require_client_cert:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.tls_ca.ca_file)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_calls(self, n, timeout=10):
        """The calls once there are at least n (a notification comes after
        the device's answer)."""
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.calls) >= n:
                    return list(self.calls)
            time.sleep(0.05)
        with self.lock:
            return list(self.calls)
