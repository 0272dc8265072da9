"""A second Apache instance on Debian's stock configuration, for the tests
that install mod_scep as an administrator would (test_debian_install.py:
README's `make install`; test_debian_package.py: the Debian package).

Debian's multi-instance support (README.multiple-instances): /etc/apache2
copied as /etc/apache2-sceptest, APACHE_CONFDIR set for apache2ctl and
a2enmod, and run, lock, log and a2enmod state directories with that suffix.
Only ports.conf changes (a loopback test port and an HTTPS one); the system's
own Apache, its configuration and a2enmod's state in /var/lib/apache2 stay
untouched.
"""
import grp
import os
import shutil
import signal
import subprocess
import time
import types

import pytest

from . import admin as A
from . import checks, pki
from . import client as C
from .certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem
from .httpd import ErrorLog
from .tls import TestCA

STOCK_CONFDIR = '/etc/apache2'
SUFFIX = 'sceptest'
CONFDIR = STOCK_CONFDIR + '-' + SUFFIX
# the instance's directories, as Debian's envvars names them for the suffix
RUN_DIR = '/var/run/apache2-' + SUFFIX
LOCK_DIR = '/var/lock/apache2-' + SUFFIX
LOG_DIR = '/var/log/apache2-' + SUFFIX
# a2enmod's record of who enabled what (APACHE_STATE_DIRECTORY; by default
# /var/lib/apache2, the system's, whatever APACHE_CONFDIR says)
STATE_DIR = '/var/lib/apache2-' + SUFFIX
PID_FILE = os.path.join(RUN_DIR, 'apache2.pid')
ERROR_LOG = os.path.join(LOG_DIR, 'error.log')

APACHE2CTL = '/usr/sbin/apache2ctl'
A2ENMOD = '/usr/sbin/a2enmod'
A2ENSITE = '/usr/sbin/a2ensite'

ADMIN_SITE = 'scep-admin-test'
# enrollments at once: SCEPPasswordMax's default, one-time passwords handed out at a time
BURST = 5


def require_debian_root(what):
    if os.geteuid() != 0:
        pytest.skip('%s needs root (it runs a2enmod and apache2ctl)' % what)
    for path in (APACHE2CTL, A2ENMOD, A2ENSITE, os.path.join(STOCK_CONFDIR, 'apache2.conf'),
                 os.path.join(STOCK_CONFDIR, 'envvars'),
                 '/usr/share/doc/apache2/README.multiple-instances'):
        if not os.path.exists(path):
            pytest.skip('not Debian\'s apache2 layout: %s is missing' % path)


def run(cmd, **kw):
    """A command of the instance (APACHE_CONFDIR, APACHE_STATE_DIRECTORY
    set): (rc, output)."""
    env = dict(os.environ, APACHE_CONFDIR=CONFDIR, APACHE_STATE_DIRECTORY=STATE_DIR)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, **kw)
    return p.returncode, p.stdout + p.stderr


