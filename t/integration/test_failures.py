"""Failure paths: each one's failInfo or HTTP status, and its error-log line."""
import os

import pytest

from sceptest import checks, pki
from sceptest import client as C
from sceptest.checks import event, expect_line
from sceptest.httpd import CHALLENGE

# the warning of SCEPAllowLegacyAlgorithms On at startup
LEGACY_START = r'SCEP\d{3}: SCEPAllowLegacyAlgorithms On: single DES and MD5'


def csr_for(key, cn, **kw):
    kw.setdefault('challenge', CHALLENGE)
    return pki.make_csr(key, cn, **kw)


# ---------------------------------------------------------------------------
# HTTP level: no CertRep possible

@pytest.mark.parametrize('query', ['', '?message=x', '?operation=', '?operation=GetFoo',
                                   '?operation=getcacertx&message=1'])
def test_missing_or_unknown_operation(httpd, query):
    r = C.http_request('GET', httpd.url() + query)
    assert r.status == 400, 'HTTP %d for %r' % (r.status, query)
    expect_line(httpd, event(11))


def test_get_pkioperation_without_message(httpd):
    r = C.http_request('GET', httpd.url() + '?operation=PKIOperation')
    assert r.status == 400
    expect_line(httpd, event(12))


def test_post_pkioperation_empty_body(httpd):
    r = C.http_request('POST', httpd.url() + '?operation=PKIOperation', body=b'',
                       headers={'Content-Type': C.CT_PKI})
    assert r.status == 400
    expect_line(httpd, event(12))


@pytest.mark.parametrize('body', [b'this is not CMS', os.urandom(700),
                                  b'\x30\x82\x05\x00' + b'\x00' * 40],
                         ids=['text', 'random', 'truncated'])
def test_post_undecodable(httpd, body):
    r = C.http_request('POST', httpd.url() + '?operation=PKIOperation', body=body,
                       headers={'Content-Type': C.CT_PKI})
    assert r.status == 400
    expect_line(httpd, event('1[56]'))


@pytest.mark.parametrize('message', ['%21%21not-base64%21%21', 'AAAA', 'MIIBIjANBgkqhkiG9w0B'])
def test_get_undecodable(httpd, message):
    r = C.http_request('GET', httpd.url() + '?operation=PKIOperation&message=' + message)
    assert r.status == 400
    expect_line(httpd, event('1[56]'))


def test_envelope_for_another_recipient(scep, files, keys, httpd):
    """Signed and addressed: a FAILURE CertRep says why (more in test_hostile.py)."""
    key = keys.any(0)
    stranger = pki.self_signed(keys.any(1), 'not the RA')
    msg = C.pkcsreq(csr_for(key, 'stranger'), key, [stranger])
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_MESSAGE_CHECK)
    expect_line(httpd, event(18))


def test_oversize_post(httpd):
    body = os.urandom(100 * 1024)
    r = C.http_request('POST', httpd.url() + '?operation=PKIOperation', body=body,
                       headers={'Content-Type': C.CT_PKI})
    assert r.status == 413
    expect_line(httpd, event(15))


def test_oversize_post_chunked(httpd):
    body = os.urandom(100 * 1024)
    r = C.http_request('POST', httpd.url() + '?operation=PKIOperation', body=body,
                       headers={'Content-Type': C.CT_PKI}, chunked=True)
    assert r.status == 413
    expect_line(httpd, event(15))


class TestSmallLimit:
    @pytest.fixture(scope='class')
    def small_limit(self, httpd):
        with httpd.config(('SCEPMaxRequestSize', '2000')):
            yield httpd

    @pytest.mark.parametrize('method', ['POST', 'GET'])
    def test_oversize_valid_request(self, small_limit, scep, files, keys, method):
        key = keys.any(2)
        msg = C.pkcsreq(csr_for(key, 'too-big'), key, [files.ra_enc])
        assert len(msg.der) > 2000
        r, rep = scep.send(msg, method=method)
        assert r.status == 413, 'HTTP %d' % r.status
        expect_line(small_limit, event(15))


