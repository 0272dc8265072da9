"""The Debian package (marker `package`, left out of normal runs):
libapache2-mod-scep built with dpkg-buildpackage from a copy of the tree,
checked by lintian, installed with dpkg on this machine, enabled on Debian's
stock configuration, `scepctl setup`, an enrollment by certmonger's
scep-submit, then `dpkg --remove` and `dpkg --purge`, after which nothing of
it is left.

The package installs where packages install: /usr/lib/apache2/modules,
/usr/sbin/scepctl, /etc/apache2/mods-available, /var/lib/scep; the test
refuses to run when any of them holds a mod_scep already (another install
that the purge would take away). It is enabled and started in a second
Apache instance (sceptest/debian.py: a copy of /etc/apache2 made after the
install, so with the package's scep.load and scep.conf exactly as dpkg put
them; a2enmod's state in the instance's own directory), so that the system's
own Apache is neither enabled nor started. The PKI is made where the
package's scep.conf looks for it, /etc/scep; the package never removes it
(README.Debian: it holds the CA key), so the test does, at its end.

Run as root, inside a private network namespace:
    unshare -n sh -c 'ip link set lo up && /usr/bin/python3 -m pytest -v -m package \
        t/integration/test_debian_package.py'
"""
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import types

import pytest
from sceptest import checks
from sceptest.certmonger import pem_certs
from sceptest import pki
from sceptest.db import SQLiteDatabase
from sceptest.debian import (A2ENMOD, A2ENSITE, ADMIN_SITE, APACHE2CTL, ERROR_LOG,
                             PID_FILE, STOCK_CONFDIR, Site, admin_site, copy_instance, enabled,
                             read_pid, remove_instance, require_debian_root, run, stop_instance,
                             submit, wait_for, warn_lines)
from sceptest.httpd import CA_SUBJECT, ErrorLog, free_port
from sceptest.process import children

pytestmark = pytest.mark.package

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

PACKAGE = 'libapache2-mod-scep'
MODULE = '/usr/lib/apache2/modules/mod_scep.so'
SCEPCTL = '/usr/sbin/scepctl'
LOAD = os.path.join(STOCK_CONFDIR, 'mods-available', 'scep.load')
CONF = os.path.join(STOCK_CONFDIR, 'mods-available', 'scep.conf')
MANPAGES = ('/usr/share/man/man8/scepctl.8.gz', '/usr/share/man/man8/mod_scep.8.gz')
PKI_DIR = '/etc/scep'
DATA_DIR = '/var/lib/scep'
SYSTEM_STATE = '/var/lib/apache2'
# what the package must not find on the machine before it is installed
OURS = (MODULE, SCEPCTL, LOAD, CONF, PKI_DIR, DATA_DIR) + MANPAGES


