"""An independent SCEP (RFC 8894) client for the tests.

ASN.1 with asn1crypto, cryptography (38) for RSA, digests and ciphers. It can
build every client pkiMessage (PKCSReq, RenewalReq, CertPoll, GetCert,
GetCRL) with a choice of digest (SHA-1/256/512, MD5), content cipher
(AES-128/192/256-CBC, 3DES-CBC, single DES-CBC), key transport (RSA PKCS#1
v1.5 or RSAES-OAEP), DER or BER (indefinite lengths), and it parses and
checks CertReps: signature with the RA signing certificate, messageDigest,
attributes, and the decrypted degenerate certs-only SignedData.
"""
import base64
import hashlib
import http.client
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import List, Optional

from asn1crypto import algos, cms, core, x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import pki

# ----------------------------------------------------------------------
# OIDs and code tables

OID_MESSAGE_TYPE = '2.16.840.1.113733.1.9.2'
OID_PKI_STATUS = '2.16.840.1.113733.1.9.3'
OID_FAIL_INFO = '2.16.840.1.113733.1.9.4'
OID_SENDER_NONCE = '2.16.840.1.113733.1.9.5'
OID_RECIPIENT_NONCE = '2.16.840.1.113733.1.9.6'
OID_TRANSACTION_ID = '2.16.840.1.113733.1.9.7'
OID_FAIL_INFO_TEXT = '1.3.6.1.5.5.7.24.1'
OID_CONTENT_TYPE = '1.2.840.113549.1.9.3'
OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4'
OID_SIGNING_TIME = '1.2.840.113549.1.9.5'

CERTREP, RENEWALREQ, PKCSREQ, CERTPOLL, GETCERT, GETCRL = 3, 17, 19, 20, 21, 22
SUCCESS, FAILURE, PENDING = 0, 2, 3
FAIL_INFO = {0: 'badAlg', 1: 'badMessageCheck', 2: 'badRequest', 3: 'badTime', 4: 'badCertId'}
BAD_ALG, BAD_MESSAGE_CHECK, BAD_REQUEST, BAD_TIME, BAD_CERT_ID = 0, 1, 2, 3, 4

