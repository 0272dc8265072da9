"""Who gets a one-time password from the admin page: authentication by Apache
(Kerberos SPNEGO with mod_auth_gssapi against the tests' MIT KDC; LDAP Basic
over TLS with mod_authnz_ldap against the tests' slapd), authorization by
mod_scep through mod_ldap's util_ldap (group memberships, nested groups).

Every decision both ways: a permitted user gets a password, an unpermitted
one the NDES refusal page (and NDES event 6 or 41 in the log), an
unauthenticated one 401. The servers are in sceptest/admin.py; users and
groups in sceptest/ldap.py:

    alice  sign-enrollers, enc-enrollers, ndes-enroll (through ipsec-enrollers)
    dave   sign-enrollers, enc-enrollers              (2 of the 3 templates)
    carol  ca-admins
    bob    nothing
"""
import re

import pytest

from sceptest import admin as A
from sceptest import ldap as L
from sceptest.httpd import free_port

RE_ISSUED_LOG = r'SCEP\d{3}: one-time password handed out to %s '


def url(admin_httpd, vhost):
    return 'https://localhost:%d%s' % (getattr(admin_httpd.ports, vhost), A.ADMIN_PATH)


def kerberos_get(admin_httpd, kdc, user, accept=None):
    """curl --negotiate as user (after kinit), or without any ticket (user None)."""
    if user is not None:
        ok, out = kdc.kinit(user)
        assert ok, 'kinit %s: %s' % (user, out)
    else:
        kdc.kdestroy('nobody')
    try:
        return A.curl(url(admin_httpd, 'krb'), admin_httpd.tls_ca.ca_file, negotiate=True,
                      env=kdc.client_env(user), accept=accept, work=admin_httpd.env.work)
    finally:
        if user is not None:
            kdc.kdestroy(user)


def basic_get(admin_httpd, vhost, user, password=None, accept=None):
    if user is not None and password is None:
        password = L.USERS[user]
    return A.curl(url(admin_httpd, vhost), admin_httpd.tls_ca.ca_file, user=user,
                  password=password, accept=accept, work=admin_httpd.env.work)


def get(admin_httpd, kdc, way, user, accept=None):
    if way == 'kerberos':
        return kerberos_get(admin_httpd, kdc, user, accept)
    return basic_get(admin_httpd, 'ldap' if way == 'ldap' else way, user, accept=accept)


def assert_password_page(r, user, admin_httpd):
    assert r.status == 200, 'HTTP %d: %r' % (r.status, r.text[:500])
    assert r.header('cache-control') == 'no-store', r.headers
    text = r.text
    pw = A.password_of(text)
    assert pw is not None, 'no password on the page for %s:\n%s' % (user, text)
    assert re.fullmatch(r'[0-9A-F]{16}', pw), pw
    assert A.NO_PERMISSION not in text
    lines = admin_httpd.errlog.find(RE_ISSUED_LOG % user, levels=('info',))
    assert lines, 'no log line that %s got a password' % user
    assert pw not in '\n'.join(admin_httpd.errlog.lines()), 'the password is in the error log'
    return pw


def assert_access_log_user(admin_httpd, user, status):
    """Apache's access log names the authenticated user (GssapiLocalName:
    alice@EXAMPLE.TEST is alice) on the last admin page request."""
    with open(admin_httpd.env.logs + '/access_log') as f:
        lines = [ln for ln in f if 'GET %s ' % A.ADMIN_PATH in ln]
    assert lines, 'no admin page request in the access log'
    assert re.search(r'^127\.0\.0\.1 - %s \[.*\] "GET %s HTTP/1\.1" %d ' % (
        user, re.escape(A.ADMIN_PATH), status), lines[-1]), lines[-1]


def assert_refused(r, admin_httpd, event_re, user):
    """The NDES refusal page (HTTP 200, as NDES) without a password, and the
    NDES event in the log naming the user."""
    assert r.status == 200, 'HTTP %d: %r' % (r.status, r.text[:500])
    assert r.header('cache-control') == 'no-store', r.headers
    text = r.text
    assert A.NO_PERMISSION in text, text
    assert A.password_of(text) is None, 'a refused user got a password:\n' + text
    assert 'enrollment challenge password' not in text
    lines = admin_httpd.errlog.expect_and_find(event_re)
    assert lines, 'no log line with the NDES event (%s)' % event_re
    assert any(user in ln for ln in lines), 'the log line does not name %s: %s' % (user, lines)
    assert not admin_httpd.errlog.find(RE_ISSUED_LOG % user, wait=0)


# --- Kerberos -------------------------------------------------------------------

