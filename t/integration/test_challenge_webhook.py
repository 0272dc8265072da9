# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The challenge method webhook (SCEPChallengeCheck webhook,
SCEPChallengeWebhook): each PKCSReq's facts POSTed to the suite's HTTPS
webhook server (sceptest/webhook.py: a certificate of the suite's TLS test
CA, step-ca's signature checked, every call recorded, the answer set by the
test). Allowed, denied, and every fault failing closed (time limit,
nobody listening, 500, a malformed answer, the connection closed, a wrong
secret that the server answers with 401, a server certificate of another
CA), a client certificate presented (and its absence refused by the
server), the request's JSON field by field (raw decodes to the device's
CSR), connections reused, "password webhook" (the password first, then
the webhook), the startup refusals, and real clients end to end:
micromdm's scepclient and certmonger's scep-submit."""
import base64
import os
import re
import shutil
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem
from sceptest.httpd import CHALLENGE, free_port, make_conf
from sceptest.process import children
from sceptest.tls import TestCA
from sceptest.webhook import WebhookServer, write_secret
from test_enroll_clients import LEGACY_START, run_scepclient

SECRET = b'the secret step-ca printed for this webhook\x00\xff'
MDM_CHALLENGE = 'mdm-issued-challenge-7f3a'
TIMEOUT = 2  # SCEPWebhookTimeout of the tests

# the engine's line of a method that could not decide, and the client's
FAULT_LINE = r'SCEP288: PKCSReq for transaction %s: the challenge check webhook could not decide'
NO_VERDICT = r'SCEP031: challenge webhook https://localhost:\d+/challenge, transaction %s: %s'
TIMED_OUT = r'SCEP652: challenge webhook https://localhost:\d+/challenge: no answer within %d s'
FAILED = r'SCEP653: challenge webhook https?://(localhost|127\.0\.0\.1):\d+/challenge failed: '
REFUSED_LINE = (r'SCEP201: PKCSReq for transaction %s refused: the challenge webhook refused the '
                r'challenge \(NDES event 29\)')
ALLOWED_LINE = r'SCEP287: transaction %s: the challenge check webhook allowed it'


@pytest.fixture(scope='module')
def wh_dir(env):
    d = os.path.join(env.gen, 'webhook')
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


@pytest.fixture(scope='module')
def tls(wh_dir):
    return TestCA(os.path.join(wh_dir, 'tls'))


@pytest.fixture(scope='module')
def hook(wh_dir, tls):
    h = WebhookServer(os.path.join(wh_dir, 'hook'), tls, secret=SECRET)
    h.start()
    yield h
    h.stop()


@pytest.fixture(scope='module')
def secret_file(wh_dir):
    return write_secret(os.path.join(wh_dir, 'challenge-webhook.secret'), SECRET)


@pytest.fixture(scope='module', autouse=True)
def _default_config_after(httpd):
    yield
    httpd.restart_with()


def webhook_directives(url, tls, secret_file, check='webhook', *more):
    return [('SCEPChallengeCheck', check),
            ('SCEPChallengeWebhook', url),
            ('SCEPChallengeWebhookSecretFile', secret_file),
            ('SCEPWebhookCAFile', tls.ca_file),
            ('SCEPWebhookTimeout', str(TIMEOUT))] + list(more)


def use(httpd, directives, startup_expected=()):
    httpd.startup_expected = list(startup_expected)
    try:
        httpd.restart_with(directives)
    finally:
        httpd.startup_expected = []


@pytest.fixture
def checked(httpd, hook, tls, secret_file):
    """The server with SCEPChallengeCheck webhook, the hook allowing."""
    hook.reset('allow')
    use(httpd, webhook_directives(hook.url(), tls, secret_file))
    return httpd


def enroll(scep, keys, cn, challenge=MDM_CHALLENGE, **kw):
    key = keys.take()
    csr = pki.make_csr(key, cn, challenge=challenge, **kw)
    return scep.enroll(csr, key)


def assert_nothing_issued(httpd, msg):
    rows = checks.request_rows(httpd, msg.transaction_id)
    assert all(row['status'] != 'issued' for row in rows), rows


def assert_fault(httpd, msg, r, rep, *client_lines):
    """Failed closed: FAILURE naming the webhook, "try again later", the client's line and the
    engine's (SCEP288, event 29), nothing issued."""
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    # the device learns which check failed, not why (no URL, no status)
    assert rep.fail_info_text == ('the challenge could not be checked (webhook); nothing was '
                                  'issued, try again later'), rep.fail_info_text
    httpd.errlog.expect(r'SCEP288: ', *client_lines)
    assert httpd.errlog.find(FAULT_LINE % re.escape(msg.transaction_id), levels=('warn',)), \
        '\n'.join(httpd.errlog.lines())
    for line in client_lines:
        assert httpd.errlog.find(line, levels=('error',)), \
            'no line %r:\n%s' % (line, '\n'.join(httpd.errlog.lines()))
    assert_nothing_issued(httpd, msg)
    assert MDM_CHALLENGE not in '\n'.join(httpd.errlog.lines()), 'the challenge was logged'


