"""A real OpenLDAP slapd (Debian package slapd) for the tests, on loopback.

    d = Slapd(directory, tls_ca)    its own slapd.conf, mdb database, LDIF
    d.start(); ...; d.stop()
    d.url(ssl=True) -> 'ldaps://127.0.0.1:PORT'
    d.whoami('alice', USERS['alice'])   an ldapwhoami as that user, over TLS

The directory (suffix dc=example,dc=test):

    ou=people   uid=alice, bob, carol, dave (inetOrgPerson, userPassword)
    ou=services cn=scep-reader (the bind DN of Apache and mod_scep)
    ou=groups   groupOfNames:
        ipsec-enrollers  alice
        ndes-enroll      cn=ipsec-enrollers (alice, nested: template IPSECIntermediateOffline)
        sign-enrollers   alice, dave        (template SCEPSign)
        enc-enrollers    alice, dave        (template SCEPEncrypt)
        ca-admins        carol
        cert-officers    carol
        ca-managers      dave, cn=cert-officers (carol, nested: the CA manager page)
        nobody-group     cn=scep-reader

Anonymous users may only bind; bound users read everything but passwords.
slapd logs binds, searches and compares (loglevel stats) to slapd.log.
"""
import base64
import hashlib
import os
import socket
import subprocess
import time

from .httpd import free_port
from .process import terminate

SLAPD = '/usr/sbin/slapd'
SLAPADD = '/usr/sbin/slapadd'
SCHEMA_DIR = '/etc/ldap/schema'
MODULE_DIR = '/usr/lib/ldap'

SUFFIX = 'dc=example,dc=test'
PEOPLE = 'ou=people,' + SUFFIX
GROUPS = 'ou=groups,' + SUFFIX
ROOT_DN = 'cn=admin,' + SUFFIX
ROOT_PW = 'root-secret-8c1f'
BIND_DN = 'cn=scep-reader,ou=services,' + SUFFIX
BIND_PW = 'reader-secret-5e2a'

USERS = {
    'alice': 'alice-Pw-1',
    'bob': 'bob-Pw-2',
    'carol': 'carol-Pw-3',
    'dave': 'dave-Pw-4',
}

# template name -> group; the tests configure SCEPSignatureTemplate SCEPSign,
# SCEPEncryptionTemplate SCEPEncrypt and keep the general-purpose default
TEMPLATE_GROUPS = {
    'SCEPSign': 'cn=sign-enrollers,' + GROUPS,
    'SCEPEncrypt': 'cn=enc-enrollers,' + GROUPS,
    'IPSECIntermediateOffline': 'cn=ndes-enroll,' + GROUPS,
}
CA_ADMINS = 'cn=ca-admins,' + GROUPS
CA_MANAGERS = 'cn=ca-managers,' + GROUPS


def user_dn(uid):
    return 'uid=%s,%s' % (uid, PEOPLE)


def ssha(password):
    salt = os.urandom(8)
    h = hashlib.sha1(password.encode() + salt).digest()
    return '{SSHA}' + base64.b64encode(h + salt).decode()


def _group(cn, members):
    lines = ['dn: cn=%s,%s' % (cn, GROUPS), 'objectClass: groupOfNames', 'cn: ' + cn]
    lines += ['member: ' + m for m in members]
    return '\n'.join(lines)


def ldif():
    entries = [
        '\n'.join(['dn: ' + SUFFIX, 'objectClass: dcObject', 'objectClass: organization',
                   'dc: example', 'o: mod_scep tests']),
        '\n'.join(['dn: ' + PEOPLE, 'objectClass: organizationalUnit', 'ou: people']),
        '\n'.join(['dn: ' + GROUPS, 'objectClass: organizationalUnit', 'ou: groups']),
        '\n'.join(['dn: ou=services,' + SUFFIX, 'objectClass: organizationalUnit',
                   'ou: services']),
        '\n'.join(['dn: ' + BIND_DN, 'objectClass: organizationalRole',
                   'objectClass: simpleSecurityObject', 'cn: scep-reader',
                   'userPassword: ' + ssha(BIND_PW)]),
    ]
    for uid, pw in USERS.items():
        entries.append('\n'.join([
            'dn: ' + user_dn(uid), 'objectClass: inetOrgPerson', 'uid: ' + uid,
            'cn: %s Example' % uid.capitalize(), 'sn: Example',
            'mail: %s@example.test' % uid, 'userPassword: ' + ssha(pw)]))
    entries += [
        _group('ipsec-enrollers', [user_dn('alice')]),
        _group('ndes-enroll', ['cn=ipsec-enrollers,' + GROUPS]),
        _group('sign-enrollers', [user_dn('alice'), user_dn('dave')]),
        _group('enc-enrollers', [user_dn('alice'), user_dn('dave')]),
        _group('ca-admins', [user_dn('carol')]),
        _group('cert-officers', [user_dn('carol')]),
        _group('ca-managers', [user_dn('dave'), 'cn=cert-officers,' + GROUPS]),
        _group('nobody-group', [BIND_DN]),
    ]
    return '\n\n'.join(entries) + '\n'