def test_kerberos_permitted_user_gets_password(admin_httpd, kdc):
    r = kerberos_get(admin_httpd, kdc, 'alice')
    assert_password_page(r, 'alice', admin_httpd)
    assert_access_log_user(admin_httpd, 'alice', 200)
    # the KDC issued alice a ticket for Apache's service principal
    with open(kdc.log, errors='replace') as f:
        log = f.read()
    assert re.search(r'TGS_REQ .* ISSUE: .*alice@EXAMPLE\.TEST for HTTP/localhost@EXAMPLE\.TEST',
                     log), 'no service ticket for HTTP/localhost in the KDC log'


def test_kerberos_without_ticket_is_401(admin_httpd, kdc):
    admin_httpd.errlog.expect(r'auth_gssapi:error')
    r = kerberos_get(admin_httpd, kdc, None)
    assert r.status == 401, r.status
    assert r.header('www-authenticate') == 'Negotiate', r.headers
    assert A.password_of(r.text) is None
    assert not admin_httpd.errlog.find(r'SCEP\d{3}: one-time password handed out', wait=0.3)


def test_kerberos_basic_is_not_accepted(admin_httpd):
    """GssapiBasicAuth Off: a Kerberos password sent as Basic gets nowhere."""
    admin_httpd.errlog.expect(r'auth_gssapi:error')
    r = basic_get(admin_httpd, 'krb', 'alice')
    assert r.status == 401, r.status
    assert A.password_of(r.text) is None


def test_kerberos_unpermitted_user_refused(admin_httpd, kdc):
    r = kerberos_get(admin_httpd, kdc, 'bob')
    assert_refused(r, admin_httpd, A.RE_EVENT_6, 'bob')
    assert_access_log_user(admin_httpd, 'bob', 200)


def test_kerberos_two_of_three_templates_refused(admin_httpd, kdc):
    """dave may enroll with SCEPSign and SCEPEncrypt, not with the
    general-purpose template: NDES wants all three."""
    r = kerberos_get(admin_httpd, kdc, 'dave')
    assert_refused(r, admin_httpd, A.RE_EVENT_6, 'dave')
    lines = admin_httpd.errlog.find(A.RE_EVENT_6)
    assert any('IPSECIntermediateOffline' in ln for ln in lines), lines


# --- LDAP Basic over TLS ------------------------------------------------------------

def test_ldap_permitted_user_gets_password(admin_httpd, slapd):
    pos = slapd.log_size()
    r = basic_get(admin_httpd, 'ldap', 'alice')
    assert_password_page(r, 'alice', admin_httpd)
    log = slapd.log_since(pos)
    # mod_authnz_ldap checked alice's password by binding as her, over TLS
    # (on a connection to the ldaps:// port; mod_ldap keeps connections open)
    m = re.search(r'conn=(\d+) op=\d+ BIND dn="uid=alice,ou=people,dc=example,dc=test" '
                  r'mech=SIMPLE bind_ssf=0 ssf=(\d+)', log)
    assert m, 'no bind as alice in the slapd log\n' + log[-2000:]
    assert int(m.group(2)) >= 128, 'bind without TLS: ' + m.group(0)
    with open(slapd.log, errors='replace') as f:
        assert re.search(r'conn=%s fd=\d+ ACCEPT from IP=127\.0\.0\.1:\d+ '
                         r'\(IP=127\.0\.0\.1:%d\)' % (m.group(1), slapd.ssl_port), f.read()), \
            'the bind was not on the ldaps:// port'
    # mod_scep's group checks: compares of the groups' members, bound as
    # SCEPLDAPBindDN (mod_ldap caches them: an earlier test may have made them)
    with open(slapd.log, errors='replace') as f:
        full = f.read()
    cmp_conns = set(re.findall(r'conn=(\d+) op=\d+ CMP dn="cn=sign-enrollers,ou=groups,'
                               r'dc=example,dc=test" attr="member"', full))
    assert cmp_conns, 'mod_scep never compared a group member'
    bound = [c for c in cmp_conns if re.search(r'conn=%s op=\d+ BIND dn="%s" mech=SIMPLE'
                                               % (c, re.escape(L.BIND_DN)), full)]
    assert bound, 'the group checks were not bound as ' + L.BIND_DN


def test_ldap_unpermitted_user_refused(admin_httpd):
    r = basic_get(admin_httpd, 'ldap', 'bob')
    assert_refused(r, admin_httpd, A.RE_EVENT_6, 'bob')


def test_ldap_two_of_three_templates_refused(admin_httpd):
    r = basic_get(admin_httpd, 'ldap', 'dave')
    assert_refused(r, admin_httpd, A.RE_EVENT_6, 'dave')


def test_ldap_ca_admin_is_not_enough_for_enterprise(admin_httpd):
    r = basic_get(admin_httpd, 'ldap', 'carol')
    assert_refused(r, admin_httpd, A.RE_EVENT_6, 'carol')


