"""Third-party clients: micromdm scepclient (package scep) and certmonger's scep-submit."""
import os
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from sceptest import checks, pki
from sceptest import templates as T
from sceptest import client as C
from sceptest.certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem, pem_certs
from sceptest.httpd import CHALLENGE

# the warning of SCEPAllowLegacyAlgorithms On at startup
LEGACY_START = r'SCEP\d{3}: SCEPAllowLegacyAlgorithms On: single DES and MD5'

SCEPCLIENT = '/usr/bin/scepclient'

LEGACY_CNF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def run_scepclient(httpd, name, challenge=CHALLENGE, extra=(), key=None):
    """One enrollment in its own directory (scepclient reuses csr.pem);
    extra: more scepclient flags; key: the device's key (default: one
    scepclient makes)."""
    d = os.path.join(httpd.env.work, 'scepclient-' + name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    if key is not None:
        with open(os.path.join(d, 'key.pem'), 'wb') as f:
            f.write(pki.key_pem(key, traditional=True))  # scepclient reads PKCS#1 only
    cnf = os.path.join(httpd.env.work, 'openssl-legacy.cnf')
    with open(cnf, 'w') as f:
        f.write(LEGACY_CNF)
    cmd = [SCEPCLIENT, '-private-key', os.path.join(d, 'key.pem'),
           '-certificate', os.path.join(d, 'cert.pem'),
           '-server-url', httpd.url('/certsrv/mscep/mscep.dll'),
           '-cn', name, '-keySize', '2048', '-debug']
    if challenge is not None:
        cmd += ['-challenge', challenge]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OPENSSL_CONF=cnf))
    return d, p


def test_scepclient_refused_by_default(httpd):
    """scepclient only speaks DES-CBC + SHA-1: badAlg unless legacy algorithms are allowed.
    It prints the failure and still exits 0."""
    httpd.errlog.expect(r'SCEP\d{3}: .*refused.*(DES|MD5)')
    d, p = run_scepclient(httpd, 'sc-refused')
    out = p.stdout + p.stderr
    assert not os.path.exists(os.path.join(d, 'cert.pem')), 'issued despite single DES:\n' + out
    assert re.search(r'failInfo: badAlg', out), out
    assert httpd.errlog.find(r'SCEP\d{3}: .*refused.*(DES|MD5)', levels=('warn', 'error')), \
        'the refusal left no error-log line'


class TestLegacy:
    @pytest.fixture(scope='class')
    def legacy(self, httpd):
        with httpd.config(('SCEPAllowLegacyAlgorithms', 'On'), startup_expected=[LEGACY_START]):
            yield httpd

    def test_scepclient_enrolls_with_legacy(self, legacy, files):
        legacy.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        d, p = run_scepclient(legacy, 'sc-legacy.example.test')
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        path = os.path.join(d, 'cert.pem')
        assert os.path.exists(path), 'scepclient got no certificate:\n' + out
        cert = pki.load_cert_file(path)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
            'sc-legacy.example.test'
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
            'scep-client'
        key = pki.load_key_file(os.path.join(d, 'key.pem'))
        assert pki.public_der(cert) == pki.public_der(key)
        assert pki.verify_issued_by(cert, files.ca)
        ok, vout = pki.openssl_verify(legacy.env.work, legacy.env.p('ca.crt'), cert)
        assert ok, vout
        rows = checks.cert_rows_of_serial(legacy, cert.serial_number)
        assert len(rows) == 1, 'certificate not recorded'
        checks.assert_recorded(legacy, rows[0]['transaction_id'], cert)
        assert legacy.errlog.find(r'SCEP\d{3}: .*(single DES|MD5)', levels=('warn',)), \
            'no warning that a legacy algorithm was accepted'
        # POSTPKIOperation is advertised: scepclient POSTs
        with open(os.path.join(legacy.env.logs, 'access_log')) as f:
            assert re.search(r'"POST /certsrv/mscep/mscep\.dll\?operation=PKIOperation HTTP/1\.1" '
                             r'200', f.read()), 'no POST PKIOperation in the access log'

    def test_scepclient_wrong_challenge(self, legacy, files):
        legacy.errlog.expect(r'\(NDES event 29\)', r'SCEP\d{3}: .*(single DES|MD5)')
        d, p = run_scepclient(legacy, 'sc-wrong-pw', challenge='wrong')
        out = p.stdout + p.stderr
        assert not os.path.exists(os.path.join(d, 'cert.pem')), out
        assert re.search(r'failInfo: badRequest', out), out
        assert legacy.errlog.find(r'\(NDES event 29\)')


