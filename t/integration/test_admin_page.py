"""The admin page itself: NDES's page byte for byte where scrapers look (UTF-16LE,
the exact sentences), JSON for automation, HTTPS-only, the full cache, and
the whole NDES flow with real clients: an administrator opens the page in
headless Chromium, reads the password off the rendered page, and a device
enrolls with it, once.

The server, its virtual hosts and the users are described in
sceptest/admin.py and sceptest/ldap.py; test_admin_auth.py covers who gets a
password.
"""
import datetime
import hashlib
import os
import re
import subprocess

import pytest

from sceptest import admin as A
from sceptest import browser as B
from sceptest import certmonger, checks, pki
from sceptest import client as C
from sceptest import ldap as L

RE_EVENT_29 = r'SCEP\d{3}: .*\(NDES event 29\)'
RE_CACHE_FULL_LOG = r'SCEP\d{3}: no password for \w+ .*the password cache is full'
# the line of a handed-out password, with how many wait (of SCEPPasswordMax 2)
RE_WAITING = r'SCEP\d{3}: one-time password handed out to %s .*; %d of at most 2 ' \
             r'\(SCEPPasswordMax\) now wait for their devices'
LEGACY_START = r'SCEP\d{3}: SCEPAllowLegacyAlgorithms On: single DES and MD5'
# what Chromium's innerText makes of the password paragraph
RE_RENDERED_PASSWORD = re.compile(r'The enrollment challenge password is:\s+([0-9A-F]{16})\b')


@pytest.fixture(scope='module')
def admin_files(admin_env):
    class F:
        ca = pki.load_cert_file(admin_env.p('ca.crt'))
        ra_sign = pki.load_cert_file(admin_env.p('ra-sign.crt'))
        ra_enc = pki.load_cert_file(admin_env.p('ra-enc.crt'))
        thumbprint = hashlib.sha1(pki.cert_der(ca)).hexdigest().upper()
    return F


@pytest.fixture
def device(admin_httpd, admin_files):
    """An SCEP client of the admin server's device URL (plain HTTP)."""
    c = C.Client(admin_httpd.url('/certsrv/mscep/mscep.dll'))
    f = admin_files
    c._ca = C.CACerts(C.CT_CA_RA, [f.ca, f.ra_sign, f.ra_enc], f.ca, f.ra_sign, f.ra_enc)
    return c


def page_url(admin_httpd, vhost='ldap', host='localhost'):
    return 'https://%s:%d%s' % (host, getattr(admin_httpd.ports, vhost), A.ADMIN_PATH)


def get_page(admin_httpd, user='alice', vhost='ldap', accept=None):
    return A.curl(page_url(admin_httpd, vhost), admin_httpd.tls_ca.ca_file, user=user,
                  password=L.USERS[user], accept=accept, work=admin_httpd.env.work)


def new_password(admin_httpd, user='alice', vhost='ldap'):
    r = get_page(admin_httpd, user, vhost)
    pw = A.password_of(r.text)
    assert r.status == 200 and pw, 'no password: HTTP %d\n%s' % (r.status, r.text)
    return pw


def enroll(device, keys, cn, password):
    key = keys.take()
    csr = pki.make_csr(key, cn, challenge=password)
    return device.enroll(csr, key)


def assert_enrolled(admin_httpd, admin_files, msg, r, rep):
    cert = checks.assert_issued(msg, r, rep, admin_files.ca)
    checks.assert_recorded(admin_httpd, msg.transaction_id, cert)
    return cert


def assert_spent(admin_httpd, msg, r, rep):
    """The second use of a one-time password: FAILURE badRequest, event 29."""
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    lines = admin_httpd.errlog.expect_and_find(RE_EVENT_29)
    assert any(msg.transaction_id in ln for ln in lines), lines


# --- the page as NDES sends it -----------------------------------------------------

