"""Certificate templates (issue 4): the built-in IPSECIntermediateOffline,
<SCEPTemplate> sections chosen by the CSR's keyUsage as NDES chooses, the
policy check's refusals, and the startup refusal of unknown template names."""
import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU, NameOID

from sceptest import checks, pki
from sceptest import client as C
from sceptest import templates as T
from sceptest.httpd import CHALLENGE, MODULES_DIR, make_conf

KU_SIGN = pki.key_usage(digital_signature=True)                            # 0x80
KU_ENCRYPT = pki.key_usage(key_encipherment=True)                          # 0x20
KU_GENERAL = pki.key_usage(digital_signature=True, key_encipherment=True)  # 0xa0
KU_AGREEMENT = pki.key_usage(key_agreement=True)                           # 0x08

REFUSAL_LINE = r'SCEP26[34]: PKCSReq for transaction %s refused: %s \(NDES event 23\)'


def make_csr(key, subject='device.example.test', sans=(), ku=None, eku=None):
    """A CSR with any subjectAltName entries (x509.GeneralName objects)."""
    if isinstance(subject, str):
        subject = pki.name(subject)
    b = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    b = b.add_attribute(pki.OID_CHALLENGE_PASSWORD, CHALLENGE.encode())
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def template_line(httpd, msg, template, key_usage):
    pattern = r'SCEP262: transaction %s: keyUsage %s, template %s' % (
        msg.transaction_id, key_usage, template)
    assert httpd.errlog.find(pattern), 'no line %r in:\n%s' % (
        pattern, '\n'.join(httpd.errlog.lines()))


def assert_refused(httpd, msg, r, rep, text):
    """FAILURE badRequest whose failInfoText is text, and its log line."""
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == text, rep.fail_info_text
    pattern = REFUSAL_LINE % (msg.transaction_id, re.escape(text))
    httpd.errlog.expect(pattern)
    assert httpd.errlog.find(pattern), 'no line %r in:\n%s' % (
        pattern, '\n'.join(httpd.errlog.lines()))


# --- the built-in template ---------------------------------------------------

