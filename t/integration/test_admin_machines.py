"""The admin page for machines: `Accept: text/plain` gets the password
alone on a line, and a POST of `{"device": "ID"}` (application/json), an
MDM fetching a challenge for one device, gets the JSON answer with the
device echoed and the device logged with the password's issue. Both are
the admin page's own location and authentication (Apache's: LDAP Basic,
Kerberos), its LDAP permission check and its HTTPS-only rule; the
passwords they hand out enroll a device once.

The server and its users are sceptest/admin.py's and sceptest/ldap.py's.
"""
import json
import os
import re
import subprocess
import tempfile

import pytest

from sceptest import admin as A
from sceptest import checks, pki
from sceptest import client as C
from sceptest import ldap as L

RE_PLAIN_PASSWORD = re.compile(rb'[0-9A-F]{16}\n')
RE_EVENT_29 = r'SCEP\d{3}: .*\(NDES event 29\)'
TEXT_TYPE = 'text/plain; charset=utf-8'
# a one-time password's line (SCEP526) naming its device, escaped
RE_HANDED_OUT = r'SCEP526: one-time password handed out to %s \(127\.0\.0\.1\)%s, valid until '
# a refused POST (SCEP531, info) with its status
RE_POST_REFUSED = r'SCEP531: admin page: POST by alice \(127\.0\.0\.1\) refused with %d: '
RE_CACHE_FULL = r'SCEP524: no password for alice \(127\.0\.0\.1\) for device "%s": ' \
                r'the password cache is full'


def url(admin_httpd, vhost='ldap'):
    scheme = 'http' if vhost == 'http' else 'https'
    return '%s://localhost:%d%s' % (scheme, getattr(admin_httpd.ports, vhost), A.ADMIN_PATH)


def get(admin_httpd, accept='text/plain', user='alice', vhost='ldap', password=None,
        extra=()):
    if user is not None and password is None:
        password = L.USERS[user]
    return A.curl(url(admin_httpd, vhost), admin_httpd.tls_ca.ca_file, user=user,
                  password=password, accept=accept, work=admin_httpd.env.work, extra=extra)