def test_page_is_ndes_page(admin_httpd, admin_files):
    r = get_page(admin_httpd)
    assert r.status == 200
    assert r.header('content-type') == 'text/html; charset=utf-16', r.headers
    assert r.header('cache-control') == 'no-store', r.headers
    assert r.body.startswith(b'\xff\xfe'), 'no UTF-16LE byte order mark: %r' % r.body[:8]
    # every character is two bytes: ASCII text has a zero in every odd byte
    assert len(r.body) % 2 == 0 and r.body[3:40:2] == b'\0' * 19, r.body[:40]
    text = r.body[2:].decode('utf-16-le')
    assert text.startswith('<HTML>'), text[:100]
    assert '<Title>Network Device Enrollment Service</Title>' in text
    m = re.search(r'<P> The thumbprint \(hash value\) for the CA certificate is: <B> '
                  r'([0-9A-Fa-f]{40}) </B>', text)
    assert m, text
    assert m.group(1).upper() == admin_files.thumbprint
    pw = A.password_of(text)
    assert pw and re.fullmatch(r'[0-9A-F]{16}', pw), text
    # exactly the sentence scrapers match, spaces included
    assert 'The enrollment challenge password is: <B> %s </B>' % pw in text
    assert 'This password can be used only once and will expire within 60 minutes.' in text
    assert text.rstrip().endswith('</HTML>'), text[-100:]


def test_every_load_a_new_password(admin_httpd):
    pws = [new_password(admin_httpd) for _ in range(3)]
    assert len(set(pws)) == 3, pws


def test_password_length_and_validity_directives(admin_httpd):
    """SCEPPasswordLength 12: 24 hex digits; SCEPPasswordValidity 5: the
    page and the JSON say 5 minutes."""
    with admin_httpd.config(SCEPPasswordLength='12', SCEPPasswordValidity='5'):
        r = get_page(admin_httpd)
        pw = A.password_of(r.text)
        assert pw and re.fullmatch(r'[0-9A-F]{24}', pw), r.text
        assert 'will expire within 5 minutes.' in r.text
        before = datetime.datetime.now(datetime.timezone.utc)
        j = get_page(admin_httpd, accept='application/json').json()
        assert j['validity_minutes'] == 5
        expires = datetime.datetime.strptime(j['expires'], '%Y-%m-%dT%H:%M:%SZ').replace(
            tzinfo=datetime.timezone.utc)
        assert abs((expires - before).total_seconds() - 300) < 30, (j, before)


def test_one_minute_validity_in_the_singular(admin_httpd):
    """SCEPPasswordValidity 1: 'within 1 minute.', not '1 minutes'."""
    with admin_httpd.config(SCEPPasswordValidity='1'):
        text = get_page(admin_httpd).text
        assert 'will expire within 1 minute.' in text, text
        assert '1 minutes' not in text, text