def test_builtin_template_is_ipsec_offline(scep, files, keys, httpd):
    """Without configuration every request gets NDES's IPSec (Offline
    request): EKU IP security IKE intermediate and keyUsage digitalSignature
    + keyEncipherment in place of what the CSR asks for, subject and SAN from
    the request, one year."""
    key = keys.take()
    csr = make_csr(key, pki.name('ipsec.example.test', 'mod_scep tests'),
                   sans=[x509.DNSName('ipsec.example.test'),
                         x509.IPAddress(ipaddress.ip_address('192.0.2.44'))],
                   ku=KU_SIGN, eku=[EKU.CLIENT_AUTH])
    msg, r, rep = scep.enroll(csr, key)
    cert = checks.assert_issued(msg, r, rep, files.ca, validity_days=365)
    assert pki.ext(cert, x509.KeyUsage) == KU_GENERAL
    assert list(pki.ext(cert, x509.ExtendedKeyUsage)) == [T.OID_IPSEC_IKE_INTERMEDIATE]
    san = pki.ext(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ['ipsec.example.test']
    template_line(httpd, msg, T.BUILTIN, '0x80')


def test_ec_key_under_the_builtin_template(scep, files, httpd):
    """The built-in template gives an EC key keyAgreement where an RSA key
    gets NDES's keyEncipherment (RFC 5480: no keyEncipherment for EC)."""
    key = ec.generate_private_key(ec.SECP256R1())
    msg, r, rep = scep.enroll(make_csr(key), key)
    checks.assert_issued(msg, r, rep, files.ca,
                         ku=pki.key_usage(digital_signature=True, key_agreement=True))


MISFIT = T.section('Misfit', 'KeyUsage digitalSignature keyEncipherment', 'KeyTypes rsa ec')


@pytest.mark.parametrize('key_type', ['EC', 'RSA'])
def test_usage_the_key_cannot_honour(httpd, scep, keys, key_type):
    """keyEncipherment on an EC key (set by the template) or keyAgreement on
    an RSA key (copied from the request) is refused, naming the usage."""
    if key_type == 'EC':
        key, ku, usage, name = ec.generate_private_key(ec.SECP256R1()), None, \
            'keyEncipherment', 'Misfit'
        conf = dict(raw_extra=MISFIT, SCEPGeneralPurposeTemplate='Misfit')
    else:
        key, ku, usage, name = keys.take(), KU_AGREEMENT, 'keyAgreement', T.PASS_THROUGH
        conf = T.pass_through_config()
    with httpd.config(**conf):
        msg, r, rep = scep.enroll(make_csr(key, ku=ku), key)
        assert_refused(httpd, msg, r, rep,
                       'keyUsage %s cannot be given to a key of type %s, so it is not allowed '
                       'by template %s' % (usage, key_type, name))


# --- templates chosen by keyUsage --------------------------------------------

BY_USAGE = (T.section('DeviceSigning', 'Validity 30', 'KeyUsage digitalSignature',
                      'ExtendedKeyUsage clientAuth')
            + T.section('DeviceEncryption', 'Validity 60', 'KeyUsage keyEncipherment',
                        'ExtendedKeyUsage emailProtection 1.3.6.1.5.5.8.2.2')
            + T.section('DeviceGeneral', 'Validity 90',
                        'KeyUsage digitalSignature keyEncipherment',
                        'ExtendedKeyUsage serverAuth clientAuth'))


@pytest.fixture(scope='module')
def by_usage(httpd):
    with httpd.config(raw_extra=BY_USAGE, SCEPSignatureTemplate='DeviceSigning',
                      SCEPEncryptionTemplate='DeviceEncryption',
                      SCEPGeneralPurposeTemplate='DeviceGeneral'):
        yield httpd


@pytest.mark.parametrize('csr_ku,logged,template,ku,eku,days', [
    (KU_SIGN, '0x80', 'DeviceSigning', KU_SIGN, [EKU.CLIENT_AUTH], 30),
    (KU_ENCRYPT, '0x20', 'DeviceEncryption', KU_ENCRYPT,
     [EKU.EMAIL_PROTECTION, T.OID_IPSEC_IKE_INTERMEDIATE], 60),
    (KU_GENERAL, '0xa0', 'DeviceGeneral', KU_GENERAL, [EKU.SERVER_AUTH, EKU.CLIENT_AUTH], 90),
    # neither bit: read by the two bits alone, so general purpose
    (KU_AGREEMENT, '0x08', 'DeviceGeneral', KU_GENERAL, [EKU.SERVER_AUTH, EKU.CLIENT_AUTH], 90),
    (None, 'none', 'DeviceGeneral', KU_GENERAL, [EKU.SERVER_AUTH, EKU.CLIENT_AUTH], 90),
], ids=['0x80', '0x20', '0xa0', '0x08', 'none'])
def test_template_by_key_usage(by_usage, scep, files, keys, csr_ku, logged, template, ku, eku,
                               days):
    key = keys.take()
    msg, r, rep = scep.enroll(make_csr(key, 'ku-%s.example.test' % logged, ku=csr_ku,
                                       eku=[EKU.CODE_SIGNING]), key)
    checks.assert_issued(msg, r, rep, files.ca, validity_days=days, ku=ku, eku=eku)
    template_line(by_usage, msg, template, logged)
    event39 = by_usage.errlog.find(r'SCEP260: transaction %s: .*template DeviceGeneral '
                                   r'\(NDES event 39\)' % msg.transaction_id,
                                   wait=0 if csr_ku else 2.0, levels=('info', 'notice'))
    assert bool(event39) == (csr_ku is None), event39


# --- refusals ----------------------------------------------------------------

STRICT = (T.section('Strict', 'AllowSubject CN O', 'AllowSubjectAltName DNS IP',
                    'MinimumKeySize 3072', 'MaximumKeySize 3072', 'KeyTypes rsa')
          + T.section('EcOnly', 'KeyTypes ec', 'Curves P-384 P-256 P-192',
                      'MinimumECKeySize 256')
          + T.section('Held', 'Issuance manual'))


@pytest.fixture(scope='module')
def strict(httpd):
    with httpd.config(raw_extra=STRICT, SCEPGeneralPurposeTemplate='Strict',
                      SCEPSignatureTemplate='EcOnly', SCEPEncryptionTemplate='Held'):
        yield httpd


@pytest.fixture(scope='module')
def key3072():
    return pki.new_key(3072)


def test_allowed_request_passes_strict_template(strict, scep, files, key3072):
    """Strict names no usages: the defaults for an RSA key, whatever the
    request asks (test_default_template_grants_safe_usages)."""
    csr = make_csr(key3072, pki.name('ok.example.test', 'mod_scep tests'),
                   sans=[x509.DNSName('ok.example.test')], ku=KU_GENERAL,
                   eku=[EKU.CODE_SIGNING])
    msg, r, rep = scep.enroll(csr, key3072)
    checks.assert_issued(msg, r, rep, files.ca, ku=KU_GENERAL, eku=[EKU.CLIENT_AUTH])


@pytest.mark.parametrize('san,name', [
    (x509.UniformResourceIdentifier('https://device.example.test/'), 'URI'),
    (x509.RFC822Name('device@example.test'), 'EMAIL'),
    (x509.RegisteredID(x509.ObjectIdentifier('1.2.3.4')), 'registeredID'),
], ids=['URI', 'EMAIL', 'RID'])
def test_forbidden_san_type(strict, scep, key3072, san, name):
    csr = make_csr(key3072, sans=[x509.DNSName('device.example.test'), san], ku=KU_GENERAL)
    msg, r, rep = scep.enroll(csr, key3072)
    assert_refused(strict, msg, r, rep,
                   'subjectAltName type %s is not allowed by template Strict' % name)


def test_key_too_small(strict, scep, keys):
    key = keys.take()  # 2048 bits
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_GENERAL), key)
    assert_refused(strict, msg, r, rep,
                   'RSA key of 2048 bits is below the 3072 the template Strict requires')


