"""Hostile input: a corpus of broken, malicious and oversized requests, each
with the answer it must get and the error-log line that says why.

The rule: a message that cannot be read far enough to know its
transactionID gets a bare HTTP status; once it can, every refusal is a
signed CertRep FAILURE with failInfo and failInfoText. Every refusal logs a
SCEPnnn line with its NDES event, no child crashes (the harness fails a test
on a crash line in the error log; here the server must also still answer),
nothing is recorded for a refused request, and no challenge password
reaches a log.

Password expiry is not provoked here: SCEPPasswordValidity counts in
minutes and the passwords live in shared memory, not in the database; the
unit tests (t/unit/test_password.c) cover it with a fake clock.
"""
import os
import re
import socket
from dataclasses import dataclass
from typing import Tuple, Union

import pytest
from asn1crypto import cms, core
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

import test_passwords as P
from sceptest import admin as A
from sceptest import checks, pki
from sceptest import client as C
from sceptest import templates as T
from sceptest.checks import event, expect_line
from sceptest.httpd import CHALLENGE, MODULES_DIR, RE_CRASH, make_conf

OID_CN = '2.5.4.3'

DEPTH = 10000          # nested constructed tags of the BER cases
BIG = 10 * 1024 * 1024  # the oversize POST


# ---------------------------------------------------------------------------
# expected answers

@dataclass
class Http:
    """A bare HTTP status; event: the NDES event of the log line (None: the
    module never sees the request, httpd answers)."""
    status: int
    event: Union[int, str, None]


@dataclass
class Failure:
    """A signed CertRep FAILURE. fail_info: one failInfo or a tuple of them;
    text: regular expression on failInfoText; echo: whether the request's
    senderNonce can be echoed (not when it is the problem)."""
    fail_info: Union[int, Tuple[int, ...]]
    event: Union[int, str]
    text: str
    echo: bool = True


# ---------------------------------------------------------------------------
# building blocks

class Ctx:
    """What a case needs to build its request."""

    def __init__(self, files, keys):
        self.files = files
        self.key = keys.any(7)
        self.other_key = keys.any(8)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.ed25519_key = ed25519.Ed25519PrivateKey.generate()

    @property
    def dsa_key(self):
        return dsa.generate_private_key(2048)

    @property
    def rsa_e3_key(self):
        return rsa.generate_private_key(public_exponent=3, key_size=2048)

    def pss_spki(self):
        """self.key's public key as an RSASSA-PSS key (RFC 4055: it only signs)."""
        n = self.key.public_key().public_numbers()
        return pki.rsa_spki(n.n, n.e, 'rsassa_pss')

    def issuer_and_serial(self):
        return C.issuer_and_serial(self.files.ca.subject, self.files.ca.serial_number)

    def csr(self, cn='hostile.example.test', **kw):
        kw.setdefault('challenge', CHALLENGE)
        return pki.make_csr(self.key, cn, **kw)

    def raw_csr(self, cn=b'hostile.example.test', san=None, cn_tag=pki.UTF8_STRING):
        """A CSR with names cryptography would not make (pki.make_raw_csr);
        cn None: an empty subject."""
        subject = [] if cn is None else [(OID_CN, cn_tag, cn)]
        return pki.make_raw_csr(self.key, subject, san, challenge=CHALLENGE)

    def message(self, csr=None, **kw):
        """A PKCSReq from self.key (kw: those of client.pki_message)."""
        csr = self.csr() if csr is None else csr
        kw.setdefault('subject', 'hostile.example.test')
        return C.pki_message(csr, kw.pop('message_type', C.PKCSREQ), self.key,
                             [self.files.ra_enc], **kw)

    def signed_by(self, key, spki=None, data=None, **kw):
        """A PKCSReq (or kw's message_type) signed by key, whose self-signed
        certificate carries spki (DER) when given instead of key's own."""
        cert = pki.self_signed(key, 'hostile.example.test')
        if spki is not None:
            pss = asn1_keys.PublicKeyInfo.load(spki)['algorithm']['algorithm'].native
            cert = pki.cert_with_spki(cert, spki, key, pss=pss == 'rsassa_pss')
        return C.pki_message(self.csr() if data is None else data,
                             kw.pop('message_type', C.PKCSREQ), key, [self.files.ra_enc],
                             signer_cert=cert, **kw)

    def by_own_key(self, key, csr_spki=None, **kw):
        """A PKCSReq for key, signed by key (with csr_spki, DER, in the CSR when
        given, the CSR signed by key all the same)."""
        csr = pki.make_csr(key, 'hostile.example.test', challenge=CHALLENGE, **kw)
        if csr_spki is not None:
            csr = pki.csr_with_spki(csr, csr_spki, key)
        return self.signed_by(key, data=csr)

    def envelope(self, data=None, **kw):
        return C.envelope(self.csr() if data is None else data, [self.files.ra_enc], **kw)


def nested_indefinite(depth):
    """depth SEQUENCEs inside each other, indefinite lengths."""
    return b'\x30\x80' * depth + b'\x00\x00' * depth