# name -> (asn1crypto EncryptionAlgorithmId name, key bytes, block bytes)
CIPHERS = {
    'aes128': ('aes128_cbc', 16, 16),
    'aes192': ('aes192_cbc', 24, 16),
    'aes256': ('aes256_cbc', 32, 16),
    'des3': ('tripledes_3key', 24, 8),
    'des': ('des', 8, 8),   # single DES-CBC: done below as 3DES with K1=K2=K3
}
CIPHER_BY_ASN1 = {v[0]: k for k, v in CIPHERS.items()}
DIGESTS = {'sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'md5'}

CT_CA_RA = 'application/x-x509-ca-ra-cert'
CT_CA = 'application/x-x509-ca-cert'
CT_PKI = 'application/x-pki-message'


class SCEPError(Exception):
    pass


# ----------------------------------------------------------------------
# small DER helpers

der_tlv = pki.der_tlv


def read_tlv(data, pos=0):
    """Returns (tag, header_len, content_len or None for indefinite, end)."""
    tag = data[pos]
    if tag & 0x1f == 0x1f:
        raise SCEPError('high tag numbers not supported')
    n = data[pos + 1]
    if n < 0x80:
        return tag, 2, n, pos + 2 + n
    if n == 0x80:
        # indefinite: find the end by walking children
        p = pos + 2
        while data[p:p + 2] != b'\x00\x00':
            p = read_tlv(data, p)[3]
        return tag, 2, None, p + 2
    k = n & 0x7f
    ln = int.from_bytes(data[pos + 2:pos + 2 + k], 'big')
    return tag, 2 + k, ln, pos + 2 + k + ln


def _children(data, start, end):
    out = []
    p = start
    while p < end:
        if data[p:p + 2] == b'\x00\x00':
            break
        t = read_tlv(data, p)
        out.append((p, t[3]))
        p = t[3]
    return out


def to_ber(der, convert, chunk, chunk_size=200, path=()):
    """Re-encodes a DER element: constructed elements for which convert(path)
    is true get indefinite lengths; primitive elements for which chunk(path)
    is true become constructed, indefinite, split in chunk_size pieces (the
    way streaming BER encoders such as BouncyCastle write OCTET STRINGs)."""
    tag, hl, ln, end = read_tlv(der, 0)
    der = der[:end]
    content = der[hl:end] if ln is not None else der[hl:end - 2]
    if tag & 0x20:
        if not convert(path):
            return der
        kids = _children(der, hl, len(der))
        inner = b''.join(to_ber(der[s:e], convert, chunk, chunk_size, path + (i,))
                         for i, (s, e) in enumerate(kids))
        return bytes([tag]) + b'\x80' + inner + b'\x00\x00'
    if chunk(path):
        pieces = [content[i:i + chunk_size] for i in range(0, len(content), chunk_size)] or [b'']
        inner = b''.join(der_tlv(0x04, pc) for pc in pieces)
        return bytes([tag | 0x20]) + b'\x80' + inner + b'\x00\x00'
    return der


def ber_signed_data(der):
    """Indefinite lengths for ContentInfo, SignedData and its direct members,
    the eContent OCTET STRING chunked; certificates and SignerInfos stay DER."""
    return to_ber(der, lambda p: len(p) <= 3 or p == (1, 0, 2, 1),
                  lambda p: p == (1, 0, 2, 1, 0))


def ber_enveloped_data(der):
    """Indefinite lengths for ContentInfo, EnvelopedData and its members, the
    encryptedContent [0] chunked."""
    return to_ber(der, lambda p: len(p) <= 3, lambda p: p == (1, 0, 2, 2))


# ----------------------------------------------------------------------
# symmetric and asymmetric primitives

def _cipher_impl(cname, key):
    if cname.startswith('aes'):
        return algorithms.AES(key)
    if cname == 'des3':
        return algorithms.TripleDES(key)
    if cname == 'des':
        # Single DES: EDE with three equal keys is exactly DES.
        return algorithms.TripleDES(key * 3)
    raise SCEPError('unknown cipher ' + cname)


def sym_encrypt(cname, key, iv, data):
    block = CIPHERS[cname][2]
    p = sympad.PKCS7(block * 8).padder()
    data = p.update(data) + p.finalize()
    e = Cipher(_cipher_impl(cname, key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def sym_decrypt(cname, key, iv, data):
    block = CIPHERS[cname][2]
    d = Cipher(_cipher_impl(cname, key), modes.CBC(iv)).decryptor()
    out = d.update(data) + d.finalize()
    u = sympad.PKCS7(block * 8).unpadder()
    return u.update(out) + u.finalize()


def _oaep(hname='sha1'):
    h = pki.hash_algo(hname)
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=pki.hash_algo(hname), label=None)


def _oaep_alg_id(hname):
    """RSAES-OAEP AlgorithmIdentifier: empty parameters (all defaults: SHA-1,
    MGF1-SHA-1) or hash and MGF1 hash set to hname."""
    if hname == 'sha1':
        params = b'\x30\x00'
    else:
        params = algos.RSAESOAEPParams({
            'hash_algorithm': {'algorithm': hname},
            'mask_gen_algorithm': {'algorithm': 'mgf1', 'parameters': {'algorithm': hname}},
        }).dump()
    oid = core.ObjectIdentifier('1.2.840.113549.1.1.7').dump()
    return cms.KeyEncryptionAlgorithm.load(der_tlv(0x30, oid + params))


def digest(hname, data):
    return hashlib.new(hname, data).digest()


def _ias(cert):
    """IssuerAndSerialNumber of a cryptography certificate."""
    ac = ax509.Certificate.load(pki.cert_der(cert))
    return cms.IssuerAndSerialNumber({'issuer': ac.issuer, 'serial_number': ac.serial_number})


# ----------------------------------------------------------------------
# building client messages

def envelope(data, recipients, cipher='aes128', key_transport='pkcs1', oaep_hash='sha1',
             ber=False):
    """CMS EnvelopedData (ContentInfo DER) of data for each recipient cert."""
    asn1_name, klen, block = CIPHERS[cipher]
    cek = os.urandom(klen)
    iv = os.urandom(block)
    ris = []
    for rc in recipients:
        pub = rc.public_key()
        if key_transport == 'pkcs1':
            ek = pub.encrypt(cek, padding.PKCS1v15())
            kea = {'algorithm': 'rsaes_pkcs1v15'}
        elif key_transport == 'oaep':
            ek = pub.encrypt(cek, _oaep(oaep_hash))
            kea = _oaep_alg_id(oaep_hash)
        else:
            raise SCEPError('unknown key transport ' + key_transport)
        ris.append(cms.RecipientInfo(name='ktri', value=cms.KeyTransRecipientInfo({
            'version': 'v0',
            'rid': cms.RecipientIdentifier(name='issuer_and_serial_number', value=_ias(rc)),
            'key_encryption_algorithm': kea,
            'encrypted_key': ek,
        })))
    env = cms.EnvelopedData({
        'version': 'v0',
        'recipient_infos': ris,
        'encrypted_content_info': {
            'content_type': 'data',
            'content_encryption_algorithm': {'algorithm': asn1_name,
                                             'parameters': core.OctetString(iv)},
            'encrypted_content': sym_encrypt(cipher, cek, iv, data),
        },
    })
    der = cms.ContentInfo({'content_type': 'enveloped_data', 'content': env}).dump()
    return ber_enveloped_data(der) if ber else der


def _attr(oid, value):
    return cms.CMSAttribute({'type': oid, 'values': [value]})


def signed_data(content, key, cert, attrs, digest_name='sha256', signing_time=True,
                extra_certs=(), ber=False, tamper_signature=False, content_present=True,
                message_digest=None):
    """CMS SignedData (ContentInfo DER) over content (id-data) with the SCEP
    attributes attrs [(oid, asn1 value)], signed by key, cert included."""
    md = message_digest if message_digest is not None else digest(digest_name, content)
    sattrs = [_attr(OID_CONTENT_TYPE, cms.ContentType('data')),
              _attr(OID_MESSAGE_DIGEST, core.OctetString(md))]
    if signing_time:
        import datetime
        sattrs.append(_attr(OID_SIGNING_TIME, cms.Time(
            name='utc_time', value=datetime.datetime.now(datetime.timezone.utc))))
    sattrs += [_attr(o, v) for o, v in attrs]
    sa = cms.CMSAttributes(sattrs)
    to_sign = sa.dump()          # SET OF, DER (asn1crypto sorts SET OF members)
    sig, sig_alg = pki.sign_bytes(key, to_sign, digest_name,
                                  pss=pki.spki_algorithm(cert) == 'rsassa_pss')
    if sig_alg['algorithm'].endswith('_rsa'):
        sig_alg = {'algorithm': 'rsassa_pkcs1v15'}
    if tamper_signature:
        sig = bytes([sig[0] ^ 0x01]) + sig[1:]
    si = cms.SignerInfo({
        'version': 'v1',
        'sid': cms.SignerIdentifier(name='issuer_and_serial_number', value=_ias(cert)),
        'digest_algorithm': {'algorithm': digest_name},
        'signed_attrs': cms.CMSAttributes.load(to_sign),
        'signature_algorithm': sig_alg,
        'signature': sig,
    })
    certs = [ax509.Certificate.load(pki.cert_der(c)) for c in (cert,) + tuple(extra_certs)]
    encap = {'content_type': 'data'}
    if content_present:
        encap['content'] = content
    sd = cms.SignedData({
        'version': 'v1',
        'digest_algorithms': [{'algorithm': digest_name}],
        'encap_content_info': encap,
        'certificates': certs,
        'signer_infos': [si],
    })
    der = cms.ContentInfo({'content_type': 'signed_data', 'content': sd}).dump()
    return ber_signed_data(der) if ber else der


@dataclass
class PkiMessage:
    der: bytes
    message_type: int
    transaction_id: str
    sender_nonce: bytes
    key: object                # the device key (decrypts the reply)
    signer_cert: object        # the certificate that signed (reply is enveloped to it)
    digest: str
    cipher: str
    key_transport: str
    inner: bytes = b''         # the messageData (CSR DER etc.)


def new_transaction_id():
    return os.urandom(16).hex().upper()


def pki_message(message_data, message_type, key, recipients, signer_cert=None, subject=None,
                digest_name='sha256', cipher='aes128', key_transport='pkcs1', oaep_hash='sha1',
                transaction_id=None, sender_nonce=None, ber=False, signing_time=True,
                tamper_signature=False, envelope_der=None, extra_attrs=(), omit_attrs=(),
                message_type_value=None, extra_certs=()):
    """Any client pkiMessage. recipients: RA encryption cert(s). The signer is
    signer_cert (with key) or a fresh self-signed certificate of key;
    extra_certs: more certificates in the SignedData after the signer's."""
    if signer_cert is None:
        signer_cert = pki.self_signed(key, subject or 'scep test device')
    txid = transaction_id or new_transaction_id()
    nonce = os.urandom(16) if sender_nonce is None else sender_nonce
    env = envelope_der if envelope_der is not None else envelope(
        message_data, recipients, cipher, key_transport, oaep_hash, ber)
    mt = core.PrintableString(str(message_type) if message_type_value is None
                              else message_type_value)
    attrs = [(OID_MESSAGE_TYPE, mt),
             (OID_TRANSACTION_ID, core.PrintableString(txid)),
             (OID_SENDER_NONCE, core.OctetString(nonce))]
    attrs = [a for a in attrs if a[0] not in omit_attrs] + list(extra_attrs)
    der = signed_data(env, key, signer_cert, attrs, digest_name, signing_time, ber=ber,
                      tamper_signature=tamper_signature, extra_certs=extra_certs)
    return PkiMessage(der, message_type, txid, nonce, key, signer_cert, digest_name, cipher,
                      key_transport, message_data)


def pkcsreq(csr_der, key, recipients, **kw):
    """A PKCSReq. The self-signed signer carries the CSR's subject."""
    csr = x509.load_der_x509_csr(csr_der)
    kw.setdefault('subject', csr.subject)
    if not isinstance(recipients, (list, tuple)):
        recipients = [recipients]
    return pki_message(csr_der, kw.pop('message_type', PKCSREQ), key, recipients, **kw)


def sized_pkcsreq(csr_der, key, recipients, size):
    """A PKCSReq of exactly size bytes: its SignedData carries, after the
    signer's certificate, a filler certificate padded to the size."""
    signer = pki.self_signed(key, x509.load_der_x509_csr(csr_der).subject)
    pad = max(size - 3000, 0)
    for _ in range(8):
        msg = pkcsreq(csr_der, key, recipients, signer_cert=signer,
                      extra_certs=[pki.filler_cert(key, pad)])
        if len(msg.der) == size:
            return msg
        pad += size - len(msg.der)
    raise SCEPError('no PKCSReq of %d bytes (last %d)' % (size, len(msg.der)))


def issuer_and_serial(issuer_name, serial):
    return cms.IssuerAndSerialNumber({
        'issuer': ax509.Name.load(issuer_name.public_bytes()),
        'serial_number': serial}).dump()


def issuer_and_subject(issuer_name, subject_name):
    class IssuerAndSubject(core.Sequence):
        _fields = [('issuer', ax509.Name), ('subject', ax509.Name)]
    return IssuerAndSubject({'issuer': ax509.Name.load(issuer_name.public_bytes()),
                             'subject': ax509.Name.load(subject_name.public_bytes())}).dump()


# ----------------------------------------------------------------------
# parsing replies

@dataclass
class CertRep:
    raw: bytes
    message_type: Optional[int] = None
    pki_status: Optional[int] = None
    fail_info: Optional[int] = None
    fail_info_text: Optional[str] = None
    sender_nonce: Optional[bytes] = None
    recipient_nonce: Optional[bytes] = None
    transaction_id: Optional[str] = None
    digest_algorithm: Optional[str] = None
    signer_issuer_serial: Optional[tuple] = None
    signature_ok: bool = False
    message_digest_ok: bool = False
    signed_attrs_sorted: bool = False
    attr_types: dict = field(default_factory=dict)   # oid -> (universal tag, value count)
    cipher: Optional[str] = None                      # of the reply envelope
    key_transport: Optional[str] = None
    envelope_recipients: int = 0
    certs: List[object] = field(default_factory=list)  # cryptography certificates, in order
    crls: List[bytes] = field(default_factory=list)
    sd_certs: List[object] = field(default_factory=list)  # certs in the outer SignedData
    econtent_present: bool = False

    @property
    def status_name(self):
        return {SUCCESS: 'SUCCESS', FAILURE: 'FAILURE', PENDING: 'PENDING'}.get(
            self.pki_status, str(self.pki_status))

    @property
    def fail_name(self):
        return FAIL_INFO.get(self.fail_info, str(self.fail_info))

    def __str__(self):
        s = 'CertRep(status=%s' % self.status_name
        if self.fail_info is not None:
            s += ', failInfo=%s, text=%r' % (self.fail_name, self.fail_info_text)
        return s + ', txid=%s, certs=%d)' % (self.transaction_id, len(self.certs))


def _attr_value(attr):
    vals = attr['values']
    raw = vals[0].dump()
    return raw[0], raw, len(vals)


def _printable(raw):
    if raw[0] != 0x13:
        raise SCEPError('expected PrintableString, tag 0x%02x' % raw[0])
    return core.PrintableString.load(raw).native


def parse_certrep(der, verify_cert, key=None, decrypt_cert=None):
    """Parses a CertRep, verifying its signature with verify_cert (the RA
    signing certificate) and, when key is given, decrypting the SUCCESS
    payload (reply enveloped to decrypt_cert, the request's signer)."""
    rep = CertRep(raw=der)
    ci = cms.ContentInfo.load(der)
    if ci['content_type'].native != 'signed_data':
        raise SCEPError('CertRep is not SignedData: %s' % ci['content_type'].native)
    sd = ci['content']
    rep.sd_certs = [x509.load_der_x509_certificate(c.chosen.dump())
                    for c in (sd['certificates'] or []) if c.name == 'certificate']
    sis = sd['signer_infos']
    if len(sis) != 1:
        raise SCEPError('CertRep has %d SignerInfos' % len(sis))
    si = sis[0]
    sid = si['sid']
    if sid.name == 'issuer_and_serial_number':
        rep.signer_issuer_serial = (sid.chosen['issuer'].dump(), sid.chosen['serial_number'].native)
    rep.digest_algorithm = si['digest_algorithm']['algorithm'].native
    encap = sd['encap_content_info']
    content = b''
    if encap['content'].native is not None:
        rep.econtent_present = True
        content = encap['content'].native
        if isinstance(content, core.Asn1Value):
            content = content.dump()
    # signed attributes
    sa = si['signed_attrs']
    sa_der = der_tlv(0x31, sa.contents)
    rep.signed_attrs_sorted = (cms.CMSAttributes.load(sa_der).copy().dump(force=True) == sa_der)
    attrs = {}
    for a in sa:
        oid = a['type'].dotted
        tag, raw, count = _attr_value(a)
        rep.attr_types[oid] = (tag, count)
        attrs[oid] = raw
    if OID_MESSAGE_TYPE in attrs:
        rep.message_type = int(_printable(attrs[OID_MESSAGE_TYPE]))
    if OID_PKI_STATUS in attrs:
        rep.pki_status = int(_printable(attrs[OID_PKI_STATUS]))
    if OID_FAIL_INFO in attrs:
        rep.fail_info = int(_printable(attrs[OID_FAIL_INFO]))
    if OID_FAIL_INFO_TEXT in attrs:
        raw = attrs[OID_FAIL_INFO_TEXT]
        if raw[0] != 0x0c:
            raise SCEPError('failInfoText is not a UTF8String (tag 0x%02x)' % raw[0])
        rep.fail_info_text = core.UTF8String.load(raw).native
    if OID_SENDER_NONCE in attrs:
        rep.sender_nonce = core.OctetString.load(attrs[OID_SENDER_NONCE]).native
    if OID_RECIPIENT_NONCE in attrs:
        rep.recipient_nonce = core.OctetString.load(attrs[OID_RECIPIENT_NONCE]).native
    if OID_TRANSACTION_ID in attrs:
        rep.transaction_id = _printable(attrs[OID_TRANSACTION_ID])
    if OID_MESSAGE_DIGEST in attrs:
        md = core.OctetString.load(attrs[OID_MESSAGE_DIGEST]).native
        rep.message_digest_ok = (md == digest(rep.digest_algorithm, content))
    # signature
    if verify_cert is not None:
        try:
            verify_cert.public_key().verify(si['signature'].native, sa_der, padding.PKCS1v15(),
                                            pki.hash_algo(rep.digest_algorithm))
            rep.signature_ok = True
        except Exception:
            rep.signature_ok = False
    # payload
    if rep.pki_status == SUCCESS and key is not None and rep.econtent_present:
        inner = decrypt_envelope(content, key, decrypt_cert, rep)
        ici = cms.ContentInfo.load(inner)
        if ici['content_type'].native != 'signed_data':
            raise SCEPError('CertRep payload is not SignedData')
        isd = ici['content']
        if len(isd['signer_infos']) != 0:
            raise SCEPError('CertRep payload is not degenerate (has SignerInfos)')
        for c in (isd['certificates'] or []):
            rep.certs.append(x509.load_der_x509_certificate(c.chosen.dump()))
        for c in (isd['crls'] or []):
            rep.crls.append(c.chosen.dump())
    return rep


def degenerate_certs(der):
    """The certificates of a degenerate certs-only SignedData, in order."""
    ci = cms.ContentInfo.load(der)
    if ci['content_type'].native != 'signed_data':
        raise SCEPError('not SignedData: %s' % ci['content_type'].native)
    sd = ci['content']
    if len(sd['signer_infos']) != 0:
        raise SCEPError('SignedData is not degenerate (has SignerInfos)')
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in (sd['certificates'] or [])]


def decrypt_envelope(der, key, cert=None, rep=None):
    ci = cms.ContentInfo.load(der)
    if ci['content_type'].native != 'enveloped_data':
        raise SCEPError('not EnvelopedData: %s' % ci['content_type'].native)
    env = ci['content']
    eci = env['encrypted_content_info']
    calg = eci['content_encryption_algorithm']['algorithm'].native
    cname = CIPHER_BY_ASN1.get(calg)
    if cname is None:
        raise SCEPError('reply cipher %s unknown' % calg)
    iv = eci['content_encryption_algorithm']['parameters'].native
    cek = None
    want = _ias(cert).dump() if cert is not None else None
    ris = env['recipient_infos']
    if rep is not None:
        rep.cipher = cname
        rep.envelope_recipients = len(ris)
    for ri in ris:
        if ri.name == 'kari':
            cek = _kari_cek(ri.chosen, key, want)
            if cek is not None:
                if rep is not None:
                    rep.key_transport = 'ecdh'
                break
        if ri.name != 'ktri':
            continue
        kt = ri.chosen
        if want is not None and kt['rid'].chosen.dump() != want:
            continue
        kalg = kt['key_encryption_algorithm']['algorithm'].native
        try:
            if kalg in ('rsaes_pkcs1v15', 'rsa'):
                cek = key.decrypt(kt['encrypted_key'].native, padding.PKCS1v15())
                kt_name = 'pkcs1'
            elif kalg == 'rsaes_oaep':
                params = kt['key_encryption_algorithm']['parameters']
                h = params['hash_algorithm']['algorithm'].native if params else 'sha1'
                cek = key.decrypt(kt['encrypted_key'].native, _oaep(h))
                kt_name = 'oaep'
            else:
                raise SCEPError('reply key transport %s unknown' % kalg)
        except ValueError:
            continue
        if rep is not None:
            rep.key_transport = kt_name
        break
    if cek is None:
        raise SCEPError('no RecipientInfo of the reply envelope could be decrypted')
    return sym_decrypt(cname, cek, iv, _encrypted_content(eci))


# RFC 5753 dhSinglePass-stdDH-*kdf-scheme: the KDF's hash
_ECDH_KDF_HASHES = {'1.3.133.16.840.63.0.2': 'sha1', '1.3.132.1.11.0': 'sha224',
                    '1.3.132.1.11.1': 'sha256', '1.3.132.1.11.2': 'sha384',
                    '1.3.132.1.11.3': 'sha512'}


def _kari_cek(kari, key, want):
    """The content-encryption key of a KeyAgreeRecipientInfo (RFC 5753: an
    EC reply: ephemeral-static ECDH, ANSI X9.63 KDF, AES key wrap) for the EC
    key; None when it is not for this key (want: the recipient's
    IssuerAndSerialNumber DER, or None)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    rek = [k for k in kari['recipient_encrypted_keys']
           if want is None or k['rid'].chosen.dump() == want]
    if not rek or kari['originator'].name != 'originator_key':
        return None
    kea = kari['key_encryption_algorithm']
    kdf_hash = _ECDH_KDF_HASHES[kea['algorithm'].dotted]
    wrap = kea['parameters'].dump()          # the KeyWrapAlgorithm AlgorithmIdentifier
    wrap_oid = cms.KeyEncryptionAlgorithm.load(wrap)['algorithm'].native
    klen = {'aes128_wrap': 16, 'aes192_wrap': 24, 'aes256_wrap': 32}[wrap_oid]
    point = kari['originator'].chosen['public_key'].native
    z = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point))
    shared_info = wrap
    if kari['ukm'].native is not None:
        shared_info += der_tlv(0xa0, core.OctetString(kari['ukm'].native).dump())
    shared_info += der_tlv(0xa2, core.OctetString((klen * 8).to_bytes(4, 'big')).dump())
    kek = X963KDF(pki.hash_algo(kdf_hash), klen, der_tlv(0x30, shared_info)).derive(z)
    return aes_key_unwrap(kek, rek[0]['encrypted_key'].native)


def _octets(data, start, end):
    """The value of a (possibly constructed, BER) OCTET STRING element."""
    tag, hl, ln, e = read_tlv(data, start)
    if not tag & 0x20:
        return data[start + hl:e]
    return b''.join(_octets(data, s, ee) for s, ee in _children(data, start + hl, e))


def _encrypted_content(eci):
    """encryptedContent [0] IMPLICIT OCTET STRING, primitive or constructed."""
    raw = eci.dump()
    tag, hl, ln, end = read_tlv(raw, 0)
    kids = _children(raw, hl, end)
    if len(kids) < 3:
        raise SCEPError('EncryptedContentInfo without encryptedContent')
    return _octets(raw, kids[2][0], kids[2][1])


# ----------------------------------------------------------------------
# GetCACert

@dataclass
class CACerts:
    content_type: str
    certs: list
    ca: object = None
    ra_sign: object = None
    ra_enc: object = None


def _ku(cert):
    return pki.ext(cert, x509.KeyUsage)


def _is_ca(cert):
    bc = pki.ext(cert, x509.BasicConstraints)
    ku = _ku(cert)
    return bool(bc and bc.ca and (ku is None or ku.key_cert_sign))


def parse_getcacert(content_type, body):
    ctype = (content_type or '').split(';')[0].strip().lower()
    if ctype == CT_CA:
        cert = x509.load_der_x509_certificate(body)
        return CACerts(ctype, [cert], cert, cert, cert)
    if ctype != CT_CA_RA:
        raise SCEPError('GetCACert content type %r' % content_type)
    ci = cms.ContentInfo.load(body)
    sd = ci['content']
    if len(sd['signer_infos']) != 0:
        raise SCEPError('GetCACert SignedData is not degenerate')
    certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in sd['certificates']]
    res = CACerts(ctype, certs)
    for c in certs:
        ku = _ku(c)
        if _is_ca(c):
            # the issuing CA is the one that issued the RA certs: decided below
            continue
        if ku is not None and ku.key_encipherment and res.ra_enc is None:
            res.ra_enc = c
        if ku is not None and ku.digital_signature and res.ra_sign is None:
            res.ra_sign = c
    for c in certs:
        if _is_ca(c) and res.ra_sign is not None and c.subject == res.ra_sign.issuer:
            res.ca = c
    if res.ca is None:
        cas = [c for c in certs if _is_ca(c)]
        res.ca = cas[0] if cas else None
    return res


# ----------------------------------------------------------------------
# HTTP

@dataclass
class HttpResult:
    status: int
    headers: dict
    body: bytes

    @property
    def content_type(self):
        return self.headers.get('content-type', '')


def http_request(method, url, body=None, headers=None, chunked=False, timeout=60):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path + ('?' + u.query if u.query else '')
    hdrs = dict(headers or {})
    try:
        if chunked and body is not None:
            data = body
            pieces = [data[i:i + 512] for i in range(0, len(data), 512)]
            conn.request(method, path, body=iter(pieces), headers=hdrs, encode_chunked=True)
        else:
            if body is not None:
                hdrs.setdefault('Content-Length', str(len(body)))
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413) before reading the body
        r = conn.getresponse()
        return HttpResult(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def get_message_encode(der, style='standard'):
    """The `message` value of a GET PKIOperation, the way various clients write it."""
    b64 = base64.b64encode(der).decode()
    if style == 'standard':        # RFC 8894: base64, then URI-escaped
        return urllib.parse.quote(b64, safe='')
    if style == 'raw_plus':        # '+' left raw, the rest escaped
        return b64.replace('/', '%2F').replace('=', '%3D')
    if style == 'only_eq':         # only '=' escaped, '+' and '/' raw (macOS)
        return b64.replace('=', '%3D')
    if style == 'plus_as_space':   # what a form-decoder makes of a raw '+'
        return b64.replace('+', '%20').replace('=', '%3D').replace('/', '%2F')
    if style == 'newlines':        # sscep: OpenSSL BIO base64 with a line break every 64 chars
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        return '%0A'.join(urllib.parse.quote(x, safe='') for x in lines) + '%0A'
    if style == 'escape_all':      # every character percent-escaped: the longest URL
        return ''.join('%%%02X' % ord(ch) for ch in b64)
    if style == 'base64url':
        return base64.urlsafe_b64encode(der).decode().rstrip('=')
    if style == 'base64url_padded':
        return base64.urlsafe_b64encode(der).decode().replace('=', '%3D')
    raise SCEPError('unknown GET encoding ' + style)


class Client:
    """SCEP over HTTP to one URL, e.g. http://127.0.0.1:18080/certsrv/mscep/mscep.dll"""

    def __init__(self, url):
        self.url = url
        self._ca = None

    def op_url(self, operation, message=None):
        q = {}
        if operation is not None:
            q['operation'] = operation
        u = self.url + ('?' + urllib.parse.urlencode(q) if q else '')
        if message is not None:
            u += ('&' if q else '?') + 'message=' + message
        return u

    def get_ca_caps(self, message=None):
        return http_request('GET', self.op_url('GetCACaps', message))

    def get_ca_cert_raw(self, message=None):
        return http_request('GET', self.op_url('GetCACert', message))

    def get_ca_cert(self, message=None):
        r = self.get_ca_cert_raw(message)
        if r.status != 200:
            raise SCEPError('GetCACert: HTTP %d' % r.status)
        self._ca = parse_getcacert(r.content_type, r.body)
        return self._ca

    @property
    def ca(self):
        return self._ca or self.get_ca_cert()

    def post(self, der, content_type=CT_PKI, chunked=False, operation='PKIOperation'):
        hdrs = {}
        if content_type is not None:
            hdrs['Content-Type'] = content_type
        return http_request('POST', self.op_url(operation), body=der, headers=hdrs, chunked=chunked)

    def get(self, der, style='standard', operation='PKIOperation'):
        return http_request('GET', self.op_url(operation, get_message_encode(der, style)))

    def send(self, msg, method='POST', **kw):
        """Sends msg (PkiMessage), returns (HttpResult, CertRep or None)."""
        if method == 'POST':
            r = self.post(msg.der, **kw)
        else:
            r = self.get(msg.der, **kw)
        rep = None
        if r.status == 200 and r.content_type.split(';')[0].strip() == CT_PKI:
            rep = parse_certrep(r.body, self.ca.ra_sign, msg.key, msg.signer_cert)
        return r, rep

    def enroll(self, csr_der, key, method='POST', **kw):
        send_kw = {k: kw.pop(k) for k in ('style', 'chunked', 'content_type') if k in kw}
        msg = pkcsreq(csr_der, key, [self.ca.ra_enc], **kw)
        r, rep = self.send(msg, method, **send_kw)
        return msg, r, rep


def check_reply(msg, rep):
    """The checks every CertRep must pass; returns a list of problems."""
    probs = []
    if not rep.signature_ok:
        probs.append('CertRep signature does not verify with the RA signing certificate')
    if not rep.message_digest_ok:
        probs.append('messageDigest does not match the content')
    if not rep.signed_attrs_sorted:
        probs.append('signed attributes are not DER-sorted')
    if rep.message_type != CERTREP:
        probs.append('messageType %r, expected 3' % rep.message_type)
    if rep.transaction_id != msg.transaction_id:
        probs.append('transactionID %r, expected %r' % (rep.transaction_id, msg.transaction_id))
    if rep.recipient_nonce != msg.sender_nonce:
        probs.append('recipientNonce does not echo the senderNonce')
    if rep.sender_nonce is None or len(rep.sender_nonce) != 16:
        probs.append('senderNonce missing or not 16 bytes')
    elif rep.sender_nonce == msg.sender_nonce:
        probs.append('senderNonce is not fresh (copy of the request nonce)')
    refused_md5 = (msg.digest == 'md5' and rep.pki_status == FAILURE and rep.fail_info == BAD_ALG
                   and rep.digest_algorithm in ('sha1', 'sha256', 'sha512'))
    if rep.digest_algorithm != msg.digest and not refused_md5:
        probs.append('CertRep digest %s, request used %s' % (rep.digest_algorithm, msg.digest))
    for oid, name in ((OID_MESSAGE_TYPE, 'messageType'), (OID_PKI_STATUS, 'pkiStatus'),
                      (OID_TRANSACTION_ID, 'transactionID')):
        if oid in rep.attr_types and rep.attr_types[oid] != (0x13, 1):
            probs.append('%s is not a single PrintableString: %r' % (name, rep.attr_types[oid]))
    if rep.pki_status == FAILURE:
        if rep.fail_info is None:
            probs.append('FAILURE without failInfo')
        if rep.fail_info_text is None:
            probs.append('FAILURE without failInfoText (1.3.6.1.5.5.7.24.1)')
    elif rep.fail_info is not None:
        probs.append('failInfo present on %s' % rep.status_name)
    if rep.pki_status == SUCCESS:
        if rep.cipher != msg.cipher:
            probs.append('reply cipher %s, request used %s' % (rep.cipher, msg.cipher))
        if msg.message_type == GETCRL:
            if len(rep.crls) != 1:
                probs.append('GetCRL SUCCESS with %d CRLs' % len(rep.crls))
        elif not rep.certs:
            probs.append('SUCCESS without certificates')
    return probs