# ---------------------------------------------------------------------------
# CertRep FAILURE

def test_bad_cms_signature(scep, files, keys, httpd):
    key = keys.any(3)
    msg = C.pkcsreq(csr_for(key, 'bad-signature'), key, [files.ra_enc], tamper_signature=True)
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_MESSAGE_CHECK)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_bad_message_digest(scep, files, keys, httpd):
    """The signature is good, but messageDigest does not match the content."""
    key = keys.any(4)
    csr = csr_for(key, 'bad-digest')
    signer = pki.self_signed(key, 'bad-digest')
    txid, nonce = C.new_transaction_id(), os.urandom(16)
    attrs = [(C.OID_MESSAGE_TYPE, C.core.PrintableString('19')),
             (C.OID_TRANSACTION_ID, C.core.PrintableString(txid)),
             (C.OID_SENDER_NONCE, C.core.OctetString(nonce))]
    der = C.signed_data(C.envelope(csr, [files.ra_enc]), key, signer, attrs,
                        message_digest=os.urandom(32))
    msg = C.PkiMessage(der, C.PKCSREQ, txid, nonce, key, signer, 'sha256', 'aes128', 'pkcs1', csr)
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_MESSAGE_CHECK)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_csr_signature_bad(scep, files, keys, httpd):
    key = keys.any(5)
    csr = pki.tamper_csr_signature(csr_for(key, 'bad-csr-signature'))
    msg = C.pkcsreq(csr, key, [files.ra_enc])
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, (C.BAD_MESSAGE_CHECK, C.BAD_REQUEST))
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_signer_key_is_not_csr_key(scep, files, keys, httpd):
    key, other = keys.any(6), keys.any(7)
    csr = csr_for(key, 'other-signer')
    msg = C.pkcsreq(csr, other, [files.ra_enc], signer_cert=pki.self_signed(other, 'other-signer'))
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, (C.BAD_MESSAGE_CHECK, C.BAD_REQUEST))
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_wrong_challenge(scep, files, keys, httpd):
    key = keys.any(0)
    msg, r, rep = scep.enroll(csr_for(key, 'wrong-pw', challenge='not-the-password'), key)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    lines = expect_line(httpd, event(29))
    assert any(msg.transaction_id in ln for ln in lines)
    assert not any('not-the-password' in ln for ln in httpd.errlog.lines()), \
        'the log shows the password'


def test_missing_challenge(scep, files, keys, httpd):
    key = keys.any(1)
    msg, r, rep = scep.enroll(pki.make_csr(key, 'no-pw'), key)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    lines = expect_line(httpd, event(28))
    assert any(msg.transaction_id in ln for ln in lines)


def test_refused_request_issues_nothing(scep, files, keys, httpd):
    before = len(httpd.db_rows('SELECT * FROM scep_cert'))
    key = keys.any(2)
    msg, r, rep = scep.enroll(csr_for(key, 'refused', challenge='nope'), key)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    httpd.errlog.expect(event(29))
    assert len(httpd.db_rows('SELECT * FROM scep_cert')) == before


def test_same_transaction_other_key(scep, files, keys, httpd):
    key1, key2 = keys.take(), keys.take()
    msg1, r1, rep1 = scep.enroll(csr_for(key1, 'txid-owner'), key1)
    checks.assert_issued(msg1, r1, rep1, files.ca)
    msg2, r2, rep2 = scep.enroll(csr_for(key2, 'txid-thief'), key2,
                                 transaction_id=msg1.transaction_id)
    checks.assert_failure(msg2, r2, rep2, C.BAD_REQUEST)
    assert rep2.certs == []
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg1.transaction_id)


