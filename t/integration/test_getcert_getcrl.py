"""GetCert (21), GetCRL (22) and the CRL at its plain HTTP URL (issue 4).

Revocations are written into the database directly: the CA manager page and
its command-line equivalent, which revoke through the store, come later."""
import datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

CRL_PATH = '/certsrv/mscep/crl/ca.crl'
CRL_LOCATION = '<Location /certsrv/mscep/crl>\n    SetHandler scep-crl\n</Location>\n'


def event(n):
    return r'SCEP\d{3}: .*\(NDES event %d\)' % n


def expect_line(httpd, pattern):
    lines = httpd.errlog.expect_and_find(pattern)
    assert lines, 'no log line matches %r' % pattern
    return lines


@pytest.fixture
def crl_httpd(httpd):
    """The default server plus the CRL handler and SCEPCRLURL."""
    with httpd.config(('SCEPCRLURL', httpd.url(CRL_PATH)), raw_extra=CRL_LOCATION):
        yield httpd


def enroll(scep, files, keys, cn):
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE), key)
    return checks.assert_issued(msg, r, rep, files.ca)


def request(scep, files, keys, mtype, issuer, serial):
    """A GetCert or GetCRL from a device with a self-signed signer."""
    key = keys.any(3)
    msg = C.pki_message(C.issuer_and_serial(issuer, serial), mtype, key, [files.ra_enc])
    r, rep = scep.send(msg)
    return msg, r, rep


def db_serial(httpd, serial):
    rows = checks.cert_rows_of_serial(httpd, serial)
    assert len(rows) == 1, rows
    return rows[0]['serial']


def revoke(httpd, serial, reason):
    """What the store's revoke() does: revoked_at (ISO 8601 UTC) and the reason."""
    when = datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')
    n = httpd.db_execute('UPDATE scep_cert SET revoked_at = ?, revocation_reason = ?'
                         ' WHERE serial = ? AND revoked_at IS NULL',
                         (when, reason, db_serial(httpd, serial)))
    assert n == 1


def check_crl(der, ca, validity_hours=168):
    """A v2 CRL of ca, signed by it, with its cRLNumber and AKI, fresh: the
    service serves the CRL it keeps until half its validity has passed
    (thisUpdate is 5 minutes before the signature, for slow clocks)."""
    crl = x509.load_der_x509_crl(der)
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key()), 'CRL signature does not verify with the CA'
    assert crl.signature_hash_algorithm.name == 'sha256'
    now = datetime.datetime.utcnow()
    assert crl.last_update <= now + datetime.timedelta(seconds=5)
    assert now - crl.last_update < datetime.timedelta(hours=validity_hours / 2)
    hours = (crl.next_update - crl.last_update).total_seconds() / 3600
    assert abs(hours - validity_hours - 5 / 60) < 0.01, 'valid for %.2f hours' % hours
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > 0
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == pki.ext(ca, x509.SubjectKeyIdentifier).digest
    return crl


def get_crl(scep, files, keys):
    msg, r, rep = request(scep, files, keys, C.GETCRL, files.ca.subject, 1)
    assert r.status == 200 and rep is not None, 'HTTP %d' % r.status
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    assert rep.certs == []
    return check_crl(rep.crls[0], files.ca)


def fetch_crl(httpd, files):
    r = C.http_request('GET', httpd.url(CRL_PATH))
    assert r.status == 200, 'HTTP %d' % r.status
    assert r.content_type == 'application/pkix-crl'
    return check_crl(r.body, files.ca)


def test_getcert_returns_the_certificate(scep, files, keys, httpd):
    cert = enroll(scep, files, keys, 'getcert.example.test')
    msg, r, rep = request(scep, files, keys, C.GETCERT, files.ca.subject, cert.serial_number)
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    assert rep.certs == [cert]
    # enveloped to the requester, as a PKCSReq reply
    assert rep.envelope_recipients == 1
    assert httpd.errlog.find(r'SCEP232: .*%s' % msg.transaction_id)


def test_getcert_unknown_serial(scep, files, keys, httpd):
    msg, r, rep = request(scep, files, keys, C.GETCERT, files.ca.subject, 0x123456789)
    checks.assert_failure(msg, r, rep, C.BAD_CERT_ID)
    assert '123456789' in rep.fail_info_text
    expect_line(httpd, event(19))