# ---------------------------------------------------------------------------
# the verdicts

def test_allowed(checked, hook, scep, keys, files):
    msg, r, rep = enroll(scep, keys, 'webhook-allowed.example.test',
                         dns=['webhook-allowed.example.test'])
    cert = checks.assert_issued(msg, r, rep, files.ca)
    checks.assert_recorded(checked, msg.transaction_id, cert)
    assert len(hook.calls) == 1, [c.path for c in hook.calls]
    call = hook.calls[0]
    assert call.signature_ok
    assert call.path == '/challenge'
    assert call.header('Content-Type') == 'application/json'
    assert call.header('X-Smallstep-Webhook-ID') == 'localhost'  # the ServerName
    assert re.fullmatch(r'[0-9a-f]{64}', call.header('X-Smallstep-Signature'))
    assert checked.errlog.find(ALLOWED_LINE % re.escape(msg.transaction_id))


def test_request_json_fields(checked, hook, scep, keys, files):
    """The body, field by field: step-ca's SCEPCHALLENGE fields and ours."""
    key = keys.take()
    csr = pki.make_csr(key, pki.name('webhook-json.example.test', o='Fleet'),
                       challenge=MDM_CHALLENGE, dns=['webhook-json.example.test'],
                       ips=['192.0.2.10'])
    msg, r, rep = scep.enroll(csr, key)
    checks.assert_issued(msg, r, rep, files.ca)
    doc = hook.calls[-1].json
    assert doc is not None, hook.calls[-1].body
    assert doc['provisionerName'] == 'localhost'
    assert doc['scepChallenge'] == MDM_CHALLENGE
    assert doc['scepTransactionID'] == msg.transaction_id
    assert doc['scepMessageType'] == 'PKCSReq'
    assert doc['template'] == 'IPSECIntermediateOffline'
    assert doc['clientAddress'] == '127.0.0.1'
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', doc['timestamp'])
    req = doc['x509CertificateRequest']
    # raw is the device's CSR, byte for byte
    assert base64.b64decode(req['raw']) == csr
    assert base64.b64decode(req['publicKey']) == pki.public_der(key)
    assert req['publicKeyAlgorithm'] == 'RSA'
    assert req['signatureAlgorithm'] == 'SHA256-RSA'
    assert req['subject']['commonName'] == 'webhook-json.example.test'
    assert req['subject']['organization'] == ['Fleet']
    assert req['dnsNames'] == ['webhook-json.example.test']
    assert req['ipAddresses'] == ['192.0.2.10']
    assert req['emailAddresses'] == [] and req['uris'] == []


def test_denied(checked, hook, scep, keys):
    hook.answer = 'deny'
    msg, r, rep = enroll(scep, keys, 'webhook-denied.example.test')
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'the challenge webhook refused the challenge'
    checks.expect_line(checked, REFUSED_LINE % re.escape(msg.transaction_id))
    assert len(hook.calls) == 1 and hook.calls[0].signature_ok
    assert_nothing_issued(checked, msg)


def test_no_challenge_is_asked_too(checked, hook, scep, keys, files):
    """A CSR without a challenge: the webhook decides (scepChallenge "")."""
    msg, r, rep = enroll(scep, keys, 'webhook-no-challenge.example.test', challenge=None)
    checks.assert_issued(msg, r, rep, files.ca)
    assert hook.calls[-1].json['scepChallenge'] == ''
    hook.answer = 'deny'
    msg, r, rep = enroll(scep, keys, 'webhook-no-challenge-2.example.test', challenge=None)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    checks.expect_line(checked, REFUSED_LINE % re.escape(msg.transaction_id))


# ---------------------------------------------------------------------------
# faults: nothing is issued