def post_args(admin_httpd, body, content_type='application/json'):
    """curl's arguments of a POST of body (bytes or a document to write as
    JSON) with content_type (None: no Content-Type header at all)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    fd, path = tempfile.mkstemp(prefix='post-', dir=admin_httpd.env.work)
    with os.fdopen(fd, 'wb') as f:
        f.write(body)
    return ['--data-binary', '@' + path, '-H', 'Content-Type:' + (
        ' ' + content_type if content_type is not None else '')]


def post(admin_httpd, body, content_type='application/json', user='alice', vhost='ldap',
         password=None, accept=None):
    return get(admin_httpd, accept=accept, user=user, vhost=vhost, password=password,
               extra=post_args(admin_httpd, body, content_type))


def enroll(admin_httpd, keys, cn, password):
    dev = A.device(admin_httpd)
    key = keys.take()
    msg, r, rep = dev.enroll(pki.make_csr(key, cn, challenge=password), key)
    return dev, msg, r, rep


def assert_enrolls_once(admin_httpd, keys, cn, password):
    """A device enrolls with password; a second device with it is refused
    (event 29)."""
    dev, msg, r, rep = enroll(admin_httpd, keys, cn, password)
    cert = checks.assert_issued(msg, r, rep, dev.ca.ca)
    checks.assert_recorded(admin_httpd, msg.transaction_id, cert)
    admin_httpd.errlog.expect(RE_EVENT_29)
    dev, msg, r, rep = enroll(admin_httpd, keys, 'again-' + cn, password)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    lines = admin_httpd.errlog.find(RE_EVENT_29)
    assert any(msg.transaction_id in ln for ln in lines), lines


def assert_no_password_handed_out(admin_httpd):
    assert not admin_httpd.errlog.find(r'SCEP52[56]: ', wait=0.3)


def assert_error(r, status, error):
    assert r.status == status, (r.status, r.body)
    assert r.header('content-type') == 'application/json', r.headers
    j = r.json()
    assert j['error'] == error and j['message'], j
    assert 'password' not in j, j
    assert r.header('cache-control') == 'no-store', r.headers
    return j


# --- Accept: text/plain ---------------------------------------------------------------

def test_text_plain_is_the_password_alone_and_enrolls_once(admin_httpd, keys):
    r = get(admin_httpd)
    assert r.status == 200, (r.status, r.body)
    assert r.header('content-type') == TEXT_TYPE, r.headers
    assert RE_PLAIN_PASSWORD.fullmatch(r.body), r.body
    assert r.header('cache-control') == 'no-store', r.headers
    assert 'Accept' in r.header('vary'), r.headers
    A.assert_not_frameable(r)
    assert admin_httpd.errlog.find(RE_HANDED_OUT % ('alice', ''), levels=('info',))
    assert_enrolls_once(admin_httpd, keys, 'plain.example.test', r.body.decode().strip())


@pytest.mark.parametrize('accept, content_type', [
    ('text/plain', TEXT_TYPE),
    ('text/plain, application/json;q=0.9', TEXT_TYPE),
    ('text/plain, */*;q=0.1', TEXT_TYPE),
    # ties go to the page (NDES's), then to JSON
    ('text/plain, text/html', 'text/html; charset=utf-16'),
    ('text/*', 'text/html; charset=utf-16'),
    ('*/*', 'text/html; charset=utf-16'),
    ('text/plain;q=0.5, text/html', 'text/html; charset=utf-16'),
    ('application/json, text/plain', 'application/json'),
    ('application/json;q=0.5, text/plain', TEXT_TYPE),
])
def test_accept_chooses_the_form(admin_httpd, accept, content_type):
    r = get(admin_httpd, accept=accept)
    assert r.status == 200, (accept, r.status)
    assert r.header('content-type') == content_type, (accept, r.headers)
    if content_type == TEXT_TYPE:
        assert RE_PLAIN_PASSWORD.fullmatch(r.body), r.body
    elif content_type == 'application/json':
        assert re.fullmatch(r'[0-9A-F]{16}', r.json()['password']), r.body
    else:
        assert A.password_of(r.text), r.text


def test_text_plain_refused_user(admin_httpd):
    """bob holds no template's enroll permission: 403 and NDES's sentence,
    never a line a script could take for a password."""
    admin_httpd.errlog.expect(A.RE_EVENT_6)
    r = get(admin_httpd, user='bob')
    assert r.status == 403, (r.status, r.body)
    assert r.header('content-type') == TEXT_TYPE, r.headers
    assert r.body == (A.NO_PERMISSION + '\n').encode(), r.body
    assert admin_httpd.errlog.find(A.RE_EVENT_6)
    assert_no_password_handed_out(admin_httpd)


def test_text_plain_head_hands_out_nothing(admin_httpd):
    r = get(admin_httpd, extra=['--head'])
    assert r.status == 200, r.status
    assert r.header('content-type') == TEXT_TYPE, r.headers
    # curl --head writes the headers as the output: nothing after them
    head, _, rest = r.body.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200') and rest == b'', r.body
    assert_no_password_handed_out(admin_httpd)


@pytest.mark.parametrize('way', ['get', 'post'])
def test_unauthenticated_is_401(admin_httpd, way):
    """No credentials, and a wrong password: Apache's 401 before the
    handler, for text/plain and for a machine's POST alike."""
    admin_httpd.errlog.expect(r'AH01617: user alice: authentication failure')
    extra = post_args(admin_httpd, {'device': 'no-credentials'}) if way == 'post' else []
    for user, password in ((None, None), ('alice', 'not-alices-password')):
        r = get(admin_httpd, user=user, password=password, extra=extra)
        assert r.status == 401, (user, r.status)
        assert r.header('www-authenticate').startswith('Basic '), r.headers
        assert not RE_PLAIN_PASSWORD.search(r.body), r.body
        assert b'"password"' not in r.body, r.body
    assert admin_httpd.errlog.find(r'AH01617: user alice: authentication failure')
    assert_no_password_handed_out(admin_httpd)
    assert not admin_httpd.errlog.find(r'SCEP531: ', wait=0)