@pytest.mark.parametrize('mtype', [C.GETCERT, C.GETCRL])
def test_issuer_not_this_ca(scep, files, keys, httpd, mtype):
    other = pki.name('Some Other CA', 'elsewhere')
    msg, r, rep = request(scep, files, keys, mtype, other, 1)
    checks.assert_failure(msg, r, rep, C.BAD_CERT_ID)
    assert 'not this CA' in rep.fail_info_text
    expect_line(httpd, r'%s.*%s' % (msg.transaction_id, r'\(NDES event 45\)'))


def test_getcrl_lists_revocations(scep, files, keys, httpd):
    keep = enroll(scep, files, keys, 'crl-keep.example.test')
    gone = enroll(scep, files, keys, 'crl-gone.example.test')
    crl = get_crl(scep, files, keys)
    assert crl.get_revoked_certificate_by_serial_number(gone.serial_number) is None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoke(httpd, gone.serial_number, 1)  # keyCompromise
    crl = get_crl(scep, files, keys)
    entry = crl.get_revoked_certificate_by_serial_number(gone.serial_number)
    assert entry is not None, 'revoked serial missing from the CRL'
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert abs((entry.revocation_date - datetime.datetime.utcnow()).total_seconds()) < 60
    assert crl.get_revoked_certificate_by_serial_number(keep.serial_number) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number
    # a revoked certificate is still served by GetCert
    msg, r, rep = request(scep, files, keys, C.GETCERT, files.ca.subject, gone.serial_number)
    assert rep.pki_status == C.SUCCESS and rep.certs == [gone]


def test_crl_reason_unspecified_has_no_reason_code(scep, files, keys, httpd):
    cert = enroll(scep, files, keys, 'crl-unspecified.example.test')
    revoke(httpd, cert.serial_number, 0)
    entry = get_crl(scep, files, keys).get_revoked_certificate_by_serial_number(
        cert.serial_number)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_crl_over_http_and_distribution_point(crl_httpd, scep, files, keys):
    cert = enroll(scep, files, keys, 'cdp.example.test')
    cdp = pki.ext(cert, x509.CRLDistributionPoints)
    assert cdp is not None, 'no CRL distribution points'
    assert [n.value for dp in cdp for n in dp.full_name] == [crl_httpd.url(CRL_PATH)]
    crl = fetch_crl(crl_httpd, files)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None
    revoke(crl_httpd, cert.serial_number, 4)  # superseded
    crl = fetch_crl(crl_httpd, files)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.superseded
    # openssl agrees: the certificate is revoked by this CRL
    ok, out = pki.openssl_verify(crl_httpd.env.work, crl_httpd.env.p('ca.crt'), cert)
    assert ok, out
    r = C.http_request('POST', crl_httpd.url(CRL_PATH), body=b'x')
    assert r.status == 405


def test_no_distribution_point_by_default(scep, files, keys):
    cert = enroll(scep, files, keys, 'no-cdp.example.test')
    assert pki.ext(cert, x509.CRLDistributionPoints) is None


def test_crl_validity(httpd, scep, files, keys):
    with httpd.config(('SCEPCRLValidity', '24')):
        msg, r, rep = request(scep, files, keys, C.GETCRL, files.ca.subject, 1)
        assert rep.pki_status == C.SUCCESS, str(rep)
        check_crl(rep.crls[0], files.ca, validity_hours=24)


def test_getcrl_without_ca_key(httpd, scep, files, keys):
    """An RA in front of an external CA cannot sign a CRL: FAILURE, event 44."""
    with httpd.config(('SCEPCAKeyFile', None)):
        msg, r, rep = request(scep, files, keys, C.GETCRL, files.ca.subject, 1)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'CRL' in rep.fail_info_text
        expect_line(httpd, event(44))


@pytest.mark.parametrize('value', ['ftp://example.test/ca.crl', '/ca.crl',
                                   'http://example.test/a,b.crl'])
def test_crl_url_must_be_http(httpd, value):
    from sceptest.httpd import make_conf
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives +
                                          [('SCEPCRLURL', value)]))
    assert rc != 0 and 'SCEPCRLURL' in out, out
