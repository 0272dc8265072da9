"""pytest harness for mod_scep: a real Apache (SCEP_MPM=event|worker|prefork) with
the freshly built module, a PKI made by scepctl, and an error-log check
after every test: any [warn]/[error]/[crit]/[emerg] line a test did not
declare with httpd.errlog.expect(...) fails it. With a module built by
./configure --enable-sanitizers, any ASan/UBSan/LeakSanitizer report fails
the test after which it appeared (sceptest/sanitizer.py)."""
import grp
import hashlib
import os
import pwd
import re
import shutil
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from sceptest import admin as A  # noqa: E402
from sceptest import cmp as CMP  # noqa: E402
from sceptest import client as C  # noqa: E402
from sceptest import db  # noqa: E402
from sceptest import pki  # noqa: E402
from sceptest import sanitizer  # noqa: E402
from sceptest.httpd import Apache, Env  # noqa: E402
from sceptest.kdc import KDC  # noqa: E402
from sceptest.ldap import Slapd  # noqa: E402
from sceptest.paths import gen_dir  # noqa: E402
from sceptest.roots import fresh_env  # noqa: E402
from sceptest.service import Service  # noqa: E402
from sceptest.tls import TestCA  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def pytest_report_header(config):
    return 'mod_scep integration: MPM %s, database %s, repo %s' % (
        os.environ.get('SCEP_MPM', 'event'), db.KIND, REPO)


@pytest.fixture(scope='session', autouse=True)
def database_server():
    """SCEP_DB=pgsql: a PostgreSQL server of the tests' own on loopback
    (t/gen/<mpm>/pgsql, see sceptest/pgsql.py) for the whole session; every
    server root gets its own database there. The session's servers name it
    (through env, admin_env) so that it stops after them."""
    if db.KIND != 'pgsql':
        yield None
        return
    from sceptest.pgsql import Cluster
    c = Cluster(os.path.join(gen_dir(REPO), os.environ.get('SCEP_MPM', 'event'), 'pgsql'))
    c.start()
    db.use_cluster(c)
    yield c
    db.use_cluster(None)
    c.stop()


@pytest.fixture(scope='session', autouse=True)
def sanitizer_reports():
    """The sanitizers' report files of this session (emptied first when the
    module is sanitized). What a process reports when it exits at the end of
    the session (a leak in the parent, or in a child stopping with it) fails
    the session's teardown."""
    d = sanitizer.report_dir(REPO)
    if sanitizer.runtime(Env(REPO).module):
        shutil.rmtree(d, ignore_errors=True)
    reports = sanitizer.Reports(d)
    yield reports
    new = reports.new()
    assert not new, 'sanitizer reports at the end of the session:\n' + '\n'.join(new)


@pytest.fixture(autouse=True)
def _sanitizer_check(sanitizer_reports):
    """Fails the test after which a sanitizer reported (a report written by a
    child during the test, or by one that exited since the last test)."""
    yield
    new = sanitizer_reports.new()
    assert not new, 'sanitizer reports:\n' + '\n'.join(new)


@pytest.fixture(scope='session')
def env(database_server):
    e = Env(REPO)
    if not e.built():
        pytest.fail('mod_scep is not built: %s and %s must exist (autoreconf -fi && ./configure '
                    '&& make)' % (e.module, e.scepctl), pytrace=False)
    e.clean()
    p = e.setup_pki()
    # scepctl prints the CA thumbprint the way NDES shows it
    ca = pki.load_cert_file(e.p('ca.crt'))
    thumb = hashlib.sha1(pki.cert_der(ca)).hexdigest().upper()
    m = re.search(r'CA thumbprint: ([0-9A-Fa-f]{40})', p.stdout + p.stderr)
    assert m, 'scepctl setup did not print the CA thumbprint: %r' % (p.stdout + p.stderr)
    assert m.group(1).upper() == thumb
    return e


@pytest.fixture(scope='session')
def httpd(env):
    a = Apache(env)
    a.start()
    yield a
    a.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


@pytest.fixture(autouse=True)
def _error_log_check(request):
    """Marks the error log before each test; afterwards any unexpected
    warn-or-worse line fails the test. Covers the main server (httpd), the
    admin page's server (admin_httpd), the CMP RA's (cmp_httpd) and the
    servers of the service (service)."""
    servers = [request.getfixturevalue(name) for name in ('httpd', 'admin_httpd', 'cmp_httpd')
               if name in request.fixturenames]
    if 'service' in request.fixturenames:
        servers += request.getfixturevalue('service').servers
    if not servers:
        yield
        return
    for a in servers:
        a.errlog.mark()
    yield
    time.sleep(0.15)  # lines (and cores) a child leaves after it answered
    cores = ''.join(a.backtraces() for a in servers)
    call = getattr(request.node, 'rep_call', None)
    if call is not None and call.failed:
        # the failure says enough (the log lines are in its output), unless
        # a child crashed
        assert not cores, 'crashed Apache children:\n' + cores
        return
    bad = [ln for a in servers for ln in a.errlog.unexpected()]
    assert not bad, 'unexpected error-log lines:\n' + '\n'.join(bad) + '\n' + cores


@pytest.fixture(scope='session')
def keys():
    return pki.KeyPool(size=10)


