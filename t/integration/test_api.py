"""The public API of include/mod_scep.h, used by another module as a real one
would: mod_scep_api_test.c, built here with apxs against the header (and the
generated mod_scep_version.h of the build), finds the optional functions
with APR_RETRIEVE_OPTIONAL_FN and shows them at its handler. A password it
mints is a real one-time password of the server's cache: a device enrolls
with it, once; the status names the version, the CA and the cache. Loaded
without mod_scep, the module still starts and answers (the functions are
absent).
"""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import Apache, Env, make_conf

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.environ.get('SCEP_BUILD_DIR', REPO)

KU_GENERAL = pki.key_usage(digital_signature=True, key_encipherment=True)  # 0xa0
RE_PASSWORD = re.compile(r'^[0-9A-F]{16}$')


def configure_version():
    with open(os.path.join(REPO, 'configure.ac')) as f:
        m = re.search(r'AC_INIT\(\[mod_scep\], \[([^\]]+)\]', f.read())
    assert m, 'no version in AC_INIT'
    return m.group(1)


@pytest.fixture(scope='module')
def api_module(env):
    """mod_scep_api_test.so, built with apxs in t/gen (a copy of the source:
    apxs leaves its objects next to it)."""
    work = os.path.join(env.gen, 'api-module')
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = shutil.copy(os.path.join(REPO, 't', 'integration', 'mod_scep_api_test.c'), work)
    p = subprocess.run(['apxs', '-c', '-I', os.path.join(REPO, 'include'),
                        '-I', os.path.join(BUILD, 'include'), '-Wc,-Wall', '-Wc,-Werror', src],
                       cwd=work, capture_output=True, text=True)
    assert p.returncode == 0, 'apxs -c failed:\n' + p.stdout + p.stderr
    so = os.path.join(work, '.libs', 'mod_scep_api_test.so')
    assert os.path.exists(so), p.stdout
    return so


def api_config(so):
    return ('LoadModule scep_api_test_module %s\n'
            '<Location /api>\n    SetHandler scep-api-test\n</Location>\n' % so)


@pytest.fixture
def api(httpd, api_module):
    with httpd.config(('SCEPChallengePasswordFile', None),
                      raw_extra=api_config(api_module)) as server:
        yield server


def api_get(server, what):
    """The handler's key=value lines as a dict (or 'absent')."""
    r = C.http_request('GET', server.url('/api/' + what))
    assert r.status == 200, 'HTTP %d: %r' % (r.status, r.body[:200])
    assert r.headers.get('cache-control') == 'no-store'
    text = r.body.decode()
    if text == 'absent\n':
        return 'absent'
    return dict(line.split('=', 1) for line in text.splitlines())


def enroll(client, key, cn, challenge):
    csr = pki.make_csr(key, cn, challenge=challenge, ku=KU_GENERAL)
    return client.enroll(csr, key)


def test_status(api, files):
    st = api_get(api, 'status')
    assert st['status'] == '0'
    assert st['version'] == configure_version()
    assert st['enabled'] == '1'
    assert st['ca_thumbprint'] == hashlib.sha1(pki.cert_der(files.ca)).hexdigest().upper()
    assert st['passwords_max'] == '5'  # SCEPPasswordMax's default
    assert st['single_password'] == '0'


def test_minted_password_enrolls_a_device_once(api, scep, keys, files):
    waiting = int(api_get(api, 'status')['passwords_waiting'])
    minted = api_get(api, 'mint')
    password = minted['password']
    assert RE_PASSWORD.match(password), minted
    assert int(minted['expires']) > 0
    assert api.errlog.find(r'SCEP093: one-time password given to another module for - \(127\.0\.0\.1\), '
                    r'valid until .*; %d of at most 5 \(SCEPPasswordMax\)' % (waiting + 1))
    assert int(api_get(api, 'status')['passwords_waiting']) == waiting + 1

    msg, r, rep = enroll(scep, keys.any(0), 'api-device.example.test', password)
    checks.assert_issued(msg, r, rep, files.ca)
    assert int(api_get(api, 'status')['passwords_waiting']) == waiting

    # one-time: a general-purpose request used it up
    msg, r, rep = enroll(scep, keys.any(1), 'api-device-2.example.test', password)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    api.expect_log(r'SCEP\d{3}: .*%s.*\(NDES event 29\)' % msg.transaction_id)

    for path in (api.env.error_log, os.path.join(api.env.logs, 'access_log')):
        with open(path, errors='replace') as f:
            assert password not in f.read(), 'the password is in ' + path


def test_full_cache_refuses_like_the_admin_page(httpd, api_module):
    with httpd.config(('SCEPChallengePasswordFile', None), ('SCEPPasswordMax', '1'),
                      raw_extra=api_config(api_module)) as server:
        # what earlier tests left waiting fills the single slot first
        while int(api_get(server, 'status')['passwords_waiting']) < 1:
            assert 'password' in api_get(server, 'mint')
        assert api_get(server, 'mint') == {'status': str(28)}  # APR_ENOSPC
        server.expect_log(r'SCEP094: no password for another module\'s - \(127\.0\.0\.1\): the '
                          r'password cache is full, 1 passwords waiting')


class ApacheWithoutScep(Apache):
    """A server with the test module but no mod_scep."""

    def write_conf(self, directives=None, raw_extra=None):
        text = make_conf(self.env, [], self.raw_extra if raw_extra is None else raw_extra)
        text = '\n'.join(ln.replace('LogLevel warn scep:info', 'LogLevel warn')
                         for ln in text.splitlines()
                         if not ln.startswith('LoadModule scep_module '))
        with open(self.env.conf, 'w') as f:
            f.write(text + '\n')
        return text


def test_absent_without_mod_scep(database_server, api_module):
    env = Env(REPO, name='api-without-scep', port_base=18700)
    env.clean()
    server = ApacheWithoutScep(env)
    server.raw_extra = api_config(api_module)
    server.start()
    try:
        assert api_get(server, 'mint') == 'absent'
        assert api_get(server, 'status') == 'absent'
        assert not server.errlog.unexpected()
    finally:
        server.stop()
