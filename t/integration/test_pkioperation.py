"""PKIOperation: successful enrollments, algorithms, transports, replies, records."""
import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU, NameOID

from sceptest import checks, pki
from sceptest import templates as T
from sceptest import client as C
from sceptest.httpd import CHALLENGE


def csr_for(key, cn, **kw):
    kw.setdefault('challenge', CHALLENGE)
    return pki.make_csr(key, cn, **kw)


def test_enroll_full_certificate(scep, files, keys, httpd):
    """AES-128 + SHA-256 + PKCS#1 v1.5 (the RFC 8894 MTI set) with a CSR that
    asks for subject, SAN, KU and EKU, under a template that takes KU and EKU
    from the request (the built-in one sets its own: test_templates.py)."""
    with httpd.config(**T.pass_through_config()):
        enroll_full_certificate(scep, files, keys, httpd)


def enroll_full_certificate(scep, files, keys, httpd):
    key = keys.take()
    subject = pki.name('device-001.example.test', 'mod_scep tests',
                       [(NameOID.ORGANIZATIONAL_UNIT_NAME, 'Integration'),
                        (NameOID.COUNTRY_NAME, 'DE')])
    ku = pki.key_usage(digital_signature=True, key_encipherment=True)
    csr = pki.make_csr(key, subject, challenge=CHALLENGE,
                       dns=['device-001.example.test', 'alt.example.test'], ips=['192.0.2.10'],
                       ku=ku, eku=[EKU.CLIENT_AUTH, EKU.SERVER_AUTH])
    msg, r, rep = scep.enroll(csr, key)
    cert = checks.assert_issued(msg, r, rep, files.ca, ku=T.FROM_REQUEST, eku=T.FROM_REQUEST)
    san = pki.ext(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ['device-001.example.test', 'alt.example.test']
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address('192.0.2.10')]
    got_ku = pki.ext(cert, x509.KeyUsage)
    assert got_ku.digital_signature and got_ku.key_encipherment and not got_ku.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert list(pki.ext(cert, x509.ExtendedKeyUsage)) == [EKU.CLIENT_AUTH, EKU.SERVER_AUTH]
    # the reply: signed by the RA signing certificate, enveloped to the signer
    assert rep.signer_issuer_serial[1] == files.ra_sign.serial_number
    assert rep.cipher == 'aes128' and rep.key_transport == 'pkcs1'
    assert rep.envelope_recipients == 1
    # openssl agrees that it chains to the CA
    ok, out = pki.openssl_verify(httpd.env.work, files_ca_path(httpd), cert)
    assert ok, out
    # recorded
    assert httpd.errlog.find(r'SCEP\d+: .*%s' % msg.transaction_id), \
        'no log line names the transaction'
    checks.assert_recorded(httpd, msg.transaction_id, cert, message_type=C.PKCSREQ)


def files_ca_path(httpd):
    return httpd.env.p('ca.crt')


@pytest.mark.parametrize('cipher', ['aes128', 'aes192', 'aes256', 'des3'])
@pytest.mark.parametrize('digest', ['sha1', 'sha256', 'sha512'])
@pytest.mark.parametrize('kt', ['pkcs1', 'oaep'])
def test_algorithms(scep, files, keys, httpd, cipher, digest, kt):
    """The CertRep mirrors the request's digest and content-encryption algorithm."""
    key = keys.any(hash((cipher, digest, kt)) % 7)
    csr = csr_for(key, 'alg-%s-%s-%s' % (cipher, digest, kt))
    msg, r, rep = scep.enroll(csr, key, cipher=cipher, digest_name=digest, key_transport=kt)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    checks.assert_recorded(httpd, msg.transaction_id, cert)
    assert rep.digest_algorithm == digest
    assert rep.cipher == cipher


