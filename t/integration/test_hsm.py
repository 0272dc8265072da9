"""CA and RA keys in a PKCS#11 token (issue 16): SoftHSM2 (Debian softhsm2)
with a token of this file's own (SOFTHSM2_CONF under the server root), the
keys made in it by `scepctl setup --pkcs11-module ... --ca-key pkcs11:...
--ra-key-prefix pkcs11:...`, used by Apache through OpenSSL's pkcs11 engine
(SCEPCAKeyFile and SCEPRACertificate as pkcs11: URIs, SCEPPKCS11Module,
SCEPPKCS11PINFile). Enrollment by this suite's client, certmonger's
scep-submit and micromdm's scepclient, renewal, GetCRL, a graceful restart,
many requests at once over every child (run under SCEP_MPM=event and
prefork: the parent loads the keys, its children sign after the fork);
refusals to start (wrong PIN, missing object, a PIN in the URI, no module,
a PIN file open to others) with a clear line, and the PIN in no log."""
import concurrent.futures
import glob
import os
import re

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C
from sceptest import hsm as H
from sceptest.certmonger import issued_certs, openssl_req, run_scep_submit
from sceptest.httpd import CHALLENGE, Apache, Env, make_conf
from test_enroll_clients import LEGACY_START, run_scepclient

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

pytestmark = pytest.mark.skipif(not H.available(), reason='softhsm2 is not installed')


@pytest.fixture(scope='module')
def hsm_env():
    env = Env(REPO, name='hsm', port_base=19100)
    if not env.built():
        pytest.fail('mod_scep is not built', pytrace=False)
    env.clean()
    env.hsm = H.SoftHSM(os.path.join(env.gen, 'softhsm'), fresh=True)
    env.hsm.init_token()
    env.setup_out = env.hsm.setup_pki(env)
    env.hsm.give_to_children(env)
    return env


@pytest.fixture(scope='module')
def httpd(hsm_env):
    """Overrides the suite's server in this file (and so its error-log check)."""
    a = Apache(hsm_env)
    a.extra_env = hsm_env.hsm.environ()
    a.base_directives = hsm_env.hsm.directives(hsm_env)
    a.directives = list(a.base_directives)
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def files(hsm_env):
    class F:
        ca = pki.load_cert_file(hsm_env.p('ca.crt'))
        ra_sign = pki.load_cert_file(hsm_env.p('ra-sign.crt'))
        ra_enc = pki.load_cert_file(hsm_env.p('ra-enc.crt'))
    return F


@pytest.fixture(scope='module')
def cacerts(files):
    return C.CACerts(C.CT_CA_RA, [files.ca, files.ra_sign, files.ra_enc],
                     files.ca, files.ra_sign, files.ra_enc)


@pytest.fixture
def scep(httpd, cacerts):
    c = C.Client(httpd.url())
    c._ca = cacerts
    return c


def enroll(scep, files, key, cn):
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE), key)
    return checks.assert_issued(msg, r, rep, files.ca)


def test_setup_made_the_keys_in_the_token(hsm_env, files):
    """scepctl made three RSA keys in the token, never extractable; the
    certificates are files, the keys are not."""
    out = hsm_env.hsm.objects()
    blocks = re.split(r'\n(?=\S)', out)  # an object's lines are indented below its first
    private = [b for b in blocks if b.startswith('Private Key Object; RSA')]
    labels = sorted(re.search(r'label:\s+(\S+)', b).group(1) for b in private)
    assert labels == ['scep-ca', 'scep-ra-enc', 'scep-ra-sign'], out
    assert all('never extractable' in b and 'sensitive' in b for b in private), out
    assert 'CA key:                %s (created)' % H.CA_URI in hsm_env.setup_out
    assert not glob.glob(hsm_env.p('*.key'))
    ok, vout = pki.openssl_verify(hsm_env.work, hsm_env.p('ca.crt'), files.ra_sign)
    assert ok, vout
    # the CA certificate is signed by the token's key: it verifies itself
    assert pki.verify_issued_by(files.ca, files.ca)
    # a second run keeps everything
    out = hsm_env.hsm.setup_pki(hsm_env)
    assert '(created)' not in out and out.count('(kept)') == 6, out
    assert pki.load_cert_file(hsm_env.p('ca.crt')) == files.ca
    hsm_env.hsm.give_to_children(hsm_env)


def test_started_with_the_token(httpd):
    log = ''
    for name in ('error_log', 'stderr_log'):  # check_config logs before the error log opens
        with open(os.path.join(httpd.env.logs, name), errors='replace') as f:
            log += f.read()
    assert re.search(r'SCEP744: keys in a PKCS#11 token through %s \(logged in with the PIN of '
                     r'SCEPPKCS11PINFile\)' % re.escape(H.MODULE), log), log[-2000:]


def test_enrollment(scep, files, keys, httpd):
    """The RA key in the token opens the envelope, the CA key signs the
    certificate, the RA signing key signs the CertRep (the client checks)."""
    cert = enroll(scep, files, keys.take(), 'hsm-enroll.example.test')
    ok, out = pki.openssl_verify(httpd.env.work, httpd.env.p('ca.crt'), cert)
    assert ok, out
    rows = checks.cert_rows_of_serial(httpd, cert.serial_number)
    assert len(rows) == 1


def test_scep_submit_enrolls(httpd, files, keys):
    key = keys.take()
    csr = openssl_req(httpd.env.work, key, 'hsm-submit', CHALLENGE)
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    p = run_scep_submit(httpd, msg.der, 'hsm-submit')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    certs = issued_certs(p.stdout, msg, files.ra_sign)
    assert len(certs) == 1
    checks.check_issued_cert(certs[0], csr, files.ca)
    checks.assert_recorded(httpd, msg.transaction_id, certs[0])