@pytest.fixture(scope='session')
def files(env):
    """The PKI on disk, as cryptography objects."""
    class F:
        ca = pki.load_cert_file(env.p('ca.crt'))
        ca_key = pki.load_key_file(env.p('ca.key'))
        ra_sign = pki.load_cert_file(env.p('ra-sign.crt'))
        ra_enc = pki.load_cert_file(env.p('ra-enc.crt'))
        ra_enc_key = pki.load_key_file(env.p('ra-enc.key'))
    return F


@pytest.fixture
def client(httpd):
    c = C.Client(httpd.url())
    return c


@pytest.fixture(scope='session')
def cacerts(files):
    """The RA-mode certificates as a client picks them (taken from the files,
    so that tests do not depend on which configuration is running)."""
    return C.CACerts(C.CT_CA_RA, [files.ca, files.ra_sign, files.ra_enc],
                     files.ca, files.ra_sign, files.ra_enc)


@pytest.fixture
def scep(httpd, cacerts):
    """A client that already knows the RA certificates."""
    c = C.Client(httpd.url())
    c._ca = cacerts
    return c


CHALLENGE = 'mod-scep-test-challenge'


# --- the admin page: its own Apache, slapd and KDC (started only when a test
# needs them, stopped at the end of the session) -----------------------------

@pytest.fixture(scope='session')
def admin_env(database_server):
    return fresh_env(REPO, 'admin', 18600)


@pytest.fixture(scope='session')
def tls_ca(admin_env):
    """The test CA of the TLS servers (slapd, Apache's HTTPS)."""
    return TestCA(os.path.join(admin_env.gen, 'tls'))


@pytest.fixture(scope='session')
def slapd(admin_env, tls_ca):
    s = Slapd(os.path.join(admin_env.gen, 'slapd'), tls_ca)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope='session')
def kdc(admin_env):
    k = KDC(os.path.join(admin_env.gen, 'kdc'))
    owner = None
    if admin_env.as_root:
        owner = (pwd.getpwnam('www-data').pw_uid, grp.getgrnam('www-data').gr_gid)
    k.start(www_owner=owner)
    yield k
    k.stop()


@pytest.fixture(scope='session')
def admin_httpd(admin_env, tls_ca, slapd, kdc):
    """Apache with the admin page behind Kerberos and LDAP Basic (see
    sceptest/admin.py); .ports, .tls_ca, .server_cert; restart_with() keeps
    the virtual hosts."""
    a = Apache(admin_env)
    a.ports = A.Ports(admin_env.port)
    crt, key = tls_ca.server('apache')
    a.server_cert = pki.load_cert_file(crt)
    a.tls_ca = tls_ca
    a.base_directives = a.base_directives + A.scep_directives(slapd)
    a.directives = list(a.base_directives)
    a.base_raw_extra = A.raw_config(admin_env, a.ports, tls_ca, crt, key, slapd, kdc)
    a.raw_extra = a.base_raw_extra
    a.extra_env = kdc.server_env()
    a.start()
    yield a
    a.stop()


# --- the CMP backend: OpenSSL's CMP server in its mock mode as the CA ---------

@pytest.fixture(scope='session')
def cmp_env(database_server):
    """The CMP RA's server root t/gen/<mpm>/cmp: scepctl setup makes the
    CA (the external CA: its key goes to the mock server's side, never to
    Apache) and the RA certificates it issued."""
    return fresh_env(REPO, 'cmp', 18800)


@pytest.fixture(scope='session')
def cmp_pki(cmp_env):
    """The CA's side (sceptest/cmp.py): its CMP signer, another CA's
    signer, the certificates it answers for devices' keys."""
    return CMP.CMPPKI(os.path.join(cmp_env.gen, 'cmp-ca'), cmp_env.p('ca.crt'),
                      cmp_env.p('ca.key'))


@pytest.fixture(scope='session')
def _cmp_mock(cmp_env):
    m = CMP.MockCMP(os.path.join(cmp_env.gen, 'cmp-ca'))
    yield m
    m.stop()


@pytest.fixture
def cmp_server(_cmp_mock):
    """`openssl cmp -port` (MockCMP): the test starts it with its options
    (cmp_server.start(*args)); stopped after the test. Its port is the
    session's, so the RA's SCEPCMPServer stays the same."""
    yield _cmp_mock
    _cmp_mock.stop()


# --- several servers, one service: two Apache servers on one PostgreSQL ------

@pytest.fixture(scope='session')
def service_pg(database_server):
    """The PostgreSQL server of the service: the session's (SCEP_DB=pgsql),
    else one of its own in t/gen/<mpm>/service-pg, stopped at the end."""
    if database_server is not None:
        yield database_server
        return
    from sceptest.pgsql import Cluster
    c = Cluster(os.path.join(gen_dir(REPO), os.environ.get('SCEP_MPM', 'event'), 'service-pg'))
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope='session')
def service(service_pg):
    """Two Apache servers, A and B, with one PKI and one database (see
    sceptest/service.py); each has .client, which knows the CA's
    certificates."""
    svc = Service(REPO, service_pg)
    svc.start()
    for s in svc.servers:
        s.client = C.Client(s.url())
        s.client.get_ca_cert()
    yield svc
    svc.stop()