def test_rsa4096_by_get(scep, files):
    """A 4096-bit device key, its request by GET (a long URL)."""
    key = pki.new_key(4096)
    msg = C.pkcsreq(csr_for(key, 'rsa4096.example.test'), key, [files.ra_enc])
    r, rep = scep.send(msg, method='GET')
    checks.assert_issued(msg, r, rep, files.ca)


def test_oaep_sha256(scep, files, keys):
    key = keys.any(2)
    msg, r, rep = scep.enroll(csr_for(key, 'oaep-sha256'), key, key_transport='oaep',
                              oaep_hash='sha256')
    checks.assert_issued(msg, r, rep, files.ca)


def test_nonces_fresh(scep, files, keys):
    key = keys.any(3)
    seen = set()
    for i in range(3):
        msg, r, rep = scep.enroll(csr_for(key, 'nonce-%d' % i), key)
        checks.assert_issued(msg, r, rep, files.ca)
        assert rep.recipient_nonce == msg.sender_nonce
        assert rep.sender_nonce not in seen
        seen.add(rep.sender_nonce)


def test_serials_unique(scep, files, keys):
    key = keys.any(4)
    serials = set()
    for i in range(4):
        msg, r, rep = scep.enroll(csr_for(key, 'serial-%d' % i), key)
        cert = checks.assert_issued(msg, r, rep, files.ca)
        serials.add(cert.serial_number)
    assert len(serials) == 4


def test_replay_same_key_same_certificate(scep, files, keys, httpd):
    """A resent PKCSReq (same transactionID, same key) gets the certificate
    it got the first time, never a second one."""
    key = keys.take()
    csr = csr_for(key, 'replay.example.test')
    certs_before = len(httpd.db_rows('SELECT * FROM scep_cert'))
    msg1, r1, rep1 = scep.enroll(csr, key)
    cert1 = checks.assert_issued(msg1, r1, rep1, files.ca)
    # the same request again (a new message: fresh nonce, new signer cert)
    msg2, r2, rep2 = scep.enroll(csr, key, transaction_id=msg1.transaction_id)
    cert2 = checks.assert_issued(msg2, r2, rep2, files.ca)
    assert cert2.serial_number == cert1.serial_number
    assert cert2 == cert1
    # the very same bytes again
    r3, rep3 = scep.send(msg1)
    cert3 = checks.assert_issued(msg1, r3, rep3, files.ca)
    assert cert3 == cert1
    checks.assert_recorded(httpd, msg1.transaction_id, cert1)
    assert len(httpd.db_rows('SELECT * FROM scep_cert')) == certs_before + 1, \
        'the replays added certificates to scep_cert'
    assert httpd.errlog.find(r'SCEP\d+: .*%s' % msg1.transaction_id)


def test_concurrent_replays_one_certificate(scep, files, keys, httpd):
    """Copies of one PKCSReq arriving at once still make one certificate."""
    import threading
    key = keys.take()
    msg = C.pkcsreq(csr_for(key, 'concurrent.example.test'), key, [files.ra_enc])
    before = len(httpd.db_rows('SELECT * FROM scep_cert'))
    results = [None] * 6

    def send(i):
        try:
            results[i] = scep.send(msg)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    serials = set()
    for res in results:
        assert not isinstance(res, Exception), repr(res)
        r, rep = res
        serials.add(checks.assert_issued(msg, r, rep, files.ca).serial_number)
    assert len(serials) == 1, 'one transaction, %d certificates' % len(serials)
    assert len(httpd.db_rows('SELECT * FROM scep_cert')) == before + 1
    checks.assert_recorded(httpd, msg.transaction_id, rep.certs[0])


@pytest.mark.parametrize('style', ['standard', 'raw_plus', 'plus_as_space', 'newlines',
                                   'only_eq', 'base64url', 'base64url_padded'])