def test_json(admin_httpd, admin_files):
    before = datetime.datetime.now(datetime.timezone.utc)
    r = get_page(admin_httpd, accept='application/json')
    assert r.status == 200, r.body
    assert r.header('content-type') == 'application/json', r.headers
    assert r.header('cache-control') == 'no-store'
    assert 'Accept' in r.header('vary'), r.headers
    j = r.json()
    assert re.fullmatch(r'[0-9A-F]{16}', j['password']), j
    assert j['ca_thumbprint'].upper() == admin_files.thumbprint, j
    assert j['validity_minutes'] == 60, j
    assert j['single_password'] is False, j
    expires = datetime.datetime.strptime(j['expires'], '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    assert abs((expires - before).total_seconds() - 3600) < 30, (j, before)


# q values beyond RFC 9110's 0 to 1 count as 1 (a tie: HTML), NaN as 0
@pytest.mark.parametrize('accept', ['text/html', '*/*', 'text/html, application/json;q=0.5',
                                    'text/html, application/json;q=2',
                                    'text/html;q=0.1, application/json;q=nan', None])
def test_html_unless_json_preferred(admin_httpd, accept):
    r = get_page(admin_httpd, accept=accept)
    assert r.header('content-type') == 'text/html; charset=utf-16', (accept, r.headers)
    assert A.password_of(r.text), r.text


def test_json_password_enrolls(admin_httpd, admin_files, device, keys):
    j = get_page(admin_httpd, accept='application/json').json()
    msg, r, rep = enroll(device, keys, 'json-device.example.test', j['password'])
    assert_enrolled(admin_httpd, admin_files, msg, r, rep)


def test_password_works_once(admin_httpd, admin_files, device, keys):
    pw = new_password(admin_httpd)
    msg, r, rep = enroll(device, keys, 'once.example.test', pw)
    assert_enrolled(admin_httpd, admin_files, msg, r, rep)
    msg, r, rep = enroll(device, keys, 'twice.example.test', pw)
    assert_spent(admin_httpd, msg, r, rep)


def test_made_up_password_refused(admin_httpd, device, keys):
    msg, r, rep = enroll(device, keys, 'guess.example.test', '0123456789ABCDEF')
    assert_spent(admin_httpd, msg, r, rep)


def test_framing_protection(admin_httpd):
    """The admin page sends the manager page's framing protection on every
    answer: the NDES page, JSON, the refusal page, the plain-HTTP refusal."""
    admin_httpd.errlog.expect(A.RE_HTTP_REFUSED, A.RE_EVENT_6)
    answers = [get_page(admin_httpd), get_page(admin_httpd, accept='application/json'),
               get_page(admin_httpd, user='bob'),
               A.curl('http://localhost:%d%s' % (admin_httpd.ports.http, A.ADMIN_PATH),
                      admin_httpd.tls_ca.ca_file, user='alice', password=L.USERS['alice'],
                      work=admin_httpd.env.work)]
    assert [r.status for r in answers] == [200, 200, 200, 403], [r.status for r in answers]
    assert A.NO_PERMISSION in answers[2].text
    for r in answers:
        A.assert_not_frameable(r)
        assert r.header('cache-control') == 'no-store', r.headers


# --- SCEPPasswordVDir ---------------------------------------------------------------

@pytest.mark.parametrize('vdir', ['/certsrv/other', '/certsrv/mscep_adm', '/certsrv/mscep_admin/x'])
def test_no_password_outside_the_password_vdir(admin_httpd, vdir):
    """The admin page at a path not at or below SCEPPasswordVDir (whole
    segments) hands out nothing: 404 and SCEP522 naming the directive."""
    with admin_httpd.config(SCEPPasswordVDir=vdir):
        admin_httpd.errlog.expect(r'SCEP522: ')
        r = get_page(admin_httpd)
        assert r.status == 404, r.status
        assert A.password_of(r.text) is None and b'password is' not in r.body
        assert admin_httpd.errlog.find(r'SCEP522: no passwords at .*SCEPPasswordVDir',
                                       levels=('error',))


@pytest.mark.parametrize('vdir', ['/CERTSRV/MSCEP_ADMIN/', '/certsrv', '/'])
def test_password_at_or_below_the_password_vdir(admin_httpd, vdir):
    """Case and trailing slashes do not matter; '/' allows any path."""
    with admin_httpd.config(SCEPPasswordVDir=vdir):
        new_password(admin_httpd)


# --- HTTPS only ---------------------------------------------------------------------

def test_plain_http_refused(admin_httpd):
    admin_httpd.errlog.expect(A.RE_HTTP_REFUSED)
    url = 'http://localhost:%d%s' % (admin_httpd.ports.http, A.ADMIN_PATH)
    r = A.curl(url, admin_httpd.tls_ca.ca_file, user='alice', password=L.USERS['alice'],
               work=admin_httpd.env.work)
    assert r.status == 403, r.status
    assert A.password_of(r.text) is None and b'password is' not in r.body
    assert r.header('cache-control') == 'no-store', r.headers
    lines = admin_httpd.errlog.find(A.RE_HTTP_REFUSED, levels=('error',))
    assert lines, 'no log line naming SCEPAdminAllowHTTP'
    assert not admin_httpd.errlog.find(r'one-time password handed out', wait=0)


def test_plain_http_allowed_by_directive(admin_httpd):
    with admin_httpd.config(SCEPAdminAllowHTTP='On'):
        url = 'http://localhost:%d%s' % (admin_httpd.ports.http, A.ADMIN_PATH)
        r = A.curl(url, admin_httpd.tls_ca.ca_file, user='alice', password=L.USERS['alice'],
                   work=admin_httpd.env.work)
        assert r.status == 200, r.status
        assert A.password_of(r.text), r.text


# --- the full cache ------------------------------------------------------------------

def test_cache_full(admin_httpd, admin_files, device, keys):
    """SCEPPasswordMax 2: the third administrator gets NDES's full-cache
    page until a password has been used."""
    with admin_httpd.config(SCEPPasswordMax='2'):
        admin_httpd.errlog.expect(RE_CACHE_FULL_LOG)
        first = new_password(admin_httpd)
        assert admin_httpd.errlog.find(RE_WAITING % (r'\w+', 1), levels=('info',))
        new_password(admin_httpd, 'carol', 'standalone')
        assert admin_httpd.errlog.find(RE_WAITING % ('carol', 2), levels=('info',))
        r = get_page(admin_httpd)
        assert r.status == 200, r.status
        assert A.CACHE_FULL in r.text, r.text
        assert A.password_of(r.text) is None
        assert r.header('cache-control') == 'no-store'
        assert admin_httpd.errlog.find(RE_CACHE_FULL_LOG, levels=('warn',))
        r = get_page(admin_httpd, accept='application/json')
        assert r.status == 503, r.status
        j = r.json()
        assert j['error'] == 'password_cache_full' and j['message'] == A.CACHE_FULL, j
        assert 'password' not in j
        # a device uses the first password: its place is free again
        msg, r, rep = enroll(device, keys, 'frees-a-place.example.test', first)
        assert_enrolled(admin_httpd, admin_files, msg, r, rep)
        assert new_password(admin_httpd)
        assert len(admin_httpd.errlog.find(RE_WAITING % (r'\w+', 2))) == 2
        assert A.CACHE_FULL in get_page(admin_httpd).text


# --- headless Chromium: the administrator's browser --------------------------------

@pytest.fixture
def chromium(admin_httpd):
    work = os.path.join(admin_httpd.env.work, 'chromium')
    os.makedirs(work, exist_ok=True)
    with B.Chromium(work, trust_spki=[B.spki_hash(admin_httpd.server_cert)]) as b:
        yield b


def test_chromium_password_enrolls_device_once(admin_httpd, admin_files, device, keys,
                                               chromium):
    """The NDES flow: the administrator signs in (Basic, checked against
    LDAP), reads the password off the rendered page, the device enrolls with
    it; a second device with the same password is refused (event 29)."""
    page = chromium.open(page_url(admin_httpd), basic=('alice', L.USERS['alice']))
    assert page.status == 200, (page.status, page.text)
    assert len(page.auth_challenges) == 1 and page.auth_challenges[0]['scheme'] == 'basic', \
        page.auth_challenges
    assert page.headers.get('cache-control') == 'no-store', page.headers
    m = RE_RENDERED_PASSWORD.search(page.text)
    assert m, 'no password on the rendered page:\n' + page.text
    pw = m.group(1)
    assert 'Network Device Enrollment Service' in page.text
    assert admin_files.thumbprint in page.text.upper().replace(' ', '')
    msg, r, rep = enroll(device, keys, 'browser-device.example.test', pw)
    cert = assert_enrolled(admin_httpd, admin_files, msg, r, rep)
    assert cert.subject.rfc4514_string() == 'CN=browser-device.example.test'
    msg, r, rep = enroll(device, keys, 'second-device.example.test', pw)
    assert_spent(admin_httpd, msg, r, rep)


def test_chromium_unpermitted_user_sees_refusal(admin_httpd, chromium):
    admin_httpd.errlog.expect(A.RE_EVENT_6)
    page = chromium.open(page_url(admin_httpd), basic=('bob', L.USERS['bob']))
    assert page.status == 200, page.status
    assert A.NO_PERMISSION in page.text, page.text
    assert not RE_RENDERED_PASSWORD.search(page.text)
    assert admin_httpd.errlog.find(A.RE_EVENT_6)


def test_chromium_wrong_password_gets_nothing(admin_httpd, chromium):
    admin_httpd.errlog.expect(r'AH01617: user alice: authentication failure')
    page = chromium.open(page_url(admin_httpd), basic=('alice', 'wrong'))
    assert page.status == 401, page.status
    assert not RE_RENDERED_PASSWORD.search(page.text)


# --- micromdm's scepclient with a password from the page -------------------------------

class TestScepclient:
    @pytest.fixture(scope='class')
    def legacy(self, admin_httpd):
        with admin_httpd.config(('SCEPAllowLegacyAlgorithms', 'On'),
                                startup_expected=[LEGACY_START]):
            yield admin_httpd

    def test_scepclient_enrolls_with_page_password(self, legacy, admin_files):
        legacy.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)', RE_EVENT_29)
        pw = get_page(legacy, accept='application/json').json()['password']
        d = os.path.join(legacy.env.work, 'scepclient-admin')
        cnf = os.path.join(legacy.env.work, 'openssl-legacy.cnf')
        with open(cnf, 'w') as f:
            f.write('openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n'
                    '[provider_sect]\ndefault = default_sect\nlegacy = legacy_sect\n'
                    '[default_sect]\nactivate = 1\n[legacy_sect]\nactivate = 1\n')

        def run(name):
            sub = os.path.join(d, name)
            os.makedirs(sub, exist_ok=True)
            for f in os.listdir(sub):
                os.unlink(os.path.join(sub, f))
            p = subprocess.run(['/usr/bin/scepclient', '-private-key', sub + '/key.pem',
                                '-certificate', sub + '/cert.pem',
                                '-server-url', legacy.url('/certsrv/mscep/mscep.dll'),
                                '-challenge', pw, '-cn', name, '-keySize', '2048'],
                               capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, OPENSSL_CONF=cnf))
            return sub, p.stdout + p.stderr

        sub, out = run('sc-admin-1')
        assert os.path.exists(sub + '/cert.pem'), 'no certificate:\n' + out
        cert = pki.load_cert_file(sub + '/cert.pem')
        assert pki.verify_issued_by(cert, admin_files.ca)
        sub, out = run('sc-admin-2')
        assert not os.path.exists(sub + '/cert.pem'), 'a spent password was accepted'
        assert re.search(r'failInfo: badRequest', out), out
        assert legacy.errlog.find(RE_EVENT_29)


