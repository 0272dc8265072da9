"""GetNextCACert (RFC 8894 section 4.7): the rollover CA certificate of
SCEPNextCACertificateFile, signed by the current CA (issue 4)."""
import datetime
import hashlib
import os

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

from sceptest import pki
from sceptest import client as C
from sceptest.httpd import make_conf

CT_NEXT_CA = 'application/x-x509-next-ca-cert'


def write_cert(httpd, name, cert):
    path = os.path.join(httpd.env.work, name)
    with open(path, 'wb') as f:
        f.write(pki.cert_pem(cert))
    return path


def new_cert(key, cn, ca):
    # dated back: a check right after it is made may read a clock a second behind
    now = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
    return (x509.CertificateBuilder()
            .subject_name(pki.name(cn, 'mod_scep tests'))
            .issuer_name(pki.name(cn, 'mod_scep tests'))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, pki.hash_algo('sha256')))


@pytest.fixture(scope='module')
def next_ca(keys):
    return new_cert(keys.any(7), 'mod_scep Test CA 2', ca=True)


def verify_signed_by(body, signer):
    """The SignedData's one SignerInfo verifies with signer; returns its eContent."""
    sd = cms.ContentInfo.load(body)['content']
    assert len(sd['signer_infos']) == 1
    si = sd['signer_infos'][0]
    assert si['sid'].chosen['serial_number'].native == signer.serial_number
    content = sd['encap_content_info']['content'].native
    attrs = {a['type'].dotted: a['values'][0] for a in si['signed_attrs']}
    hname = si['digest_algorithm']['algorithm'].native
    assert attrs[C.OID_MESSAGE_DIGEST].native == hashlib.new(hname, content).digest()
    sa_der = C.der_tlv(0x31, si['signed_attrs'].contents)
    signer.public_key().verify(si['signature'].native, sa_der, padding.PKCS1v15(),
                               pki.hash_algo(hname))
    return content


def get_next_ca_cert(httpd):
    return C.http_request('GET', C.Client(httpd.url()).op_url('GetNextCACert'))


def test_next_ca_cert_served_and_advertised(httpd, files, next_ca):
    with httpd.config(('SCEPNextCACertificateFile', write_cert(httpd, 'next-ca.pem', next_ca))):
        caps = C.Client(httpd.url()).get_ca_caps().body.decode().split('\n')
        assert 'GetNextCACert' in caps and 'Renewal' in caps
        r = get_next_ca_cert(httpd)
        assert r.status == 200, 'HTTP %d' % r.status
        assert r.content_type == CT_NEXT_CA
        inner = verify_signed_by(r.body, files.ca)
        assert C.degenerate_certs(inner) == [next_ca]


def test_signed_by_the_ra_without_ca_key(httpd, files, next_ca):
    """An RA in front of an external CA has no CA key: its signing key signs."""
    with httpd.config(('SCEPNextCACertificateFile', write_cert(httpd, 'next-ca.pem', next_ca)),
                      ('SCEPCAKeyFile', None)):
        r = get_next_ca_cert(httpd)
        assert r.status == 200
        assert C.degenerate_certs(verify_signed_by(r.body, files.ra_sign)) == [next_ca]


def test_refused_without_next_ca(httpd):
    assert 'GetNextCACert' not in C.Client(httpd.url()).get_ca_caps().body.decode().split('\n')
    r = get_next_ca_cert(httpd)
    assert r.status == 400
    assert httpd.errlog.find(r'SCEP108: .*GetNextCACert')


def test_not_a_ca_certificate(httpd, keys):
    leaf = new_cert(keys.any(8), 'not a CA', ca=False)
    conf = make_conf(httpd.env, httpd.base_directives +
                     [('SCEPNextCACertificateFile', write_cert(httpd, 'leaf.pem', leaf))])
    rc, out = httpd.config_test(conf)
    assert rc != 0 and 'SCEPNextCACertificateFile' in out and 'not a CA certificate' in out, out


def test_unreadable_file(httpd):
    conf = make_conf(httpd.env, httpd.base_directives +
                     [('SCEPNextCACertificateFile', '/nonexistent/next-ca.pem')])
    rc, out = httpd.config_test(conf)
    assert rc != 0 and 'SCEPNextCACertificateFile' in out and 'next-ca.pem' in out, out