@pytest.mark.parametrize('cipher,digest', [('des', 'sha256'), ('aes128', 'md5'), ('des', 'sha1')])
def test_legacy_algorithms_refused(scep, files, keys, httpd, cipher, digest):
    """Single DES and MD5 (RFC 8894: MUST NOT) get badAlg by default."""
    key = keys.any(3)
    msg, r, rep = scep.enroll(csr_for(key, 'legacy-%s-%s' % (cipher, digest)), key,
                              cipher=cipher, digest_name=digest)
    checks.assert_failure(msg, r, rep, C.BAD_ALG)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


class TestLegacyAllowed:
    @pytest.fixture(scope='class')
    def legacy(self, httpd):
        with httpd.config(('SCEPAllowLegacyAlgorithms', 'On'), startup_expected=[LEGACY_START]):
            yield httpd

    @pytest.mark.parametrize('cipher,digest', [('des', 'sha1'), ('des', 'sha256'),
                                               ('aes128', 'md5')])
    def test_legacy_algorithms_allowed(self, legacy, scep, files, keys, cipher, digest):
        key = keys.any(4)
        pattern = r'SCEP\d{3}: .*(DES|MD5)'
        legacy.errlog.expect(pattern)
        msg, r, rep = scep.enroll(csr_for(key, 'legacy-ok-%s-%s' % (cipher, digest)), key,
                                  cipher=cipher, digest_name=digest)
        checks.assert_issued(msg, r, rep, files.ca)
        assert rep.cipher == cipher and rep.digest_algorithm == digest
        expect_line(legacy, r'SCEP\d{3}: .*%s.*(DES|MD5)' % msg.transaction_id, levels=('warn',))


def test_unsupported_message_type(scep, files, keys, httpd):
    """GetCert, GetCRL and RenewalReq: test_getcert_getcrl.py, test_renewal.py."""
    key = keys.any(5)
    msg = C.pkcsreq(csr_for(key, 'type-99'), key, [files.ra_enc], message_type=99)
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_certpoll_unknown_transaction(scep, files, keys, httpd):
    key = keys.any(6)
    msg = C.pki_message(C.issuer_and_subject(files.ca.subject, pki.name('nobody')), C.CERTPOLL,
                        key, [files.ra_enc])
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_CERT_ID)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_missing_transaction_id(scep, files, keys, httpd):
    """Without a transactionID no CertRep can be made: HTTP 400."""
    key = keys.any(0)
    msg = C.pkcsreq(csr_for(key, 'no-txid'), key, [files.ra_enc],
                    omit_attrs=(C.OID_TRANSACTION_ID,))
    r, rep = scep.send(msg)
    assert r.status == 400, 'HTTP %d' % r.status
    expect_line(httpd, r'SCEP\d{3}: .*transactionID')


def test_missing_sender_nonce(scep, files, keys, httpd):
    key = keys.any(1)
    msg = C.pkcsreq(csr_for(key, 'no-nonce'), key, [files.ra_enc],
                    omit_attrs=(C.OID_SENDER_NONCE,))
    msg.sender_nonce = None   # nothing to echo
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    expect_line(httpd, r'SCEP\d{3}: .*%s' % msg.transaction_id)


def test_failure_by_get(scep, files, keys, httpd):
    """A refusal answered to a GET PKIOperation is the same signed CertRep."""
    key = keys.any(2)
    msg = C.pkcsreq(csr_for(key, 'get-wrong-pw', challenge='bad'), key, [files.ra_enc])
    r, rep = scep.send(msg, method='GET', style='only_eq')
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    expect_line(httpd, event(29))


# ---------------------------------------------------------------------------
# NDES events: the white paper's number, one line per failure

def event_lines(httpd):
    """The NDES event lines since the test started, declared expected."""
    httpd.errlog.expect(r'NDES event', checks.OPENSSL_LINES)
    return [ln for ln in httpd.errlog.lines() if 'NDES event' in ln]