def nested_definite(depth):
    inner = b''
    for _ in range(depth):
        inner = C.der_tlv(0x30, inner)
    return inner


def with_signer_infos(der, change):
    """The outer SignedData with its SignerInfos changed (signature kept)."""
    ci = cms.ContentInfo.load(der)
    sd = ci['content']
    sd['signer_infos'] = cms.SignerInfos(change(list(sd['signer_infos'])))
    return ci.dump(force=True)


def with_encrypted_key(env_der, change):
    """An EnvelopedData whose first encryptedKey is change(encryptedKey)."""
    ci = cms.ContentInfo.load(env_der)
    ktri = ci['content']['recipient_infos'][0].chosen
    ktri['encrypted_key'] = change(ktri['encrypted_key'].native)
    return ci.dump(force=True)


def with_encrypted_content(env_der, change):
    ci = cms.ContentInfo.load(env_der)
    eci = ci['content']['encrypted_content_info']
    eci['encrypted_content'] = change(eci['encrypted_content'].native)
    return ci.dump(force=True)


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0xff
    return bytes(b)


def txid_attr(value):
    """Replaces the transactionID attribute by value (an asn1crypto value)."""
    return dict(omit_attrs=(C.OID_TRANSACTION_ID,), extra_attrs=[(C.OID_TRANSACTION_ID, value)])


def nonce_attr(value):
    return dict(omit_attrs=(C.OID_SENDER_NONCE,), extra_attrs=[(C.OID_SENDER_NONCE, value)])


def signed_data_oid_to_data(der):
    """The outer ContentInfo claims id-data instead of id-signedData."""
    oid = core.ObjectIdentifier('1.2.840.113549.1.7.2').dump()
    pos = der.index(oid)
    return der[:pos + len(oid) - 1] + b'\x01' + der[pos + len(oid):]


def unterminated(der):
    """BER without the end-of-contents octets of the outermost element."""
    return C.ber_signed_data(der)[:-2]


# ---------------------------------------------------------------------------
# the corpus of single requests (POST unless a case says otherwise)

TXID_REFUSED = Http(400, 17)
NOT_CMS = Http(400, 16)
BAD_ENVELOPE = Failure(C.BAD_REQUEST, 18, 'not a CMS EnvelopedData')
UNDECRYPTABLE = Failure(C.BAD_MESSAGE_CHECK, 18, 'cannot be decrypted')
NOT_A_CSR = Failure(C.BAD_REQUEST, 42, 'not a PKCS#10')
NONCE_REFUSED = Failure(C.BAD_REQUEST, 17, 'senderNonce', echo=False)
BAD_TYPE = Failure(C.BAD_REQUEST, 38, 'messageType')
PASSWORD_INVALID = Failure(C.BAD_REQUEST, 29, 'unknown, expired or used up')
PASSWORD_USED_FOR_USAGE = Failure(C.BAD_REQUEST, 43, 'already used .* with this key usage')

def UNDELIVERABLE(key_type):
    return Failure(C.BAD_ALG, 17, "signer certificate's key is refused: a reply cannot be "
                   'encrypted to a key of type %s' % key_type)