@pytest.mark.parametrize('way', ['get', 'post'])
def test_plain_http_refused(admin_httpd, way):
    """The HTTPS-only rule holds for machines too."""
    admin_httpd.errlog.expect(A.RE_HTTP_REFUSED)
    extra = post_args(admin_httpd, {'device': 'over-http'}) if way == 'post' else []
    r = get(admin_httpd, vhost='http', extra=extra)
    assert r.status == 403, r.status
    assert not RE_PLAIN_PASSWORD.search(r.body), r.body
    assert admin_httpd.errlog.find(A.RE_HTTP_REFUSED, levels=('error',))
    assert_no_password_handed_out(admin_httpd)


# --- POST {"device": "ID"} ----------------------------------------------------------

def test_post_allowed_other_methods_not(admin_httpd):
    """OPTIONS lists POST beside GET and HEAD; PUT and DELETE get 405 and
    no password."""
    r = get(admin_httpd, accept=None, extra=['-X', 'OPTIONS'])
    assert r.status == 200, r.status
    allow = {m.strip() for m in r.header('allow').split(',')}
    assert {'GET', 'HEAD', 'POST'} <= allow and not allow & {'PUT', 'DELETE'}, allow
    for method in ('PUT', 'DELETE'):
        r = get(admin_httpd, accept=None,
                extra=['-X', method] + post_args(admin_httpd, {'device': method}))
        assert r.status == 405, (method, r.status)
    assert_no_password_handed_out(admin_httpd)


def test_post_device_gets_json_logged_and_enrolls_once(admin_httpd, keys):
    device = 'intune-4f1c2a9e-0d7b-4c55-9a4e-3b8f6e2d1c07'
    r = post(admin_httpd, {'device': device})
    assert r.status == 200, (r.status, r.body)
    assert r.header('content-type') == 'application/json', r.headers
    assert r.header('cache-control') == 'no-store', r.headers
    j = r.json()
    # today's answer, in its order, and the device last
    assert list(j) == ['password', 'expires', 'validity_minutes', 'ca_thumbprint',
                       'single_password', 'device'], j
    assert re.fullmatch(r'[0-9A-F]{16}', j['password']), j
    assert j['validity_minutes'] == 60 and j['single_password'] is False, j
    assert j['device'] == device, j
    lines = admin_httpd.errlog.find(RE_HANDED_OUT % ('alice', ' for device "%s"' % device),
                                    levels=('info',))
    assert len(lines) == 1, lines
    assert j['password'] not in '\n'.join(admin_httpd.errlog.lines())
    assert_enrolls_once(admin_httpd, keys, 'mdm-device.example.test', j['password'])


def test_post_answers_json_whatever_accept_says(admin_httpd):
    for accept in ('text/plain', 'text/html', '*/*'):
        r = post(admin_httpd, {'device': 'accept-' + accept}, accept=accept)
        assert r.status == 200 and r.header('content-type') == 'application/json', accept
        assert r.json()['device'] == 'accept-' + accept


def test_post_content_type_with_charset(admin_httpd):
    r = post(admin_httpd, {'device': 'charset'}, content_type='Application/JSON; charset=utf-8')
    assert r.status == 200, (r.status, r.body)
    assert r.json()['device'] == 'charset'