def test_get_encodings(scep, files, keys, style):
    """GET PKIOperation with the encodings real clients send."""
    key = keys.any(5)
    # a message whose base64 has '+', '/' and '=' padding (the length is
    # varied through the transactionID)
    for n in range(32, 64):
        txid = C.new_transaction_id() + 'A' * (n - 32)
        msg = C.pkcsreq(csr_for(key, 'get-%s' % style), key, [files.ra_enc], transaction_id=txid)
        b64 = base64.b64encode(msg.der).decode()
        if '+' in b64 and '/' in b64 and b64.endswith('=') and len(msg.der) % 3 == 1:
            break
    r, rep = scep.send(msg, method='GET', style=style)
    checks.assert_issued(msg, r, rep, files.ca)


@pytest.mark.parametrize('ctype', [None, C.CT_PKI, 'application/octet-stream', 'text/plain',
                                   'application/x-www-form-urlencoded'])
def test_post_content_types(scep, files, keys, ctype):
    key = keys.any(6)
    msg = C.pkcsreq(csr_for(key, 'post-ctype'), key, [files.ra_enc])
    r, rep = scep.send(msg, content_type=ctype)
    checks.assert_issued(msg, r, rep, files.ca)


def test_post_chunked(scep, files, keys):
    key = keys.any(0)
    msg = C.pkcsreq(csr_for(key, 'post-chunked'), key, [files.ra_enc])
    r, rep = scep.send(msg, chunked=True)
    checks.assert_issued(msg, r, rep, files.ca)


@pytest.mark.parametrize('method', ['POST', 'GET'])
def test_ber_indefinite_length(scep, files, keys, method):
    """jscep/Android and Apple send BER with indefinite lengths."""
    key = keys.any(1)
    msg = C.pkcsreq(csr_for(key, 'ber-' + method), key, [files.ra_enc], ber=True)
    assert msg.der[1] == 0x80, 'the test did not make BER'
    r, rep = scep.send(msg, method=method)
    checks.assert_issued(msg, r, rep, files.ca)


@pytest.mark.parametrize('path', ['/cgi-bin/pkiclient.exe', '/certsrv/mscep/mscep.dll/pkiclient.exe',
                                  '/certsrv/mscep/'])
def test_paths(httpd, cacerts, files, keys, path):
    c = C.Client(httpd.url(path))
    c._ca = cacerts
    key = keys.any(2)
    msg, r, rep = c.enroll(csr_for(key, 'path-test'), key)
    checks.assert_issued(msg, r, rep, files.ca)


def test_reply_to_multi_recipient_envelope(scep, files, keys):
    """scepclient-style: one RecipientInfo for each GetCACert certificate."""
    key = keys.any(3)
    msg = C.pkcsreq(csr_for(key, 'multi-recipient'), key, [files.ca, files.ra_sign, files.ra_enc])
    r, rep = scep.send(msg)
    checks.assert_issued(msg, r, rep, files.ca)


def test_no_signing_time(scep, files, keys):
    key = keys.any(4)
    msg = C.pkcsreq(csr_for(key, 'no-signing-time'), key, [files.ra_enc], signing_time=False)
    r, rep = scep.send(msg)
    checks.assert_issued(msg, r, rep, files.ca)


