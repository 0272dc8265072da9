"""Certificate templates in the tests: what the built-in template sets,
and <SCEPTemplate> sections as configuration text."""
from cryptography import x509

from . import pki

# NDES's "IPSec (Offline request)", mod_scep's built-in default template
BUILTIN = 'IPSECIntermediateOffline'
OID_IPSEC_IKE_INTERMEDIATE = x509.ObjectIdentifier('1.3.6.1.5.5.8.2.2')
BUILTIN_KU = pki.key_usage(digital_signature=True, key_encipherment=True)
BUILTIN_EKU = [OID_IPSEC_IKE_INTERMEDIATE]

# the ku/eku expectation "copied from the CSR" (KeyUsage/ExtendedKeyUsage FromRequest)
FROM_REQUEST = 'FromRequest'

# a template that passes keyUsage and EKU from the request: tests of what a
# device asks for being honoured run under it
PASS_THROUGH = 'PassThrough'


def section(name, *lines):
    """<SCEPTemplate name> with the given directive lines."""
    body = ''.join('    %s\n' % ln for ln in lines)
    return '<SCEPTemplate %s>\n%s</SCEPTemplate>\n' % (name, body)


PASS_THROUGH_SECTION = section(PASS_THROUGH, 'KeyUsage FromRequest', 'ExtendedKeyUsage FromRequest')


def pass_through_config():
    """httpd.config() arguments that make every request use PASS_THROUGH."""
    return dict(raw_extra=PASS_THROUGH_SECTION, SCEPSignatureTemplate=PASS_THROUGH,
                SCEPEncryptionTemplate=PASS_THROUGH, SCEPGeneralPurposeTemplate=PASS_THROUGH)
