"""mod_scep as a registration authority in front of an external CA through a
certmonger CA helper (issue 13, SCEPCABackend helper), end to end: the PKI
made by `scepctl setup --external --ca-helper`, Apache holding no CA key,
and two real CAs behind the helper interface: certmonger's local-submit and
openssl-ca-helper (a real `openssl ca` with its own configuration and index,
root and issuing CA, whose answers the tests steer through its mode file).
Clients: this suite's own, certmonger's scep-submit and micromdm's
scepclient. Each CA's server has its own root (t/gen/<mpm>/cahelper-*)."""
import dataclasses
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem, pem_certs
from sceptest.httpd import CHALLENGE, Apache, Env, run

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LOCAL_SUBMIT = '/usr/lib/certmonger/local-submit'
OPENSSL_CA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'openssl-ca-helper')
SCEPCLIENT = '/usr/bin/scepclient'
LEGACY_START = r'SCEP\d{3}: SCEPAllowLegacyAlgorithms On: single DES and MD5'
EVENT_31 = checks.event(31)
EVENT_44 = checks.event(44)
# the helper backend's fault lines (scep_ca_helper.c)
HELPER_FAULT = r'SCEP28\d: CA helper '
# the background poll of the engine: often enough for a test to wait for it
FAST_POLL = ('SCEPCAPollInterval', '1')


def as_children(cmd):
    """cmd as the user Apache's children run as (www-data when root), as
    the helper runs in the server: the CA's files stay theirs."""
    if os.geteuid() == 0:
        return ['runuser', '-u', 'www-data', '--'] + cmd
    return cmd


