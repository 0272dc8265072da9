"""The README's install path on Debian's stock Apache configuration (marker
`install`, left out of normal runs): `make install`, `scepctl setup`, the
database directory, scep.load and scep.conf into mods-available, `a2enmod
scep`, `apache2ctl configtest`, `apache2ctl start`, then an enrollment.

The integration tests' own httpd.conf hides what Debian's apache2.conf brings
(event MPM, User www-data, mod_reqtimeout, `Mutex file:${APACHE_LOCK_DIR}
default`, envvars): this test runs a second Apache instance of Debian's
multi-instance support (README.multiple-instances): a copy of /etc/apache2 as
/etc/apache2-sceptest, with APACHE_CONFDIR set for apache2ctl and a2enmod, and
run, lock, log and a2enmod state directories with that suffix
(sceptest/debian.py). Only ports.conf changes (a loopback test port and an
HTTPS one), and the system's own Apache and its /usr/lib/apache2/modules
and /usr/sbin stay untouched: the module and scepctl
are installed with DESTDIR, the PKI and the database directory are
temporary, and scep.load and scep.conf get explicit path substitutions, each
asserted to match once.

Passwords stay enforced: the admin page is set up as the README says (a2enmod
ssl, an HTTPS virtual host with the admin <Location>), behind Basic
authentication with a password file instead of Kerberos or LDAP; its
certificate comes from a test CA (Debian's snakeoil certificate is not made
on every system, and /etc/ssl stays untouched). certmonger's scep-submit
enrolls with the one-time password from the page. No warn-or-worse line may
appear in the output of apache2ctl configtest and start (where httpd logs
until its error log is open) nor in the instance's error.log.

Run as root, inside a private network namespace:
    unshare -n sh -c 'ip link set lo up && /usr/bin/python3 -m pytest -v -m install \
        t/integration/test_debian_install.py'
"""
import concurrent.futures
import os
import pwd
import subprocess
import tempfile
import types

import pytest
from sceptest import admin as A
from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import pem_certs
from sceptest.db import SQLiteDatabase
from sceptest.debian import (A2ENMOD, A2ENSITE, ADMIN_SITE, APACHE2CTL, BURST, CONFDIR,
                             ERROR_LOG, PID_FILE, STOCK_CONFDIR, Site, admin_site, copy_instance,
                             enabled, read_pid, remove_instance, require_debian_root, run,
                             stop_instance, submit, wait_for, warn_lines)
from sceptest.httpd import CA_SUBJECT, Env, ErrorLog, free_port
from sceptest.process import children

pytestmark = pytest.mark.install

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

# where the README installs things, and what scep.load and scep.conf name
MODULE = '/usr/lib/apache2/modules/mod_scep.so'
SCEPCTL = '/usr/sbin/scepctl'
PKI_DIR = '/etc/mod_scep'
DB_DIR = '/var/lib/mod_scep'


def assert_stock_untouched_by_us():
    """The copy must be Debian's configuration, not one an earlier run of the
    README's commands changed."""
    ours = [os.path.join(STOCK_CONFDIR, d, 'scep.' + ext)
            for d in ('mods-available', 'mods-enabled') for ext in ('load', 'conf')]
    found = [p for p in ours if os.path.lexists(p)]
    assert not found, '%s is not the stock configuration: %s' % (STOCK_CONFDIR, ', '.join(found))


def substitute(text, pairs, name):
    """Each old string must occur exactly once: a changed scep.conf or
    scep.load fails here instead of silently keeping a system path."""
    for old, new in pairs:
        assert text.count(old) == 1, '%s: %r occurs %d times, expected once' % (
            name, old, text.count(old))
        text = text.replace(old, new)
    return text


def active_lines(text):
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith('#')]