@pytest.mark.parametrize('mtype', [C.GETCERT, C.GETCRL], ids=['GetCert', 'GetCRL'])
def test_malformed_issuer_and_serial_is_event_24(scep, files, keys, httpd, mtype):
    """messageData that is no IssuerAndSerialNumber: event 24 (the issuer
    name or serial number cannot be found in the message), not 25 (no
    request matches the transactionID)."""
    key = keys.any(3)
    msg = C.pki_message(b'\x30\x03\x02\x01\x05', mtype, key, [files.ra_enc])
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'the messageData is not an IssuerAndSerialNumber'
    expect_line(httpd, r'SCEP\d{3}: .*%s.*\(NDES event 24\)' % msg.transaction_id)
    assert len(event_lines(httpd)) == 1, event_lines(httpd)


def test_no_key_usage_event_39_at_the_default_log_level(httpd, scep, files, keys):
    """Event 39 (no keyUsage: both usages, the general-purpose template) is a
    warning in NDES: it reaches the log at LogLevel warn, the default, and
    is no refusal."""
    with httpd.config(raw_extra='LogLevel warn\n'):
        key = keys.take()
        msg, r, rep = scep.enroll(csr_for(key, 'no-ku.example.test'), key)
        checks.assert_issued(msg, r, rep, files.ca)
        assert httpd.errlog.find(r'SCEP260: transaction %s: the request has no keyUsage.*'
                                 r'\(NDES event 39\)' % msg.transaction_id,
                                 levels=('notice',))


def _poll_unknown(files, keys):
    return C.pki_message(C.issuer_and_subject(files.ca.subject, pki.name('nobody')),
                         C.CERTPOLL, keys.any(6), [files.ra_enc])


def _getcert(files, keys, issuer, serial):
    return C.pki_message(C.issuer_and_serial(issuer, serial), C.GETCERT, keys.any(3),
                         [files.ra_enc])


def _pkcsreq(files, keys, recipient=None, **kw):
    key = keys.any(0)
    return C.pkcsreq(csr_for(key, 'one-event', **kw), key, [recipient or files.ra_enc])


ONE_EVENT_CASES = [
    ('no-password', lambda f, k: _pkcsreq(f, k, challenge=None), 28),
    ('wrong-password', lambda f, k: _pkcsreq(f, k, challenge='wrong'), 29),
    ('other-recipient',
     lambda f, k: _pkcsreq(f, k, recipient=pki.self_signed(k.any(1), 'not the RA')), 18),
    ('not-a-csr', lambda f, k: C.pki_message(b'\x30\x03\x02\x01\x05', C.PKCSREQ, k.any(0),
                                             [f.ra_enc]), 42),
    ('poll-unknown', _poll_unknown, 25),
    ('getcert-other-issuer', lambda f, k: _getcert(f, k, pki.name('not this CA'), 5), 45),
    ('getcert-unknown-serial', lambda f, k: _getcert(f, k, f.ca.subject, 0x123456789), 19),
]


@pytest.mark.parametrize('build,number', [c[1:] for c in ONE_EVENT_CASES],
                         ids=[c[0] for c in ONE_EVENT_CASES])
def test_a_refusal_logs_one_event(scep, files, keys, httpd, build, number):
    msg = build(files, keys)
    r, rep = scep.send(msg)
    assert rep is not None and rep.pki_status == C.FAILURE, r.status
    lines = event_lines(httpd)
    assert len(lines) == 1 and '(NDES event %d)' % number in lines[0], lines


def test_no_database_logs_one_event(scep, files, keys, httpd):
    """Without a database connection the request is refused (a signed
    FAILURE: no certificate leaves without its record) with one event line,
    not the store's and the operation's."""
    with httpd.config(raw_extra='DBDriver sqlite3\nDBDParams "/nonexistent/scep.db"\n',
                      startup_expected=[r'AH\d+: .*sqlite3', r'AH\d+: ']):
        httpd.errlog.expect(r'AH\d+: ')
        msg = _pkcsreq(files, keys)
        r, rep = scep.send(msg)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'try again later' in rep.fail_info_text, rep.fail_info_text
        lines = event_lines(httpd)
        assert len(lines) == 1, lines