def give_to_children(path):
    """The CA's directory belongs to the user Apache's children run as:
    the helper they start keeps its serial, index and lock there."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam('www-data')
    for root, dirs, names in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + names]:
            os.chown(n, pw.pw_uid, pw.pw_gid)


class ExternalCA:
    """One CA behind a helper: its directory, the helper's words, how the
    tests steer it (openssl-ca-helper only)."""

    def __init__(self, kind, gen):
        self.kind = kind
        self.dir = os.path.join(gen, 'ca')
        # a copy beside the CA: Apache's children may not reach the checkout
        self.script = os.path.join(gen, 'openssl-ca-helper')
        if kind == 'local-submit':
            self.argv = [LOCAL_SUBMIT, '-d', self.dir]
        else:
            self.argv = [self.script, self.dir]
        self.words = ' '.join(self.argv)

    def make(self):
        subprocess.run(['rm', '-rf', self.dir], check=True)
        os.makedirs(self.dir)
        if self.kind == 'openssl-ca':
            shutil.copy(OPENSSL_CA, self.script)
            os.chmod(self.script, 0o755)
            p = run([self.script, self.dir, 'init'])
            assert p.returncode == 0, p.stdout + p.stderr

    def mode(self, text):
        with open(os.path.join(self.dir, 'mode'), 'w') as f:
            f.write(text + '\n')

    def log(self):
        """helper.log: one line per run of the helper."""
        try:
            with open(os.path.join(self.dir, 'helper.log')) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def run(self, *args):
        p = run(as_children([self.script, self.dir] + list(args)))
        assert p.returncode == 0, p.stdout + p.stderr

    def index(self):
        with open(os.path.join(self.dir, 'index.txt')) as f:
            return f.read()


def start_server(kind, port_base):
    e = Env(REPO, name='cahelper-' + kind, port_base=port_base)
    e.clean()
    ca = ExternalCA(kind, e.gen)
    ca.make()
    p = run([e.scepctl, 'setup', '-d', e.pki, '--external', '--ca-helper', ca.words])
    assert p.returncode == 0, p.stdout + p.stderr
    give_to_children(ca.dir)
    a = Apache(e)
    a.setup_output = p.stdout
    a.ca = ca
    directives = [
        ('SCEPCABackend', 'helper'),
        ('SCEPCAHelper', ca.words),
        ('SCEPCACertificateFile', e.p('ca.crt')),
        ('SCEPRACertificate', '%s %s' % (e.p('ra-sign.crt'), e.p('ra-sign.key'))),
        ('SCEPRACertificate', '%s %s' % (e.p('ra-enc.crt'), e.p('ra-enc.key'))),
        ('SCEPChallengePasswordFile', e.challenge_file),
        # CertPoll asks the CA; the background round stays out of the way
        # but where a test turns it on
        ('SCEPCAPollInterval', '3600'),
    ]
    if os.path.exists(e.p('ca-chain.crt')):
        directives.insert(3, ('SCEPCAChainFile', e.p('ca-chain.crt')))
    a.base_directives = directives
    a.directives = list(directives)
    a.start()
    a.client = C.Client(a.url())
    a.external_ca = pki.load_cert_file(e.p('ca.crt'))
    return a


@pytest.fixture(scope='module')
def local_server():
    a = start_server('local-submit', 18700)
    yield a
    a.stop()


@pytest.fixture(scope='module')
def osca_server():
    a = start_server('openssl-ca', 18750)
    yield a
    a.stop()


@pytest.fixture
def local(local_server):
    return local_server


@pytest.fixture
def osca(osca_server):
    """openssl-ca-helper, issuing unless the test says otherwise."""
    osca_server.ca.mode('issue')
    return osca_server


@pytest.fixture(params=['local-submit', 'openssl-ca'])
def server(request):
    """Each test taking it runs against both CAs."""
    return request.getfixturevalue({'local-submit': 'local', 'openssl-ca': 'osca'}[request.param])


@pytest.fixture(autouse=True)
def httpd(request):
    """The server under test, for the error-log check of conftest.py."""
    for name in ('server', 'osca', 'local'):
        if name in request.fixturenames:
            return request.getfixturevalue(name)
    return None


def csr_for(key, cn):
    return pki.make_csr(key, cn, challenge=CHALLENGE, dns=[cn])


def assert_external(server, cert, key, cn):
    """Issued by the external CA (its signature, its name), for the device's
    key and name; Apache has no CA key at all."""
    ca = server.external_ca
    assert cert.issuer == ca.subject, cert.issuer.rfc4514_string()
    assert pki.verify_issued_by(cert, ca), 'the certificate does not verify with the external CA'
    assert pki.public_der(cert) == pki.public_der(key), 'issued for another key'
    assert cert.subject.rfc4514_string() == 'CN=' + cn
    assert 'SCEPCAKeyFile' not in server.running_conf
    assert not os.path.exists(server.env.p('ca.key'))
    if server.ca.kind == 'openssl-ca':
        # in the CA's own index: openssl ca issued it
        assert re.search(r'^V\t\S+\t\t%s\tunknown\t/CN=%s$' % (serial_hex(cert), re.escape(cn)),
                         server.ca.index(), re.M), server.ca.index()
    chain = server.env.p('ca-chain.crt')
    ok, out = pki.openssl_verify(server.env.work, chain if os.path.exists(chain)
                                 else server.env.p('ca.crt'), cert,
                                 untrusted=server.env.p('ca.crt'))
    assert ok, out


def serial_hex(cert):
    """The serial as openssl ca writes it (upper-case hex, whole bytes)."""
    h = '%X' % cert.serial_number
    return '0' * (len(h) % 2) + h


def enroll(server, key, cn, method='POST'):
    msg, r, rep = server.client.enroll(csr_for(key, cn), key, method=method)
    return msg, r, rep


def assert_success(server, msg, r, rep, key, cn):
    assert r.status == 200, r.status
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    assert len(rep.certs) == 1
    cert = rep.certs[0]
    assert_external(server, cert, key, cn)
    checks.assert_recorded(server, msg.transaction_id, cert)
    return cert


def poll(server, msg):
    """CertPoll for msg's transaction: (the poll, as msg for the checks of
    an issued certificate, HttpResult, CertRep)."""
    csr = x509.load_der_x509_csr(msg.inner)
    body = C.issuer_and_subject(server.external_ca.subject, csr.subject)
    pm = C.pki_message(body, C.CERTPOLL, msg.key, [server.client.ca.ra_enc],
                       subject=csr.subject, transaction_id=msg.transaction_id)
    r, rep = server.client.send(pm)
    return dataclasses.replace(pm, inner=msg.inner), r, rep


def scepctl_list(server, *args):
    code, out, err = server.scepctl_records('list', *args)
    assert code == 0, out + err
    return out


def row(server, msg):
    (req,) = checks.request_rows(server, msg.transaction_id)
    return req


# --- the PKI scepctl made ---------------------------------------------------

def test_setup_installed_the_external_ca_and_ra(server):
    """scepctl setup --external --ca-helper: the issuing CA from FETCH-ROOTS,
    the chain above it, RA certificates the CA issued for keys of DIR with
    the usages mod_scep requires; no CA key anywhere in DIR."""
    e = server.env
    ca = server.external_ca
    assert 'CA thumbprint: ' in server.setup_output
    assert not os.path.exists(e.p('ca.key'))
    for role, usage in (('ra-sign', 'digital_signature'), ('ra-enc', 'key_encipherment')):
        cert = pki.load_cert_file(e.p(role + '.crt'))
        assert cert.issuer == ca.subject
        assert pki.verify_issued_by(cert, ca)
        assert pki.public_der(cert) == pki.public_der(pki.load_key_file(e.p(role + '.key')))
        assert getattr(pki.ext(cert, x509.KeyUsage), usage)
        assert pki.OID_CERT_REQUEST_AGENT in list(pki.ext(cert, x509.ExtendedKeyUsage))
    if server.ca.kind == 'local-submit':
        assert ca.subject.rfc4514_string().startswith('CN=')
        assert 'Local Signing Authority' in ca.subject.rfc4514_string()
        assert not os.path.exists(e.p('ca-chain.crt'))
    else:
        assert ca.subject.rfc4514_string() == 'O=mod_scep tests,CN=OpenSSL Test Issuing CA'
        chain = pki.load_cert_file(e.p('ca-chain.crt'))
        assert chain.subject.rfc4514_string() == 'O=mod_scep tests,CN=OpenSSL Test Root CA'
        assert pki.verify_issued_by(ca, chain)
        assert [ln.split()[0] for ln in server.ca.log()][:3] == ['FETCH-ROOTS', 'SUBMIT',
                                                                'SUBMIT']


def test_setup_again_keeps_what_fits(server):
    """A second run asks the CA for its certificates again and keeps the RA
    certificates that still fit it (the demo runs setup at every start)."""
    e = server.env
    before = {n: open(e.p(n), 'rb').read() for n in ('ra-sign.crt', 'ra-enc.crt', 'ca.crt')}
    p = run([e.scepctl, 'setup', '-d', e.pki, '--external', '--ca-helper', server.ca.words])
    give_to_children(server.ca.dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r'RA signing cert: +\S+ \(kept\)', p.stdout), p.stdout
    assert re.search(r'RA encryption cert: +\S+ \(kept\)', p.stdout), p.stdout
    for n, data in before.items():
        assert open(e.p(n), 'rb').read() == data, n


def setup_in(osca, d, *extra):
    p = run([osca.env.scepctl, 'setup', '-d', d, '--external', '--ca-helper', osca.ca.words]
            + list(extra))
    give_to_children(osca.ca.dir)
    return p


def test_setup_with_a_profile_a_waiting_and_a_rejecting_ca(osca, tmp_path):
    """--ca-profile reaches the CA; a CA that holds the RA requests stops
    setup with the cookie, one that rejects them with its words; neither
    installs anything."""
    d = str(tmp_path / 'ra')
    osca.ca.mode('wait')
    p = setup_in(osca, d)
    assert p.returncode == 1, p.stdout + p.stderr
    (cookie,) = re.findall(r'the CA holds the RA signing request \(its cookie: "(\w+)"\)',
                           p.stderr)
    assert os.path.exists(os.path.join(osca.ca.dir, 'pending', cookie + '.csr'))
    osca.ca.mode('reject no RA certificates today')
    p = setup_in(osca, d)
    assert p.returncode == 1, p.stdout + p.stderr
    assert 'the CA rejected the request: no RA certificates today' in p.stderr, p.stderr
    assert not [n for n in os.listdir(d) if n.endswith('.crt')], os.listdir(d)
    osca.ca.mode('issue')
    p = setup_in(osca, d, '--ca-profile', 'SCEPRAProfile')
    assert p.returncode == 0, p.stdout + p.stderr
    submits = [ln for ln in osca.ca.log() if ln.startswith('SUBMIT ')][-2:]
    assert all('profile=SCEPRAProfile' in ln for ln in submits), submits
    assert pki.load_cert_file(os.path.join(d, 'ca.crt')) == osca.external_ca


def test_install_ra_checks_what_the_ca_returned(osca, tmp_path):
    """The manual round: setup --external, the CA issues the CSRs, install-ra
    checks the answers (a certificate in the wrong role is refused, nothing
    written) and installs them with the issuing CA."""
    e, d = osca.env, str(tmp_path / 'manual')
    p = run([e.scepctl, 'setup', '-d', d, '--external'])
    assert p.returncode == 0, p.stdout + p.stderr
    issued = {}
    for role in ('ra-sign', 'ra-enc'):
        with open(os.path.join(d, role + '.csr')) as f:
            csr = f.read()
        p = run(as_children(['env', 'CERTMONGER_OPERATION=SUBMIT', 'CERTMONGER_CSR=' + csr,
                             osca.ca.script, osca.ca.dir]))
        assert p.returncode == 0, p.stdout + p.stderr
        issued[role] = os.path.join(d, role + '.issued.pem')
        with open(issued[role], 'w') as f:
            f.write(p.stdout)
    install = [e.scepctl, 'install-ra', '-d', d, '--ca-cert', e.p('ca.crt')]
    p = run(install + ['--sign-cert', issued['ra-enc'], '--enc-cert', issued['ra-sign']])
    assert p.returncode == 1, p.stdout + p.stderr
    assert 'does not belong to the key' in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, 'ca.crt'))
    p = run(install + ['--sign-cert', issued['ra-sign'], '--enc-cert', issued['ra-enc']])
    assert p.returncode == 0, p.stdout + p.stderr
    assert pki.load_cert_file(os.path.join(d, 'ca.crt')) == osca.external_ca
    for role in ('ra-sign', 'ra-enc'):
        assert open(os.path.join(d, role + '.crt')).read() == open(issued[role]).read()


def test_scepctl_check_ca(server):
    """check-ca --ca-helper: IDENTIFY and FETCH-ROOTS, the CA's certificates
    printed; exit 0."""
    e = server.env
    p = run([e.scepctl, 'check-ca', '--ca-helper', server.ca.words])
    give_to_children(server.ca.dir)
    assert p.returncode == 0, p.stdout + p.stderr
    thumb = re.findall(r'thumbprint: +([0-9A-F]{40})', p.stdout)
    p2 = run([e.scepctl, 'thumbprint', e.p('ca.crt')])
    assert p2.stdout.strip() in thumb, p.stdout
    if server.ca.kind == 'local-submit':
        assert re.search(r'CA helper: +Local Signing Authority \(certmonger ', p.stdout), p.stdout
    else:
        assert re.search(r'CA helper: +openssl-ca-helper \(mod_scep tests\)', p.stdout), p.stdout
        assert 'CN=OpenSSL Test Root CA' in p.stdout


def test_scepctl_check_ca_unreachable(osca):
    osca.ca.mode('unreachable')
    p = run([osca.env.scepctl, 'check-ca', '--ca-helper', osca.ca.words])
    give_to_children(osca.ca.dir)
    assert p.returncode == 1, p.stdout + p.stderr
    assert 'SCEP285: ' in p.stderr and 'status 3' in p.stderr, p.stderr
    assert 'thumbprint' not in p.stdout


# --- GetCACert, GetCRL ---------------------------------------------------------

def test_getcacert_lists_the_external_ca_and_the_ra(server):
    e = server.env
    cas = C.Client(server.url()).get_ca_cert()
    assert cas.content_type == C.CT_CA_RA
    assert cas.ca == server.external_ca
    assert cas.ra_sign == pki.load_cert_file(e.p('ra-sign.crt'))
    assert cas.ra_enc == pki.load_cert_file(e.p('ra-enc.crt'))
    want = {pki.cert_der(c) for c in (server.external_ca, cas.ra_sign, cas.ra_enc)}
    if os.path.exists(e.p('ca-chain.crt')):
        want.add(pki.cert_der(pki.load_cert_file(e.p('ca-chain.crt'))))
    assert {pki.cert_der(c) for c in cas.certs} == want


def getcrl(server, keys):
    key = keys.any(3)
    msg = C.pki_message(C.issuer_and_serial(server.external_ca.subject, 1), C.GETCRL, key,
                        [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    return msg, r, rep


def test_getcrl_refused_without_external_crl(server, keys):
    msg, r, rep = getcrl(server, keys)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert 'CRL' in rep.fail_info_text, rep.fail_info_text
    checks.expect_line(server, EVENT_44)


def test_getcrl_serves_the_external_crl(osca, keys):
    """SCEPExternalCRL: GetCRL answers the site's CRL (the CA's revocation
    of a certificate it issued through mod_scep in it)."""
    key = keys.take()
    cert = assert_success(osca, *enroll(osca, key, 'crl.example.test'), key, 'crl.example.test')
    osca.ca.run('revoke', serial_hex(cert))
    osca.ca.run('crl')
    crl_file = os.path.join(osca.ca.dir, 'crl.pem')
    with osca.config(('SCEPExternalCRL', crl_file)):
        msg, r, rep = getcrl(osca, keys)
        assert r.status == 200 and rep is not None, r.status
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        crl = x509.load_der_x509_crl(rep.crls[0])
        assert crl.issuer == osca.external_ca.subject
        assert crl.is_signature_valid(osca.external_ca.public_key())
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
        with open(crl_file, 'rb') as f:
            assert crl == x509.load_pem_x509_crl(f.read())


# --- issued ------------------------------------------------------------------

def test_enroll_issued_by_the_external_ca(server, keys):
    """PKCSReq: the CA behind the helper issues; the template's name goes to
    the helper as the certificate profile; the helper runs as Apache's
    children's user."""
    key = keys.take()
    cn = 'ext-%s.example.test' % server.ca.kind
    msg, r, rep = enroll(server, key, cn)
    cert = assert_success(server, msg, r, rep, key, cn)
    # the CSR's subjectAltName reached the CA and came back
    assert pki.ext(cert, x509.SubjectAlternativeName).get_values_for_type(x509.DNSName) == [cn]
    assert '%X' % cert.serial_number in scepctl_list(server, '--certs').upper()
    if server.ca.kind == 'openssl-ca':
        last = [ln for ln in server.ca.log() if ln.startswith('SUBMIT ')][-1]
        assert 'profile=IPSECIntermediateOffline' in last, last
        if os.geteuid() == 0:
            assert 'user=www-data' in last, last


