"""Keys, CSRs and certificates for the tests (python3-cryptography 38)."""
import datetime
import hashlib
import os
import subprocess
import threading

from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OID_CHALLENGE_PASSWORD = ObjectIdentifier('1.2.840.113549.1.9.7')
OID_CERT_REQUEST_AGENT = ObjectIdentifier('1.3.6.1.4.1.311.20.2.1')

_HASHES = {
    'sha1': hashes.SHA1, 'sha224': hashes.SHA224, 'sha256': hashes.SHA256, 'sha384': hashes.SHA384,
    'sha512': hashes.SHA512, 'md5': hashes.MD5,
}


def hash_algo(name):
    return _HASHES[name]()


def _sign_hash(key, name):
    """What cryptography's builders sign with: Ed25519 takes no hash."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hash_algo(name)


def new_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class KeyPool:
    """RSA keys generated once per session and handed out round-robin.

    take() gives a key no other caller got from take() (a fresh one when the
    pool is used up); any() gives some pool key, for tests where reuse is fine.
    """

    def __init__(self, size=8, bits=2048):
        self.bits = bits
        self._keys = [new_key(bits) for _ in range(size)]
        self._next = 0
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            if self._next < len(self._keys):
                k = self._keys[self._next]
                self._next += 1
                return k
        return new_key(self.bits)

    def any(self, i=0):
        return self._keys[i % len(self._keys)]


def key_pem(key, traditional=False):
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def name(cn, o=None, extra=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    for oid, v in (extra or []):
        attrs.append(x509.NameAttribute(oid, v))
    return x509.Name(attrs)


def key_usage(digital_signature=False, key_encipherment=False, content_commitment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False):
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=content_commitment,
                         key_encipherment=key_encipherment, data_encipherment=data_encipherment,
                         key_agreement=key_agreement, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)


def make_csr(key, subject, challenge=None, dns=None, ips=None, ku=None, eku=None,
             digest='sha256', extensions=()):
    """A PKCS#10 request (DER). subject: x509.Name or CN string; ku: x509.KeyUsage;
    eku: list of ObjectIdentifier; dns: list of names for the SAN; extensions:
    more (x509 extension value, critical) pairs."""
    if isinstance(subject, str):
        subject = name(subject)
    b = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans = [x509.DNSName(d) for d in (dns or [])]
    if ips:
        import ipaddress
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for value, critical in extensions:
        b = b.add_extension(value, critical=critical)
    if challenge is not None:
        b = b.add_attribute(OID_CHALLENGE_PASSWORD, challenge.encode())
    csr = b.sign(key, _sign_hash(key, digest))
    return csr.public_bytes(serialization.Encoding.DER)


# DER tags of the strings a raw name may hold, and GeneralName choices
# (context tag numbers) of a raw subjectAltName
UTF8_STRING, PRINTABLE_STRING, T61_STRING, IA5_STRING, BMP_STRING = 0x0c, 0x13, 0x14, 0x16, 0x1e
GN_EMAIL, GN_DNS, GN_URI, GN_IP = 1, 2, 6, 7


def der_tlv(tag, content):
    """A DER TLV (short and long lengths) around content."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, 'big')
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def oid_der(dotted):
    return asn1_core.ObjectIdentifier(dotted).dump()


def make_raw_csr(key, subject=(), san=None, challenge=None, extensions=()):
    """A PKCS#10 request (DER, RSA key, SHA-256) built byte by byte, for
    names the cryptography library refuses or encodes its own way: subject
    is a list of (dotted OID, DER tag, value bytes), one RDN each; san a
    list of (GeneralName tag number, value bytes) with primitive values
    (GN_DNS, GN_IP, ...), [] for an empty subjectAltName, None for none;
    extensions more (x509 extension value, critical) pairs."""
    name = der_tlv(0x30, b''.join(der_tlv(0x31, der_tlv(0x30, oid_der(oid) + der_tlv(tag, value)))
                               for oid, tag, value in subject))
    exts = []
    if san is not None:
        exts.append(der_tlv(0x30, oid_der('2.5.29.17') + der_tlv(0x04, der_tlv(0x30, b''.join(
            der_tlv(0x80 | tag, value) for tag, value in san)))))
    for value, critical in extensions:
        exts.append(der_tlv(0x30, oid_der(value.oid.dotted_string)
                         + (b'\x01\x01\xff' if critical else b'')
                         + der_tlv(0x04, value.public_bytes())))
    attrs = []
    if challenge is not None:
        attrs.append(der_tlv(0x30, oid_der(OID_CHALLENGE_PASSWORD.dotted_string)
                          + der_tlv(0x31, der_tlv(UTF8_STRING, challenge.encode()))))
    if exts:
        attrs.append(der_tlv(0x30, oid_der('1.2.840.113549.1.9.14')
                          + der_tlv(0x31, der_tlv(0x30, b''.join(exts)))))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    info = der_tlv(0x30, b'\x02\x01\x00' + name + spki + der_tlv(0xa0, b''.join(attrs)))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    sha256_rsa = der_tlv(0x30, oid_der('1.2.840.113549.1.1.11') + b'\x05\x00')
    return der_tlv(0x30, info + sha256_rsa + der_tlv(0x03, b'\x00' + signature))