def test_key_too_large(strict, scep):
    key = pki.new_key(4096)
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_GENERAL), key)
    assert_refused(strict, msg, r, rep,
                   'RSA key of 4096 bits is above the 3072 the template Strict allows')


def ec_enroll(scep, curve):
    """A PKCSReq for the signature template, signed by a new EC key."""
    key = ec.generate_private_key(curve)
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_SIGN), key)
    return key, msg, r, rep


def test_ec_key_on_a_listed_curve_is_issued(strict, scep, files):
    """The reply reaches an EC device by key agreement (RFC 5753), which the
    test client decrypts itself."""
    key, msg, r, rep = ec_enroll(scep, ec.SECP384R1())
    # EcOnly names no usages: an EC key's defaults
    cert = checks.assert_issued(msg, r, rep, files.ca,
                                ku=pki.key_usage(digital_signature=True, key_agreement=True),
                                eku=[EKU.CLIENT_AUTH])
    assert rep.key_transport == 'ecdh', rep.key_transport
    assert pki.public_der(cert) == pki.public_der(key)


def test_ec_curve_not_listed(strict, scep):
    _, msg, r, rep = ec_enroll(scep, ec.SECP521R1())
    assert_refused(strict, msg, r, rep, 'EC curve P-521 is not allowed by template EcOnly')


def test_ec_key_too_small(strict, scep):
    """A listed curve below MinimumECKeySize."""
    _, msg, r, rep = ec_enroll(scep, ec.SECP192R1())
    assert_refused(strict, msg, r, rep,
                   'EC key of 192 bits is below the 256 the template EcOnly requires')


def test_forbidden_key_type(strict, scep, keys):
    key = keys.take()
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_SIGN), key)
    assert_refused(strict, msg, r, rep, 'key type RSA is not allowed by template EcOnly')


