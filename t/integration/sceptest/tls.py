"""A test certification authority for TLS: the certificates of the test
slapd (ldaps://) and of Apache's HTTPS virtual hosts, trusted by the tests'
clients (curl --cacert, Chromium, mod_ldap's LDAPTrustedGlobalCert).

    ca = TestCA(directory)              writes ca.pem
    crt, key = ca.server('apache', dns=['localhost'], ips=['127.0.0.1'])
    crt, key = ca.client('webhook-client')   a client certificate (clientAuth)

Unrelated to the SCEP CA that scepctl makes.
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'mod_scep tests')])


def _write_key(path, key):
    with open(path, 'wb') as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


class TestCA:
    """An ECDSA P-256 CA (quick to make) valid for a few days."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, cn='mod_scep TLS Test CA'):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=7))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                                  crl_sign=True, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, encipher_only=False,
                                                  decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(directory, 'ca.pem')
        with open(self.ca_file, 'wb') as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(self.ca_file, 0o644)

    def server(self, name, dns=('localhost',), ips=('127.0.0.1',), owner=None,
               eku=(ExtendedKeyUsageOID.SERVER_AUTH,)):
        """A TLS server certificate: (cert path, key path) in the CA's
        directory; owner: (uid, gid) that must read the key (slapd's user);
        eku: its extendedKeyUsage (client(): clientAuth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(_name(dns[0] if dns else name)).issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=7))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                             crl_sign=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        crt_path = os.path.join(self.dir, name + '.crt')
        key_path = os.path.join(self.dir, name + '.key')
        with open(crt_path, 'wb') as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        if owner is not None:
            os.chown(key_path, *owner)
        return crt_path, key_path

    def client(self, name):
        """A TLS client certificate (clientAuth): (cert path, key path)."""
        return self.server(name, dns=(name,), ips=(), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