def tamper_csr_signature(csr_der):
    """Flips a bit in the last byte (inside the signature BIT STRING)."""
    b = bytearray(csr_der)
    b[-1] ^= 0x01
    return bytes(b)


def self_signed(key, subject, days=1, digest='sha256'):
    """The throw-away signer certificate a device makes for its PKCSReq."""
    if isinstance(subject, str):
        subject = name(subject)
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, _sign_hash(key, digest)))
    return cert


FILLER_OID = x509.ObjectIdentifier('1.3.6.1.4.1.55555.1')


def filler_cert(key, size):
    """A self-signed certificate padded by an unknown extension of size bytes
    (to make messages of a given size)."""
    now = datetime.datetime.utcnow()
    subject = name('filler')
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(FILLER_OID, b'\0' * size), critical=False)
            .sign(key, hash_algo('sha256')))


def issue(ca_cert, ca_key, key, subject, ku=None, eku=None, days=365, ca=False, not_before=None):
    """A certificate issued by ca_cert/ca_key (for RA certificates with odd usages)."""
    if isinstance(subject, str):
        subject = name(subject)
    now = not_before or datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    b = (x509.CertificateBuilder()
         .subject_name(subject).issuer_name(ca_cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now)
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def load_cert_file(path):
    with open(path, 'rb') as f:
        data = f.read()
    if b'-----BEGIN' in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_key_file(path):
    with open(path, 'rb') as f:
        return serialization.load_pem_private_key(f.read(), None)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def public_der(key_or_cert):
    pub = key_or_cert.public_key() if hasattr(key_or_cert, 'public_key') else key_or_cert
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key_or_cert):
    """What the records tie a transaction to (scep_key_id): SHA-256 of the
    whole DER SubjectPublicKeyInfo, in upper-case hex."""
    return hashlib.sha256(public_der(key_or_cert)).hexdigest().upper()


def key_bits_id(key_or_cert):
    """The key id of records made before schema version 3 (scep_key_bits_id):
    SHA-256 of the subjectPublicKey bits alone."""
    bits = asn1_keys.PublicKeyInfo.load(public_der(key_or_cert))['public_key'].contents[1:]
    return hashlib.sha256(bits).hexdigest().upper()


def with_spki_parameters(cert, key, params_der):
    """cert (self-signed by the RSA key) again with other AlgorithmIdentifier
    parameters around the same key bits (rsaEncryption's NULL replaced by
    params_der, two bytes), signed again: the key bits of the device, but
    not its SubjectPublicKeyInfo."""
    der = cert.public_bytes(serialization.Encoding.DER)
    rsa_null = bytes.fromhex('06092a864886f70d0101010500')
    assert len(params_der) == 2 and der.count(rsa_null) == 1
    tbs = cert.tbs_certificate_bytes.replace(rsa_null, rsa_null[:-2] + params_der)
    sig = key.sign(tbs, padding.PKCS1v15(), cert.signature_hash_algorithm)
    parsed = asn1_x509.Certificate.load(der)
    out = asn1_x509.Certificate({
        'tbs_certificate': asn1_x509.TbsCertificate.load(tbs),
        'signature_algorithm': parsed['signature_algorithm'],
        'signature_value': sig,
    })
    return x509.load_der_x509_certificate(out.dump())


def verify_issued_by(cert, issuer):
    """True when cert's signature verifies with issuer's RSA key and names match."""
    if cert.issuer != issuer.subject:
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   padding.PKCS1v15(), cert.signature_hash_algorithm)
        return True
    except Exception:
        return False


