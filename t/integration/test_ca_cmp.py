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
"""mod_scep as a registration authority in front of a CA it reaches over
CMP (SCEPCABackend cmp): OpenSSL's own CMP server in its mock mode
(`openssl cmp -port`, fixture cmp_server, sceptest/cmp.py) is the CA, on
loopback; Apache (own root t/gen/<mpm>/cmp) has the CA certificate and the
RA certificates it issued, never the CA key.

The mock server answers one fixed certificate (-rsp_cert), made by the
test for the device's key before the device asks for it. Every CA answer
has its test: accepted, rejected (at once and after waiting), waiting
(CertPoll, and the background poll alone), MAC and signature protection,
a wrong MAC secret, a CMP signer from another CA, the CA down (and back),
the template as certProfile, https through an Apache mod_ssl +
mod_proxy_http virtual host (trusted and untrusted TLS CA), with this
suite's client, micromdm's scepclient and certmonger's scep-submit; and
`scepctl check-ca` (a genm) against the mock server."""
import os
import re
import subprocess
import time

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import templates as T
from sceptest import client as C
from sceptest.certmonger import issued_certs, openssl_req, run_scep_submit
from sceptest.cmp import BODY_CERTCONF, BODY_P10CR, Tap, body_type, cert_profiles
from sceptest.httpd import (CHALLENGE, MODULES_DIR, Apache, default_directives,
                             external_ca_directives, free_port)
from sceptest.tls import TestCA
from test_enroll_clients import LEGACY_START, run_scepclient
from test_pending import poll

# the CA's status text of a rejection, and what the mock server is told
REJECTION = "not in this CA's namespace"
REJECT_ARGS = ['-pkistatus', '2', '-failure', '2', '-statusstring', REJECTION]
# waiting: the request and the first two pollReqs are answered "waiting".
# OpenSSL's client sends the first pollReq right after the request's
# answer, in the same call: the device gets PENDING, and the CA says
# "waiting" once more when it is polled.
WAIT_ARGS = ['-poll_count', '3', '-check_after', '1']
WAIT_POLLS = 3
# the engine's lines: a request the CA holds, what the CA issued after that
HELD_LINE = r'SCEP241: transaction %s: .* the CA holds it'
CA_ISSUED_LINE = r'SCEP243: transaction %s: the CA issued certificate'
ISSUED_LINE = r'SCEP207: transaction %s: issued certificate'
MAC_REF, MAC_SECRET = 'scep-ra-1', 'a CMP secret shared with the CA'
# a fault: the backend's line, then the engine's answer to the device
FAULT_LINE = r'SCEP27\d: '
FAULT_TEXT = 'try again later'
FAULT_PATTERNS = (FAULT_LINE, checks.OPENSSL_LINES, r'SCEP2[45]\d: .*(fault|CA)')


def cmp_directives(env, url, poll_interval=1):
    """An RA in front of the CMP CA at url: the CA certificate, no CA key,
    the RA certificates, requests signed with the RA's key (the CA's
    signer must chain to the CA). The background poll every second: a
    waiting CMP transaction lives in the child that began it, which alone
    can ask about it, at a device's CertPoll that reaches it or in its
    background round (which may then be the only one to ask)."""
    return default_directives(env) + external_ca_directives(
        'cmp', ('SCEPCMPServer', url), ('SCEPCMPTrustFile', env.p('ca.crt')),
        ('SCEPCMPTimeout', '5'), ('SCEPCAPollInterval', str(poll_interval)))