def status(package=PACKAGE):
    """dpkg's status of the package: 'installed', 'config-files', or
    'not-installed' (also when dpkg never heard of it)."""
    p = subprocess.run(['dpkg-query', '-W', '-f=${db:Status-Status}', package],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else 'not-installed'


def dpkg(*args):
    """dpkg ARGS: (rc, output). While another dpkg or apt holds dpkg's lock,
    tries again for up to two minutes."""
    end = time.time() + 120
    while True:
        p = subprocess.run(['dpkg'] + list(args), capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        if p.returncode == 0 or 'lock' not in out or time.time() >= end:
            return p.returncode, out
        time.sleep(2)


def tree(top):
    """Every path below top (relative), with its type: the state of a
    directory that must not change."""
    found = set()
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(d, name)
            found.add((os.path.relpath(path, top), os.path.isdir(path)))
    return found


def system_apache2_pids():
    """The apache2 processes of the system's own configuration: started
    without -d or -f (apache2ctl, systemd and the init script run
    `apache2 -k start`), unlike the test servers and other instances."""
    pids = set()
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/comm' % name) as f:
                if f.read().strip() != 'apache2':
                    continue
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                args = f.read().split(b'\0')
        except OSError:
            continue
        if b'-d' not in args and b'-f' not in args:
            pids.add(int(name))
    return pids


def copy_source(dest):
    """The tree as git knows it (committed and not ignored files, so a
    change under test is in), without the build outputs of this checkout."""
    p = subprocess.run(['git', '-C', REPO, 'ls-files', '-z', '--cached', '--others',
                        '--exclude-standard'], capture_output=True, timeout=60)
    assert p.returncode == 0, 'git ls-files: %s' % p.stderr.decode()
    os.mkdir(dest)
    for rel in filter(None, p.stdout.decode().split('\0')):
        src = os.path.join(REPO, rel)
        if not os.path.lexists(src):
            continue  # deleted in the checkout, not yet in git
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)


def build_package(tmp):
    """dpkg-buildpackage -us -uc -b in a copy of the tree: the .deb and the
    .changes (in tmp, the copy's parent). The unit tests are their own step
    of build/test: nocheck."""
    src = os.path.join(tmp, 'mod-scep')
    copy_source(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS='nocheck parallel=%d' % min(os.cpu_count() or 1, 4))
    p = subprocess.run(['dpkg-buildpackage', '-us', '-uc', '-b'], cwd=src, env=env,
                       capture_output=True, text=True, timeout=1800)
    with open(os.path.join(tmp, 'dpkg-buildpackage.log'), 'w') as f:
        f.write(p.stdout + p.stderr)
    assert p.returncode == 0, 'dpkg-buildpackage exit %d:\n%s' % (
        p.returncode, (p.stdout + p.stderr)[-6000:])
    debs = glob.glob(os.path.join(tmp, PACKAGE + '_*.deb'))
    changes = glob.glob(os.path.join(tmp, 'mod-scep_*.changes'))
    assert len(debs) == 1 and len(changes) == 1, os.listdir(tmp)
    return debs[0], changes[0]


def lintian(changes):
    """lintian's tags for the build (the .deb and the .buildinfo): none at
    error or warning level may remain; overrides in debian/ explain the
    ones that are kept."""
    p = subprocess.run(['lintian', '-I', '--fail-on', 'error,warning', '--tag-display-limit', '0',
                        changes], capture_output=True, text=True, timeout=600)
    tags = [ln for ln in p.stdout.splitlines() if re.match(r'^[EW]: ', ln)]
    assert p.returncode == 0 and not tags, 'lintian exit %d:\n%s%s' % (
        p.returncode, p.stdout, p.stderr)


def deb_contents(deb):
    """The paths of the package's files (regular files and links)."""
    p = subprocess.run(['dpkg-deb', '--fsys-tarfile', deb], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    t = subprocess.run(['tar', '-tvf', '-'], input=p.stdout, capture_output=True, timeout=60)
    paths = {}
    for line in t.stdout.decode().splitlines():
        fields = line.split(None, 5)
        paths[fields[5].split(' -> ')[0].lstrip('.')] = fields[0]
    return paths


def assert_contents(deb):
    paths = deb_contents(deb)
    for path in (MODULE, SCEPCTL, LOAD, CONF) + MANPAGES:
        assert path in paths and paths[path].startswith('-'), '%s not in the package: %s' % (
            path, sorted(paths))
    assert paths[SCEPCTL] == '-rwxr-xr-x' and paths[MODULE].startswith('-rw-r--r--'), paths
    assert not [p for p in paths if p.startswith(('/usr/include', '/etc/scep', '/var/lib/scep'))]
    p = subprocess.run(['dpkg-deb', '-f', deb, 'Depends'], capture_output=True, text=True)
    depends = p.stdout
    # dh_apache2: the module needs httpd's module API, not a running apache2
    assert 'apache2-api-20120211' in depends and 'libaprutil1-dbd-sqlite3' in depends, depends
    assert not re.search(r'(^|, )apache2( |,|$)', depends), depends


def assert_package_conf():
    """The package's scep.conf: the drop-in with the package's directories
    (debian/make-conf), nothing of the drop-in's left active."""
    with open(CONF) as f:
        conf = f.read()
    for line in ('    SCEPCACertificateFile /etc/scep/ca.crt\n',
                 '    SCEPCAKeyFile /etc/scep/ca.key\n',
                 '    SCEPRACertificate /etc/scep/ra-sign.crt /etc/scep/ra-sign.key\n',
                 '    SCEPRACertificate /etc/scep/ra-enc.crt /etc/scep/ra-enc.key\n',
                 '    DBDParams /var/lib/scep/scep.db\n'):
        assert conf.count(line) == 1, '%r in %s: %d times' % (line, CONF, conf.count(line))
    assert '/etc/mod_scep' not in conf and '/var/lib/mod_scep' not in conf
    with open(LOAD) as f:
        assert 'LoadModule scep_module %s\n' % MODULE in f.read()


def assert_installed_quietly(before_pids, stock_tree, state_tree):
    """Installing enabled nothing, started nothing and made no key; the
    records' directory is www-data's alone and empty."""
    www = pwd.getpwnam('www-data')
    assert status() == 'installed', status()
    for path in (MODULE, SCEPCTL, LOAD, CONF) + MANPAGES:
        assert os.path.isfile(path), path
    st = os.stat(DATA_DIR)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, www.pw_uid, www.pw_gid), \
        '%s: mode %o owner %d:%d' % (DATA_DIR, st.st_mode & 0o7777, st.st_uid, st.st_gid)
    assert os.listdir(DATA_DIR) == [], os.listdir(DATA_DIR)
    assert not os.path.exists(PKI_DIR), 'a PKI was made on install'
    assert not enabled('scep', STOCK_CONFDIR), 'the package enabled scep'
    added = tree(STOCK_CONFDIR) - stock_tree
    assert added == {('mods-available/scep.load', False), ('mods-available/scep.conf', False)}, \
        added
    assert tree(SYSTEM_STATE) == state_tree, 'a2enmod state changed on install'
    assert system_apache2_pids() - before_pids == set(), 'apache2 started on install'
    # man-db finds the pages
    for name in ('scepctl', 'mod_scep'):
        p = subprocess.run(['man', '-w', '8', name], capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.strip() in MANPAGES, (name, p.stdout, p.stderr)


def setup_pki():
    p = subprocess.run([SCEPCTL, 'setup', '-d', PKI_DIR, '--ca-subject', CA_SUBJECT],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, 'scepctl setup: %s%s' % (p.stdout, p.stderr)
    assert re.search(r'CA thumbprint: [0-9A-Fa-f]{40}', p.stdout + p.stderr), p.stdout
    assert os.stat(PKI_DIR).st_mode & 0o777 == 0o700
    for key in ('ca.key', 'ra-sign.key', 'ra-enc.key'):
        st = os.stat(os.path.join(PKI_DIR, key))
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0), key
    return {name: open(os.path.join(PKI_DIR, name), 'rb').read()
            for name in sorted(os.listdir(PKI_DIR))}


def start_instance(work, http_port, https_port):
    """a2enmod scep (and dbd), the admin page's HTTPS site, configtest,
    start; the workers run as www-data. Returns the TLS CA of the admin
    page."""
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
    www = pwd.getpwnam('www-data')
    ppid = wait_for('the pid file ' + PID_FILE, read_pid)
    workers = wait_for('the workers of apache2 %d' % ppid, lambda: children(ppid))
    assert all(ruid == www.pw_uid and euid == www.pw_uid for _, ruid, euid in workers), \
        'workers not running as www-data: %s' % workers
    return tls_ca


def enroll(work, http_port, https_port, tls_ca):
    """GetCACaps, GetCACert and two enrollments by scep-submit with
    passwords from the admin page; the records checked."""
    url = 'http://127.0.0.1:%d/certsrv/mscep/mscep.dll' % http_port
    rc, out, err = submit(url, '-c')
    assert rc == 0, out + err
    assert set(out.split()) >= {'POSTPKIOperation', 'SHA-256', 'AES', 'SCEPStandard'}, out
    site = Site(url, https_port, tls_ca, PKI_DIR, work)
    rc, out, err = submit(site.url, '-C')
    assert rc == 0, out + err
    assert pem_certs(out) == {pki.cert_der(c) for c in (site.ca, site.ra_sign, site.ra_enc)}, \
        'GetCACert: ' + out
    enrolled = [site.enroll('package-%d' % i) for i in range(2)]

    www = pwd.getpwnam('www-data')
    checks.assert_private_records(DATA_DIR, www.pw_uid, www.pw_gid)
    records = types.SimpleNamespace(db_rows=SQLiteDatabase(os.path.join(DATA_DIR, 'scep.db')).rows)
    for msg, cert in enrolled:
        checks.assert_recorded(records, msg.transaction_id, cert)
    # scepctl of the package reads the same records
    p = subprocess.run([SCEPCTL, 'list', '--db', os.path.join(DATA_DIR, 'scep.db'), '--certs'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [ln.split('\t') for ln in p.stdout.splitlines() if ln and not ln.startswith('#')]
    assert sorted(int(r[0], 16) for r in rows) == sorted(c.serial_number for _, c in enrolled), \
        p.stdout


def assert_removed(files, pki_files):
    """dpkg --remove: the module, scepctl and the man pages gone; the
    conffiles, the records and the PKI kept."""
    assert status() == 'config-files', status()
    for path in (MODULE, SCEPCTL) + MANPAGES:
        assert not os.path.exists(path), path + ' left after dpkg --remove'
    for path in (LOAD, CONF, os.path.join(DATA_DIR, 'scep.db')):
        assert os.path.exists(path), path + ' removed by dpkg --remove'
    assert_pki_kept(pki_files)
    left = [f for f in files if os.path.isfile(f) and not f.startswith('/etc/')]
    assert not left, 'left after dpkg --remove: %s' % left


def assert_purged(files, pki_files, stock_tree, state_tree):
    """dpkg --purge: nothing of the package left (its files, conffiles,
    /var/lib/scep, a2enmod's state), the system's configuration as it was;
    only the PKI that scepctl made at the administrator's request."""
    assert status() == 'not-installed', status()
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    assert not left, 'left after dpkg --purge: %s' % left
    assert not os.path.lexists(DATA_DIR), DATA_DIR + ' left after dpkg --purge'
    assert tree(STOCK_CONFDIR) == stock_tree, 'changed in %s: %s' % (
        STOCK_CONFDIR, tree(STOCK_CONFDIR) ^ stock_tree)
    assert tree(SYSTEM_STATE) == state_tree, 'a2enmod state changed: %s' % (
        tree(SYSTEM_STATE) ^ state_tree)
    assert_pki_kept(pki_files)


def assert_pki_kept(pki_files):
    got = {name: open(os.path.join(PKI_DIR, name), 'rb').read()
           for name in sorted(os.listdir(PKI_DIR))}
    assert got == pki_files, 'the PKI changed: %s' % sorted(set(got) ^ set(pki_files))


@pytest.fixture
def tmp():
    """A temporary directory for the build and the clients. Whatever
    happens, the instance is stopped and removed, the package purged and
    the PKI the test made removed."""
    require_debian_root('the Debian package test')
    for tool in ('dpkg-buildpackage', 'lintian', 'dh_apache2'):
        assert shutil.which(tool), '%s is missing: build/deps installs it' % tool
    assert status() == 'not-installed', '%s is %s on this machine already' % (PACKAGE, status())
    found = [p for p in OURS if os.path.lexists(p)]
    assert not found, 'mod_scep is installed on this machine already: %s' % found
    remove_instance(None)  # what an interrupted run left
    d = tempfile.mkdtemp(prefix='mod_scep-package-')
    try:
        os.chmod(d, 0o755)
        yield d
    finally:
        try:
            remove_instance(d)
        finally:
            if status() != 'not-installed':
                dpkg('--purge', PACKAGE)
            shutil.rmtree(PKI_DIR, ignore_errors=True)


def test_debian_package(tmp):
    http_port = free_port(18950)
    https_port = free_port(http_port + 1)
    work = os.path.join(tmp, 'work')
    os.mkdir(work)

    deb, changes = build_package(tmp)
    lintian(changes)
    assert_contents(deb)

    stock_tree, state_tree = tree(STOCK_CONFDIR), tree(SYSTEM_STATE)
    before_pids = system_apache2_pids()
    rc, out = dpkg('--install', deb)
    assert rc == 0, 'dpkg --install: ' + out
    assert_installed_quietly(before_pids, stock_tree, state_tree)
    assert_package_conf()
    p = subprocess.run(['dpkg-query', '-L', PACKAGE], capture_output=True, text=True)
    files = p.stdout.split()
    assert MODULE in files and SCEPCTL in files, files

    # the administrator's steps, in the instance: setup, a2enmod, start
    pki_files = setup_pki()
    copy_instance(http_port, https_port)
    tls_ca = start_instance(work, http_port, https_port)
    enroll(work, http_port, https_port, tls_ca)
    stop_instance()
    assert os.path.exists(ERROR_LOG), 'no error log at ' + ERROR_LOG
    bad = ErrorLog(ERROR_LOG).unexpected()
    assert not bad, 'warn-or-worse lines in %s:\n%s' % (ERROR_LOG, '\n'.join(bad))
    remove_instance(None)

    rc, out = dpkg('--remove', PACKAGE)
    assert rc == 0 and 'warning' not in out.lower(), 'dpkg --remove: ' + out
    assert_removed(files, pki_files)
    rc, out = dpkg('--purge', PACKAGE)
    assert rc == 0 and 'warning' not in out.lower(), 'dpkg --purge: ' + out
    assert_purged(files, pki_files, stock_tree, state_tree)
