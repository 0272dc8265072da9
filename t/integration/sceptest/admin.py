"""The admin page's test server: Apache with mod_ssl, mod_ldap,
mod_authnz_ldap and mod_auth_gssapi in front of `SetHandler scep-admin`,
against the tests' own slapd (sceptest.ldap) and MIT KDC (sceptest.kdc).

One Apache (server root t/gen/<mpm>/admin), one shared password cache, and
a virtual host per way in, all at /certsrv/mscep_admin/:

    http      plain HTTP (also the device URL): LDAP Basic; the page refuses (HTTPS-only)
    krb       HTTPS, Kerberos (AuthType GSSAPI, SPNEGO), SCEPCAType Enterprise
    ldap      HTTPS, LDAP Basic over TLS (mod_authnz_ldap, ldaps://), Enterprise
    standalone HTTPS, LDAP Basic over TLS, SCEPCAType Standalone

mod_scep checks group memberships through SCEPLDAPURL (ldaps, bind DN
cn=scep-reader): Enterprise needs the group of each of the three templates
(SCEPSign: sign-enrollers, SCEPEncrypt: enc-enrollers,
IPSECIntermediateOffline: ndes-enroll, which holds alice only through the
nested group ipsec-enrollers); Standalone needs ca-admins.

Every virtual host also has the CA manager page (SetHandler scep-manager)
at /certsrv/mscep_admin/manager/, inheriting the admin location's
authentication; SCEPCAManagerGroup is ca-managers (dave, and carol through
the nested group cert-officers).

curl() runs the real curl (--negotiate for Kerberos) and returns a Response;
parse_page() decodes the UTF-16LE NDES page; manager_get() and
manager_post() use the manager page as a signed-in user.

Without LDAP and Kerberos, on any server: basic_admin_config(make_htpasswd(env))
puts the page behind Basic authentication with a password file (over plain
HTTP with otp_directives()); get_password(server) takes a password from it.
"""
import base64
import json
import os
import re
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass, field

from cryptography import x509

from . import checks, pki
from . import client as C
from . import ldap as L
from .client import http_request
from .httpd import CHALLENGE, MODULES_DIR, free_port

ADMIN_PATH = '/certsrv/mscep_admin/'
MANAGER_PATH = ADMIN_PATH + 'manager/'

# after the admin location, so that it inherits its authentication
MANAGER_LOCATION = """    <Location /certsrv/mscep_admin/manager>
        SetHandler scep-manager
    </Location>
"""

# the form token of every form of the manager page
RE_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([0-9A-F]{64})">')

# The exact strings of NDES's pages that scripts and MDMs scrape.
RE_PASSWORD = re.compile(r'The enrollment challenge password is: <B> ([0-9A-F]+) </B>')
CACHE_FULL = 'The password cache is full.'
NO_PERMISSION = 'You do not have sufficient permission to enroll with SCEP.'

# the error-log lines of the refusals: NDES events 6 (Enterprise) and 41 (Standalone)
RE_EVENT_6 = r'SCEP\d{3}: .*\(NDES event 6\)'
RE_EVENT_41 = r'SCEP\d{3}: .*\(NDES event 41\)'
RE_HTTP_REFUSED = r'SCEP\d{3}: .*SCEPAdminAllowHTTP'


def ldap_url(slapd):
    return '%s/%s?uid' % (slapd.url(ssl=True), L.PEOPLE)


# The template whose enroll group comes from its <SCEPTemplate> section
# (EnrollGroup); the others' come from SCEPTemplateEnrollGroup, so the
# admin page's tests cover both.
SECTION_GROUP_TEMPLATE = 'SCEPSign'


def template_sections():
    """The two configured templates of the admin server, shaped like the
    built-in one (config text, main server)."""
    like_builtin = ('    KeyUsage digitalSignature keyEncipherment\n'
                    '    ExtendedKeyUsage 1.3.6.1.5.5.8.2.2\n')
    return ('<SCEPTemplate SCEPSign>\n%s    EnrollGroup "%s"\n</SCEPTemplate>\n'
            '<SCEPTemplate SCEPEncrypt>\n%s</SCEPTemplate>\n'
            % (like_builtin, L.TEMPLATE_GROUPS[SECTION_GROUP_TEMPLATE], like_builtin))