def test_ldap_wrong_password_is_401(admin_httpd):
    admin_httpd.errlog.expect(r'AH01617: user alice: authentication failure')
    r = basic_get(admin_httpd, 'ldap', 'alice', password='not-alices-password')
    assert r.status == 401, r.status
    assert r.header('www-authenticate') == 'Basic realm="mod_scep admin (LDAP)"', r.headers
    assert A.password_of(r.text) is None
    assert admin_httpd.errlog.find(r'AH01617: user alice: authentication failure')


def test_ldap_unknown_user_is_401(admin_httpd):
    admin_httpd.errlog.expect(r'AH01618: user mallory not found')
    r = basic_get(admin_httpd, 'ldap', 'mallory', password='x')
    assert r.status == 401, r.status
    assert A.password_of(r.text) is None


def test_ldap_no_credentials_is_401(admin_httpd):
    r = basic_get(admin_httpd, 'ldap', None)
    assert r.status == 401, r.status
    assert r.header('www-authenticate').startswith('Basic '), r.headers
    assert A.password_of(r.text) is None


# --- SCEPCAType Standalone: the CA administrators ------------------------------------

def test_standalone_ca_admin_gets_password(admin_httpd):
    r = basic_get(admin_httpd, 'standalone', 'carol')
    assert_password_page(r, 'carol', admin_httpd)


@pytest.mark.parametrize('user', ['alice', 'bob'])
def test_standalone_others_refused(admin_httpd, user):
    """alice may enroll with every template, but only CA administrators get
    passwords from a standalone CA's page."""
    r = basic_get(admin_httpd, 'standalone', user)
    assert_refused(r, admin_httpd, A.RE_EVENT_41, user)
    assert not admin_httpd.errlog.find(A.RE_EVENT_6, wait=0)


# --- a virtual host's enroll groups: added to the main server's ----------------------

@pytest.fixture
def groups_vhost(admin_httpd, slapd):
    """An LDAP Basic virtual host (its HTTPS port) whose own
    SCEPTemplateEnrollGroup gives sign-enrollers enroll permission on
    IPSECIntermediateOffline too, next to the main server's lines (HACKING.md,
    "Templates": a virtual host adds its groups to the main server's)."""
    port = free_port(admin_httpd.ports.standalone + 1)
    crt, key = admin_httpd.tls_ca.server('apache-groups')
    extra = '    SCEPTemplateEnrollGroup IPSECIntermediateOffline "%s"\n' \
        % L.TEMPLATE_GROUPS['SCEPSign']
    admin_httpd.restart_with(raw_extra=A.ssl_vhost(
        port, crt, key, A.ldap_basic(slapd, 'mod_scep admin (vhost groups)'), extra))
    yield port
    admin_httpd.restart_with()


def test_vhost_enroll_groups_add_to_the_main_servers(admin_httpd, groups_vhost):
    """alice holds enroll permission only through the main server's groups
    (SCEPTemplateEnrollGroup and SCEPSign's EnrollGroup): the virtual host's
    own line does not drop them. dave (sign-enrollers, enc-enrollers) gets
    the third template through the virtual host's line, there only; bob,
    in no group, gets nothing."""
    vhost_url = 'https://localhost:%d%s' % (groups_vhost, A.ADMIN_PATH)

    def vhost_get(user):
        return A.curl(vhost_url, admin_httpd.tls_ca.ca_file, user=user, password=L.USERS[user],
                      work=admin_httpd.env.work)

    assert_refused(basic_get(admin_httpd, 'ldap', 'dave'), admin_httpd, A.RE_EVENT_6, 'dave')
    assert_refused(vhost_get('bob'), admin_httpd, A.RE_EVENT_6, 'bob')
    assert_password_page(vhost_get('alice'), 'alice', admin_httpd)
    assert_password_page(vhost_get('dave'), 'dave', admin_httpd)


# --- the same decisions as JSON -----------------------------------------------------

@pytest.mark.parametrize('way', ['kerberos', 'ldap'])
def test_json_permitted(admin_httpd, kdc, way):
    r = get(admin_httpd, kdc, way, 'alice', accept='application/json')
    assert r.status == 200, (r.status, r.body)
    assert r.header('content-type') == 'application/json', r.headers
    assert r.header('cache-control') == 'no-store'
    j = r.json()
    assert re.fullmatch(r'[0-9A-F]{16}', j['password']), j


@pytest.mark.parametrize('way', ['kerberos', 'ldap'])
def test_json_refused(admin_httpd, kdc, way):
    admin_httpd.errlog.expect(A.RE_EVENT_6)
    r = get(admin_httpd, kdc, way, 'bob', accept='application/json')
    assert r.status == 403, (r.status, r.body)
    assert r.header('content-type') == 'application/json', r.headers
    j = r.json()
    assert j['error'] == 'not_authorized', j
    assert j['message'] == A.NO_PERMISSION
    assert 'password' not in j
    assert admin_httpd.errlog.find(A.RE_EVENT_6)