CASES = [
    # --- the outer SignedData: nothing to answer to --------------------------
    ('outer-truncated-half', lambda c: c.message().der[:1000], NOT_CMS),
    ('outer-truncated-header', lambda c: c.message().der[:3], NOT_CMS),
    ('outer-length-4GB', lambda c: b'\x30\x84\xff\xff\xff\xff' + c.message().der[4:], NOT_CMS),
    ('outer-not-signeddata', lambda c: signed_data_oid_to_data(c.message().der), NOT_CMS),
    ('outer-ber-unterminated', lambda c: unterminated(c.message().der), NOT_CMS),
    ('outer-nested-indefinite-10000', lambda c: nested_indefinite(DEPTH), NOT_CMS),
    ('outer-nested-definite-10000', lambda c: nested_definite(DEPTH), NOT_CMS),
    ('outer-random', lambda c: os.urandom(3000), NOT_CMS),
    ('outer-no-signerinfo', lambda c: with_signer_infos(c.message().der, lambda s: []),
     Http(400, 17)),
    ('outer-two-signerinfos', lambda c: with_signer_infos(c.message().der, lambda s: s + s),
     Http(400, 17)),
    # --- transactionID: no CertRep can name the transaction --------------------
    ('txid-missing', lambda c: c.message(omit_attrs=(C.OID_TRANSACTION_ID,)), TXID_REFUSED),
    ('txid-empty', lambda c: c.message(**txid_attr(core.PrintableString(''))), TXID_REFUSED),
    ('txid-control-chars', lambda c: c.message(**txid_attr(core.UTF8String('tx\nSCEP999: x'))),
     TXID_REFUSED),
    ('txid-non-ascii', lambda c: c.message(**txid_attr(core.UTF8String('tx-\u00e9\u20ac'))),
     TXID_REFUSED),
    ('txid-1KB', lambda c: c.message(**txid_attr(core.PrintableString('A' * 1024))),
     TXID_REFUSED),
    ('txid-octet-string', lambda c: c.message(**txid_attr(core.OctetString(b'0123'))),
     TXID_REFUSED),
    # --- senderNonce: a FAILURE that echoes nothing ----------------------------
    ('nonce-missing', lambda c: c.message(omit_attrs=(C.OID_SENDER_NONCE,)), NONCE_REFUSED),
    ('nonce-empty', lambda c: c.message(sender_nonce=b''), NONCE_REFUSED),
    ('nonce-1KB', lambda c: c.message(sender_nonce=os.urandom(1024)), NONCE_REFUSED),
    ('nonce-printable-string', lambda c: c.message(**nonce_attr(core.PrintableString('n' * 16))),
     NONCE_REFUSED),
    # --- messageType --------------------------------------------------------------
    ('type-certrep', lambda c: c.message(message_type_value='3'), BAD_TYPE),
    ('type-99', lambda c: c.message(message_type_value='99'), BAD_TYPE),
    ('type-word', lambda c: c.message(message_type_value='PKCSReq'), BAD_TYPE),
    ('type-negative', lambda c: c.message(message_type_value='-19'), BAD_TYPE),
    ('type-overflow', lambda c: c.message(message_type_value='9' * 40), BAD_TYPE),
    ('type-trailing-space', lambda c: c.message(message_type_value='19 '), BAD_TYPE),
    ('type-missing', lambda c: c.message(omit_attrs=(C.OID_MESSAGE_TYPE,)), BAD_TYPE),
    # --- signature and algorithms -------------------------------------------------
    ('cms-signature-bad', lambda c: c.message(tamper_signature=True),
     Failure(C.BAD_MESSAGE_CHECK, 17, 'signature does not verify')),
    ('md5', lambda c: c.message(digest_name='md5'), Failure(C.BAD_ALG, 17, 'MD5')),
    ('single-des', lambda c: c.message(cipher='des'), Failure(C.BAD_ALG, 18, 'single DES')),
    # --- the inner EnvelopedData -------------------------------------------------
    ('envelope-other-recipient',
     lambda c: c.message(envelope_der=C.envelope(c.csr(), [pki.self_signed(c.other_key, 'x')])),
     UNDECRYPTABLE),
    ('envelope-truncated', lambda c: c.message(envelope_der=c.envelope()[:300]), BAD_ENVELOPE),
    ('envelope-random', lambda c: c.message(envelope_der=os.urandom(600)), BAD_ENVELOPE),
    ('envelope-empty', lambda c: c.message(envelope_der=b''), BAD_ENVELOPE),
    ('envelope-is-signeddata', lambda c: c.message(envelope_der=c.message().der), BAD_ENVELOPE),
    ('envelope-nested-indefinite-10000',
     lambda c: c.message(envelope_der=nested_indefinite(DEPTH)), BAD_ENVELOPE),
    ('envelope-ber-unterminated',
     lambda c: c.message(envelope_der=C.ber_enveloped_data(c.envelope())[:-2]), BAD_ENVELOPE),
    # a garbled RSA key transport goes on with a random key (no padding
    # oracle): the content then almost never decrypts, and when it does
    # (about 1 in 256) it is no CSR
    ('envelope-key-garbled',
     lambda c: c.message(envelope_der=with_encrypted_key(c.envelope(), lambda k: flip(k, 5))),
     Failure((C.BAD_MESSAGE_CHECK, C.BAD_REQUEST), '(18|42)', 'cannot be decrypted|PKCS#10')),
    ('envelope-key-short',
     lambda c: c.message(envelope_der=with_encrypted_key(c.envelope(), lambda k: k[:20])),
     UNDECRYPTABLE),
    ('envelope-content-not-blocks',
     lambda c: c.message(envelope_der=with_encrypted_content(c.envelope(), lambda d: d[:-1])),
     UNDECRYPTABLE),
    # --- the CSR ------------------------------------------------------------------
    ('csr-truncated', lambda c: c.message(c.csr()[:200]), NOT_A_CSR),
    ('csr-random', lambda c: c.message(os.urandom(400)), NOT_A_CSR),
    ('csr-empty', lambda c: c.message(b''), NOT_A_CSR),
    ('csr-nested-indefinite-10000', lambda c: c.message(nested_indefinite(DEPTH)), NOT_A_CSR),
    ('csr-nested-definite-10000', lambda c: c.message(nested_definite(DEPTH)), NOT_A_CSR),
    ('csr-is-certificate',
     lambda c: c.message(pki.cert_der(pki.self_signed(c.key, 'hostile.example.test'))),
     NOT_A_CSR),
    ('csr-signature-bad', lambda c: c.message(pki.tamper_csr_signature(c.csr())),
     Failure(C.BAD_MESSAGE_CHECK, 42, 'own signature does not verify')),
    ('signer-key-not-csr-key',
     lambda c: C.pki_message(c.csr(), C.PKCSREQ, c.other_key, [c.files.ra_enc],
                             subject='hostile.example.test'),
     Failure(C.BAD_MESSAGE_CHECK, 42, 'not signed with the key of the certificate request')),
    # --- keys: their parameters are read before anything is computed with them ---
    ('signer-rsa-65536-bits',
     lambda c: c.signed_by(c.key, pki.rsa_spki(pki.fake_modulus(65536))),
     Failure(C.BAD_ALG, 17, 'RSA modulus of 65536 bits is larger than the 16384')),
    ('signer-rsa-exponent-300-bits',
     lambda c: c.signed_by(c.key, pki.rsa_spki(pki.fake_modulus(2048), 2 ** 300 - 1)),
     Failure(C.BAD_ALG, 17, 'RSA public exponent of 300 bits is larger than the 256')),
    ('signer-ec-explicit-parameters',
     lambda c: c.signed_by(c.ec_key, pki.ec_explicit_spki(c.ec_key)),
     Failure(C.BAD_ALG, 17, 'explicit curve parameters')),
    ('csr-rsa-65536-bits',
     lambda c: c.message(pki.csr_with_spki(c.csr(), pki.rsa_spki(pki.fake_modulus(65536)),
                                           c.key)),
     Failure(C.BAD_ALG, 42, "request's key is refused: an RSA modulus of 65536 bits")),
    ('csr-rsa-exponent-300-bits',
     lambda c: c.message(pki.csr_with_spki(
         c.csr(), pki.rsa_spki(pki.fake_modulus(2048), 2 ** 300 - 1), c.key)),
     Failure(C.BAD_ALG, 42, 'RSA public exponent of 300 bits')),
    ('csr-ec-explicit-parameters',
     lambda c: c.by_own_key(c.ec_key, pki.ec_explicit_spki(c.ec_key)),
     Failure(C.BAD_ALG, 42, 'explicit curve parameters')),
    ('csr-signed-with-md5', lambda c: c.message(c.csr(digest='md5')),
     Failure(C.BAD_ALG, 42, 'signed with MD5, which is not accepted')),
    # --- signers a reply cannot be encrypted to, whatever they ask ------------------
    ('signer-rsa-pss',
     lambda c: c.signed_by(c.key, c.pss_spki()), UNDELIVERABLE('rsassaPss')),
    ('signer-rsa-pss-getcert',
     lambda c: c.signed_by(c.key, c.pss_spki(), data=c.issuer_and_serial(),
                           message_type=C.GETCERT), UNDELIVERABLE('rsassaPss')),
    ('signer-ed25519', lambda c: c.by_own_key(c.ed25519_key), UNDELIVERABLE('ED25519')),
    ('signer-ed25519-getcrl',
     lambda c: c.signed_by(c.ed25519_key, data=c.issuer_and_serial(), message_type=C.GETCRL,
                           digest_name='sha512'), UNDELIVERABLE('ED25519')),
    ('signer-dsa', lambda c: c.by_own_key(c.dsa_key), UNDELIVERABLE('dsaEncryption')),
    ('signer-dsa-certpoll',
     lambda c: c.signed_by(c.dsa_key, data=C.issuer_and_subject(
         c.files.ca.subject, pki.name('hostile.example.test')), message_type=C.CERTPOLL),
     UNDELIVERABLE('dsaEncryption')),
    # --- keys the default template refuses ------------------------------------------
    ('csr-rsa-exponent-3', lambda c: c.by_own_key(c.rsa_e3_key),
     Failure(C.BAD_REQUEST, 23, 'RSA public exponent that is not an odd number from 65537')),
    ('csr-ec-secp256k1', lambda c: c.by_own_key(ec.generate_private_key(ec.SECP256K1())),
     Failure(C.BAD_REQUEST, 23, 'EC curve secp256k1 is not allowed by template '
                                'IPSECIntermediateOffline')),
    ('csr-ec-p192', lambda c: c.by_own_key(ec.generate_private_key(ec.SECP192R1())),
     Failure(C.BAD_REQUEST, 23, 'EC curve P-192 is not allowed')),
    # --- certificate requests the default template refuses -----------------------
    ('csr-asks-for-ca',
     lambda c: c.message(c.csr(extensions=[(x509.BasicConstraints(ca=True, path_length=None),
                                             True)])),
     Failure(C.BAD_REQUEST, 23, 'CA:TRUE')),
    ('csr-unknown-critical-extension',
     lambda c: c.message(c.csr(extensions=[(x509.UnrecognizedExtension(
         x509.ObjectIdentifier('1.3.6.1.4.1.99999.1'), b'\x05\x00'), True)])),
     Failure(C.BAD_REQUEST, 23, 'critical extension')),
    # --- names the CA cannot encode (scep_names.c) ---------------------------------
    ('csr-cn-nul', lambda c: c.message(c.raw_csr(b'evil\0.example.test')),
     Failure(C.BAD_REQUEST, 23, 'commonName holds a NUL or control character')),
    ('csr-cn-65-characters', lambda c: c.message(c.raw_csr(b'c' * 65)),
     Failure(C.BAD_REQUEST, 23, 'commonName is 65 characters long, more than the 64 allowed')),
    ('csr-cn-printable-with-at',
     lambda c: c.message(c.raw_csr(b'a@b', cn_tag=pki.PRINTABLE_STRING)),
     Failure(C.BAD_REQUEST, 42, 'commonName is not a valid PRINTABLESTRING')),
    ('csr-dns-empty-label', lambda c: c.message(c.raw_csr(san=[(pki.GN_DNS, b'a..b')])),
     Failure(C.BAD_REQUEST, 23, 'dNSName "a..b" has an empty label')),
    ('csr-dns-wildcard', lambda c: c.message(c.raw_csr(san=[(pki.GN_DNS, b'*.example.test')])),
     Failure(C.BAD_REQUEST, 23, 'wildcard, which the template does not allow')),
    ('csr-ip-5-octets',
     lambda c: c.message(c.raw_csr(san=[(pki.GN_IP, b'\xc0\x00\x02\x01\x01')])),
     Failure(C.BAD_REQUEST, 42, 'iPAddress has 5 octets')),
    ('csr-san-empty', lambda c: c.message(c.raw_csr(san=[])),
     Failure(C.BAD_REQUEST, 42, 'subjectAltName names nothing')),
    ('csr-subject-empty-no-san', lambda c: c.message(c.raw_csr(None)),
     Failure(C.BAD_REQUEST, 23, 'the subject is empty and there is no subjectAltName')),
    ('csr-wrong-challenge', lambda c: c.message(c.csr(challenge='hostile-wrong-password')),
     PASSWORD_INVALID),
    ('csr-no-challenge', lambda c: c.message(c.csr(challenge=None)),
     Failure(C.BAD_REQUEST, 28, 'no challenge password')),
]