def ext(cert, cls):
    """The value of cert's extension of class cls, None without one. Safe on
    a certificate that other threads read too (a CA checked by concurrent
    enrollments): python3-cryptography 38 (Debian 12) caches extensions
    behind a mutable borrow, so two threads reading one certificate's
    extensions raise "RuntimeError: Already borrowed". A private copy is
    parsed instead."""
    own = x509.load_der_x509_certificate(cert.public_bytes(serialization.Encoding.DER))
    try:
        return own.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def openssl_verify(workdir, ca_pem_path, cert, untrusted=None):
    """Runs `openssl verify` on cert; returns (ok, output)."""
    path = os.path.join(workdir, 'verify-%x.pem' % cert.serial_number)
    with open(path, 'wb') as f:
        f.write(cert_pem(cert))
    cmd = ['openssl', 'verify', '-CAfile', ca_pem_path]
    if untrusted:
        cmd += ['-untrusted', untrusted]
    p = subprocess.run(cmd + [path], capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


# ----------------------------------------------------------------------
# keys of other kinds, and SubjectPublicKeyInfos no honest device sends

def sign_bytes(key, data, digest='sha256', pss=False):
    """data signed by key (RSA PKCS#1 v1.5, or RSASSA-PSS when pss; ECDSA;
    DSA; Ed25519) and the X.509 signature AlgorithmIdentifier, as asn1crypto
    takes it."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data), {'algorithm': 'ed25519'}
    h = hash_algo(digest)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(h)), {'algorithm': digest + '_ecdsa'}
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, h), {'algorithm': digest + '_dsa'}
    if pss:
        params = asn1_algos.RSASSAPSSParams({
            'hash_algorithm': {'algorithm': digest},
            'mask_gen_algorithm': {'algorithm': 'mgf1', 'parameters': {'algorithm': digest}},
            'salt_length': h.digest_size})
        sig = key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        return sig, {'algorithm': 'rsassa_pss', 'parameters': params}
    return key.sign(data, padding.PKCS1v15(), h), {'algorithm': digest + '_rsa'}


def spki_algorithm(cert):
    """The asn1crypto name of a certificate's public key algorithm ('rsa',
    'rsassa_pss', 'ec', ...)."""
    spki = asn1_x509.Certificate.load(cert_der(cert))['tbs_certificate']['subject_public_key_info']
    return spki['algorithm']['algorithm'].native


def fake_modulus(bits):
    """An odd number of exactly bits bits: an RSA modulus nobody has the key of."""
    return int.from_bytes(os.urandom(bits // 8), 'big') | (1 << (bits - 1)) | 1


def rsa_spki(modulus, exponent=65537, algorithm='rsa'):
    """An RSA SubjectPublicKeyInfo (DER): algorithm 'rsa' (rsaEncryption) or
    'rsassa_pss' (RSASSA-PSS, RFC 4055: the key may only sign)."""
    return asn1_keys.PublicKeyInfo({
        'algorithm': {'algorithm': algorithm},
        'public_key': asn1_keys.RSAPublicKey({'modulus': modulus,
                                              'public_exponent': exponent})}).dump()


def _tlv(tag, content):
    n = len(content)
    size = bytes([n]) if n < 0x80 else (
        bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, 'big'))
    return bytes([tag]) + size + content


def ec_explicit_spki(key):
    """key's public point with its curve's parameters written out instead of
    the curve's name (RFC 5480 allows only the name)."""
    curve = {'secp256r1': 'prime256v1'}.get(key.curve.name, key.curve.name)
    params = subprocess.run(['openssl', 'ecparam', '-name', curve, '-param_enc', 'explicit',
                             '-outform', 'DER'], capture_output=True, check=True).stdout
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    oid = asn1_keys.PublicKeyAlgorithmId('ec').dump()
    return _tlv(0x30, _tlv(0x30, oid + params) + _tlv(0x03, b'\x00' + point))


def cert_with_spki(cert, spki, key, digest='sha256', pss=False):
    """cert with the SubjectPublicKeyInfo spki (DER) instead of its own,
    signed again by key."""
    c = asn1_x509.Certificate.load(cert_der(cert))
    tbs = c['tbs_certificate']
    tbs['subject_public_key_info'] = asn1_keys.PublicKeyInfo.load(spki)
    _, alg = sign_bytes(key, b'', digest, pss)   # the AlgorithmIdentifier is signed too
    tbs['signature'] = alg
    sig, _ = sign_bytes(key, tbs.dump(force=True), digest, pss)
    c['signature_algorithm'] = alg
    c['signature_value'] = sig
    return x509.load_der_x509_certificate(c.dump(force=True))


def csr_with_spki(csr_der, spki, key, digest='sha256', pss=False):
    """A CSR (DER) with the SubjectPublicKeyInfo spki (DER) instead of its
    own, signed again by key (which need not be spki's)."""
    c = asn1_csr.CertificationRequest.load(csr_der)
    info = c['certification_request_info']
    info['subject_pk_info'] = asn1_keys.PublicKeyInfo.load(spki)
    sig, alg = sign_bytes(key, info.dump(force=True), digest, pss)
    c['signature_algorithm'] = alg
    c['signature'] = sig
    return c.dump(force=True)


__all__ = ['ExtendedKeyUsageOID', 'NameOID']