def test_post_device_escaped_in_the_log(admin_httpd):
    """A device identifier is the MDM's text: the log shows its quotes,
    backslashes, controls and non-ASCII bytes escaped (one line, nothing
    forged), the answer echoes it exactly."""
    device = 'ab"c\\d\nSCEP526: forged\x1b[31m\u00e9'
    r = post(admin_httpd, {'device': device})
    assert r.status == 200, (r.status, r.body)
    assert r.json()['device'] == device
    lines = admin_httpd.errlog.find(r'SCEP526: ', levels=('info',))
    assert len(lines) == 1, lines
    # escaped as the user is (ap_escape_logitem: \" \\ \n \xNN), then once
    # more by httpd's error log, which doubles every backslash
    assert r' for device "ab\\"c\\\\d\\nSCEP526: forged\\x1b[31m\\xc3\\xa9", valid until' \
        in lines[0], lines[0]


def test_post_longest_device_accepted(admin_httpd):
    device = 'd' * 256
    r = post(admin_httpd, {'device': device})
    assert r.status == 200, (r.status, r.body)
    assert r.json()['device'] == device
    assert admin_httpd.errlog.find(RE_HANDED_OUT % ('alice', ' for device "%s"' % device))


@pytest.mark.parametrize('content_type', [None, 'text/plain',
                                          'application/x-www-form-urlencoded',
                                          'multipart/form-data; boundary=x',
                                          'application/jsonp', 'application/json-seq'])
def test_post_other_content_types_415(admin_httpd, content_type):
    """What a cross-site form can send (no CORS preflight) is refused:
    only application/json is taken."""
    r = post(admin_httpd, {'device': 'wrong-type'}, content_type=content_type)
    j = assert_error(r, 415, 'unsupported_media_type')
    assert 'application/json' in j['message'], j
    assert admin_httpd.errlog.find(RE_POST_REFUSED % 415, levels=('info',))
    assert_no_password_handed_out(admin_httpd)


@pytest.mark.parametrize('body, error', [
    (b'', 'bad_json'),
    (b'device=x', 'bad_json'),
    (b'{"device": "x"', 'bad_json'),
    (b'{"device": "x"} {}', 'bad_json'),
    (b'{"device": "x\\u0000y"}', 'bad_json'),
    (b'{"device": "\xff"}', 'bad_json'),
    (b'{"device": "a", "device": "b"}', 'bad_json'),
    (b'["device", "x"]', 'bad_request'),
    (b'"x"', 'bad_json'),  # jansson takes an object or an array only
    (b'{}', 'bad_request'),
    (b'{"Device": "x"}', 'bad_request'),
    (b'{"device": 42}', 'bad_request'),
    (b'{"device": null}', 'bad_request'),
    (b'{"device": "x", "serial": "y"}', 'bad_request'),
    (b'{"device": ""}', 'bad_device'),
    (json.dumps({'device': 'd' * 257}).encode(), 'bad_device'),
    # 129 two-byte characters: 258 bytes
    (json.dumps({'device': '\u00e9' * 129}, ensure_ascii=False).encode(), 'bad_device'),
])
def test_post_bad_body_400(admin_httpd, body, error):
    r = post(admin_httpd, body)
    assert_error(r, 400, error)
    assert admin_httpd.errlog.find(RE_POST_REFUSED % 400, levels=('info',))
    assert_no_password_handed_out(admin_httpd)


def test_post_too_large_413(admin_httpd):
    r = post(admin_httpd, json.dumps({'device': 'x', 'pad': ' ' * 5000}).encode())
    assert_error(r, 413, 'too_large')
    assert admin_httpd.errlog.find(RE_POST_REFUSED % 413, levels=('info',))
    assert_no_password_handed_out(admin_httpd)


def test_post_chunked_too_large_413(admin_httpd):
    """Without a Content-Length, the body is read only up to the limit."""
    extra = post_args(admin_httpd, b'{"device": "%s"}' % (b'x' * 5000))
    r = get(admin_httpd, accept=None, extra=extra + ['-H', 'Transfer-Encoding: chunked'])
    assert_error(r, 413, 'too_large')
    assert_no_password_handed_out(admin_httpd)