# ---------------------------------------------------------------------------
# checks every case gets

def record_counts(httpd):
    return (len(httpd.db_rows('SELECT transaction_id FROM scep_request')),
            len(httpd.db_rows('SELECT serial FROM scep_cert')))


def assert_still_serving(httpd):
    """No crash: the server answers, and no child died on a signal."""
    assert httpd.proc is not None and httpd.proc.poll() is None, 'apache2 exited'
    r = C.http_request('GET', httpd.url() + '?operation=GetCACaps')
    assert r.status == 200, 'GetCACaps after the case: HTTP %d' % r.status
    crashes = [ln for ln in httpd.errlog.lines() if RE_CRASH.search(ln)]
    assert not crashes, '\n'.join(crashes)


def assert_answer(httpd, msg, r, rep, expect):
    """The expected answer and its log line (naming the transaction when a
    CertRep can name it)."""
    if isinstance(expect, Http):
        assert r.status == expect.status, 'HTTP %d, expected %d: %r' % (
            r.status, expect.status, r.body[:200])
        assert C.CT_PKI not in r.content_type, 'a CertRep where none can be made'
        if expect.event is not None:
            expect_line(httpd, event(expect.event))
        return
    if not expect.echo:
        msg.sender_nonce = None    # the reply has no recipientNonce
    checks.assert_failure(msg, r, rep, expect.fail_info)
    assert re.search(expect.text, rep.fail_info_text), 'failInfoText %r, expected /%s/' % (
        rep.fail_info_text, expect.text)
    expect_line(httpd, r'SCEP\d{3}: .*%s.*\(NDES event %s\)' % (msg.transaction_id,
                                                                 expect.event))