def test_forbidden_subject_attribute(strict, scep, key3072):
    subject = pki.name('device.example.test', 'mod_scep tests',
                       [(NameOID.ORGANIZATIONAL_UNIT_NAME, 'Not allowed')])
    msg, r, rep = scep.enroll(make_csr(key3072, subject, ku=KU_GENERAL), key3072)
    assert_refused(strict, msg, r, rep,
                   'subject attribute organizationalUnitName is not allowed by template Strict')


def test_manual_issuance_holds_the_request(strict, scep, keys):
    """Issuance manual: the request waits for a CA manager (test_pending.py
    follows it to the end)."""
    key = keys.take()
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_ENCRYPT), key)
    checks.assert_pending(msg, r, rep)
    (row,) = checks.request_rows(strict, msg.transaction_id)
    assert (row['status'], row['template']) == ('pending', 'Held')


def test_refusal_is_not_recorded_as_issued(strict, scep, keys):
    key = keys.take()
    msg, r, rep = scep.enroll(make_csr(key, ku=KU_SIGN), key)
    assert_refused(strict, msg, r, rep, 'key type RSA is not allowed by template EcOnly')
    assert not [row for row in checks.request_rows(strict, msg.transaction_id)
                if row['status'] == 'issued']


# --- usages and names (issue 11) ---------------------------------------------

KU_CA = pki.key_usage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                      crl_sign=True)  # 0xa6: general purpose


class TestDefaults:
    """General purpose: a template that names no usages; signature (0x80):
    the same with wildcards allowed."""
    SECTIONS = T.section('Defaults') + T.section('Wildcards', 'AllowWildcardDNS On')

    @pytest.fixture(scope='class')
    def usages(self, httpd):
        with httpd.config(raw_extra=self.SECTIONS, SCEPGeneralPurposeTemplate='Defaults',
                          SCEPSignatureTemplate='Wildcards', SCEPEncryptionTemplate='Defaults'):
            yield httpd

    def test_default_template_grants_safe_usages(self, usages, scep, files, keys):
        """A template without KeyUsage/ExtendedKeyUsage: digitalSignature
        keyEncipherment (RSA) and clientAuth, never what the request asks:
        keyCertSign, cRLSign, anyExtendedKeyUsage, OCSPSigning are left out."""
        key = keys.take()
        csr = make_csr(key, 'greedy.example.test', ku=KU_CA,
                       eku=[EKU.ANY_EXTENDED_KEY_USAGE, EKU.OCSP_SIGNING, EKU.CODE_SIGNING])
        msg, r, rep = scep.enroll(csr, key)
        cert = checks.assert_issued(msg, r, rep, files.ca, ku=KU_GENERAL, eku=[EKU.CLIENT_AUTH])
        assert not pki.ext(cert, x509.KeyUsage).key_cert_sign
        assert not pki.ext(cert, x509.BasicConstraints).ca
        template_line(usages, msg, 'Defaults', '0xa6')

    def test_wildcard_needs_template_permission(self, usages, scep, files, keys):
        key = keys.take()
        sans = [x509.DNSName('*.wild.example.test'), x509.DNSName('wild.example.test')]
        msg, r, rep = scep.enroll(make_csr(key, 'wild.example.test', sans=sans, ku=KU_SIGN), key)
        cert = checks.assert_issued(msg, r, rep, files.ca, ku=KU_GENERAL, eku=[EKU.CLIENT_AUTH])
        assert pki.ext(cert, x509.SubjectAlternativeName).get_values_for_type(x509.DNSName) == [
            '*.wild.example.test', 'wild.example.test']
        template_line(usages, msg, 'Wildcards', '0x80')
        key = keys.take()
        msg, r, rep = scep.enroll(make_csr(key, 'wild.example.test', sans=sans), key)
        assert_refused(usages, msg, r, rep,
                       'the subjectAltName\'s dNSName "*.wild.example.test" is a wildcard, '
                       'which the template does not allow (AllowWildcardDNS)')

    def test_issued_names_are_encoded_by_the_ca(self, usages, scep, files, keys):
        """A BMPString commonName comes out as UTF8String, a T61String
        organizationName that fits as PrintableString, the subjectAltName
        built again from its values."""
        key = keys.take()
        csr = pki.make_raw_csr(key, [('2.5.4.3', pki.BMP_STRING,
                                      'caf\xe9.example.test'.encode('utf-16-be')),
                                     ('2.5.4.10', pki.T61_STRING, b'Example Org')],
                               san=[(pki.GN_DNS, b'cafe.example.test'),
                                    (pki.GN_IP, b'\xc0\x00\x02\x07')],
                               challenge=CHALLENGE)
        msg, r, rep = scep.enroll(csr, key)
        cert = checks.assert_issued(msg, r, rep, files.ca, ku=KU_GENERAL, eku=[EKU.CLIENT_AUTH])
        assert [(a.value, a._type) for a in cert.subject] == [
            ('caf\xe9.example.test', x509.name._ASN1Type.UTF8String),
            ('Example Org', x509.name._ASN1Type.PrintableString)]
        san = pki.ext(cert, x509.SubjectAlternativeName)
        assert san.get_values_for_type(x509.DNSName) == ['cafe.example.test']
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address('192.0.2.7')]