def test_certpoll_after_issue(scep, files, keys):
    """CertPoll with the transactionID of an issued request answers the certificate."""
    key = keys.take()
    csr = csr_for(key, 'poll.example.test')
    msg, r, rep = scep.enroll(csr, key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    poll = C.pki_message(C.issuer_and_subject(files.ca.subject, cert.subject), C.CERTPOLL, key,
                         [files.ra_enc], signer_cert=msg.signer_cert,
                         transaction_id=msg.transaction_id)
    r2, rep2 = scep.send(poll)
    assert r2.status == 200
    checks.assert_reply_ok(poll, rep2)
    assert rep2.pki_status == C.SUCCESS, str(rep2)
    assert rep2.certs[0] == cert


class TestTuned:
    @pytest.fixture(scope='class')
    def tuned(self, httpd):
        with httpd.config(('SCEPCertificateValidity', '30'), ('SCEPHashAlgorithm', 'SHA384'),
                          ('SCEPCertRepIncludeChain', 'On')):
            yield httpd

    def test_validity_hash_and_chain_directives(self, tuned, scep, files, keys):
        key = keys.any(5)
        msg, r, rep = scep.enroll(csr_for(key, 'tuned.example.test'), key)
        checks.assert_issued(msg, r, rep, files.ca, chain=True, validity_days=30,
                             sig_hash='sha384')


class TestChain:
    @pytest.fixture(scope='class')
    def chain(self, httpd):
        with httpd.config(('SCEPCertRepIncludeChain', 'On')):
            yield httpd

    def test_chain_issued_first_when_longer_than_ca(self, chain, scep, files):
        """The reply's certificates field holds the issued certificate first
        even when it encodes longer than the CA's (a DER SET OF would put the
        CA first): a 4096-bit key and several subjectAltNames."""
        key = pki.new_key(4096)
        dns = ['long-device-%d.branch-office.example.test' % i for i in range(8)]
        msg, r, rep = scep.enroll(csr_for(key, 'long-device.branch-office.example.test',
                                          dns=dns), key)
        cert = checks.assert_issued(msg, r, rep, files.ca, chain=True)
        assert len(pki.cert_der(cert)) > len(pki.cert_der(files.ca)) + 200
        assert [pki.cert_der(c) for c in rep.certs] == [pki.cert_der(cert),
                                                        pki.cert_der(files.ca)]


class TestGetMessageSize:
    """GET PKIOperation with the default SCEPMaxRequestSize (65536) under the
    drop-in's LimitRequestLine (the harness takes it from conf.d/scep.conf):
    a message of exactly the limit reaches the module and is issued, also
    when every character of its base64 is percent-escaped (the longest URL a
    client can make of it); one byte more gets the module's 413 and NDES
    event 15, not httpd's bare 414."""

    MAX = 65536
    RE_TOO_LARGE = r'SCEP106: .*PKIOperation message larger than SCEPMaxRequestSize 65536 ' \
                   r'\(NDES event 15\)'

    @pytest.mark.parametrize('style', ['standard', 'escape_all'])
    def test_message_of_max_size_issued(self, httpd, scep, files, keys, style):
        key = keys.any(2)
        msg = C.sized_pkcsreq(csr_for(key, 'get-max-%s.example.test' % style), key,
                              [files.ra_enc], self.MAX)
        r, rep = scep.send(msg, method='GET', style=style)
        checks.assert_issued(msg, r, rep, files.ca)

    @pytest.mark.parametrize('style,size', [('standard', MAX + 1), ('escape_all', MAX + 1),
                                            ('standard', 2 * MAX)])
    def test_larger_message_gets_module_answer(self, httpd, scep, files, keys, style, size):
        httpd.errlog.expect(self.RE_TOO_LARGE)
        key = keys.any(3)
        msg = C.sized_pkcsreq(csr_for(key, 'get-over.example.test'), key, [files.ra_enc], size)
        r, rep = scep.send(msg, method='GET', style=style)
        assert r.status == 413 and rep is None, 'HTTP %d' % r.status
        assert httpd.errlog.find(self.RE_TOO_LARGE, levels=('error',))
        assert not checks.request_rows(httpd, msg.transaction_id)


class TestNoPassword:
    @pytest.fixture(scope='class')
    def no_password(self, httpd):
        with httpd.config(('SCEPEnforcePassword', 'Off')):
            yield httpd

    def test_enforce_password_off(self, no_password, scep, files, keys):
        key = keys.any(6)
        msg, r, rep = scep.enroll(pki.make_csr(key, 'no-password.example.test'), key)
        checks.assert_issued(msg, r, rep, files.ca)

    def test_enforce_password_off_ignores_wrong_password(self, no_password, scep, files, keys):
        key = keys.any(6)
        msg, r, rep = scep.enroll(pki.make_csr(key, 'any-password.example.test',
                                               challenge='whatever'), key)
        checks.assert_issued(msg, r, rep, files.ca)