class Slapd:
    def __init__(self, directory, tls_ca, port=None, ssl_port=None):
        self.dir = directory
        self.tls_ca = tls_ca
        self.port = port or free_port(18900)
        self.ssl_port = ssl_port or free_port(max(18920, self.port + 1))
        self.conf = os.path.join(directory, 'slapd.conf')
        self.db = os.path.join(directory, 'db')
        self.log = os.path.join(directory, 'slapd.log')
        self.proc = None

    def url(self, ssl=True):
        if ssl:
            return 'ldaps://127.0.0.1:%d' % self.ssl_port
        return 'ldap://127.0.0.1:%d' % self.port

    def client_env(self):
        """Environment of the OpenLDAP command-line tools: trust the test CA,
        ignore ~/.ldaprc and /etc/ldap/ldap.conf defaults that could point elsewhere."""
        e = dict(os.environ)
        e.update(LDAPTLS_CACERT=self.tls_ca.ca_file, LDAPTLS_REQCERT='demand',
                 LDAPRC='/dev/null', LDAPCONF='/dev/null')
        return e

    def _write(self):
        os.makedirs(self.db, exist_ok=True)
        for f in os.listdir(self.db):
            os.unlink(os.path.join(self.db, f))
        crt, key = self.tls_ca.server('slapd')
        conf = f"""# generated by t/integration/sceptest/ldap.py
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {self.tls_ca.ca_file}
TLSCertificateFile {crt}
TLSCertificateKeyFile {key}
loglevel stats

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {self.db}
access to attrs=userPassword
    by self =xw
    by anonymous auth
    by * none
access to *
    by users read
    by anonymous auth
    by * none
"""
        with open(self.conf, 'w') as f:
            f.write(conf)
        data = os.path.join(self.dir, 'data.ldif')
        with open(data, 'w') as f:
            f.write(ldif())
        p = subprocess.run([SLAPADD, '-f', self.conf, '-l', data], capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise RuntimeError('slapadd failed (%d): %s%s' % (p.returncode, p.stdout, p.stderr))

    def _listening(self, port):
        with socket.socket() as s:
            s.settimeout(0.2)
            try:
                s.connect(('127.0.0.1', port))
                return True
            except OSError:
                return False

    def start(self, timeout=20):
        os.makedirs(self.dir, exist_ok=True)
        self._write()
        urls = '%s/ %s/' % (self.url(ssl=False), self.url(ssl=True))
        out = open(self.log, 'wb')
        # -d keeps slapd in the foreground (a child of the tests) and sends
        # its log (loglevel stats) to stderr
        self.proc = subprocess.Popen([SLAPD, '-f', self.conf, '-h', urls, '-d', 'stats'],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                raise RuntimeError('slapd exited (%d):\n%s' % (rc, self.log_tail()))
            if self._listening(self.port) and self._listening(self.ssl_port):
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError('slapd did not listen:\n' + self.log_tail())
        # a real bind over TLS: the certificate, the ACLs and the data work
        ok, out = self.whoami('alice', USERS['alice'])
        if not ok:
            self.stop()
            raise RuntimeError('ldapwhoami as alice over ldaps failed:\n%s\n%s'
                               % (out, self.log_tail()))

    def whoami(self, uid, password, ssl=True):
        dn = uid if '=' in uid else user_dn(uid)
        p = subprocess.run(['ldapwhoami', '-x', '-H', self.url(ssl), '-D', dn, '-w', password],
                           capture_output=True, text=True, env=self.client_env(), timeout=30)
        return p.returncode == 0, p.stdout + p.stderr

    def search(self, base, filt='(objectClass=*)', attrs=(), bind=(BIND_DN, BIND_PW)):
        cmd = ['ldapsearch', '-x', '-LLL', '-H', self.url(True), '-b', base]
        if bind:
            cmd += ['-D', bind[0], '-w', bind[1]]
        p = subprocess.run(cmd + [filt] + list(attrs), capture_output=True, text=True,
                           env=self.client_env(), timeout=30)
        return p.returncode, p.stdout + p.stderr

    def log_tail(self, n=30):
        try:
            with open(self.log, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_since(self, pos):
        with open(self.log, 'rb') as f:
            f.seek(pos)
            return f.read().decode('utf-8', 'replace')

    def stop(self, timeout=10):
        if self.proc is None:
            return
        terminate(self.proc, timeout)
        self.proc = None