class TestFromRequest:
    """KeyUsage and ExtendedKeyUsage FromRequest: the request's usages, but
    those only a template may grant are refused, not dropped."""
    REFUSAL = '%s (template PassThrough copies the request\'s usages)'

    @pytest.fixture(scope='class')
    def pass_through(self, httpd):
        with httpd.config(**T.pass_through_config()):
            yield httpd

    @pytest.mark.parametrize('ku,eku,text', [
        (KU_CA, None, 'the CSR asks for keyUsage keyCertSign or cRLSign, which a certificate '
                      'with basicConstraints CA:FALSE never gets'),
        (KU_GENERAL, [EKU.CLIENT_AUTH, EKU.ANY_EXTENDED_KEY_USAGE],
         'the CSR asks for extendedKeyUsage anyExtendedKeyUsage, which only a template that '
         'names it grants'),
        (None, [EKU.OCSP_SIGNING], 'the CSR asks for extendedKeyUsage OCSPSigning, which only '
                                   'a template that names it grants'),
    ], ids=['keyCertSign', 'anyExtendedKeyUsage', 'OCSPSigning'])
    def test_from_request_refuses_ca_usages(self, pass_through, scep, keys, ku, eku, text):
        key = keys.take()
        msg, r, rep = scep.enroll(make_csr(key, 'greedy.example.test', ku=ku, eku=eku), key)
        assert_refused(pass_through, msg, r, rep, self.REFUSAL % text)

    def test_from_request_copies_other_usages(self, pass_through, scep, files, keys):
        key = keys.take()
        ku = pki.key_usage(data_encipherment=True)  # what RSA can do: RFC 3279
        msg, r, rep = scep.enroll(make_csr(key, 'asis.example.test', ku=ku,
                                           eku=[EKU.CODE_SIGNING, EKU.SERVER_AUTH]), key)
        checks.assert_issued(msg, r, rep, files.ca, ku=T.FROM_REQUEST, eku=T.FROM_REQUEST)


# --- configuration -----------------------------------------------------------

def config_test(httpd, extra, raw_extra=''):
    return httpd.config_test(make_conf(httpd.env, httpd.base_directives + list(extra),
                                       raw_extra))


@pytest.mark.parametrize('directive', ['SCEPSignatureTemplate', 'SCEPEncryptionTemplate',
                                       'SCEPGeneralPurposeTemplate'])