def make_install(destdir):
    """`make install DESTDIR=...` in the build tree: the module where scep.load
    looks for it and scepctl where README says, below destdir."""
    build = os.path.dirname(os.path.dirname(Env(REPO).scepctl))
    p = subprocess.run(['make', '-C', build, 'install', 'DESTDIR=' + destdir],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, 'make install failed:\n%s%s' % (p.stdout, p.stderr)
    for path in (MODULE, SCEPCTL):
        assert os.path.isfile(destdir + path), 'make install did not write %s\n%s' % (
            path, p.stdout)


def install_drop_in(src_dir, destdir, pki_dir, db_dir):
    """scep.load and scep.conf into the instance's mods-available, pointed at
    the DESTDIR module and the temporary PKI and database directories."""
    with open(os.path.join(src_dir, 'scep.load')) as f:
        load = substitute(f.read(), [('LoadModule scep_module %s\n' % MODULE,
                                      'LoadModule scep_module %s%s\n' % (destdir, MODULE))],
                          'scep.load')
    with open(os.path.join(src_dir, 'scep.conf')) as f:
        conf = f.read()
    conf = substitute(conf, [
        ('    SCEPCACertificateFile %s/ca.crt\n' % PKI_DIR,
         '    SCEPCACertificateFile %s/ca.crt\n' % pki_dir),
        ('    SCEPCAKeyFile %s/ca.key\n' % PKI_DIR, '    SCEPCAKeyFile %s/ca.key\n' % pki_dir),
        ('    SCEPRACertificate {0}/ra-sign.crt {0}/ra-sign.key\n'.format(PKI_DIR),
         '    SCEPRACertificate {0}/ra-sign.crt {0}/ra-sign.key\n'.format(pki_dir)),
        ('    SCEPRACertificate {0}/ra-enc.crt {0}/ra-enc.key\n'.format(PKI_DIR),
         '    SCEPRACertificate {0}/ra-enc.crt {0}/ra-enc.key\n'.format(pki_dir)),
        ('    DBDParams %s/scep.db\n' % DB_DIR, '    DBDParams %s/scep.db\n' % db_dir),
    ], 'scep.conf')
    system = (PKI_DIR, DB_DIR, os.path.dirname(MODULE))
    left = [ln for ln in active_lines(conf) + active_lines(load)
            if any(w.startswith(system) for w in ln.split())]
    assert not left, 'system paths left in the drop-in: %s' % left
    for name, text in (('scep.load', load), ('scep.conf', conf)):
        with open(os.path.join(CONFDIR, 'mods-available', name), 'w') as f:
            f.write(text)


@pytest.fixture
def tmp():
    """A temporary directory for DESTDIR, the PKI, the database and the
    clients; whatever happens, the instance is stopped and all its
    directories removed afterwards."""
    require_debian_root('the Debian install test')
    assert_stock_untouched_by_us()
    remove_instance(None)  # what an interrupted run left
    d = tempfile.mkdtemp(prefix='mod_scep-install-')
    try:
        os.chmod(d, 0o755)  # www-data reaches the database directory inside
        yield d
    finally:
        remove_instance(d)


def test_readme_install_on_debian_stock_apache(tmp):
    www = pwd.getpwnam('www-data')
    http_port = free_port(18900)
    https_port = free_port(http_port + 1)
    destdir = os.path.join(tmp, 'destdir')
    pki_dir = os.path.join(tmp, 'etc-mod_scep')
    db_dir = os.path.join(tmp, 'var-lib-mod_scep')
    work = os.path.join(tmp, 'work')
    os.mkdir(work)
    copy_instance(http_port, https_port)

    # make install; scepctl setup; the database directory
    make_install(destdir)
    p = subprocess.run([destdir + SCEPCTL, 'setup', '-d', pki_dir, '--ca-subject', CA_SUBJECT],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, 'scepctl setup: %s%s' % (p.stdout, p.stderr)
    for key in ('ca.key', 'ra-sign.key', 'ra-enc.key'):
        assert os.stat(os.path.join(pki_dir, key)).st_mode & 0o777 == 0o600, key
    p = subprocess.run(['install', '-d', '-o', 'www-data', '-g', 'www-data', '-m', '0700', db_dir],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

    # the drop-in, a2enmod scep, the admin page, configtest, start
    install_drop_in(os.path.join(REPO, 'conf.d'), destdir, pki_dir, db_dir)
    assert not enabled('dbd'), 'dbd is enabled in the stock configuration already'
    rc, out = run([A2ENMOD, 'scep'])
    assert rc == 0, 'a2enmod scep: ' + out
    assert enabled('scep') and enabled('dbd'), 'a2enmod scep did not enable dbd:\n' + out
    tls_ca = admin_site(work, https_port)
    rc, out = run([A2ENMOD, 'ssl'])
    assert rc == 0, 'a2enmod ssl: ' + out
    rc, out = run([A2ENSITE, ADMIN_SITE])
    assert rc == 0, 'a2ensite: ' + out
    rc, out = run([APACHE2CTL, 'configtest'])
    assert rc == 0 and 'Syntax OK' in out, 'apache2ctl configtest: ' + out
    assert not warn_lines(work, 'configtest', out), 'apache2ctl configtest: ' + out
    rc, out = run([APACHE2CTL, 'start'])
    assert rc == 0, 'apache2ctl start: ' + out
    assert not warn_lines(work, 'start', out), 'apache2ctl start: ' + out
    ppid = wait_for('the pid file ' + PID_FILE, read_pid)
    workers = wait_for('the workers of apache2 %d' % ppid, lambda: children(ppid))
    assert os.stat('/proc/%d' % ppid).st_uid == 0
    assert all(ruid == www.pw_uid and euid == www.pw_uid for _, ruid, euid in workers), \
        'workers not running as www-data: %s' % workers

    # GetCACaps at the README's two URLs and GetCACert through a real client
    base = 'http://127.0.0.1:%d' % http_port
    for path in ('/cgi-bin/pkiclient.exe', '/certsrv/mscep/mscep.dll'):
        rc, out, err = submit(base + path, '-c')
        assert rc == 0, path + ': ' + out + err
        assert set(out.split()) >= {'POSTPKIOperation', 'SHA-256', 'AES', 'SCEPStandard'}, out
    site = Site(base + path, https_port, tls_ca, pki_dir, work)
    rc, out, err = submit(site.url, '-C')
    assert rc == 0, out + err
    assert pem_certs(out) == {pki.cert_der(c) for c in (site.ca, site.ra_sign, site.ra_enc)}, \
        'GetCACert: ' + out

    # enrollments by certmonger's scep-submit with one-time passwords from
    # the admin page: one, then as many at once as the password cache holds
    # (SCEPPasswordMax), with the global mutexes as fcntl locks (Debian's
    # `Mutex file:${APACHE_LOCK_DIR} default`). Their false deadlocks
    # (EDEADLK) need sustained load to show: that is test_soak.py's job.
    enrolled = [site.enroll('install-0')]
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        passwords = [site.password() for _ in range(BURST)]
        enrolled += pool.map(site.enroll, ['install-%d' % (i + 1) for i in range(BURST)],
                             passwords)

    # the web surface: TRACE refused at the device URL and the admin page; a
    # GET message of SCEPMaxRequestSize (65536 bytes), every character of its
    # base64 escaped, within the drop-in's LimitRequestLine
    for url in (site.url, 'https://localhost:%d%s' % (https_port, A.ADMIN_PATH)):
        r = A.curl(url, tls_ca, user=A.ADMIN_USER, password=A.ADMIN_SECRET, work=work,
                   extra=['-X', 'TRACE'])
        assert r.status == 405 and b'Authorization' not in r.body, (url, r.status)
    key = pki.new_key()
    msg = C.sized_pkcsreq(pki.make_csr(key, 'install-get-max', challenge=site.password()), key,
                          [site.ra_enc], 65536)
    r, rep = C.Client(site.url).send(msg, method='GET', style='escape_all')
    enrolled.append((msg, checks.assert_issued(msg, r, rep, site.ca)))

    # the records: written by www-data into its own directory
    db_file = os.path.join(db_dir, 'scep.db')
    st = os.stat(db_file)
    assert (st.st_uid, st.st_gid) == (www.pw_uid, www.pw_gid), 'scep.db owned by %d:%d' % (
        st.st_uid, st.st_gid)
    # the directory 0700 as README creates it, the files 0600 as mod_scep
    # makes them (SQLite would leave them to Apache's umask: 0644)
    checks.assert_private_records(db_dir, www.pw_uid, www.pw_gid)
    records = types.SimpleNamespace(db_rows=SQLiteDatabase(db_file).rows)
    for msg, cert in enrolled:
        checks.assert_recorded(records, msg.transaction_id, cert)

    # Debian's error log of the instance, up to the stop: nothing at warn or
    # worse, from mod_scep or anything else
    stop_instance()
    assert os.path.exists(ERROR_LOG), 'no error log at ' + ERROR_LOG
    bad = ErrorLog(ERROR_LOG).unexpected()
    assert not bad, 'warn-or-worse lines in %s:\n%s' % (ERROR_LOG, '\n'.join(bad))