def scep_directives(slapd, password_max=1000):
    """mod_scep's directives of the admin server (main server, inherited by
    every virtual host): one-time passwords only (no static challenge file),
    three templates with their groups (template_sections() defines two), the
    CA administrators, the LDAP URL."""
    d = [('SCEPChallengePasswordFile', None),
         ('SCEPPasswordMax', str(password_max)),
         ('SCEPSignatureTemplate', 'SCEPSign'),
         ('SCEPEncryptionTemplate', 'SCEPEncrypt')]
    for template, group in L.TEMPLATE_GROUPS.items():
        if template != SECTION_GROUP_TEMPLATE:
            d.append(('SCEPTemplateEnrollGroup', '%s "%s"' % (template, group)))
    d += [('SCEPCAAdminGroup', '"%s"' % L.CA_ADMINS),
          ('SCEPCAManagerGroup', '"%s"' % L.CA_MANAGERS),
          ('SCEPLDAPURL', '"%s"' % ldap_url(slapd)),
          ('SCEPLDAPBindDN', '"%s"' % L.BIND_DN),
          ('SCEPLDAPBindPassword', '"%s"' % L.BIND_PW)]
    return d


class Ports:
    def __init__(self, http_port):
        self.http = http_port
        self.krb = free_port(18610)
        self.ldap = free_port(self.krb + 1)
        self.standalone = free_port(self.ldap + 1)


def ldap_basic(slapd, realm):
    return f"""        AuthType Basic
        AuthName "{realm}"
        AuthBasicProvider ldap
        AuthLDAPURL "{ldap_url(slapd)}"
        AuthLDAPBindDN "{L.BIND_DN}"
        AuthLDAPBindPassword "{L.BIND_PW}"
        Require valid-user"""


def ssl_vhost(port, server_crt, server_key, body, extra=''):
    """An HTTPS virtual host with the admin page (authentication: body) and
    the manager page; extra: its own directives (config text)."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile "{server_crt}"
    SSLCertificateKeyFile "{server_key}"
{extra}    <Location /certsrv/mscep_admin>
        SetHandler scep-admin
{body}
    </Location>
{MANAGER_LOCATION}</VirtualHost>
"""


def raw_config(env, ports, tls_ca, server_crt, server_key, slapd, kdc):
    """The modules, TLS, LDAP and the four virtual hosts (config text)."""
    m = MODULES_DIR
    return f"""
# --- admin page test setup (t/integration/sceptest/admin.py) ---
LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so
LoadModule ssl_module {m}/mod_ssl.so
LoadModule ldap_module {m}/mod_ldap.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule authnz_ldap_module {m}/mod_authnz_ldap.so
LoadModule auth_gssapi_module {m}/mod_auth_gssapi.so
SSLSessionCache "shmcb:{env.run_dir}/ssl_scache(512000)"
SSLProtocol -all +TLSv1.2 +TLSv1.3
# mod_ldap (mod_authnz_ldap and mod_scep's group checks) trusts the test CA
LDAPTrustedGlobalCert CA_BASE64 "{tls_ca.ca_file}"
LDAPVerifyServerCert On
LogLevel warn scep:info ldap:warn authnz_ldap:info auth_gssapi:info
{template_sections()}
# plain HTTP (the devices' port): the admin page must refuse
<VirtualHost 127.0.0.1:{ports.http}>
    ServerName localhost
    <Location /certsrv/mscep_admin>
        SetHandler scep-admin
{ldap_basic(slapd, 'mod_scep admin over HTTP')}
    </Location>
{MANAGER_LOCATION}</VirtualHost>
{ssl_vhost(ports.krb, server_crt, server_key, f'''        AuthType GSSAPI
        AuthName "mod_scep admin (Kerberos)"
        GssapiCredStore keytab:{kdc.keytab}
        GssapiLocalName On
        GssapiBasicAuth Off
        GssapiAllowedMech krb5
        GssapiSSLonly On
        Require valid-user''')}
{ssl_vhost(ports.ldap, server_crt, server_key, ldap_basic(slapd, 'mod_scep admin (LDAP)'))}
{ssl_vhost(ports.standalone, server_crt, server_key,
           ldap_basic(slapd, 'mod_scep admin (Standalone CA)'),
           extra='    SCEPCAType Standalone' + chr(10))}
"""


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    stderr: str = ''
    statuses: list = field(default_factory=list)   # every status of the exchange (401, 200)

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def text(self):
        return decode_page(self.body, self.header('content-type'))

    def json(self):
        return json.loads(self.body.decode('utf-8'))