def test_timeout(checked, hook, scep, keys):
    hook.answer = 'sleep'
    hook.sleep_seconds = TIMEOUT + 3
    start = time.time()
    msg, r, rep = enroll(scep, keys, 'webhook-timeout.example.test')
    took = time.time() - start
    assert took < TIMEOUT + 2, 'the device waited %.1f s' % took
    assert_fault(checked, msg, r, rep, TIMED_OUT % TIMEOUT)
    assert len(hook.calls) == 1


def test_500(checked, hook, scep, keys):
    hook.answer = '500'
    msg, r, rep = enroll(scep, keys, 'webhook-500.example.test')
    assert_fault(checked, msg, r, rep,
                 NO_VERDICT % (re.escape(msg.transaction_id), 'answered HTTP 500'))


def test_malformed_answer(checked, hook, scep, keys):
    hook.answer = 'malformed'
    msg, r, rep = enroll(scep, keys, 'webhook-malformed.example.test')
    assert_fault(checked, msg, r, rep,
                 NO_VERDICT % (re.escape(msg.transaction_id), 'its answer is not JSON'))


def test_connection_closed(checked, hook, scep, keys):
    hook.answer = 'close'
    msg, r, rep = enroll(scep, keys, 'webhook-closed.example.test')
    assert_fault(checked, msg, r, rep, FAILED)


def test_unreachable(httpd, hook, tls, secret_file, scep, keys):
    url = 'https://localhost:%d/challenge' % free_port(hook.port + 50)
    use(httpd, webhook_directives(url, tls, secret_file))
    msg, r, rep = enroll(scep, keys, 'webhook-unreachable.example.test')
    assert_fault(httpd, msg, r, rep, FAILED)


def test_wrong_secret(httpd, hook, tls, wh_dir, scep, keys):
    """The server finds the signature wrong and answers 401: a fault."""
    hook.reset('allow')
    other = write_secret(os.path.join(wh_dir, 'other.secret'), b'not the webhook secret')
    use(httpd, webhook_directives(hook.url(), tls, other))
    msg, r, rep = enroll(scep, keys, 'webhook-wrong-secret.example.test')
    assert_fault(httpd, msg, r, rep,
                 NO_VERDICT % (re.escape(msg.transaction_id), 'answered HTTP 401'))
    assert len(hook.calls) == 1 and not hook.calls[0].signature_ok


def test_tls_ca_mismatch_refused(httpd, hook, wh_dir, secret_file, scep, keys):
    """A server certificate of another CA than SCEPWebhookCAFile's: no
    request reaches it."""
    hook.reset('allow')
    other_ca = TestCA(os.path.join(wh_dir, 'other-tls'), cn='Another TLS CA')
    use(httpd, webhook_directives(hook.url(), other_ca, secret_file))
    msg, r, rep = enroll(scep, keys, 'webhook-tls-mismatch.example.test')
    assert_fault(httpd, msg, r, rep, FAILED + r'.*(certificate|SSL)')
    assert hook.calls == []


def test_http_to_loopback(httpd, wh_dir, tls, secret_file, scep, keys, files):
    """Plain HTTP is allowed to a loopback address; SCEPChallengeWebhookID
    names the webhook."""
    plain = WebhookServer(os.path.join(wh_dir, 'plain'), None, secret=SECRET,
                          port_base=19500)
    plain.start()
    try:
        use(httpd, webhook_directives(plain.url(), tls, secret_file, 'webhook',
                                      ('SCEPChallengeWebhookID', 'mdm-webhook-7d3c')))
        msg, r, rep = enroll(scep, keys, 'webhook-plain.example.test')
        checks.assert_issued(msg, r, rep, files.ca)
        assert len(plain.calls) == 1 and plain.calls[0].signature_ok
        assert plain.calls[0].header('X-Smallstep-Webhook-ID') == 'mdm-webhook-7d3c'
    finally:
        plain.stop()


# ---------------------------------------------------------------------------
# TLS client certificate

@pytest.fixture
def mtls_hook(wh_dir, tls):
    h = WebhookServer(os.path.join(wh_dir, 'mtls'), tls, secret=SECRET, port_base=19600,
                      require_client_cert=True, cert_name='webhook-mtls')
    h.start()
    yield h
    h.stop()