def test_unknown_template_name_refuses_to_start(httpd, directive):
    rc, out = config_test(httpd, [(directive, 'NoSuchTemplate')], T.PASS_THROUGH_SECTION)
    assert rc != 0, out
    assert re.search(r'SCEP050: main server: %s NoSuchTemplate: no <SCEPTemplate '
                     r'NoSuchTemplate> is configured and it is not the built-in '
                     r'IPSECIntermediateOffline \(NDES event 2\)' % directive, out), out


def test_configured_and_builtin_names_start(httpd):
    rc, out = config_test(httpd, [('SCEPSignatureTemplate', T.PASS_THROUGH),
                                  ('SCEPEncryptionTemplate', T.BUILTIN.lower())],
                          T.PASS_THROUGH_SECTION)
    assert rc == 0, out
    assert 'Syntax OK' in out


@pytest.mark.parametrize('body,message', [
    ('Validity 0', r'Validity: .0. is not a number of days between 1 and 36500'),
    ('KeyUsage keyCertSign', r'KeyUsage: unknown value .keyCertSign.'),
    ('KeyUsage FromRequest digitalSignature', r'KeyUsage: .FromRequest. stands alone'),
    ('ExtendedKeyUsage not-an-oid', r'ExtendedKeyUsage: .not-an-oid. is neither a dotted OID'),
    ('AllowSubjectAltName DNS X400', r'AllowSubjectAltName: unknown value .X400.'),
    ('AllowSubject CN NoSuchAttribute', r'AllowSubject: .NoSuchAttribute. is not a subject'),
    ('MinimumKeySize 100', r'MinimumKeySize: .100. is not a number of bits'),
    ('MaximumKeySize 32768', r'MaximumKeySize: .32768. is not a number of bits between 512 '
                             r'and 16384'),
    ('MinimumECKeySize 1024', r'MinimumECKeySize: .1024. is not a number of bits between 160 '
                              r'and 571'),
    ('Curves P-256 P-255', r'Curves: .P-255. is not a named curve OpenSSL knows'),
    ('MinimumKeySize 4096\n    MaximumKeySize 2048',
     r'MinimumKeySize 4096 is above MaximumKeySize 2048'),
    ('KeyTypes dsa', r'KeyTypes: unknown value .dsa.'),
    ('Issuance later', r'Issuance: .later. is neither auto nor manual'),
    ('AllowWildcardDNS maybe', r'AllowWildcardDNS: .maybe. is neither On nor Off'),
    ('SCEPHashAlgorithm SHA256', r'SCEPHashAlgorithm: is not a template directive'),
], ids=lambda v: v.split()[0] if ' ' in v else None)
def test_bad_template_directive_is_a_syntax_error(httpd, body, message):
    rc, out = config_test(httpd, [], T.section('Broken', body))
    assert rc != 0, out
    assert re.search(r'<SCEPTemplate Broken>:? ' + message, out), out


def test_template_defined_twice_is_a_syntax_error(httpd):
    rc, out = config_test(httpd, [], T.section('Twice') + T.section('twice'))
    assert rc != 0, out
    assert 'this template is already defined in this server' in out, out


def test_documented_example_parses(httpd):
    """The commented <SCEPTemplate> example of conf.d/scep.conf, uncommented,
    is a valid configuration (its EnrollGroup with SCEPLDAPURL, which a group
    needs)."""
    with open(httpd.env.repo + '/conf.d/scep.conf') as f:
        text = f.read()
    m = re.search(r'^\s*#(<SCEPTemplate (\w+)>.*?#</SCEPTemplate>)', text, re.S | re.M)
    assert m, 'no <SCEPTemplate> example in conf.d/scep.conf'
    section = re.sub(r'^\s*#', '', m.group(1), flags=re.M)
    ldap = ('SCEPLDAPURL', '"ldap://127.0.0.1:1/ou=people,dc=example,dc=test?uid"')
    rc, out = config_test(httpd, [('SCEPSignatureTemplate', m.group(2)), ldap],
                          'LoadModule ldap_module %s/mod_ldap.so\n' % MODULES_DIR + section)
    assert rc == 0, out
