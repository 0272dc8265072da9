"""Security checks: private files open to group or others keep Apache from
starting (`apache2 -t` too), naming the file and the fix; the admin page and
anything that is not the device protocol cannot be reached through the
device URL; secrets are compared in constant time and never logged.

The startup checks run on their own server root t/gen/<mpm>/security; the
URL checks on the session's server with the admin page behind Basic
authentication (as test_passwords.py sets it up).
"""
import base64
import glob
import os
import re
import shutil

import pytest

import test_passwords as P
from sceptest import admin as A
from sceptest import client as C
from sceptest.checks import assert_not_logged
from sceptest.httpd import Apache, default_directives, make_conf
from sceptest.roots import fresh_env

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


# ---------------------------------------------------------------------------
# private files at startup

@pytest.fixture(scope='module')
def senv():
    return fresh_env(REPO, 'security', 18500)


def copy_pki(senv, name):
    """A copy of the PKI (and the challenge file) whose modes a test may
    change; the default directives pointing at it."""
    pdir = os.path.join(senv.gen, 'pki-' + name)
    if os.path.isdir(pdir):
        shutil.rmtree(pdir)
    shutil.copytree(senv.pki, pdir)
    challenge = os.path.join(pdir, 'challenge.txt')
    shutil.copy2(senv.challenge_file, challenge)
    directives = [(k, v.replace(senv.pki, pdir).replace(senv.challenge_file, challenge))
                  for k, v in default_directives(senv)]
    return pdir, directives


def with_secret_key(senv, pdir, directives):
    """Single-password mode, its secret key file made by scepctl."""
    key, pw = os.path.join(pdir, 'secret.key'), os.path.join(pdir, 'single-password')
    rc, out, err = P.scepctl_single(senv, key, pw, '--generate')
    assert rc == 0, out + err
    return directives + [('SCEPUseSinglePassword', 'On'), ('SCEPSecretKeyFile', key),
                         ('SCEPSinglePasswordFile', pw)]


# file name in the PKI copy -> what it is
PRIVATE_FILES = ['ca.key', 'ra-sign.key', 'ra-enc.key', 'secret.key', 'challenge.txt']


def config_test(senv, directives):
    return Apache(senv).config_test(make_conf(senv, directives))


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o660, 0o644, 0o620], ids=oct)
@pytest.mark.parametrize('name', PRIVATE_FILES)
def test_private_file_open_to_others_refuses_start(senv, name, mode):
    pdir, directives = copy_pki(senv, '%s-%o' % (name, mode))
    directives = with_secret_key(senv, pdir, directives)
    path = os.path.join(pdir, name)
    os.chmod(path, mode)
    rc, out = config_test(senv, directives)
    assert rc != 0, 'apache2 -t passed with %s mode %o:\n%s' % (name, mode, out)
    lines = [ln for ln in out.splitlines() if path in ln]
    assert lines, 'no line names %s:\n%s' % (path, out)
    assert any(re.search(r'SCEP\d{3}: .*chmod 600 %s' % re.escape(path), ln) for ln in lines), \
        'no line says the fix:\n' + out


@pytest.mark.parametrize('mode', [0o600, 0o400], ids=oct)
def test_private_files_of_the_owner_alone_start(senv, mode):
    """Debian's layout: keys of root, mode 0600 or 0400, read by the parent
    (as root) before it drops privileges; the children never open them."""
    pdir, directives = copy_pki(senv, 'owner-%o' % mode)
    directives = with_secret_key(senv, pdir, directives)
    for name in PRIVATE_FILES:
        os.chmod(os.path.join(pdir, name), mode)
    rc, out = config_test(senv, directives)
    assert rc == 0, out


# ---------------------------------------------------------------------------
# the device URL reaches the device protocol and nothing else

CRL_LOCATION = """<Location /certsrv/mscep/crl>
    SetHandler scep-crl
</Location>
"""


@pytest.fixture(scope='module')
def admin(httpd, env):
    """The session's server with the admin page behind Basic authentication,
    the manager page below it and the CRL's URL."""
    P.use_config(httpd, A.otp_directives(),
                 A.basic_admin_config(A.make_htpasswd(env), A.MANAGER_LOCATION + CRL_LOCATION))
    yield httpd
    httpd.restart_with()