def test_client_certificate_presented(httpd, mtls_hook, tls, secret_file, scep, keys, files):
    crt, key = tls.client('scep-ra-webhook-client')
    use(httpd, webhook_directives(mtls_hook.url(), tls, secret_file,
                                  'webhook', ('SCEPWebhookClientCert', crt),
                                  ('SCEPWebhookClientKey', key)))
    msg, r, rep = enroll(scep, keys, 'webhook-mtls.example.test')
    checks.assert_issued(msg, r, rep, files.ca)
    assert len(mtls_hook.calls) == 1
    presented = x509.load_der_x509_certificate(mtls_hook.calls[0].client_cert)
    assert presented == pki.load_cert_file(crt)


def test_without_client_certificate_refused(httpd, mtls_hook, tls, secret_file, scep, keys):
    use(httpd, webhook_directives(mtls_hook.url(), tls, secret_file))
    msg, r, rep = enroll(scep, keys, 'webhook-no-mtls.example.test')
    assert_fault(httpd, msg, r, rep, FAILED)
    assert mtls_hook.calls == []


# ---------------------------------------------------------------------------
# connections

def test_connections_reused(checked, hook, scep, keys, files):
    """Each child keeps its connection to the webhook: fewer connections
    than calls, at most one per child process."""
    n = 8
    # a new generation of children, without connections yet
    checked.stop()
    checked.start()
    hook.reset('allow')
    for i in range(n):
        msg, r, rep = enroll(scep, keys, 'webhook-reuse-%d.example.test' % i)
        checks.assert_issued(msg, r, rep, files.ca)
    assert len(hook.calls) == n
    processes = len(children(checked.proc.pid))
    assert hook.connections < n, 'a connection per call: %d' % hook.connections
    assert hook.connections <= processes, (hook.connections, processes)
    assert len({c.connection for c in hook.calls}) == hook.connections


# ---------------------------------------------------------------------------
# with the password store

def test_password_then_webhook(httpd, hook, tls, secret_file, scep, keys, files):
    """SCEPChallengeCheck password webhook: the server's password allows
    without asking the webhook; another challenge goes to the webhook,
    whose refusal is the answer."""
    hook.reset('allow')
    use(httpd, webhook_directives(hook.url(), tls, secret_file, 'password webhook'))
    msg, r, rep = enroll(scep, keys, 'webhook-password.example.test', challenge=CHALLENGE)
    checks.assert_issued(msg, r, rep, files.ca)
    assert hook.calls == [], 'the webhook was asked about the server password'
    msg, r, rep = enroll(scep, keys, 'webhook-after-password.example.test')
    checks.assert_issued(msg, r, rep, files.ca)
    assert len(hook.calls) == 1 and hook.calls[0].json['scepChallenge'] == MDM_CHALLENGE
    hook.answer = 'deny'
    msg, r, rep = enroll(scep, keys, 'webhook-after-password-2.example.test')
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'the challenge webhook refused the challenge'
    checks.expect_line(httpd, REFUSED_LINE % re.escape(msg.transaction_id))


# ---------------------------------------------------------------------------
# startup refusals

def config_refused(httpd, directives, pattern):
    conf = make_conf(httpd.env, httpd.base_directives + directives)
    rc, out = httpd.config_test(conf)
    assert rc != 0, out
    assert re.search(pattern, out), out


def test_startup_refusals(httpd, hook, tls, secret_file, wh_dir):
    config_refused(httpd, [('SCEPChallengeWebhook', 'http://mdm.example.com/challenge')],
                   r'SCEPChallengeWebhook: .*loopback')
    config_refused(httpd, [('SCEPChallengeWebhook', 'ftp://127.0.0.1/challenge')],
                   r'SCEPChallengeWebhook: .*scheme must be https')
    config_refused(httpd, [('SCEPChallengeWebhookSecretFile', secret_file)],
                   r'SCEP660: .*SCEPChallengeWebhookSecretFile: set without SCEPChallengeWebhook')
    open_secret = write_secret(os.path.join(wh_dir, 'open.secret'), SECRET)
    os.chmod(open_secret, 0o644)
    config_refused(httpd, webhook_directives(hook.url(), tls, open_secret),
                   r'SCEP009: .*SCEPChallengeWebhookSecretFile .*open\.secret')
    bad = os.path.join(wh_dir, 'bad.secret')
    with open(bad, 'w') as f:
        f.write('not base64 at all!\n')
    os.chmod(bad, 0o600)
    config_refused(httpd, webhook_directives(hook.url(), tls, bad),
                   r'SCEP660: .*SCEPChallengeWebhookSecretFile: .*bad\.secret is not base64')
    crt, key = tls.client('half-pair')
    config_refused(httpd, webhook_directives(hook.url(), tls, secret_file, 'webhook',
                                             ('SCEPWebhookClientCert', crt)),
                   r'SCEP660: .*SCEPChallengeWebhook: a client certificate needs its key')
    os.chmod(key, 0o644)
    config_refused(httpd, webhook_directives(hook.url(), tls, secret_file, 'webhook',
                                             ('SCEPWebhookClientCert', crt),
                                             ('SCEPWebhookClientKey', key)),
                   r'SCEP660: .*half-pair\.key')
    config_refused(httpd, [('SCEPChallengeCheck', 'webhook')],
                   r'SCEPChallengeCheck lists webhook, which needs SCEPChallengeWebhook')
    config_refused(httpd, webhook_directives(hook.url(), tls, secret_file) +
                   [('SCEPWebhookTimeout', '0')], r'SCEPWebhookTimeout')


