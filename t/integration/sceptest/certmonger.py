"""certmonger's scep-submit: the PKCSReq it carries comes from an `openssl req` CSR."""
import base64
import os
import re
import subprocess

from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C

SCEP_SUBMIT = '/usr/lib/certmonger/scep-submit'

REQ_CNF = """[req]
prompt = no
distinguished_name = dn
attributes = attrs
req_extensions = ext
[dn]
CN = submit.example.test
O = mod_scep tests
[attrs]
challengePassword = {challenge}
[ext]
subjectAltName = DNS:submit.example.test, DNS:alt.submit.example.test, IP:192.0.2.7
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, serverAuth
"""


def openssl_req(work, key, name, challenge):
    keyf = os.path.join(work, name + '.key')
    with open(keyf, 'wb') as f:
        f.write(pki.key_pem(key))
    os.chmod(keyf, 0o600)
    cnf = os.path.join(work, name + '.cnf')
    with open(cnf, 'w') as f:
        f.write(REQ_CNF.format(challenge=challenge))
    out = os.path.join(work, name + '.csr.der')
    p = subprocess.run(['openssl', 'req', '-new', '-config', cnf, '-key', keyf, '-outform', 'DER',
                        '-out', out, '-sha256'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(out, 'rb') as f:
        return f.read()


def run_scep_submit(httpd, msg_der, name):
    """scep-submit -p with the pkiMessage msg_der (a PKCSReq or CertPoll),
    trusting httpd's RA encryption and CA certificates."""
    work = httpd.env.work
    msgf = os.path.join(work, name + '.p7')
    with open(msgf, 'w') as f:
        f.write(pem('PKCS7', msg_der))
    cmd = [SCEP_SUBMIT, '-u', httpd.url('/cgi-bin/pkiclient.exe'), '-r', httpd.env.p('ra-enc.crt'),
           '-N', httpd.env.p('ca.crt'), '-p', msgf]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def pem(kind, der):
    b = base64.encodebytes(der).decode()
    return '-----BEGIN %s-----\n%s-----END %s-----\n' % (kind, b, kind)


def parse_submit_output(out):
    """scep-submit prints the CertRep (PEM or bare base64)."""
    m = re.search(r'-----BEGIN [A-Z0-9 ]+-----(.*?)-----END', out, re.S)
    text = m.group(1) if m else out
    return base64.b64decode(''.join(text.split()))


def issued_certs(out, msg, ra_sign):
    """The certificates of the reply scep-submit printed for msg (after it
    checked the CertRep's signature and nonces): the whole CertRep, or only
    its pkcsPKIEnvelope, decrypted with the device key."""
    der = parse_submit_output(out)
    ctype = C.cms.ContentInfo.load(der)['content_type'].native
    if ctype == 'signed_data':
        rep = C.parse_certrep(der, ra_sign, msg.key, msg.signer_cert)
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        return rep.certs
    assert ctype == 'enveloped_data', ctype
    return C.degenerate_certs(C.decrypt_envelope(der, msg.key, msg.signer_cert))


def pem_certs(out):
    """The certificates scep-submit -C printed, as DER."""
    blocks = re.findall(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', out, re.S)
    return {pki.cert_der(x509.load_pem_x509_certificate(b.encode())) for b in blocks}