def decode_page(body, content_type=None):
    """The admin page as NDES sends it is UTF-16LE (with or without a BOM)."""
    if body.startswith(b'\xff\xfe'):
        return body[2:].decode('utf-16-le')
    if content_type and re.search(r'charset="?utf-?16', content_type, re.I):
        return body.decode('utf-16-le')
    return body.decode('utf-8', 'replace')


def curl(url, ca_file, user=None, password=None, negotiate=False, env=None, accept=None,
         work='/tmp', extra=()):
    """The real curl: Basic with user/password, SPNEGO with negotiate (the
    ticket comes from KRB5CCNAME in env). localhost resolves to 127.0.0.1
    (the Kerberos service name is HTTP/localhost)."""
    m = re.match(r'https?://([^:/]+):(\d+)', url)
    fd, hdr = tempfile.mkstemp(prefix='curl-headers-', dir=work)
    os.close(fd)
    fd, body = tempfile.mkstemp(prefix='curl-body-', dir=work)
    os.close(fd)
    cmd = ['curl', '-sS', '--max-time', '30', '--cacert', ca_file, '-D', hdr, '-o', body,
           '-w', '%{http_code}', '--resolve', '%s:%s:127.0.0.1' % (m.group(1), m.group(2))]
    if negotiate:
        cmd += ['--negotiate', '-u', ':']
    elif user is not None:
        cmd += ['--basic', '-u', '%s:%s' % (user, password)]
    if accept:
        cmd += ['-H', 'Accept: ' + accept]
    cmd += list(extra) + [url]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if p.returncode != 0:
        os.unlink(hdr)
        os.unlink(body)
        raise AssertionError('curl failed (%d): %s' % (p.returncode, p.stderr))
    with open(hdr, 'rb') as f:
        raw = f.read().decode('latin-1')
    # the headers of the last response (after a 401 Negotiate round trip)
    blocks = [b for b in re.split(r'\r?\n\r?\n', raw) if b.strip()]
    statuses = [int(b.split()[1]) for b in blocks]
    headers = {}
    for ln in blocks[-1].splitlines()[1:]:
        k, _, v = ln.partition(':')
        headers[k.strip().lower()] = v.strip()
    with open(body, 'rb') as f:
        data = f.read()
    os.unlink(hdr)
    os.unlink(body)
    return Response(int(p.stdout.strip()), headers, data, p.stderr, statuses)


def assert_not_frameable(r):
    """The framing protection of every answer of the admin and manager pages
    (clickjacking): X-Frame-Options for older browsers, the CSP's
    frame-ancestors for the others; no MIME sniffing, no Referer."""
    assert r.header('x-frame-options') == 'DENY', r.headers
    csp = r.header('content-security-policy')
    assert csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, r.headers
    assert 'script-src' not in csp, csp
    assert r.header('x-content-type-options') == 'nosniff', r.headers
    assert r.header('referrer-policy') == 'no-referrer', r.headers


def password_of(text):
    m = RE_PASSWORD.search(text)
    return m.group(1) if m else None


# --- the CA manager page ------------------------------------------------------

def manager_url(admin_httpd, vhost='ldap', query=None):
    """The manager page of a virtual host (Ports attribute), with a query
    (dict) if given."""
    scheme = 'http' if vhost == 'http' else 'https'
    url = '%s://localhost:%d%s' % (scheme, getattr(admin_httpd.ports, vhost), MANAGER_PATH)
    return url + ('?' + urllib.parse.urlencode(query) if query else '')


def manager_get(admin_httpd, user, vhost='ldap', accept=None, query=None, password=None):
    """The manager page as user (LDAP Basic; password default: the user's)."""
    return curl(manager_url(admin_httpd, vhost, query), admin_httpd.tls_ca.ca_file, user=user,
                password=password or L.USERS[user], accept=accept, work=admin_httpd.env.work)


def manager_post(admin_httpd, user, fields, vhost='ldap', accept=None):
    """A form of the manager page posted as user: fields (dict) URL-encoded
    as a browser does (application/x-www-form-urlencoded). Redirects are
    not followed."""
    extra = []
    for k, v in fields.items():
        extra += ['--data-urlencode', '%s=%s' % (k, v)]
    return curl(manager_url(admin_httpd, vhost), admin_httpd.tls_ca.ca_file, user=user,
                password=L.USERS[user], accept=accept, work=admin_httpd.env.work, extra=extra)


