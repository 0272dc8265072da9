"""OpenSSL's own CMP server in its mock mode (`openssl cmp -port`): the CA
of the CMP backend's integration tests (test_ca_cmp.py).

    pki = CMPPKI(directory, ca_cert_path, ca_key_path)   the CA's side
    srv = MockCMP(directory)                              a port of its own
    srv.start(*srv.signing(pki, device_cert_path), '-poll_count', '2')
    srv.stop()

The mock server answers every request with one fixed certificate
(-rsp_cert): a test makes the device's key and that certificate first
(pki.device_cert(key, cn)), then lets the client enroll with that key.
It counts its first answer as a poll: with -poll_count N the request and
the next N-1 pollReqs are answered "waiting". It listens on every address
(`-port` takes a number only): where that matters, run the suite in a
network namespace that has loopback alone.

Tap: a recording HTTP relay between mod_scep and the mock server, which
does not log what a request carries: the tests read the CMP messages as
sent (the certificate profile in the PKIHeader's generalInfo).
"""
import http.client
import http.server
import os
import socket
import subprocess
import threading
import time

from asn1crypto import core
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import pki
from .client import _children, read_tlv
from .httpd import free_port
from .process import terminate
from .tls import TestCA

# RFC 9483 4.1.1: id-it-certProfile, generalInfo's InfoTypeAndValue
# carrying SEQUENCE OF UTF8String
ID_IT_CERT_PROFILE = '1.3.6.1.5.5.7.4.21'


def _write(path, data, mode=0o644):
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)
    return path


