"""The README's first command, build/demo (marker `demo`: not part of the
normal runs, because the demo listens on its fixed ports 8080 and 8443;
`pytest -m demo t/integration/test_demo.py`, build/test runs it).

The real `build/demo --detach`, from the repository root, as a new user
types it: its stdout must carry exactly the SCEP_URL=, CA_CERT=, ADMIN_URL=,
ADMIN_USER= and ADMIN_PASSWORD= lines. Then, as the device administrator,
a one-time password from the admin page (HTTPS, Basic, the NDES page in
UTF-16LE), with which certmonger's scep-submit enrolls a device; the same
password a second time is refused (FAILURE badRequest, NDES event 29 in the
demo's error log, demo/logs/error.log). With --no-password, devices enroll
without one. With --external-ca the demo is a registration authority in
front of certmonger's local-submit: the same lines, GetCACert names that
CA and the RA certificates it issued, and devices get its certificates
while Apache holds no CA key. With --cluster two servers are one service on
a PostgreSQL server of the demo's: the lines SCEP_URL_2= and ADMIN_URL_2=
more, a password from the first server's admin page enrolls at the second
and is spent for both, and both record into one database. With
--challenge-webhook URL --challenge-secret-file FILE a one-time password
still enrolls without asking the webhook, and any other challenge is the
webhook's (the suite's webhook server on loopback, which checks the
signature): allowed, denied (event 29), and nothing issued when it does
not decide (HTTP 500). `build/demo --stop` runs after every test, whatever happened,
and nothing may listen on the demo's ports afterwards, nor any Apache of
the demo be left.
"""
import base64
import os
import pwd
import re
import socket
import subprocess

import pytest
from cryptography.x509.oid import NameOID

from sceptest import admin as A
from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem
from sceptest.httpd import ErrorLog
from sceptest.webhook import WebhookServer, write_secret

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
STATE = os.path.join(REPO, 'demo')
ERROR_LOG = os.path.join(STATE, 'logs', 'error.log')
# the demo's self-signed certificate of the admin page
TLS_CERT = os.path.join(STATE, 'tls', 'server.crt')
PORTS = (8080, 8443, 8081, 8444, 8432)
RESULT_KEYS = ('SCEP_URL', 'CA_CERT', 'ADMIN_URL', 'ADMIN_USER', 'ADMIN_PASSWORD')
CLUSTER_KEYS = RESULT_KEYS + ('SCEP_URL_2', 'ADMIN_URL_2')
ERROR_LOG_2 = os.path.join(STATE, 'server-2', 'logs', 'error.log')
# what build/demo may take on a fresh clone: packages, a build, the PKI
START_TIMEOUT = 1800

pytestmark = pytest.mark.demo


def run_demo(*options, timeout=120):
    """build/demo with options, from the repository root, as the README has it."""
    return subprocess.run(['build/demo'] + list(options), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) == 0


def demo_apaches():
    """The pids of Apaches running the demo's configuration."""
    confs = {os.path.join(STATE, 'httpd.conf').encode(),
             os.path.join(STATE, 'server-2', 'httpd.conf').encode()}
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if confs & set(f.read().split(b'\0')):
                    pids.append(int(pid))
        except OSError:
            pass  # gone meanwhile
    return pids


def parse_results(stdout, keys=RESULT_KEYS):
    """The KEY=value lines of --detach; nothing else may be on stdout."""
    lines = stdout.splitlines()
    results = dict(ln.split('=', 1) for ln in lines if '=' in ln)
    assert len(results) == len(lines) and tuple(results) == keys, \
        'build/demo --detach: stdout is not exactly the %s lines:\n%s' % (
            ', '.join(keys), stdout)
    return results


@pytest.fixture
def demo(request):
    """Starts build/demo --detach with more options; returns its results
    (dict) and the demo's error log, marked before the start. Stops it
    afterwards (also when the start failed half-way) and checks that it is
    gone; the test fails on an undeclared [warn] or worse line of its log."""
    log = ErrorLog(ERROR_LOG)
    started = []

    def start(*options):
        log.mark()
        started.append(options)
        p = run_demo('--detach', *options, timeout=START_TIMEOUT)
        assert p.returncode == 0, 'build/demo --detach %s: exit %d\n%s\n%s' % (
            ' '.join(options), p.returncode, p.stdout, p.stderr)
        return parse_results(p.stdout, CLUSTER_KEYS if '--cluster' in options
                             else RESULT_KEYS), log

    yield start
    if not started:
        return
    p = run_demo('--stop')
    assert p.returncode == 0, 'build/demo --stop: exit %d\n%s' % (p.returncode, p.stderr)
    assert not [port for port in PORTS if listening(port)], 'the stopped demo still listens'
    assert not demo_apaches(), 'Apache of the demo left running after --stop'
    call = getattr(request.node, 'rep_call', None)
    if call is None or not call.failed:
        bad = log.unexpected()
        assert not bad, 'unexpected lines in %s:\n%s' % (ERROR_LOG, '\n'.join(bad))