def csrf_of(html):
    """The form token of a manager page; every form carries the same one."""
    tokens = set(RE_CSRF.findall(html))
    assert len(tokens) == 1, 'expected one form token on the page, found %r' % tokens
    return tokens.pop()


def held_config(admin_httpd, *extra):
    """admin_httpd.config() making the server a stand-alone CA, which holds
    every request for a CA manager; devices use the static challenge.
    extra: more (directive, value) pairs."""
    return admin_httpd.config(('SCEPCAType', 'Standalone'),
                              ('SCEPChallengePasswordFile', admin_httpd.env.challenge_file),
                              *extra)


def device(admin_httpd):
    """An SCEP client of the admin server's device URL (plain HTTP) that
    knows its CA and RA certificates."""
    env = admin_httpd.env
    ca, ra_sign, ra_enc = (pki.load_cert_file(env.p(n))
                           for n in ('ca.crt', 'ra-sign.crt', 'ra-enc.crt'))
    c = C.Client(admin_httpd.url('/certsrv/mscep/mscep.dll'))
    c._ca = C.CACerts(C.CT_CA_RA, [ca, ra_sign, ra_enc], ca, ra_sign, ra_enc)
    return c


def hold(dev, key, subject, **csr_kw):
    """A PKCSReq that the server holds: asserts the signed CertRep PENDING
    and returns the request (PkiMessage)."""
    msg, r, rep = dev.enroll(pki.make_csr(key, subject, challenge=CHALLENGE, **csr_kw), key)
    assert r.status == 200 and rep is not None, 'HTTP %d %r' % (r.status, r.body[:200])
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.PENDING, str(rep)
    return msg


def poll(dev, msg):
    """The device's CertPoll (IssuerAndSubject) for the held request msg,
    signed as the request was: (poll message, HttpResult, CertRep)."""
    subject = x509.load_der_x509_csr(msg.inner).subject
    m = C.pki_message(C.issuer_and_subject(dev.ca.ca.subject, subject), C.CERTPOLL, msg.key,
                      [dev.ca.ra_enc], signer_cert=msg.signer_cert,
                      transaction_id=msg.transaction_id)
    r, rep = dev.send(m)
    return m, r, rep


def assert_poll_issued(dev, msg):
    """The next poll gets SUCCESS with the certificate of msg's CSR, issued
    by the CA; returns the certificate."""
    m, r, rep = poll(dev, msg)
    assert r.status == 200 and rep is not None, 'HTTP %d' % r.status
    checks.assert_reply_ok(m, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    assert len(rep.certs) == 1, rep.certs
    checks.check_issued_cert(rep.certs[0], msg.inner, dev.ca.ca)
    return rep.certs[0]


# ---------------------------------------------------------------------------
# the page behind Basic authentication with a password file

ADMIN_USER, ADMIN_SECRET = 'ndes-admin', 'Admin-Secret-7'


def basic_admin_config(htpasswd, extra=''):
    """The admin page behind Basic authentication with a password file."""
    m = MODULES_DIR
    mods = ''.join('<IfModule !%s_module>\n    LoadModule %s_module %s/mod_%s.so\n</IfModule>\n'
                   % (name, name, m, name)
                   for name in ('authn_core', 'authn_file', 'auth_basic', 'authz_user'))
    return mods + f"""<Location /certsrv/mscep_admin>
    SetHandler scep-admin
    AuthType Basic
    AuthName "NDES administration"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    Require valid-user
</Location>
{extra}"""


def otp_directives(password_max=50):
    """One-time passwords only: no static challenge file."""
    return [('SCEPChallengePasswordFile', None), ('SCEPAdminAllowHTTP', 'On'),
            ('SCEPPasswordMax', str(password_max))]


def make_htpasswd(env):
    path = os.path.join(env.work, 'htpasswd')
    p = subprocess.run(['htpasswd', '-cbB', path, ADMIN_USER, ADMIN_SECRET],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    os.chmod(path, 0o644)  # the children (www-data) read it
    return path


def admin_get(server, accept='application/json', method='GET'):
    auth = base64.b64encode(('%s:%s' % (ADMIN_USER, ADMIN_SECRET)).encode()).decode()
    return http_request(method, server.url(ADMIN_PATH),
                          headers={'Authorization': 'Basic ' + auth, 'Accept': accept})


def get_password(server):
    """A password from the admin page's JSON answer."""
    r = admin_get(server)
    assert r.status == 200, 'admin page: HTTP %d %r' % (r.status, r.body[:300])
    doc = json.loads(r.body)
    return doc['password'], doc