# requests through or around /certsrv/mscep that must not get the admin
# page without credentials, nor any file
TRICKS = [
    '/certsrv/mscep/mscep.dll/../../mscep_admin/',
    '/certsrv/mscep/../mscep_admin/',
    '/certsrv/mscep/%2e%2e/mscep_admin/',
    '/certsrv/mscep/.%2e/mscep_admin/',
    '/certsrv/mscep/mscep.dll/%2e%2e/%2e%2e/mscep_admin/',
    '/certsrv/mscep/mscep.dll%2f..%2f..%2fmscep_admin/',
    '/certsrv/mscep/..%2fmscep_admin/',
    '/certsrv/mscep/%252e%252e/mscep_admin/',
    '/certsrv/mscep//../mscep_admin/',
    '/certsrv/mscep/mscep.dll/mscep_admin/',
    '/certsrv/mscep/mscep_admin/',
    '/certsrv/mscep%00/../mscep_admin/',
    '/certsrv/MSCEP_ADMIN/',
    '/certsrv/mscep_admin%2f',
    '/cgi-bin/pkiclient.exe/../../certsrv/mscep_admin/',
    '/certsrv/mscep/mscep.dll?operation=../mscep_admin/',
    '/certsrv/mscep/mscep.dll?operation=GetChallengePassword',
    '/certsrv/mscep/mscep.dll?operation=%2e%2e%2fmscep_admin',
    '/certsrv/mscep/mscep.dll?operation=GetCACert/../../mscep_admin',
    '/certsrv/mscep/mscep.dll/../../../pki/ca.key',
    '/certsrv/mscep/%2e%2e/%2e%2e/pki/ca.key',
    '/certsrv/mscep/mscep.dll/../../../conf/httpd.conf',
    '/certsrv/mscep/mscep.dll/../../../conf/challenge.txt',
]

RE_SECRET = re.compile(rb'PRIVATE KEY|challenge password|"password"|SCEPCAKeyFile|'
                       rb'e\x00n\x00r\x00o\x00l\x00l\x00m\x00e\x00n\x00t\x00')


@pytest.mark.parametrize('method', ['GET', 'POST'])
@pytest.mark.parametrize('path', TRICKS)
def test_device_url_reaches_nothing_else(admin, path, method):
    r = C.http_request(method, admin.url(path), body=b'' if method == 'POST' else None,
                       headers={'Accept': 'application/json'})
    assert r.status in (400, 401, 403, 404, 405), 'HTTP %d for %s: %r' % (r.status, path,
                                                                          r.body[:200])
    assert not RE_SECRET.search(r.body), 'secret material in the answer to %s' % path
    # the refusals of the SCEP handler and of httpd's path checks
    admin.errlog.expect(r'SCEP\d{3}: .*\(NDES event 1[12]\)', r'AH\d+: ')


def test_admin_page_needs_its_credentials(admin):
    """The control: the admin page itself answers with credentials only."""
    r = C.http_request('GET', admin.url(A.ADMIN_PATH), headers={'Accept': 'application/json'})
    assert r.status == 401
    password, _ = A.get_password(admin)
    assert P.RE_PASSWORD.match(password)
    assert_not_logged(admin, password, A.ADMIN_SECRET)


def test_admin_handler_ignores_device_operations(admin):
    """operation= on the admin URL is no way into the device protocol, and
    the device handler does not serve the admin page under any operation."""
    auth = base64.b64encode(('%s:%s' % (A.ADMIN_USER, A.ADMIN_SECRET)).encode()).decode()
    r = C.http_request('GET', admin.url(A.ADMIN_PATH + '?operation=GetCACert'),
                       headers={'Authorization': 'Basic ' + auth, 'Accept': 'application/json'})
    assert r.status == 200 and C.CT_CA_RA not in r.content_type
    for op in ('GetCACaps', 'GetCACert', 'PKIOperation', 'GetNextCACert', 'Admin'):
        r = C.http_request('GET', admin.url() + '?operation=' + op,
                           headers={'Authorization': 'Basic ' + auth,
                                    'Accept': 'application/json'})
        assert not RE_SECRET.search(r.body), op
    admin.errlog.expect(r'SCEP\d{3}: .*\(NDES event 1[12]\)')
    assert_not_logged(admin, A.ADMIN_SECRET)