def test_scepclient_enrolls(httpd, files):
    """scepclient speaks DES: the token's RSA key unwraps its content key."""
    with httpd.config(('SCEPAllowLegacyAlgorithms', 'On'), startup_expected=[LEGACY_START]):
        httpd.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        d, p = run_scepclient(httpd, 'hsm-scepclient.example.test')
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        path = os.path.join(d, 'cert.pem')
        assert os.path.exists(path), 'scepclient got no certificate:\n' + out
        cert = pki.load_cert_file(path)
        assert pki.public_der(cert) == pki.public_der(pki.load_key_file(
            os.path.join(d, 'key.pem')))
        assert pki.verify_issued_by(cert, files.ca)


def test_renewal(scep, files, keys, httpd):
    old_key, new_key = keys.take(), keys.take()
    cn = 'hsm-renew.example.test'
    old = enroll(scep, files, old_key, cn)
    csr = pki.make_csr(new_key, cn)
    msg = C.pkcsreq(csr, old_key, [files.ra_enc], signer_cert=old, message_type=C.RENEWALREQ)
    r, rep = scep.send(msg)
    new = checks.assert_issued(msg, r, rep, files.ca)
    assert pki.public_der(new) == pki.public_der(new_key)
    assert httpd.errlog.find(r'SCEP240: .*renewal of certificate 0?%X\b' % old.serial_number)


def test_getcrl(scep, files, keys, httpd):
    cert = enroll(scep, files, keys.take(), 'hsm-crl.example.test')
    serial = checks.cert_rows_of_serial(httpd, cert.serial_number)[0]['serial']
    rc, out, err = httpd.scepctl_records('revoke', '--reason', 'keyCompromise', serial)
    assert rc == 0, out + err
    msg = C.pki_message(C.issuer_and_serial(files.ca.subject, 1), C.GETCRL, keys.any(3),
                        [files.ra_enc])
    r, rep = scep.send(msg)
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    crl = x509.load_der_x509_crl(rep.crls[0])
    assert crl.is_signature_valid(files.ca.public_key()), 'the token key did not sign the CRL'
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_many_at_once_and_a_graceful_restart(scep, files, keys, httpd):
    """Concurrent enrollments reach every child (and thread): each signs
    with the keys its parent loaded; again after a graceful restart, in
    which the parent loads the keys anew."""
    def one(i):
        key = keys.any(i)
        msg, r, rep = scep.enroll(pki.make_csr(key, 'hsm-many-%d.example.test' % i,
                                               challenge=CHALLENGE), key)
        return checks.assert_issued(msg, r, rep, files.ca)

    for rnd in range(2):
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            certs = list(pool.map(one, range(rnd * 100, rnd * 100 + 36)))
        assert len({c.serial_number for c in certs}) == 36
        if rnd == 0:
            httpd.graceful()


def config_refused(httpd, directives):
    """`apache2 -t` on these directives: its output (it must fail)."""
    rc, out = httpd.config_test(make_conf(httpd.env, directives))
    assert rc != 0, 'apache2 -t accepted:\n' + out
    return out


def test_wrong_pin_refuses_to_start(httpd):
    wrong = H.SoftHSM.write_pin(os.path.join(httpd.env.gen, 'conf', 'wrong-pin.txt'),
                                'wrong-9999-pin')
    out = config_refused(httpd, httpd.env.hsm.directives(httpd.env, pin_file=wrong))
    assert re.search(r'SCEP007: .*cannot load the SCEP CA and RA certificates: %s: the token gave '
                     r'no private key \(the PIN of the PIN file refused' % re.escape(H.CA_URI),
                     out), out
    assert 'wrong-9999-pin' not in out


def test_missing_object_refuses_to_start(httpd):
    uri = 'pkcs11:token=%s;object=no-such-key' % H.TOKEN
    out = config_refused(httpd, httpd.env.hsm.directives(httpd.env, ca_uri=uri))
    assert re.search(r'SCEP007: .*%s: the token gave no private key' % re.escape(uri), out), out


def test_pin_in_the_uri_is_refused(httpd):
    uri = H.CA_URI + '?pin-value=' + H.PIN
    out = config_refused(httpd, httpd.env.hsm.directives(httpd.env, ca_uri=uri))
    assert 'SCEPCAKeyFile: a pkcs11: URI must not carry the PIN' in out, out
    assert H.PIN not in out


def test_token_key_without_module_is_refused(httpd):
    out = config_refused(httpd, httpd.env.hsm.directives(httpd.env, module=False))
    assert re.search(r'SCEP741: main server: SCEPCAKeyFile names a key in a token \(pkcs11:\) '
                     r'but the main server sets no SCEPPKCS11Module', out), out


def test_pin_file_open_to_others_is_refused(httpd):
    loose = H.SoftHSM.write_pin(os.path.join(httpd.env.gen, 'conf', 'loose-pin.txt'), H.PIN,
                                mode=0o644)
    out = config_refused(httpd, httpd.env.hsm.directives(httpd.env, pin_file=loose))
    assert re.search(r'SCEP009: .*SCEPPKCS11PINFile .*loose-pin.txt is open to group or others',
                     out), out


def test_the_pin_is_in_no_log(httpd):
    """Last: every log of the server root, after all of the above."""
    for path in glob.glob(os.path.join(httpd.env.logs, '*')):
        with open(path, 'rb') as f:
            assert H.PIN.encode() not in f.read(), path