class TestLegacyChain:
    @pytest.fixture(scope='class')
    def chain(self, httpd):
        with httpd.config(('SCEPAllowLegacyAlgorithms', 'On'),
                          ('SCEPCertRepIncludeChain', 'On'), startup_expected=[LEGACY_START]):
            yield httpd

    def test_scepclient_keeps_its_own_certificate_with_chain(self, chain, files):
        """scepclient keeps the first certificate of the reply: with the CA
        chain in it, that must be the device's own, also when it encodes
        longer than the CA's (a 4096-bit key, long names)."""
        chain.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        name = 'sc-chain-with-a-long-common-name.branch-office.example.test'
        d, p = run_scepclient(chain, name, extra=[
            '-keySize', '4096', '-organization', 'An organization with a rather long name',
            '-ou', 'Devices enrolled with the CA chain in the reply',
            '-locality', 'A locality whose name is long too', '-province', 'Some province'])
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        path = os.path.join(d, 'cert.pem')
        assert os.path.exists(path), 'scepclient got no certificate:\n' + out
        cert = pki.load_cert_file(path)
        key = pki.load_key_file(os.path.join(d, 'key.pem'))
        assert pki.public_der(cert) == pki.public_der(key), 'scepclient kept another certificate'
        assert len(pki.cert_der(cert)) > len(pki.cert_der(files.ca)), \
            'the device certificate does not encode longer than the CA certificate'
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert pki.verify_issued_by(cert, files.ca)


@pytest.mark.parametrize('form', ['flags', 'environment'])
def test_scep_submit_enrolls(httpd, files, keys, form):
    """certmonger's helper carries a PKCSReq built here (AES-128, SHA-256) from
    an `openssl req` CSR, by GET."""
    work = httpd.env.work
    key = keys.take()
    csr = openssl_req(work, key, 'submit-' + form, CHALLENGE)
    c = x509.load_der_x509_csr(csr)
    assert c.attributes.get_attribute_for_oid(pki.OID_CHALLENGE_PASSWORD).value == \
        CHALLENGE.encode(), 'openssl req lost the challengePassword'
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    url = httpd.url('/cgi-bin/pkiclient.exe')
    msgf = os.path.join(work, 'submit-%s.p7' % form)
    with open(msgf, 'w') as f:
        f.write(pem('PKCS7', msg.der))
    ra_pem, ca_pem = httpd.env.p('ra-enc.crt'), httpd.env.p('ca.crt')
    if form == 'flags':
        cmd = [SCEP_SUBMIT, '-u', url, '-r', ra_pem, '-N', ca_pem, '-p', msgf]
        env = dict(os.environ)
    else:
        cmd = [SCEP_SUBMIT, '-u', url]
        with open(ra_pem) as f1, open(ca_pem) as f2:
            env = dict(os.environ, CERTMONGER_OPERATION='SUBMIT',
                       CERTMONGER_PKCSREQ=pem('PKCS7', msg.der),
                       CERTMONGER_SCEP_RA_CERTIFICATE=f1.read(),
                       CERTMONGER_SCEP_CA_CERTIFICATE=f2.read())
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    certs = issued_certs(p.stdout, msg, files.ra_sign)
    assert len(certs) == 1, 'expected the issued certificate alone, got %d' % len(certs)
    cert = certs[0]
    checks.check_issued_cert(cert, csr, files.ca)
    assert cert.subject.rfc4514_string() == 'O=mod_scep tests,CN=submit.example.test'
    # the built-in template replaces the clientAuth, serverAuth the CSR asks for
    assert list(pki.ext(cert, x509.ExtendedKeyUsage)) == T.BUILTIN_EKU
    ok, vout = pki.openssl_verify(work, ca_pem, cert)
    assert ok, vout
    checks.assert_recorded(httpd, msg.transaction_id, cert)
    # it came by GET
    with open(os.path.join(httpd.env.logs, 'access_log')) as f:
        log = f.read()
    assert re.search(r'"GET /cgi-bin/pkiclient\.exe\?operation=PKIOperation&message=\S+ HTTP/1\.[01]" '
                     r'200', log), 'no GET PKIOperation in the access log'


def test_scep_submit_getcacaps_getcacert(httpd, files):
    url = httpd.url('/cgi-bin/pkiclient.exe')
    p = subprocess.run([SCEP_SUBMIT, '-u', url, '-c'], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert set(p.stdout.split()) >= {'POSTPKIOperation', 'SHA-256', 'AES', 'SCEPStandard'}
    p = subprocess.run([SCEP_SUBMIT, '-u', url, '-C'], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    want = {pki.cert_der(files.ca), pki.cert_der(files.ra_sign), pki.cert_der(files.ra_enc)}
    assert pem_certs(p.stdout) == want