# ---------------------------------------------------------------------------
# real clients

def test_scepclient_end_to_end(httpd, hook, tls, secret_file, files):
    """micromdm's scepclient (single DES: SCEPAllowLegacyAlgorithms On): the
    webhook's answer decides its enrollment."""
    hook.reset('allow')
    use(httpd, webhook_directives(hook.url(), tls, secret_file, 'webhook',
                                  ('SCEPAllowLegacyAlgorithms', 'On')),
        startup_expected=[LEGACY_START])
    httpd.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
    d, p = run_scepclient(httpd, 'sc-webhook.example.test', challenge=MDM_CHALLENGE)
    out = p.stdout + p.stderr
    path = os.path.join(d, 'cert.pem')
    assert os.path.exists(path), 'scepclient got no certificate:\n' + out
    cert = pki.load_cert_file(path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        'sc-webhook.example.test'
    assert pki.verify_issued_by(cert, files.ca)
    assert len(hook.calls) == 1
    doc = hook.calls[0].json
    assert doc['scepChallenge'] == MDM_CHALLENGE
    assert x509.load_der_x509_csr(base64.b64decode(doc['x509CertificateRequest']['raw'])) \
        .public_key().public_numbers() == cert.public_key().public_numbers()

    hook.answer = 'deny'
    httpd.errlog.expect(r'\(NDES event 29\)')
    d, p = run_scepclient(httpd, 'sc-webhook-denied.example.test', challenge=MDM_CHALLENGE)
    out = p.stdout + p.stderr
    assert not os.path.exists(os.path.join(d, 'cert.pem')), out
    assert re.search(r'failInfo: badRequest', out), out
    assert httpd.errlog.find(r'SCEP201: .*the challenge webhook refused the challenge')


def run_submit(httpd, files, keys, name, challenge):
    work = httpd.env.work
    key = keys.take()
    csr = openssl_req(work, key, name, challenge)
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    msgf = os.path.join(work, name + '.p7')
    with open(msgf, 'w') as f:
        f.write(pem('PKCS7', msg.der))
    cmd = [SCEP_SUBMIT, '-u', httpd.url('/cgi-bin/pkiclient.exe'), '-r',
           httpd.env.p('ra-enc.crt'), '-N', httpd.env.p('ca.crt'), '-p', msgf]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return csr, msg, p


def test_scep_submit_end_to_end(httpd, hook, tls, secret_file, files, keys):
    """certmonger's scep-submit carries a PKCSReq built here from an
    `openssl req` CSR; the webhook allows it, then refuses another."""
    hook.reset('allow')
    use(httpd, webhook_directives(hook.url(), tls, secret_file))
    csr, msg, p = run_submit(httpd, files, keys, 'submit-webhook', MDM_CHALLENGE)
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    certs = issued_certs(p.stdout, msg, files.ra_sign)
    assert len(certs) == 1
    checks.check_issued_cert(certs[0], csr, files.ca)
    assert len(hook.calls) == 1
    assert base64.b64decode(hook.calls[0].json['x509CertificateRequest']['raw']) == csr
    assert hook.calls[0].json['scepTransactionID'] == msg.transaction_id

    hook.answer = 'deny'
    csr, msg, p = run_submit(httpd, files, keys, 'submit-webhook-denied', MDM_CHALLENGE)
    assert p.returncode != 0, p.stdout
    checks.expect_line(httpd, REFUSED_LINE % re.escape(msg.transaction_id))
    assert_nothing_issued(httpd, msg)