class CMPPKI:
    """The external CA's side: its certificate and key (which Apache never
    gets), the mock server's signing certificate issued by it, a signing
    certificate of another CA (which the RA must refuse), and the
    certificates the mock answers for devices' keys."""

    def __init__(self, directory, ca_cert_path, ca_key_path):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_file = ca_cert_path
        self.ca = pki.load_cert_file(ca_cert_path)
        self.ca_key = pki.load_key_file(ca_key_path)
        self.srv_cert, self.srv_key = self._signer('cmp-srv', self.ca, self.ca_key)
        other = TestCA(os.path.join(directory, 'other-ca'), cn='Another CA')
        self.other_ca_file = other.ca_file
        self.other_srv_cert, self.other_srv_key = self._signer('other-srv', other.cert, other.key)
        self._devices = 0

    def _signer(self, name, ca, ca_key):
        """(cert path, key path) of a CMP signer (ECDSA) issued by ca."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = pki.issue(ca, ca_key, key, pki.name('Test CMP server ' + name, 'mod_scep tests'),
                         ku=pki.key_usage(digital_signature=True))
        return (_write(os.path.join(self.dir, name + '.crt'), pki.cert_pem(cert)),
                _write(os.path.join(self.dir, name + '.key'), pki.key_pem(key), 0o600))

    def device_cert(self, key, cn):
        """The certificate the CA answers for key (cert, path), made before
        the device asks for it."""
        self._devices += 1
        cert = pki.issue(self.ca, self.ca_key, key, pki.name(cn, 'mod_scep tests'),
                         ku=pki.key_usage(digital_signature=True, key_encipherment=True),
                         eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
        path = os.path.join(self.dir, 'device-%d.crt' % self._devices)
        return cert, _write(path, pki.cert_pem(cert))


class MockCMP:
    """`openssl cmp -port N -verbosity 7 ARGS` on a port of its own, its
    output in mock-<n>.log; start() returns once it accepts connections,
    stop() ends it. The port stays the same across restarts, so that
    Apache's SCEPCMPServer stays valid."""

    def __init__(self, directory, port_base=18820):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port(port_base)
        self.proc = None
        self.log_path = None
        self._runs = 0

    def url(self, path='/pkix/'):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    @staticmethod
    def signing(cmp_pki, rsp_cert, srv=None):
        """Signature protection: the mock signs with srv (cert path, key
        path; default the CA's CMP signer) and trusts the CA for the RA's
        signature."""
        crt, key = srv or (cmp_pki.srv_cert, cmp_pki.srv_key)
        return ['-srv_cert', crt, '-srv_key', key, '-srv_trusted', cmp_pki.ca_file,
                '-rsp_cert', rsp_cert]

    @staticmethod
    def mac(reference, secret, rsp_cert):
        """MAC (PBM) protection with a shared secret, the RA's reference
        as senderKID."""
        return ['-srv_ref', reference, '-srv_secret', 'pass:' + secret, '-rsp_cert', rsp_cert]

    def _accepts(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex(('127.0.0.1', self.port)) == 0

    def start(self, *args, timeout=10):
        self.stop()
        self._runs += 1
        self.log_path = os.path.join(self.dir, 'mock-%d.log' % self._runs)
        with open(self.log_path, 'wb') as out:
            self.proc = subprocess.Popen(['openssl', 'cmp', '-port', str(self.port),
                                          '-verbosity', '7'] + list(args),
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        end = time.time() + timeout
        while not self._accepts():
            if self.proc.poll() is not None or time.time() > end:
                raise RuntimeError('the mock CMP server did not start (%s):\n%s'
                                   % (self.proc.poll(), self.log()))
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None:
            terminate(self.proc, 5)
            self.proc = None

    def log(self):
        """What this run of the mock server printed."""
        if self.log_path is None:
            return ''
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def received(self, kind):
        """How many messages of kind (P10CR, POLLREQ, CERTCONF, GENM) this
        run received (its "CMP DEBUG: received KIND" lines)."""
        return self.log().count('CMP DEBUG: received %s\n' % kind)


class Tap:
    """A recording HTTP relay on a port of its own: every POST is kept
    (path, body) and passed on to target_port, one connection each, asking
    for no keep-alive (the mock server cancels a transaction when a peer
    that asked for keep-alive closes the connection); the answer goes back
    as the target gave it."""

    def __init__(self, target_port, port_base=18830):
        self.port = free_port(port_base)
        self.target_port = target_port
        self.requests = []
        tap = self

        class Relay(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                tap.requests.append((self.path, body))
                conn = http.client.HTTPConnection('127.0.0.1', tap.target_port, timeout=30)
                conn.request('POST', self.path, body,
                             {'Content-Type': self.headers.get('Content-Type', ''),
                              'Connection': 'close'})
                rsp = conn.getresponse()
                data = rsp.read()
                self.send_response(rsp.status)
                self.send_header('Content-Type', rsp.getheader('Content-Type', ''))
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Relay)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path='/pkix/'):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _seq(der):
    """The (tag, DER) of the children of a constructed DER element."""
    hl, end = read_tlv(der, 0)[1], read_tlv(der, 0)[3]
    return [(der[s], der[s:e]) for s, e in _children(der, hl, end)]


def cert_profiles(message):
    """The certificate profile names in a CMP message's PKIHeader
    (generalInfo [8], id-it-certProfile: SEQUENCE OF UTF8String); [] when
    it names none."""
    header = _seq(message)[0][1]
    names = []
    for tag, general_info in _seq(header):
        if tag != 0xa8:  # generalInfo [8] EXPLICIT
            continue
        for _, itav in _seq(_seq(general_info)[0][1]):
            (_, oid), (_, value) = _seq(itav)
            if core.ObjectIdentifier.load(oid).dotted == ID_IT_CERT_PROFILE:
                names += [core.UTF8String.load(s).native for _, s in _seq(value)]
    return names


# PKIBody choices (RFC 4210 5.1.2)
BODY_P10CR, BODY_GENM, BODY_CERTCONF, BODY_POLLREQ = 4, 21, 24, 25


def body_type(message):
    """The PKIBody choice of a CMP message (BODY_*)."""
    return _seq(message)[1][0] & 0x1f