def test_post_refused_user(admin_httpd):
    """The admin page's permission check: bob gets 403 JSON, event 6."""
    admin_httpd.errlog.expect(A.RE_EVENT_6)
    r = post(admin_httpd, {'device': 'bobs-device'}, user='bob')
    assert_error(r, 403, 'not_authorized')
    assert admin_httpd.errlog.find(A.RE_EVENT_6)
    assert_no_password_handed_out(admin_httpd)


def test_post_kerberos(admin_httpd, kdc, keys):
    """The same location behind Kerberos: a machine with a ticket gets a
    password for its device."""
    ok, out = kdc.kinit('alice')
    assert ok, out
    try:
        r = A.curl(url(admin_httpd, 'krb'), admin_httpd.tls_ca.ca_file, negotiate=True,
                   env=kdc.client_env('alice'), work=admin_httpd.env.work,
                   extra=post_args(admin_httpd, {'device': 'krb-device'}))
    finally:
        kdc.kdestroy('alice')
    assert r.status == 200, (r.status, r.body)
    j = r.json()
    assert j['device'] == 'krb-device', j
    assert admin_httpd.errlog.find(RE_HANDED_OUT % ('alice', ' for device "krb-device"'))
    assert_enrolls_once(admin_httpd, keys, 'krb-device.example.test', j['password'])


# --- the full cache ------------------------------------------------------------------

def test_cache_full(admin_httpd, keys):
    """SCEPPasswordMax 1: the second machine gets today's 503 JSON (POST)
    or NDES's sentence with 503 (text/plain), the device named in the log;
    once the first password is used, there is room again."""
    with admin_httpd.config(SCEPPasswordMax='1'):
        admin_httpd.errlog.expect(r'SCEP524: ')
        first = post(admin_httpd, {'device': 'first'}).json()['password']
        r = post(admin_httpd, {'device': 'second'})
        j = assert_error(r, 503, 'password_cache_full')
        assert j['message'] == A.CACHE_FULL and j['validity_minutes'] == 60, j
        assert admin_httpd.errlog.find(RE_CACHE_FULL % 'second', levels=('warn',))
        r = get(admin_httpd)
        assert r.status == 503, r.status
        assert r.header('content-type') == TEXT_TYPE, r.headers
        assert r.body == (A.CACHE_FULL + '\n').encode(), r.body
        assert_enrolls_once(admin_httpd, keys, 'frees-a-place.example.test', first)
        r = get(admin_httpd)
        assert r.status == 200 and RE_PLAIN_PASSWORD.fullmatch(r.body), (r.status, r.body)


# --- the single password ------------------------------------------------------------

def test_single_password(admin_httpd):
    """SCEPUseSinglePassword On: text/plain is the single password, a POST
    gets it with single_password true and its device logged (SCEP525)."""
    env = admin_httpd.env
    d = os.path.join(env.work, 'machines-single')
    os.makedirs(d, exist_ok=True)
    key_file, pw_file = os.path.join(d, 'secret.key'), os.path.join(d, 'single-password')
    for f in (key_file, pw_file):
        if os.path.exists(f):
            os.remove(f)
    secret = 'Machine-Line-9'
    p = subprocess.run(
        [env.scepctl, 'single-password', '--key', key_file, '--file', pw_file, '--set', '-'],
        input=secret + '\n', capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with admin_httpd.config(('SCEPUseSinglePassword', 'On'), ('SCEPSecretKeyFile', key_file),
                            ('SCEPSinglePasswordFile', pw_file)):
        r = get(admin_httpd)
        assert r.status == 200 and r.body == (secret + '\n').encode(), (r.status, r.body)
        j = post(admin_httpd, {'device': 'line-9'}).json()
        assert j['password'] == secret and j['single_password'] is True, j
        assert j['expires'] is None and j['device'] == 'line-9', j
        assert admin_httpd.errlog.find(
            r'SCEP525: the single password shown to alice \(127\.0\.0\.1\) for device "line-9"',
            levels=('info',))