def send_case(scep, sent):
    """POSTs a PkiMessage (and parses its reply) or raw bytes."""
    if isinstance(sent, C.PkiMessage):
        r, rep = scep.send(sent)
        return sent, r, rep
    return None, scep.post(sent), None


def assert_refused_cleanly(httpd, scep, sent, expect, *secrets):
    before = record_counts(httpd)
    msg, r, rep = send_case(scep, sent)
    assert_answer(httpd, msg, r, rep, expect)
    assert record_counts(httpd) == before, 'a refused request left records'
    if msg is not None:
        assert not checks.request_rows(httpd, msg.transaction_id)
    assert_still_serving(httpd)
    checks.assert_not_logged(httpd, CHALLENGE, *secrets)
    return msg, r, rep


@pytest.fixture(scope='module', autouse=True)
def records(httpd, cacerts, files, keys):
    """The records' tables exist (made at the first request that needs them)
    before the first count."""
    scep = C.Client(httpd.url())
    scep._ca = cacerts
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'hostile-first', challenge=CHALLENGE), key)
    checks.assert_issued(msg, r, rep, files.ca)


@pytest.fixture
def ctx(files, keys):
    return Ctx(files, keys)


@pytest.mark.parametrize('build,expect', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corpus(httpd, scep, ctx, build, expect):
    assert_refused_cleanly(httpd, scep, build(ctx), expect, 'hostile-wrong-password')


# ---------------------------------------------------------------------------
# GET messages

GET_CASES = [
    # base64 of zeros: decodes, is no CMS
    ('get-junk-30KB', 'A' * 30000, NOT_CMS),
    ('get-not-base64', '%01%02%03' * 10, Http(400, 15)),
    # a NUL ends the parameter: no message at all
    ('get-nul', '%00' + 'A' * 100, Http(400, 12)),
    ('get-nested-indefinite', C.get_message_encode(nested_indefinite(2000)), NOT_CMS),
    # decodes beyond SCEPMaxRequestSize, within LimitRequestLine: the module's 413
    ('get-over-max-request-size', 'A' * 100000, Http(413, 15)),
    # beyond the drop-in's LimitRequestLine: httpd answers before the module sees it
    ('get-beyond-request-line', 'A' * 300000, Http(414, None)),
]


@pytest.mark.parametrize('message,expect', [c[1:] for c in GET_CASES],
                         ids=[c[0] for c in GET_CASES])
def test_get_corpus(httpd, message, expect):
    before = record_counts(httpd)
    r = C.http_request('GET', httpd.url() + '?operation=PKIOperation&message=' + message)
    assert_answer(httpd, None, r, None, expect)
    assert record_counts(httpd) == before
    assert_still_serving(httpd)


def test_get_signed_failure(httpd, scep, ctx):
    """A refusal by GET is the same signed CertRep as by POST."""
    msg = ctx.message(message_type_value='99')
    r, rep = scep.send(msg, method='GET', style='only_eq')
    assert_answer(httpd, msg, r, rep, BAD_TYPE)
    assert_still_serving(httpd)


# ---------------------------------------------------------------------------
# 10 MB bodies: 413 (NDES event 15) without reading them

def raw_exchange(httpd, head, body_chunks=(), timeout=60):
    """Sends head, then body chunks until the server answers; returns (the
    status line, bytes of body sent). No answer within timeout seconds
    raises socket.timeout."""
    s = socket.create_connection(('127.0.0.1', httpd.env.port), timeout=timeout)
    sent = 0
    try:
        s.sendall(head)
        for chunk in body_chunks:
            s.setblocking(False)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        data = b''
        while b'\r\n' not in data:
            more = s.recv(4096)
            if not more:
                break
            data += more
        return data.split(b'\r\n')[0].decode(), sent
    finally:
        s.close()


def post_head(httpd, headers):
    return ('POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1\r\n'
            'Host: localhost\r\nContent-Type: application/x-pki-message\r\n%s\r\n'
            % ''.join('%s: %s\r\n' % kv for kv in headers)).encode()


def test_10mb_post_announced(httpd):
    """Content-Length 10 MB: answered before a byte of the body is sent."""
    before = record_counts(httpd)
    status, _ = raw_exchange(httpd, post_head(httpd, [('Content-Length', str(BIG))]))
    assert status.startswith('HTTP/1.1 413'), status
    expect_line(httpd, event(15))
    assert record_counts(httpd) == before
    assert_still_serving(httpd)


def test_10mb_post_chunked(httpd):
    """Chunked, no length announced: cut off after SCEPMaxRequestSize, long
    before the 10 MB are through."""
    piece = os.urandom(64 * 1024)
    chunk = b'%x\r\n%s\r\n' % (len(piece), piece)
    status, sent = raw_exchange(httpd, post_head(httpd, [('Transfer-Encoding', 'chunked')]),
                                [chunk] * (BIG // len(piece)))
    assert status.startswith('HTTP/1.1 413'), status
    assert sent < BIG, 'the server read all 10 MB before answering'
    expect_line(httpd, event(15))
    assert_still_serving(httpd)


# ---------------------------------------------------------------------------
# replays

def test_replay_of_refused_request(httpd, scep, ctx):
    """A refused request sent again is refused again and leaves nothing."""
    msg = ctx.message(ctx.csr(challenge='hostile-wrong-password'))
    for _ in range(2):
        assert_refused_cleanly(httpd, scep, msg, PASSWORD_INVALID,
                               'hostile-wrong-password')


def test_replay_of_issued_request(httpd, scep, files, keys):
    """The same message twice: the same certificate, recorded once."""
    key = keys.take()
    msg = C.pkcsreq(pki.make_csr(key, 'hostile-replay', challenge=CHALLENGE), key, [files.ra_enc])
    r1, rep1 = scep.send(msg)
    cert = checks.assert_issued(msg, r1, rep1, files.ca)
    before = record_counts(httpd)
    r2, rep2 = scep.send(msg)
    assert checks.assert_issued(msg, r2, rep2, files.ca) == cert
    assert record_counts(httpd) == before, 'a replay was recorded again'
    checks.assert_recorded(httpd, msg.transaction_id, cert)
    assert_still_serving(httpd)


def test_transaction_id_of_another_key(httpd, scep, files, keys):
    """Another key reusing an issued transactionID gets nothing of it."""
    key, thief = keys.take(), keys.take()
    msg = C.pkcsreq(pki.make_csr(key, 'hostile-owner', challenge=CHALLENGE), key, [files.ra_enc])
    checks.assert_issued(msg, *scep.send(msg), files.ca)
    stolen = C.pkcsreq(pki.make_csr(thief, 'hostile-thief', challenge=CHALLENGE), thief,
                       [files.ra_enc], transaction_id=msg.transaction_id)
    before = record_counts(httpd)
    r, rep = scep.send(stolen)
    assert_answer(httpd, stolen, r, rep, Failure(C.BAD_REQUEST, 23, 'another key'))
    assert rep.certs == []
    assert record_counts(httpd) == before


@pytest.mark.parametrize('change', [{'cn': 'hostile-second-csr'},
                                    {'dns': ['evil.example.test']},
                                    {'ku': P.KU_SIGN}],
                         ids=['subject', 'subjectaltname', 'extension'])
def test_transaction_id_with_another_csr(httpd, scep, files, keys, change):
    """The same key reusing its issued transactionID for another CSR gets
    badRequest naming it, never the earlier certificate, and the records do
    not change; the first CSR again, signed anew, gets its certificate."""
    key = keys.take()
    msg = C.pkcsreq(pki.make_csr(key, 'hostile-first-csr', challenge=CHALLENGE), key,
                    [files.ra_enc])
    cert = checks.assert_issued(msg, *scep.send(msg), files.ca)
    kw = dict({'cn': 'hostile-first-csr', 'challenge': CHALLENGE}, **change)
    other = C.pkcsreq(pki.make_csr(key, kw.pop('cn'), **kw), key, [files.ra_enc],
                      transaction_id=msg.transaction_id)
    rows, before = checks.request_rows(httpd, msg.transaction_id), record_counts(httpd)
    r, rep = scep.send(other)
    assert_answer(httpd, other, r, rep,
                  Failure(C.BAD_REQUEST, 23, 'already in use with another certificate request'))
    assert rep.certs == []
    assert record_counts(httpd) == before
    assert checks.request_rows(httpd, msg.transaction_id) == rows
    again = C.pkcsreq(msg.inner, key, [files.ra_enc], transaction_id=msg.transaction_id)
    assert checks.assert_issued(again, *scep.send(again), files.ca) == cert


# ---------------------------------------------------------------------------
# requests a restrictive template refuses

class TestTemplateRefusals:
    SECTION = T.section('Hostile', 'AllowSubject CN', 'AllowSubjectAltName DNS',
                        'MinimumKeySize 2048', 'KeyTypes rsa')

    @pytest.fixture(scope='class')
    def strict(self, httpd):
        with httpd.config(raw_extra=self.SECTION, SCEPSignatureTemplate='Hostile',
                          SCEPEncryptionTemplate='Hostile', SCEPGeneralPurposeTemplate='Hostile'):
            yield httpd

    @pytest.mark.parametrize('csr_kw,text', [
        (dict(subject=pki.name('hostile.example.test', o='Forbidden Org')),
         'subject attribute organizationName'),
        (dict(ips=['192.0.2.1']), 'subjectAltName type IP'),
        (dict(extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)]), 'CA:TRUE'),
    ], ids=['subject-O', 'san-IP', 'basic-constraints-CA'])
    def test_forbidden(self, strict, scep, ctx, csr_kw, text):
        cn = csr_kw.pop('subject', 'hostile.example.test')
        assert_refused_cleanly(strict, scep, ctx.message(ctx.csr(cn, **csr_kw)),
                               Failure(C.BAD_REQUEST, 23, text))

    def test_small_key(self, strict, scep, files):
        key = pki.new_key(1024)
        msg = C.pkcsreq(pki.make_csr(key, 'hostile-small', challenge=CHALLENGE), key,
                        [files.ra_enc])
        assert_refused_cleanly(strict, scep, msg, Failure(C.BAD_REQUEST, 23, '1024'))


# ---------------------------------------------------------------------------
# one-time passwords: wrong, reused, used twice for one key usage

class TestPasswords:
    @pytest.fixture(scope='class')
    def otp(self, httpd, env):
        P.use_config(httpd, A.otp_directives(), A.basic_admin_config(A.make_htpasswd(env)))
        yield httpd
        httpd.restart_with()

    def pkcsreq(self, files, key, challenge, ku):
        csr = pki.make_csr(key, 'hostile-otp.example.test', challenge=challenge, ku=ku)
        return C.pkcsreq(csr, key, [files.ra_enc])

    def test_wrong(self, otp, scep, files, keys):
        password, _ = A.get_password(otp)
        wrong = password[:-1] + ('0' if password[-1] != '0' else '1')
        assert_refused_cleanly(otp, scep, self.pkcsreq(files, keys.any(0), wrong, P.KU_GENERAL),
                               PASSWORD_INVALID, password, wrong)

    def test_reused(self, otp, scep, files, keys):
        password, _ = A.get_password(otp)
        msg = self.pkcsreq(files, keys.take(), password, P.KU_GENERAL)
        checks.assert_issued(msg, *scep.send(msg), files.ca)
        again = self.pkcsreq(files, keys.take(), password, P.KU_GENERAL)
        assert_refused_cleanly(otp, scep, again, PASSWORD_INVALID, password)

    def test_same_key_usage_twice(self, otp, scep, files, keys):
        password, _ = A.get_password(otp)
        msg = self.pkcsreq(files, keys.take(), password, P.KU_SIGN)
        checks.assert_issued(msg, *scep.send(msg), files.ca)
        again = self.pkcsreq(files, keys.take(), password, P.KU_SIGN)
        assert_refused_cleanly(otp, scep, again, PASSWORD_USED_FOR_USAGE, password)

    def test_head_pkioperation_changes_nothing(self, otp, scep, files, keys):
        """HEAD with a PKIOperation message: 405 without reading it, so no
        certificate, no record and the password unspent (the same message by
        GET then enrolls)."""
        password, _ = A.get_password(otp)
        msg = self.pkcsreq(files, keys.take(), password, P.KU_GENERAL)
        before = record_counts(otp)
        r = C.http_request('HEAD', scep.op_url('PKIOperation', C.get_message_encode(msg.der)))
        assert r.status == 405 and r.body == b''
        assert otp.errlog.find(r'SCEP251: HEAD PKIOperation refused', levels=('info',))
        assert record_counts(otp) == before
        assert not checks.request_rows(otp, msg.transaction_id)
        checks.assert_issued(msg, *scep.send(msg, method='GET'), files.ca)

    def test_head_of_the_admin_page_makes_no_password(self, otp):
        """HEAD on the admin page answers its headers without a password: as
        many HEADs as the cache holds leave room for a GET."""
        for _ in range(60):
            r = A.admin_get(otp, method='HEAD')
            assert r.status == 200 and r.body == b'', r.status
        A.get_password(otp)

    def test_replay_with_new_transaction(self, otp, scep, files, keys):
        """The same CSR and password under a new transactionID is no replay:
        the password is spent."""
        password, _ = A.get_password(otp)
        key = keys.take()
        msg = self.pkcsreq(files, key, password, P.KU_GENERAL)
        checks.assert_issued(msg, *scep.send(msg), files.ca)
        again = C.pkcsreq(msg.inner, key, [files.ra_enc])
        assert_refused_cleanly(otp, scep, again, PASSWORD_INVALID, password)


# ---------------------------------------------------------------------------
# what reaches the log

def test_subject_cannot_forge_log_lines(httpd, scep, files, keys):
    """A control character in a requested subject is refused, and repeated
    neither in failInfoText nor in the log (where the signer certificate's
    subject, which carries it too, is escaped)."""
    key = keys.take()
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME,
                                            'evil\nSCEP999: forged line')])
    msg = C.pkcsreq(pki.make_csr(key, subject, challenge=CHALLENGE), key, [files.ra_enc])
    r, rep = scep.send(msg)
    assert_answer(httpd, msg, r, rep,
                  Failure(C.BAD_REQUEST, 23, "the subject's commonName holds a NUL or control "
                                             "character"))
    assert 'SCEP999' not in rep.fail_info_text
    assert not [ln for ln in httpd.errlog.lines() if ln.startswith('SCEP999')]