# every location of the module's handlers in the admin fixture
MODULE_PATHS = ['/certsrv/mscep/mscep.dll?operation=GetCACaps', '/cgi-bin/pkiclient.exe',
                A.ADMIN_PATH, A.MANAGER_PATH, '/certsrv/mscep/crl/ca.crl']


def basic_auth():
    auth = base64.b64encode(('%s:%s' % (A.ADMIN_USER, A.ADMIN_SECRET)).encode()).decode()
    return 'Basic ' + auth


@pytest.mark.parametrize('path', MODULE_PATHS)
def test_trace_refused_at_module_locations(admin, path):
    """TRACE would echo the request, the administrator's Authorization header
    included (cross-site tracing); httpd answers it before any access check
    unless TraceEnable is off server-wide. The module refuses it at its own
    locations: 405, nothing echoed."""
    r = C.http_request('TRACE', admin.url(path), headers={'Authorization': basic_auth()})
    assert r.status == 405, 'HTTP %d for TRACE %s: %r' % (r.status, path, r.body[:200])
    assert basic_auth().encode() not in r.body
    assert b'message/http' not in r.content_type.encode()


def test_trace_elsewhere_left_to_httpd(admin):
    """The control: this server has TraceEnable at httpd's default (on), and
    a location that is not the module's still gets httpd's echo."""
    r = C.http_request('TRACE', admin.url('/elsewhere'), headers={'X-Probe': 'trace-control'})
    assert r.status == 200 and r.content_type.startswith('message/http'), r.status
    assert b'X-Probe: trace-control' in r.body


def dropin_conf(env):
    """conf.d/scep.conf as installed, pointed at this server root's PKI, up
    to its records section (the harness configures the database)."""
    with open(os.path.join(REPO, 'conf.d', 'scep.conf')) as f:
        text = f.read()
    return text[:text.index('# --- Records (mod_dbd)')].replace('/etc/mod_scep/', env.pki + '/')


def test_trace_refused_with_dropin_configuration(httpd):
    """The drop-in alone (its own <Location>s and directives) in a server that
    turned TraceEnable on: TRACE still gets 405 at the module's URLs, while
    the rest of the server is left as its administrator set it."""
    try:
        httpd.set_directives([], dropin_conf(httpd.env) + 'TraceEnable On\n')
        for path in ('/certsrv/mscep/mscep.dll', '/certsrv/mscep/mscep.dll/pkiclient.exe',
                     '/cgi-bin/pkiclient.exe'):
            r = C.http_request('TRACE', httpd.url(path), headers={'X-Probe': 'dropin'})
            assert r.status == 405 and b'X-Probe' not in r.body, (path, r.status)
        r = C.http_request('TRACE', httpd.url('/elsewhere'), headers={'X-Probe': 'dropin'})
        assert r.status == 200 and b'X-Probe: dropin' in r.body, r.status
        assert C.Client(httpd.url()).get_ca_caps().status == 200
    finally:
        httpd.restart_with()


# ---------------------------------------------------------------------------
# secrets: constant-time comparisons

# names under which the C sources hold secrets
SECRET_NAMES = r'(password|passwd|challenge|secret|token|csrf|nonce_key|mac|hmac)'
RE_PLAIN_COMPARE = re.compile(r'\b(memcmp|strcmp|strncmp|strcasecmp|strncasecmp|bcmp)\s*\(([^;]*)')


def test_secrets_compared_in_constant_time():
    """No plain comparison function touches a variable named like a secret in
    the module's sources: secrets go through CRYPTO_memcmp (directly, or via
    scep_password_equal(), which compares HMACs of both sides)."""
    offenders = []
    for path in sorted(glob.glob(os.path.join(REPO, 'mod_scep', '*.c'))):
        with open(path) as f:
            for no, line in enumerate(f, 1):
                m = RE_PLAIN_COMPARE.search(line)
                # against a literal it is a flag ("-": read from stdin), no secret
                if m and re.search(SECRET_NAMES, m.group(2), re.I) and '"' not in m.group(2):
                    offenders.append('%s:%d: %s' % (os.path.relpath(path, REPO), no,
                                                    line.strip()))
    assert not offenders, 'plain comparisons of secrets:\n' + '\n'.join(offenders)