def proxy_vhost(env, port, crt, key, mock_port):
    """An HTTPS virtual host (mod_ssl) passing /pkix/ on to the mock server
    (mod_proxy_http), without keep-alive: the mock server of OpenSSL 3.0
    cancels a transaction when a peer that asked for keep-alive closes the
    connection."""
    m = MODULES_DIR
    return f"""
LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so
LoadModule ssl_module {m}/mod_ssl.so
LoadModule proxy_module {m}/mod_proxy.so
LoadModule proxy_http_module {m}/mod_proxy_http.so
<IfModule !env_module>
    LoadModule env_module {m}/mod_env.so
</IfModule>
SSLSessionCache "shmcb:{env.run_dir}/ssl_scache(512000)"
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile "{crt}"
    SSLCertificateKeyFile "{key}"
    SetEnv proxy-nokeepalive 1
    ProxyPass /pkix/ http://127.0.0.1:{mock_port}/pkix/
</VirtualHost>
"""


@pytest.fixture(scope='module')
def cmp_httpd(cmp_env, _cmp_mock):
    """Apache as the RA of the mock CMP CA (not running until a test starts
    it); .client knows the RA certificates."""
    a = Apache(cmp_env)
    a.base_directives = cmp_directives(cmp_env, _cmp_mock.url())
    a.directives = list(a.base_directives)
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    yield a
    a.stop()


@pytest.fixture(autouse=True)
def no_held_request_outlives_its_test(cmp_httpd):
    """A request a test left held would be asked about (submitted again:
    its process is gone) by the next test's RA, at the next test's CA."""
    yield
    cmp_httpd.db_execute("UPDATE scep_request SET status = 'rejected', ca_ticket = NULL"
                         " WHERE status = 'pending'")


@pytest.fixture
def device(cmp_pki, keys):
    """A device's key and the certificate the CA will answer for it
    (cert, path): made first, as the mock server answers a fixed one."""
    def make(cn):
        key = keys.take()
        cert, path = cmp_pki.device_cert(key, cn)
        return key, cert, path
    return make


def enroll(ra, key, cn):
    return ra.client.enroll(pki.make_csr(key, cn, challenge=CHALLENGE), key)


def assert_ca_issued(ra, msg, r, rep, want):
    """SUCCESS with the CA's certificate for the device's key (not one the
    RA made), recorded as issued."""
    assert r.status == 200, 'HTTP %d: %r' % (r.status, r.body[:300])
    assert rep is not None, r.content_type
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    assert rep.certs == [want], 'expected the CA\'s certificate, got %r' % rep.certs
    assert pki.public_der(rep.certs[0]) == pki.public_der(msg.key)
    assert pki.verify_issued_by(rep.certs[0], ra.client.ca.ca)
    checks.assert_recorded(ra, msg.transaction_id, want)


def assert_fault(ra, msg, r, rep):
    """A fault of the CA (or of reaching it): FAILURE badRequest "try again
    later", a logged fault, nothing recorded as issued."""
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert FAULT_TEXT in rep.fail_info_text, rep.fail_info_text
    checks.expect_line(ra, FAULT_LINE, levels=('error', 'warn'))
    ra.errlog.expect(*FAULT_PATTERNS)
    assert all(row['status'] != 'issued' for row in checks.request_rows(ra, msg.transaction_id))
    assert not ra.db_rows('SELECT * FROM scep_cert WHERE transaction_id = ?',
                          (msg.transaction_id,))


def poll_until_issued(ra, msg, tries=30):
    """CertPoll once a second until SUCCESS: a poll answered by a child
    that does not hold the CA's transaction is PENDING (sceptest.client).
    Returns (pm, r, rep, number of PENDING answers)."""
    pending = 0
    for _ in range(tries):
        time.sleep(1)
        pm, r, rep = poll(ra.client, ra.client.ca, msg)
        if rep is None or rep.pki_status != C.PENDING:
            return pm, r, rep, pending
        checks.assert_pending(pm, r, rep)
        pending += 1
    raise AssertionError('still PENDING after %d CertPolls' % tries)


