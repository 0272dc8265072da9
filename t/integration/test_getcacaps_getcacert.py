"""GetCACaps and GetCACert (RFC 8894 3.5.1, 4.2)."""
import pytest
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

PATHS = ['/certsrv/mscep/mscep.dll', '/certsrv/mscep/mscep.dll/pkiclient.exe',
         '/cgi-bin/pkiclient.exe']
# every digest the server accepts (SHA-224 and SHA-384 are no RFC 8894 keywords, but
# sscep and others pick them when listed); MD5 only with SCEPAllowLegacyAlgorithms, unlisted
DIGEST_CAPS = {'SHA-1': 'sha1', 'SHA-224': 'sha224', 'SHA-256': 'sha256', 'SHA-384': 'sha384',
               'SHA-512': 'sha512'}
CAPS = {'POSTPKIOperation', 'Renewal', 'AES', 'DES3', 'SCEPStandard'} | set(DIGEST_CAPS)
CERT_REQUEST_AGENT = ObjectIdentifier('1.3.6.1.4.1.311.20.2.1')


def caps_of(r):
    text = r.body.decode('ascii')
    return [k for k in text.replace('\r\n', '\n').split('\n') if k != ''], text


@pytest.mark.parametrize('path', PATHS)
def test_getcacaps_keywords(httpd, path):
    r = C.Client(httpd.url(path)).get_ca_caps()
    assert r.status == 200
    assert r.content_type.split(';')[0].strip() == 'text/plain'
    caps, text = caps_of(r)
    assert set(caps) == CAPS, 'GetCACaps: %r' % text
    assert len(caps) == len(set(caps)), 'duplicate keywords: %r' % text
    assert 'GetNextCACert' not in caps  # no SCEPNextCACertificateFile


@pytest.mark.parametrize('keyword', sorted(DIGEST_CAPS))
def test_getcacaps_lists_accepted_digests(scep, files, keys, keyword):
    """Each SHA keyword of GetCACaps is a digest the server accepts: a PKCSReq
    signed with it is issued, and the CertRep is signed with it too."""
    assert keyword in caps_of(scep.get_ca_caps())[0]
    key = keys.any(sorted(DIGEST_CAPS).index(keyword))
    digest = DIGEST_CAPS[keyword]
    csr = pki.make_csr(key, 'caps-%s.example.test' % digest, challenge=CHALLENGE)
    msg, r, rep = scep.enroll(csr, key, digest_name=digest)
    checks.assert_issued(msg, r, rep, files.ca)
    assert rep.digest_algorithm == digest


@pytest.mark.parametrize('message', ['CAIdentifier', '0', 'Device%20Management%20Identity', ''])
def test_getcacaps_message_ignored(httpd, message):
    r = C.Client(httpd.url()).get_ca_caps(message=message)
    assert r.status == 200
    assert set(caps_of(r)[0]) == CAPS


def test_getcacert_ra_mode(httpd, files):
    r = C.Client(httpd.url()).get_ca_cert_raw()
    assert r.status == 200
    assert r.content_type.split(';')[0].strip() == C.CT_CA_RA
    ca = C.parse_getcacert(r.content_type, r.body)
    # CA (a root here, SCEPGetCACertIncludeRoot On by default) and both RA certs
    assert len(ca.certs) == 3, [c.subject.rfc4514_string() for c in ca.certs]
    assert set(pki.cert_der(c) for c in ca.certs) == {
        pki.cert_der(files.ca), pki.cert_der(files.ra_sign), pki.cert_der(files.ra_enc)}
    assert ca.ca == files.ca
    assert ca.ra_enc == files.ra_enc, 'the keyEncipherment certificate is not ra-enc.crt'
    assert ca.ra_sign == files.ra_sign, 'the digitalSignature certificate is not ra-sign.crt'


def test_ra_certificates_usages(files):
    """What Apple and Windows pick RA certificates by (scepctl setup output)."""
    ku_s = pki.ext(files.ra_sign, x509.KeyUsage)
    ku_e = pki.ext(files.ra_enc, x509.KeyUsage)
    assert ku_s.digital_signature and not ku_s.key_encipherment and not ku_s.key_cert_sign
    assert ku_e.key_encipherment and not ku_e.digital_signature and not ku_e.key_cert_sign
    for c in (files.ra_sign, files.ra_enc):
        assert pki.verify_issued_by(c, files.ca)
        eku = pki.ext(c, x509.ExtendedKeyUsage)
        assert eku is not None and CERT_REQUEST_AGENT in list(eku)
    ku_ca = pki.ext(files.ca, x509.KeyUsage)
    assert ku_ca.key_cert_sign
    assert files.ca.subject.rfc4514_string() == 'O=mod_scep tests,CN=mod_scep Test CA'


@pytest.mark.parametrize('message', ['CAIdentifier', '0', 'Device%20Management%20Identity%20'
                                     'Certificate', 'anything%2Fat%2Fall', ''])
def test_getcacert_message_optional(httpd, message):
    base = C.Client(httpd.url()).get_ca_cert_raw()
    r = C.Client(httpd.url()).get_ca_cert_raw(message=message)
    assert r.status == 200
    assert r.content_type == base.content_type
    assert r.body == base.body


@pytest.mark.parametrize('path', PATHS)
def test_getcacert_paths(httpd, path):
    r = C.Client(httpd.url(path)).get_ca_cert_raw()
    assert r.status == 200
    assert r.content_type.split(';')[0].strip() == C.CT_CA_RA


def record_service(httpd, simple=False):
    """scepctl service --record with the CA's certificate and the RA's (or
    none: simple mode)."""
    e = httpd.env
    ra = [] if simple else ['--sign-cert', e.p('ra-sign.crt'), '--enc-cert', e.p('ra-enc.crt')]
    code, out, err = httpd.scepctl_records('service', '--ca-cert', e.p('ca.crt'), '--record', *ra)
    assert code == 0, out + err


class TestSimpleMode:
    @pytest.fixture(scope='class')
    def simple_mode(self, httpd):
        """No SCEPRACertificate: the CA certificate and key act as RA. That
        is another service to the records (other RA certificates, which a
        server on PostgreSQL would refuse): recorded as a rollover is, and
        the RA's recorded again before the server gets them back."""
        record_service(httpd, simple=True)
        with httpd.config(SCEPRACertificate=None):
            try:
                yield httpd
            finally:
                record_service(httpd)

    def test_getcacert_simple_mode(self, simple_mode, files):
        r = C.Client(simple_mode.url()).get_ca_cert_raw()
        assert r.status == 200
        assert r.content_type.split(';')[0].strip() == C.CT_CA
        assert r.body == pki.cert_der(files.ca), 'not the single DER CA certificate'

    def test_enroll_simple_mode(self, simple_mode, files, keys):
        c = C.Client(simple_mode.url())
        ca = c.get_ca_cert()
        assert ca.ra_enc == files.ca and ca.ra_sign == files.ca
        key = keys.any(1)
        csr = pki.make_csr(key, 'simple-mode.example', challenge=CHALLENGE)
        msg, r, rep = c.enroll(csr, key)
        checks.assert_issued(msg, r, rep, files.ca)
        assert rep.signer_issuer_serial[1] == files.ca.serial_number, \
            'CertRep not signed by the CA'