def test_scep_submit_enrolls(server, keys):
    """certmonger's scep-submit, the RA and CA certificates of GetCACert."""
    work = server.env.work
    key = keys.take()
    name = 'submit-' + server.ca.kind
    csr = openssl_req(work, key, name, CHALLENGE)
    msg = C.pkcsreq(csr, key, [server.client.ca.ra_enc], cipher='aes128', digest_name='sha256')
    msgf = os.path.join(work, name + '.p7')
    with open(msgf, 'w') as f:
        f.write(pem('PKCS7', msg.der))
    url = server.url('/cgi-bin/pkiclient.exe')
    p = subprocess.run([SCEP_SUBMIT, '-u', url, '-C'], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert pki.cert_der(server.external_ca) in pem_certs(p.stdout)
    # it verifies the reply's signer up to -N, the root, through -I
    chain = server.env.p('ca-chain.crt')
    root = chain if os.path.exists(chain) else server.env.p('ca.crt')
    p = subprocess.run([SCEP_SUBMIT, '-u', url, '-r', server.env.p('ra-enc.crt'),
                        '-N', root, '-I', server.env.p('ca.crt'), '-p', msgf],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    (cert,) = issued_certs(p.stdout, msg, server.client.ca.ra_sign)
    assert cert.issuer == server.external_ca.subject
    assert pki.verify_issued_by(cert, server.external_ca)
    assert pki.public_der(cert) == pki.public_der(key)
    checks.assert_recorded(server, msg.transaction_id, cert)


def test_scepclient_enrolls(server):
    """micromdm's scepclient (single DES: legacy algorithms on)."""
    with server.config(('SCEPAllowLegacyAlgorithms', 'On'), startup_expected=[LEGACY_START]):
        server.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
        name = 'sc-%s.example.test' % server.ca.kind
        d = os.path.join(server.env.work, 'scepclient-' + name)
        subprocess.run(['rm', '-rf', d], check=True)
        os.makedirs(d)
        cnf = os.path.join(d, 'openssl-legacy.cnf')
        with open(cnf, 'w') as f:
            f.write('openssl_conf = i\n[i]\nproviders = p\n[p]\ndefault = d\nlegacy = l\n'
                    '[d]\nactivate = 1\n[l]\nactivate = 1\n')
        p = subprocess.run([SCEPCLIENT, '-private-key', os.path.join(d, 'key.pem'),
                            '-certificate', os.path.join(d, 'cert.pem'),
                            '-server-url', server.url(), '-challenge', CHALLENGE, '-cn', name,
                            '-keySize', '2048'], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, OPENSSL_CONF=cnf))
        path = os.path.join(d, 'cert.pem')
        assert os.path.exists(path), 'scepclient got no certificate:\n' + p.stdout + p.stderr
        cert = pki.load_cert_file(path)
        assert cert.issuer == server.external_ca.subject
        assert pki.verify_issued_by(cert, server.external_ca)
        assert pki.public_der(cert) == pki.public_der(pki.load_key_file(
            os.path.join(d, 'key.pem')))
        assert len(checks.cert_rows_of_serial(server, cert.serial_number)) == 1


def test_renewal_verified_against_the_external_chain(server, keys):
    """RenewalReq signed by a certificate the external CA issued: the signer
    verifies against the configured CA (and its chain), the new key is
    issued by the CA, the reply is enveloped to the signer."""
    old_key, new_key = keys.take(), keys.take()
    cn = 'renew-%s.example.test' % server.ca.kind
    old = assert_success(server, *enroll(server, old_key, cn), old_key, cn)
    csr = pki.make_csr(new_key, cn, dns=[cn])
    msg = C.pkcsreq(csr, old_key, [server.client.ca.ra_enc], signer_cert=old,
                    message_type=C.RENEWALREQ)
    r, rep = server.client.send(msg)
    new = assert_success(server, msg, r, rep, new_key, cn)
    assert new.serial_number != old.serial_number
    assert rep.envelope_recipients == 1
    assert server.errlog.find(r'SCEP240: .*%s.*renewal of certificate 0?%X\b' %
                              (msg.transaction_id, old.serial_number))


# --- the CA's other answers (openssl-ca-helper, steered) ------------------------

def test_rejected_by_the_ca(osca, keys):
    """Exit 2: FAILURE badRequest with the CA's words as failInfoText, event
    31 in the log, nothing issued."""
    osca.ca.mode('reject policy forbids rejected.example.test')
    key = keys.take()
    msg, r, rep = enroll(osca, key, 'rejected.example.test')
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert 'policy forbids rejected.example.test' in rep.fail_info_text, rep.fail_info_text
    lines = checks.expect_line(osca, EVENT_31, openssl=False)
    assert any('policy forbids rejected.example.test' in ln for ln in lines), lines
    assert not any(row_['status'] == 'issued'
                   for row_ in checks.request_rows(osca, msg.transaction_id))
    assert 'rejected.example.test' not in scepctl_list(osca, '--certs')


def test_waiting_then_certpoll(osca, keys):
    """Exit 5 (a delay and a cookie): PENDING, the cookie kept with the held
    request; CertPoll once the delay passed makes the helper POLL with that
    cookie, and the issued certificate is delivered."""
    osca.ca.mode('wait 1')
    key = keys.take()
    cn = 'waiting.example.test'
    msg, r, rep = enroll(osca, key, cn)
    checks.assert_pending(msg, r, rep)
    req = row(osca, msg)
    assert req['status'] == 'pending', req
    assert req['ca_ticket'], req
    # scepctl list: held, waiting for the CA (not for a CA manager)
    (line,) = [ln for ln in scepctl_list(osca).splitlines()
               if ln.startswith(msg.transaction_id + '\t')]
    assert line.split('\t')[1] == 'pending' and line.endswith('\tCA'), line
    # still waiting at the CA: PENDING again, the same cookie asked about
    time.sleep(1.2)
    checks.assert_pending(*poll(osca, msg))
    polls = [ln for ln in osca.ca.log() if ln.startswith('POLL ')]
    assert polls and polls[-1].endswith('cookie=' + req['ca_ticket']), (polls, req)
    # the CA issues
    osca.ca.mode('issue')
    time.sleep(1.2)
    assert_success(osca, *poll(osca, msg), key, cn)


def test_background_poll_issues_without_a_device(osca, keys):
    """SCEPCAPollInterval 1: the children's background round asks the CA
    about held requests; the certificate is recorded before the device
    polls, and its CertPoll gets it."""
    with osca.config(FAST_POLL):
        osca.ca.mode('wait 1')
        key = keys.take()
        cn = 'background.example.test'
        msg, r, rep = enroll(osca, key, cn)
        checks.assert_pending(msg, r, rep)
        ticket = row(osca, msg)['ca_ticket']
        osca.ca.mode('issue')
        end = time.time() + 20
        while row(osca, msg)['status'] != 'issued':
            assert time.time() < end, 'the background poll did not issue: %r' % row(osca, msg)
            time.sleep(0.2)
        assert any(ln.startswith('POLL ') and ln.endswith('cookie=' + ticket)
                   for ln in osca.ca.log())
        assert row(osca, msg)['decided_by'] == 'CA', row(osca, msg)
        assert_success(osca, *poll(osca, msg), key, cn)


def test_ca_unreachable_then_recovers(osca, keys):
    """Exit 3: FAILURE "try again later", the fault logged; the same request
    sent again once the CA is back is issued."""
    osca.ca.mode('unreachable')
    key = keys.take()
    cn = 'unreachable.example.test'
    msg = C.pkcsreq(csr_for(key, cn), key, [osca.client.ca.ra_enc])
    r, rep = osca.client.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert 'try again later' in rep.fail_info_text, rep.fail_info_text
    lines = checks.expect_line(osca, HELPER_FAULT + r'.*cannot reach the CA \(3\)',
                               openssl=False)
    assert any('connection to the CA refused' in ln for ln in lines), lines
    osca.expect_log(r'SCEP\d{3}: .*%s' % msg.transaction_id)
    assert not any(row_['status'] == 'issued'
                   for row_ in checks.request_rows(osca, msg.transaction_id))
    osca.ca.mode('issue')
    r, rep = osca.client.send(msg)
    assert_success(osca, msg, r, rep, key, cn)


def test_waiting_then_rejected(osca, keys):
    """The CA holds the request, then rejects it: the device's CertPoll gets
    FAILURE with the CA's words, event 31, and the record is rejected."""
    osca.ca.mode('wait 1')
    key = keys.take()
    msg, r, rep = enroll(osca, key, 'held-rejected.example.test')
    checks.assert_pending(msg, r, rep)
    osca.ca.mode('reject the CA officer said no')
    time.sleep(1.2)
    pm, r, rep = poll(osca, msg)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert 'the CA officer said no' in rep.fail_info_text, rep.fail_info_text
    lines = checks.expect_line(osca, EVENT_31, openssl=False)
    assert any('the CA officer said no' in ln for ln in lines), lines
    req = row(osca, msg)
    assert req['status'] == 'rejected' and 'the CA officer said no' in req['reason'], req
    assert req['decided_by'] == 'CA', req
    assert not req['ca_ticket'], req