def held_row(ra, msg):
    """The request the CA holds: recorded pending with its CMP ticket, and
    logged so."""
    (row,) = checks.request_rows(ra, msg.transaction_id)
    assert row['status'] == 'pending', row
    assert row['ca_ticket'] and row['ca_ticket'].startswith('cmp:'), row
    assert ra.errlog.find(HELD_LINE % msg.transaction_id), 'no line of the held request'
    return row


def issued_line(ra, msg):
    """The line of the certificate the CA issued after waiting."""
    (line,) = ra.errlog.find(CA_ISSUED_LINE % msg.transaction_id)
    return line


# --- the CA's answers (signature protection) --------------------------------

def test_accepted_request_gets_the_ca_certificate(cmp_httpd, cmp_server, cmp_pki, device):
    key, want, path = device('cmp-accepted.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path))
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-accepted.example.test')
    assert_ca_issued(cmp_httpd, msg, r, rep, want)
    assert cmp_httpd.errlog.find(ISSUED_LINE % msg.transaction_id)
    # one transaction: the request, then certConf; the mock server checked
    # the RA's signature against the CA (-srv_trusted, no -accept_unprotected)
    assert cmp_server.received('P10CR') == 1, cmp_server.log()
    assert cmp_server.received('CERTCONF') == 1, cmp_server.log()
    assert 'CMP error' not in cmp_server.log(), cmp_server.log()


def test_rejection_fails_with_the_ca_text(cmp_httpd, cmp_server, cmp_pki, device):
    key, _, path = device('cmp-rejected.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path), *REJECT_ARGS)
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-rejected.example.test')
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert REJECTION in rep.fail_info_text, rep.fail_info_text
    (line,) = checks.expect_line(cmp_httpd, checks.event(31))
    assert msg.transaction_id in line and REJECTION in line, line
    assert not cmp_httpd.db_rows('SELECT * FROM scep_cert WHERE transaction_id = ?',
                                 (msg.transaction_id,))
    for row in checks.request_rows(cmp_httpd, msg.transaction_id):
        assert row['status'] == 'rejected', row


def test_waiting_then_certpoll_gets_the_certificate(cmp_httpd, cmp_server, cmp_pki, device):
    key, want, path = device('cmp-waiting.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path), *WAIT_ARGS)
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-waiting.example.test')
    checks.assert_pending(msg, r, rep)
    held_row(cmp_httpd, msg)
    pm, r, rep, _ = poll_until_issued(cmp_httpd, msg)
    assert_ca_issued(cmp_httpd, pm, r, rep, want)
    # asked by the child holding the transaction: at a CertPoll that reached
    # it, or in its background round; either way one pollReq per "waiting"
    assert issued_line(cmp_httpd, msg)
    assert cmp_server.received('POLLREQ') == WAIT_POLLS, cmp_server.log()
    assert cmp_server.received('CERTCONF') == 1, cmp_server.log()


def test_rejection_after_waiting_rejects_the_record(cmp_httpd, cmp_server, cmp_pki, device):
    key, _, path = device('cmp-waiting-rejected.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path), *WAIT_ARGS, *REJECT_ARGS)
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-waiting-rejected.example.test')
    checks.assert_pending(msg, r, rep)
    held_row(cmp_httpd, msg)
    # the CertPoll that gets the rejection may be the one that asked
    # (SCEP252), or come after the background round recorded it (SCEP205)
    cmp_httpd.errlog.expect(r'SCEP205: CertPoll for transaction %s refused: the CA rejected'
                            % msg.transaction_id)
    pm, r, rep, _ = poll_until_issued(cmp_httpd, msg)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert REJECTION in rep.fail_info_text, rep.fail_info_text
    checks.expect_line(cmp_httpd, checks.event(31))
    (row,) = checks.request_rows(cmp_httpd, msg.transaction_id)
    assert row['status'] == 'rejected' and REJECTION in row['reason'], row


class TestBackgroundPoll:
    @pytest.fixture(scope='class')
    def polling(self, cmp_httpd, _cmp_mock):
        with cmp_httpd.config(('SCEPCAPollInterval', None), ('SCEPCAPollInterval', '1')):
            yield cmp_httpd  # the default of cmp_directives(), said again

    def test_background_poll_issues_without_the_device(self, polling, cmp_server, cmp_pki,
                                                       device):
        key, want, path = device('cmp-background.example.test')
        cmp_server.start(*cmp_server.signing(cmp_pki, path), *WAIT_ARGS)
        msg, r, rep = enroll(polling, key, 'cmp-background.example.test')
        checks.assert_pending(msg, r, rep)
        held_row(polling, msg)
        # the CA's check_after is 1 s, the poll interval 1 s: two more polls
        # by the child that holds the transaction, whichever child asks first
        end = time.time() + 30
        while checks.request_rows(polling, msg.transaction_id)[0]['status'] == 'pending':
            assert time.time() < end, 'the background poll did not get the certificate:\n' + \
                '\n'.join(polling.errlog.find(msg.transaction_id, wait=0))
            time.sleep(0.2)
        checks.assert_recorded(polling, msg.transaction_id, want)
        assert '[client ' not in issued_line(polling, msg), 'issued for a client, not the round'
        assert cmp_server.received('POLLREQ') == WAIT_POLLS, cmp_server.log()
        # the device's poll is answered from the records
        pm, r, rep = poll(polling.client, polling.client.ca, msg)
        assert_ca_issued(polling, pm, r, rep, want)
        assert cmp_server.received('POLLREQ') == WAIT_POLLS, cmp_server.log()


# --- protection and trust ----------------------------------------------------

class TestMAC:
    @pytest.fixture(scope='class')
    def mac(self, cmp_httpd):
        return self._configured(cmp_httpd, 'cmp-secret', MAC_SECRET)

    @staticmethod
    def _configured(ra, name, secret):
        path = os.path.join(ra.env.gen, 'conf', name)
        with open(path, 'w') as f:
            f.write(secret + '\n')
        os.chmod(path, 0o600)
        return [('SCEPCMPTrustFile', None), ('SCEPCMPSecretFile', path),
                ('SCEPCMPReference', MAC_REF)]

    def test_mac_protection_is_accepted(self, cmp_httpd, mac, cmp_server, device):
        key, want, path = device('cmp-mac.example.test')
        cmp_server.start(*cmp_server.mac(MAC_REF, MAC_SECRET, path))
        with cmp_httpd.config(*mac):
            msg, r, rep = enroll(cmp_httpd, key, 'cmp-mac.example.test')
            assert_ca_issued(cmp_httpd, msg, r, rep, want)
        log = cmp_server.log()
        assert log.count('successfully validated PBM-based CMP message protection') == 2, log

    def test_wrong_secret_is_a_fault(self, cmp_httpd, cmp_server, device):
        key, _, path = device('cmp-mac-wrong.example.test')
        cmp_server.start(*cmp_server.mac(MAC_REF, MAC_SECRET, path))
        with cmp_httpd.config(*self._configured(cmp_httpd, 'cmp-secret-wrong', 'not the secret')):
            msg, r, rep = enroll(cmp_httpd, key, 'cmp-mac-wrong.example.test')
            assert_fault(cmp_httpd, msg, r, rep)
        assert cmp_server.received('P10CR') == 1, cmp_server.log()
        assert cmp_server.received('CERTCONF') == 0, cmp_server.log()


def test_server_certificate_of_another_ca_is_refused(cmp_httpd, cmp_server, cmp_pki, device):
    """The mock signs with a certificate of another CA than SCEPCMPTrustFile's:
    its answer (a certificate for the device) is not taken."""
    key, _, path = device('cmp-other-signer.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path,
                                         (cmp_pki.other_srv_cert, cmp_pki.other_srv_key)))
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-other-signer.example.test')
    assert_fault(cmp_httpd, msg, r, rep)
    assert cmp_server.received('P10CR') == 1, cmp_server.log()
    assert cmp_server.received('CERTCONF') == 0, cmp_server.log()


def test_ca_down_is_a_fault_until_it_is_back(cmp_httpd, cmp_server, cmp_pki, device):
    key, want, path = device('cmp-down.example.test')
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-down.example.test')
    assert_fault(cmp_httpd, msg, r, rep)
    assert str(cmp_server.port) in '\n'.join(cmp_httpd.errlog.find(FAULT_LINE))
    cmp_server.start(*cmp_server.signing(cmp_pki, path))
    msg, r, rep = enroll(cmp_httpd, key, 'cmp-down.example.test')
    assert_ca_issued(cmp_httpd, msg, r, rep, want)


# the template of every request by name, as an EJBCA profile would be named
NAMED = 'DeviceAuthentication'
NAMED_CONFIG = dict(raw_extra=T.section(NAMED), SCEPSignatureTemplate=NAMED,
                    SCEPEncryptionTemplate=NAMED, SCEPGeneralPurposeTemplate=NAMED)


@pytest.mark.parametrize('template', [T.BUILTIN, NAMED])
def test_request_as_the_ca_gets_it(cmp_httpd, cmp_server, cmp_pki, device, template):
    """What the CA gets (through a recording relay): a p10cr naming the
    template (the built-in one, or a <SCEPTemplate> chosen for the request)
    as id-it-certProfile in generalInfo, signed by the RA (its signing
    certificate in extraCerts), carrying the device's CSR as sent; the
    certConf after it."""
    key, want, path = device('cmp-profile.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path))
    tap = Tap(cmp_server.port)
    conf = NAMED_CONFIG if template == NAMED else {}
    try:
        with cmp_httpd.config(('SCEPCMPServer', None), ('SCEPCMPServer', tap.url()), **conf):
            msg, r, rep = enroll(cmp_httpd, key, 'cmp-profile.example.test')
            assert_ca_issued(cmp_httpd, msg, r, rep, want)
    finally:
        tap.stop()
    p10cr, cert_conf = [body for _, body in tap.requests]
    assert (body_type(p10cr), body_type(cert_conf)) == (BODY_P10CR, BODY_CERTCONF)
    assert cert_profiles(p10cr) == [template]
    assert checks.request_rows(cmp_httpd, msg.transaction_id)[0]['template'] == template
    assert pki.cert_der(cmp_httpd.client.ca.ra_sign) in p10cr
    assert msg.inner in p10cr, 'the CSR was not sent unchanged'


# --- https: Apache (mod_ssl, mod_proxy_http) in front of the CA -------------

class TestHTTPS:
    @pytest.fixture(scope='class')
    def tls(self, cmp_httpd, _cmp_mock):
        """The TLS CA, and the proxy's virtual host in the RA's own Apache:
        (TLS CA, https URL of the CA, config() of the RA behind it with a
        TLS CA file)."""
        ca = TestCA(os.path.join(cmp_httpd.env.gen, 'tls'))
        crt, key = ca.server('cmp-proxy')
        port = free_port(18840)
        vhost = proxy_vhost(cmp_httpd.env, port, crt, key, _cmp_mock.port)
        url = 'https://localhost:%d/pkix/' % port

        def config(tls_ca_file):
            return cmp_httpd.config(('SCEPCMPServer', None), ('SCEPCMPServer', url),
                                    ('SCEPCMPTLSCAFile', tls_ca_file), raw_extra=vhost)
        return ca, url, config

    def test_https_with_the_tls_ca(self, cmp_httpd, tls, cmp_server, cmp_pki, device):
        ca, _, config = tls
        key, want, path = device('cmp-https.example.test')
        cmp_server.start(*cmp_server.signing(cmp_pki, path))
        with config(ca.ca_file):
            msg, r, rep = enroll(cmp_httpd, key, 'cmp-https.example.test')
            assert_ca_issued(cmp_httpd, msg, r, rep, want)
        assert cmp_server.received('P10CR') == 1, cmp_server.log()

    def test_https_with_an_untrusted_tls_ca_is_a_fault(self, cmp_httpd, tls, cmp_server, cmp_pki,
                                                        device):
        _, _, config = tls
        key, _, path = device('cmp-https-untrusted.example.test')
        cmp_server.start(*cmp_server.signing(cmp_pki, path))
        with config(cmp_pki.other_ca_file):
            cmp_httpd.errlog.expect(r'\[ssl:(info|error)\]')
            msg, r, rep = enroll(cmp_httpd, key, 'cmp-https-untrusted.example.test')
            assert_fault(cmp_httpd, msg, r, rep)
        assert cmp_server.received('P10CR') == 0, cmp_server.log()

    def test_check_ca_over_https(self, cmp_httpd, tls, cmp_server, cmp_pki):
        ca, url, config = tls
        cmp_server.start(*cmp_server.signing(cmp_pki, cmp_pki.srv_cert))
        with config(ca.ca_file):
            code, out = check_ca(cmp_httpd.env, url, '--cmp-trust', cmp_httpd.env.p('ca.crt'),
                                 '--cmp-tls-ca', ca.ca_file)
            assert_answered(code, out, url)
            code, out = check_ca(cmp_httpd.env, url, '--cmp-trust', cmp_httpd.env.p('ca.crt'),
                                 '--cmp-tls-ca', cmp_pki.other_ca_file)
            assert code != 0 and 'CMP server:' not in out, out
        assert cmp_server.received('GENM') == 1, cmp_server.log()


# --- third-party clients ------------------------------------------------------

class TestScepclient:
    @pytest.fixture(scope='class')
    def legacy(self, cmp_httpd):
        with cmp_httpd.config(('SCEPAllowLegacyAlgorithms', 'On'),
                              startup_expected=[LEGACY_START]):
            yield cmp_httpd

    def test_scepclient_enrolls_with_its_key(self, legacy, cmp_server, cmp_pki, device):
        """micromdm's scepclient (single DES) with the device key the CA's
        certificate was made for."""
        legacy.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        key, want, path = device('cmp-scepclient.example.test')
        cmp_server.start(*cmp_server.signing(cmp_pki, path))
        d, p = run_scepclient(legacy, 'cmp-scepclient.example.test', key=key)
        out = p.stdout + p.stderr
        assert os.path.exists(os.path.join(d, 'cert.pem')), 'no certificate:\n' + out
        assert pki.load_cert_file(os.path.join(d, 'cert.pem')) == want
        (row,) = checks.cert_rows_of_serial(legacy, want.serial_number)
        checks.assert_recorded(legacy, row['transaction_id'], want)

    def test_scepclient_rejected(self, legacy, cmp_server, cmp_pki, device):
        legacy.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        key, _, path = device('cmp-scepclient-rejected.example.test')
        cmp_server.start(*cmp_server.signing(cmp_pki, path), *REJECT_ARGS)
        d, p = run_scepclient(legacy, 'cmp-scepclient-rejected.example.test', key=key)
        out = p.stdout + p.stderr
        assert not os.path.exists(os.path.join(d, 'cert.pem')), out
        assert 'failInfo: badRequest' in out, out
        checks.expect_line(legacy, checks.event(31))


def scep_submit_request(ra, key, name):
    csr = openssl_req(ra.env.work, key, name, CHALLENGE)
    return csr, C.pkcsreq(csr, key, [ra.client.ca.ra_enc], cipher='aes128',
                          digest_name='sha256')


def test_scep_submit_accepted(cmp_httpd, cmp_server, cmp_pki, device):
    key, want, path = device('submit.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path))
    csr, msg = scep_submit_request(cmp_httpd, key, 'cmp-submit')
    p = run_scep_submit(cmp_httpd, msg.der, 'cmp-submit')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    assert issued_certs(p.stdout, msg, cmp_httpd.client.ca.ra_sign) == [want]
    checks.assert_recorded(cmp_httpd, msg.transaction_id, want)


def test_scep_submit_waiting_then_issued(cmp_httpd, cmp_server, cmp_pki, device):
    """scep-submit exits 1 or 5 (poll later) while the CA waits, then 0 with
    the CA's certificate for its CertPoll."""
    key, want, path = device('submit.example.test')
    cmp_server.start(*cmp_server.signing(cmp_pki, path), *WAIT_ARGS)
    csr, msg = scep_submit_request(cmp_httpd, key, 'cmp-submit-wait')
    p = run_scep_submit(cmp_httpd, msg.der, 'cmp-submit-wait')
    assert p.returncode in (1, 5), 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout,
                                                                     p.stderr)
    held_row(cmp_httpd, msg)
    c = x509.load_der_x509_csr(csr)
    body = C.issuer_and_subject(cmp_httpd.client.ca.ca.subject, c.subject)
    for i in range(30):
        time.sleep(1)
        pm = C.pki_message(body, C.CERTPOLL, key, [cmp_httpd.client.ca.ra_enc],
                           subject=c.subject, transaction_id=msg.transaction_id)
        p = run_scep_submit(cmp_httpd, pm.der, 'cmp-submit-poll-%d' % i)
        if p.returncode not in (1, 5):
            break
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    assert issued_certs(p.stdout, pm, cmp_httpd.client.ca.ra_sign) == [want]
    checks.assert_recorded(cmp_httpd, msg.transaction_id, want)


# --- scepctl check-ca: a general message to the CA ---------------------------

def check_ca(env, url, *more):
    """scepctl check-ca against the CMP server at url, with the RA's PKI
    (its CA certificate, and the RA signing certificate unless a MAC
    secret is given)."""
    cmd = [env.scepctl, 'check-ca', '--cmp-server', url, '-d', env.pki] + list(more)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def assert_answered(code, out, url):
    assert code == 0, out
    assert re.search(r'^CMP server: +%s$' % re.escape(url), out, re.M), out
    assert re.search(r'^ +answer: +\S', out, re.M), out


def test_check_ca_answers(cmp_env, cmp_server, cmp_pki):
    cmp_server.start(*cmp_server.signing(cmp_pki, cmp_pki.srv_cert))
    code, out = check_ca(cmp_env, cmp_server.url(), '--cmp-trust', cmp_env.p('ca.crt'))
    assert_answered(code, out, cmp_server.url())
    assert cmp_server.received('GENM') == 1, cmp_server.log()


def test_check_ca_with_a_mac_secret(cmp_env, cmp_server, cmp_pki):
    cmp_server.start(*cmp_server.mac(MAC_REF, MAC_SECRET, cmp_pki.srv_cert))
    secret = os.path.join(cmp_env.work, 'check-ca-secret')
    with open(secret, 'w') as f:
        f.write(MAC_SECRET + '\n')
    os.chmod(secret, 0o600)
    code, out = check_ca(cmp_env, cmp_server.url(), '--cmp-secret-file', secret,
                         '--cmp-reference', MAC_REF)
    assert_answered(code, out, cmp_server.url())
    assert 'successfully validated PBM-based CMP message protection' in cmp_server.log()


def test_check_ca_with_the_wrong_trust_fails(cmp_env, cmp_server, cmp_pki):
    cmp_server.start(*cmp_server.signing(cmp_pki, cmp_pki.srv_cert))
    code, out = check_ca(cmp_env, cmp_server.url(), '--cmp-trust', cmp_pki.other_ca_file)
    assert code != 0, out
    assert cmp_server.url() in out and 'CMP server:' not in out, out
    assert cmp_server.received('GENM') == 1, cmp_server.log()