def read_pid():
    """The instance's parent from its pid file, if it is still the instance's
    apache2 (a stale file may name another process by now)."""
    try:
        with open(PID_FILE) as f:
            pid = int(f.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            args = f.read().split(b'\0')
    except (OSError, ValueError):
        return None
    return pid if CONFDIR.encode() in args else None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_instance():
    """apache2ctl graceful-stop (SIGWINCH when the configuration is gone
    already; see sceptest.httpd.Apache.stop), then waits for the parent to
    exit."""
    pid = read_pid()
    if pid is None:
        return
    if os.path.isdir(CONFDIR):
        run([APACHE2CTL, 'graceful-stop'])
    else:
        os.kill(pid, signal.SIGWINCH)
    end = time.time() + 20
    while alive(pid) and time.time() < end:
        time.sleep(0.1)
    assert not alive(pid), 'apache2 %d did not stop' % pid


def remove_instance(tmp):
    try:
        stop_instance()
    finally:
        for d in (CONFDIR, RUN_DIR, LOCK_DIR, LOG_DIR, STATE_DIR) + ((tmp,) if tmp else ()):
            shutil.rmtree(d, ignore_errors=True)


def wait_for(what, check, timeout=20):
    end = time.time() + timeout
    while True:
        got = check()
        if got or time.time() >= end:
            assert got, 'timed out waiting for ' + what
            return got
        time.sleep(0.1)


def copy_instance(http_port, https_port):
    """/etc/apache2 copied as the instance's configuration (as
    setup-instance does, without its init script, symlinks and logrotate
    file); ports.conf listens on loopback test ports only."""
    shutil.copytree(STOCK_CONFDIR, CONFDIR, symlinks=True)
    with open(os.path.join(CONFDIR, 'ports.conf'), 'w') as f:
        f.write('# mod_scep install test: loopback test ports only\n'
                'Listen 127.0.0.1:%d\n<IfModule ssl_module>\n\tListen 127.0.0.1:%d\n'
                '</IfModule>\n' % (http_port, https_port))
    os.mkdir(LOG_DIR, 0o750)
    os.chown(LOG_DIR, 0, grp.getgrnam('adm').gr_gid)
    os.mkdir(STATE_DIR, 0o755)


def admin_site(work, https_port):
    """README: the admin <Location> in the HTTPS virtual host (a2enmod ssl and
    an authentication module). Basic with a password file stands in for
    Kerberos or LDAP. Returns the TLS CA file the clients trust."""
    tls = TestCA(os.path.join(work, 'tls'))
    crt, key = tls.server('apache')
    htpasswd = A.make_htpasswd(types.SimpleNamespace(work=work))
    with open(os.path.join(CONFDIR, 'sites-available', ADMIN_SITE + '.conf'), 'w') as f:
        f.write('<VirtualHost 127.0.0.1:%d>\n    ServerName localhost\n    SSLEngine on\n'
                '    SSLCertificateFile %s\n    SSLCertificateKeyFile %s\n%s</VirtualHost>\n'
                % (https_port, crt, key, A.basic_admin_config(htpasswd)))
    return tls.ca_file


def warn_lines(work, name, output):
    """Warn-or-worse lines in a command's output: what httpd logs while it
    reads its configuration goes there (the systemd journal, with systemctl),
    the error log is not open yet."""
    path = os.path.join(work, 'apache2ctl-%s.out' % name)
    with open(path, 'w') as f:
        f.write(output)
    return ErrorLog(path).unexpected()


def enabled(name, confdir=CONFDIR):
    return os.path.lexists(os.path.join(confdir, 'mods-enabled', name + '.load'))


def submit(url, *args):
    p = subprocess.run([SCEP_SUBMIT, '-u', url] + list(args), capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


class Site:
    """The installed server as its users see it: administrators get
    one-time passwords from the admin page, devices enroll with
    certmonger's scep-submit."""

    def __init__(self, url, https_port, tls_ca, pki_dir, work):
        self.url, self.https_port, self.tls_ca, self.work = url, https_port, tls_ca, work
        self.ca_file = os.path.join(pki_dir, 'ca.crt')
        self.ra_enc_file = os.path.join(pki_dir, 'ra-enc.crt')
        self.ca = pki.load_cert_file(self.ca_file)
        self.ra_sign = pki.load_cert_file(os.path.join(pki_dir, 'ra-sign.crt'))
        self.ra_enc = pki.load_cert_file(self.ra_enc_file)

    def password(self):
        r = A.curl('https://localhost:%d%s' % (self.https_port, A.ADMIN_PATH), self.tls_ca,
                   user=A.ADMIN_USER, password=A.ADMIN_SECRET, accept='application/json',
                   work=self.work)
        assert r.status == 200, 'admin page: HTTP %d %r' % (r.status, r.body[:300])
        return r.json()['password']

    def enroll(self, name, password=None):
        """One enrollment, the certificate checked: (pkiMessage, certificate)."""
        key = pki.new_key()
        csr = openssl_req(self.work, key, name, password or self.password())
        msg = C.pkcsreq(csr, key, [self.ra_enc], cipher='aes128', digest_name='sha256')
        msgf = os.path.join(self.work, name + '.p7')
        with open(msgf, 'w') as f:
            f.write(pem('PKCS7', msg.der))
        rc, out, err = submit(self.url, '-r', self.ra_enc_file, '-N', self.ca_file, '-p', msgf)
        assert rc == 0, 'scep-submit exit %d:\n%s\n%s' % (rc, out, err)
        certs = issued_certs(out, msg, self.ra_sign)
        assert len(certs) == 1, 'expected the issued certificate alone, got %d' % len(certs)
        cert = certs[0]
        assert cert.issuer == self.ca.subject, 'issued by %s' % cert.issuer.rfc4514_string()
        checks.check_issued_cert(cert, csr, self.ca)
        ok, vout = pki.openssl_verify(self.work, self.ca_file, cert)
        assert ok, vout
        return msg, cert