def one_time_password(results, log, url_key='ADMIN_URL'):
    """The administrator's visit to the admin page: the NDES page (UTF-16LE)
    with a new password, over HTTPS checked against the demo's certificate."""
    url, user, secret = results[url_key], results['ADMIN_USER'], results['ADMIN_PASSWORD']
    assert A.curl(url, TLS_CERT).status == 401, 'the admin page without a login'
    assert A.curl(url, TLS_CERT, user=user, password=secret + 'x').status == 401, \
        'the admin page with a wrong password'
    log.expect(r'AH01617: user %s: authentication failure' % user)
    r = A.curl(url, TLS_CERT, user=user, password=secret)
    assert r.status == 200, 'admin page: HTTP %d\n%s' % (r.status, r.text)
    password = A.password_of(r.text)
    assert password, 'no password on the admin page:\n' + r.text
    return password


def device_client(results):
    """Our SCEP client of the demo; the CA of GetCACert is CA_CERT's."""
    client = C.Client(results['SCEP_URL'])
    assert client.ca.ca == pki.load_cert_file(results['CA_CERT']), \
        'GetCACert names another CA than CA_CERT'
    return client


def scep_submit(results, client, tmp_path, key, challenge):
    """certmonger's scep-submit carries a PKCSReq of an `openssl req` CSR
    with challenge to SCEP_URL; returns (request, its certificate)."""
    csr = openssl_req(str(tmp_path), key, 'device', challenge)
    msg = C.pkcsreq(csr, key, [client.ca.ra_enc])
    msgf, raf = tmp_path / 'device.p7', tmp_path / 'ra-enc.crt'
    msgf.write_text(pem('PKCS7', msg.der))
    raf.write_bytes(pki.cert_pem(client.ca.ra_enc))
    p = subprocess.run([SCEP_SUBMIT, '-u', results['SCEP_URL'], '-r', str(raf),
                        '-N', results['CA_CERT'], '-p', str(msgf)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    certs = issued_certs(p.stdout, msg, client.ca.ra_sign)
    assert len(certs) == 1, 'expected the issued certificate alone, got %d' % len(certs)
    return msg, certs[0]


def assert_private_records():
    """The demo's database directory (in the checkout, or under /var/lib
    when www-data cannot reach it) 0700 and its files 0600, of the user
    Apache's children run as: www-data when the demo was started as root."""
    with open(os.path.join(STATE, 'httpd.conf')) as f:
        (params,) = re.findall(r'^DBDParams "(.*)"$', f.read(), re.M)
    if os.getuid() == 0:
        www = pwd.getpwnam('www-data')
        uid, gid = www.pw_uid, www.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    checks.assert_private_records(os.path.dirname(params), uid, gid)


def common_name(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_demo_one_time_password(demo, tmp_path):
    results, log = demo()
    ca = pki.load_cert_file(results['CA_CERT'])
    password = one_time_password(results, log)
    client = device_client(results)
    key = pki.new_key()
    msg, cert = scep_submit(results, client, tmp_path, key, password)
    # issued by CA_CERT's CA for the CSR's subject and key, by the template
    checks.check_issued_cert(cert, msg.inner, ca)
    assert cert.issuer == ca.subject
    assert pki.public_der(cert) == pki.public_der(key), 'issued for another key'
    assert common_name(cert) == 'submit.example.test'
    assert_private_records()

    # another device with the same password
    other = pki.new_key()
    msg, r, rep = client.enroll(pki.make_csr(other, 'second.example.test', challenge=password),
                                other)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    log.expect(checks.event(29), checks.OPENSSL_LINES)
    assert log.find(checks.event(29), levels=checks.REFUSAL_LEVELS), \
        'no NDES event 29 in %s:\n%s' % (ERROR_LOG, '\n'.join(log.lines()))
    # the administrator's secrets stay out of the log
    text = '\n'.join(log.lines())
    assert password not in text and results['ADMIN_PASSWORD'] not in text


def test_demo_no_password(demo):
    """--no-password: devices enroll without a challenge, as often as they like."""
    results, _ = demo('--no-password')
    ca = pki.load_cert_file(results['CA_CERT'])
    client = device_client(results)
    for name in ('nopw1.example.test', 'nopw2.example.test'):
        key = pki.new_key()
        msg, r, rep = client.enroll(pki.make_csr(key, name), key)
        cert = checks.assert_issued(msg, r, rep, ca)
        assert common_name(cert) == name
    # the drop-in's LimitRequestLine: a GET message of SCEPMaxRequestSize
    # (65536 bytes), every base64 character percent-escaped, is issued
    key = pki.new_key()
    msg = C.sized_pkcsreq(pki.make_csr(key, 'get-max.example.test'), key, [client.ca.ra_enc],
                          65536)
    r, rep = client.send(msg, method='GET', style='escape_all')
    checks.assert_issued(msg, r, rep, ca)


def test_demo_external_ca(demo, tmp_path):
    """--external-ca: SCEPCABackend helper with local-submit's CA in
    demo/local-ca (or below /var/lib), the PKI of `scepctl setup --external
    --ca-helper`; the KEY=value lines as ever, CA_CERT the external CA."""
    results, log = demo('--external-ca')
    ca = pki.load_cert_file(results['CA_CERT'])
    assert 'CN=Local Signing Authority' in ca.subject.rfc4514_string(), ca.subject
    pki_dir = os.path.dirname(results['CA_CERT'])
    assert not os.path.exists(os.path.join(pki_dir, 'ca.key'))
    with open(os.path.join(STATE, 'httpd.conf')) as f:
        conf = f.read()
    assert re.search(r'^SCEPCABackend helper$', conf, re.M), conf
    (helper,) = re.findall(r'^SCEPCAHelper /usr/lib/certmonger/local-submit -d "(.*)"$', conf,
                           re.M)
    assert 'SCEPCAKeyFile' not in conf
    # local-submit's directory is the children's alone; its CA is CA_CERT
    st = os.stat(helper)
    want_uid = pwd.getpwnam('www-data').pw_uid if os.getuid() == 0 else os.getuid()
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, want_uid), (oct(st.st_mode), st.st_uid)
    # GetCACert: that CA and the RA certificates it issued
    client = device_client(results)
    for ra in (client.ca.ra_sign, client.ca.ra_enc):
        assert ra.issuer == ca.subject and pki.verify_issued_by(ra, ca)
    assert {pki.cert_der(c) for c in client.ca.certs} == {
        pki.cert_der(c) for c in (ca, client.ca.ra_sign, client.ca.ra_enc)}
    # a device with a one-time password gets local-submit's certificate
    password = one_time_password(results, log)
    key = pki.new_key()
    msg, cert = scep_submit(results, client, tmp_path, key, password)
    assert cert.issuer == ca.subject
    assert pki.verify_issued_by(cert, ca), 'not signed by the external CA'
    assert pki.public_der(cert) == pki.public_der(key), 'issued for another key'
    assert common_name(cert) == 'submit.example.test'


def test_demo_web_surface(demo):
    """The demo runs with the drop-in's server-wide limits (LimitRequestLine,
    mod_reqtimeout's RequestReadTimeout), answers TRACE nowhere, and its
    admin page may not be framed."""
    results, _ = demo('--no-password')
    with open(os.path.join(REPO, 'conf.d', 'scep.conf')) as f:
        dropin = [ln.strip() for ln in f
                  if ln.strip().startswith(('LimitRequestLine ', 'RequestReadTimeout '))]
    with open(os.path.join(STATE, 'httpd.conf')) as f:
        conf = [ln.strip() for ln in f]
    assert len(dropin) == 2 and all(ln in conf for ln in dropin), (dropin, conf)
    assert 'LoadModule reqtimeout_module' in ' '.join(conf)
    for url in (results['SCEP_URL'], results['ADMIN_URL'], results['ADMIN_URL'] + 'manager/'):
        r = A.curl(url, TLS_CERT, user=results['ADMIN_USER'], password=results['ADMIN_PASSWORD'],
                   extra=['-X', 'TRACE'])
        assert r.status == 405, 'TRACE %s: HTTP %d' % (url, r.status)
        assert b'Authorization' not in r.body, r.body[:300]
    r = A.curl(results['ADMIN_URL'], TLS_CERT, user=results['ADMIN_USER'],
               password=results['ADMIN_PASSWORD'])
    assert r.status == 200
    A.assert_not_frameable(r)


def test_demo_cluster(demo):
    """--cluster: two servers, one service on the demo's PostgreSQL."""
    results, log = demo('--cluster')
    log2 = ErrorLog(ERROR_LOG_2)
    log2.mark()
    ca = pki.load_cert_file(results['CA_CERT'])
    first, second = device_client(results), C.Client(results['SCEP_URL_2'])
    assert second.ca.ca == first.ca.ca and second.ca.ra_enc == first.ca.ra_enc
    # a password of the first server's page enrolls at the second
    password = one_time_password(results, log)
    key = pki.new_key()
    msg, r, rep = second.enroll(pki.make_csr(key, 'at-two.example.test', challenge=password),
                                key)
    cert = checks.assert_issued(msg, r, rep, ca)
    # spent for the whole service: refused at the first server
    other = pki.new_key()
    msg, r, rep = first.enroll(pki.make_csr(other, 'again.example.test', challenge=password),
                               other)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    log.expect(checks.event(29), checks.OPENSSL_LINES)
    # and the other way round, with a password of the second server's page
    password = one_time_password(results, log2, 'ADMIN_URL_2')
    msg, r, rep = first.enroll(pki.make_csr(other, 'at-one.example.test', challenge=password),
                               other)
    cert2 = checks.assert_issued(msg, r, rep, ca)
    # one set of records: the first server's scepctl view lists both
    with open(os.path.join(STATE, 'httpd.conf')) as f:
        (params,) = re.findall(r'^DBDParams "(.*)"$', f.read(), re.M)
    p = subprocess.run([os.path.join(REPO, 'mod_scep', 'scepctl'), 'list', '--certs',
                        '--db-driver', 'pgsql', '--db', params],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for c in (cert, cert2):
        assert ('%X' % c.serial_number) in p.stdout.upper(), p.stdout
    bad = log2.unexpected()
    assert not bad, 'unexpected lines in %s:\n%s' % (ERROR_LOG_2, '\n'.join(bad))


def test_demo_challenge_webhook(demo, tmp_path):
    """--challenge-webhook URL --challenge-secret-file FILE: SCEPChallengeCheck
    password webhook. A one-time password of the admin page enrolls without a
    call; another challenge goes to the webhook, signed with FILE's secret,
    and its answer decides; without a verdict nothing is issued."""
    secret = b'the demo webhook\'s secret \x00\xff'
    secret_file = write_secret(str(tmp_path / 'challenge.secret'), secret)
    hook = WebhookServer(str(tmp_path / 'hook'), secret=secret)
    hook.start()
    try:
        results, log = demo('--challenge-webhook', hook.url('/scep/challenge'),
                            '--challenge-secret-file', secret_file)
        with open(os.path.join(STATE, 'httpd.conf')) as f:
            conf = [ln.strip() for ln in f]
        for line in ('SCEPChallengeCheck password webhook',
                     'SCEPChallengeWebhook "%s"' % hook.url('/scep/challenge'),
                     'SCEPChallengeWebhookSecretFile "%s"' % os.path.realpath(secret_file)):
            assert line in conf, (line, conf)
        ca = pki.load_cert_file(results['CA_CERT'])
        client = device_client(results)

        # the password method allows first: the webhook is not asked
        password = one_time_password(results, log)
        key = pki.new_key()
        msg, cert = scep_submit(results, client, tmp_path, key, password)
        checks.check_issued_cert(cert, msg.inner, ca)
        assert not hook.calls, [c.json for c in hook.calls]

        # the MDM's challenge: the webhook allows it (scep-submit end to end)
        key = pki.new_key()
        msg, cert = scep_submit(results, client, tmp_path, key, 'mdm-challenge-allowed')
        checks.check_issued_cert(cert, msg.inner, ca)
        (call,) = hook.calls
        assert call.path == '/scep/challenge' and call.signature_ok, call.headers
        assert call.json['scepChallenge'] == 'mdm-challenge-allowed', call.json
        assert call.json['scepTransactionID'] == msg.transaction_id, call.json
        assert base64.b64decode(call.json['x509CertificateRequest']['raw']) == msg.inner

        # denied: FAILURE badRequest, event 29
        hook.reset('deny')
        other = pki.new_key()
        msg, r, rep = client.enroll(
            pki.make_csr(other, 'denied.example.test', challenge='mdm-challenge-denied'), other)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        log.expect(checks.event(29), checks.OPENSSL_LINES)
        assert [c.json['scepChallenge'] for c in hook.calls] == ['mdm-challenge-denied']
        assert log.find(r'the challenge webhook refused the challenge \(NDES event 29\)',
                        levels=checks.REFUSAL_LEVELS)

        # no verdict (HTTP 500): fails closed, nothing issued
        hook.reset('500')
        msg, r, rep = client.enroll(
            pki.make_csr(other, 'unanswered.example.test', challenge='mdm-challenge-lost'), other)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'try again later' in (rep.fail_info_text or ''), rep.fail_info_text
        assert len(hook.calls) == 1, [c.json for c in hook.calls]
    finally:
        hook.stop()
    log.expect(r'SCEP031: ', r'SCEP288: ')
    assert log.find(r'SCEP031: challenge webhook http://127\.0\.0\.1:\d+/scep/challenge, '
                    r'transaction %s: answered HTTP 500' % msg.transaction_id)
    assert log.find(r'SCEP288: PKCSReq for transaction %s: the challenge check webhook could '
                    r'not decide' % msg.transaction_id)
    # the challenges stay out of the log
    text = '\n'.join(log.lines())
    assert 'mdm-challenge' not in text and password not in text