# ---------------------------------------------------------------------------
# slow senders: mod_reqtimeout, as conf.d/scep.conf sets it up

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LOAD_REQTIMEOUT = ('<IfModule !reqtimeout_module>\n'
                   '    LoadModule reqtimeout_module %s/mod_reqtimeout.so\n'
                   '</IfModule>\n' % MODULES_DIR)


def sample_reqtimeout_line():
    """The RequestReadTimeout line of the drop-in configuration."""
    with open(os.path.join(REPO, 'conf.d', 'scep.conf')) as f:
        lines = [ln.strip() for ln in f if ln.strip().startswith('RequestReadTimeout ')]
    assert len(lines) == 1, 'conf.d/scep.conf: %r' % lines
    return lines[0]


def test_sample_reqtimeout_is_valid(httpd):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.directives,
                                          LOAD_REQTIMEOUT + sample_reqtimeout_line()))
    assert rc == 0, out


class TestSlowSenders:
    """The sample's limits scaled down to 2 seconds, so that the cut-off
    comes quickly: what is tested is that a trickling client is cut off with
    408 and the module logs the PKIOperation it lost, not the numbers. The
    client waits less than the server's Timeout (30 s in the harness), so
    only mod_reqtimeout can answer in time."""

    WAIT = 15

    @pytest.fixture(scope='class')
    def short(self, httpd):
        with httpd.config(raw_extra=LOAD_REQTIMEOUT + 'RequestReadTimeout header=2 body=2\n'):
            yield httpd

    def test_slow_body(self, short):
        before = record_counts(short)
        status, _ = raw_exchange(short, post_head(short, [('Content-Length', '3000')]) +
                                 b'\x30\x82\x0b\xb4' + b'\x00' * 96, timeout=self.WAIT)
        assert status.startswith('HTTP/1.1 408'), status
        expect_line(short, r'SCEP\d{3}: cannot read the PKIOperation body \(NDES event 15\)')
        assert record_counts(short) == before
        assert_still_serving(short)

    def test_slow_headers(self, short):
        status, _ = raw_exchange(short, b'POST /certsrv/mscep/mscep.dll?operation=PKIOperation '
                                        b'HTTP/1.1\r\nHost: localhost\r\n', timeout=self.WAIT)
        # httpd answers 408 or just closes, before the module sees anything
        assert status == '' or status.startswith('HTTP/1.1 408'), status
        assert_still_serving(short)