# --- certmonger's scep-submit with a password from the page --------------------------

def test_scep_submit_enrolls_with_page_password(admin_httpd, admin_env, admin_files, keys):
    """The PKCSReq scep-submit carries is built from an `openssl req` CSR whose
    challengePassword came from the admin page; the password then is spent."""
    work = admin_env.work
    url = admin_httpd.url('/cgi-bin/pkiclient.exe')
    ra_pem, ca_pem = admin_env.p('ra-enc.crt'), admin_env.p('ca.crt')
    pw = new_password(admin_httpd)

    def submit(name):
        key = keys.take()
        csr = certmonger.openssl_req(work, key, name, pw)
        msg = C.pkcsreq(csr, key, [admin_files.ra_enc], cipher='aes128', digest_name='sha256')
        msgf = os.path.join(work, name + '.p7')
        with open(msgf, 'w') as f:
            f.write(certmonger.pem('PKCS7', msg.der))
        p = subprocess.run([certmonger.SCEP_SUBMIT, '-u', url, '-r', ra_pem, '-N', ca_pem,
                            '-p', msgf], capture_output=True, text=True, timeout=60)
        return key, msg, p

    key, msg, p = submit('submit-admin-1')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    der = certmonger.parse_submit_output(p.stdout)
    certs = C.degenerate_certs(C.decrypt_envelope(der, key, msg.signer_cert))
    assert len(certs) == 1
    assert pki.verify_issued_by(certs[0], admin_files.ca)
    checks.assert_recorded(admin_httpd, msg.transaction_id, certs[0])

    admin_httpd.errlog.expect(RE_EVENT_29)
    key, msg, p = submit('submit-admin-2')
    assert p.returncode == 2, 'a spent password was accepted: exit %d\n%s' % (p.returncode,
                                                                              p.stdout)
    assert admin_httpd.errlog.find(RE_EVENT_29)
