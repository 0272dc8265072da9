"""The CA manager page (SetHandler scep-manager, issue 4 "Pending approval and
polling"): who may use it, what it lists, approve, deny, revoke, and the
guards of its state changes (POST only, CSRF token, HTTPS only).

The admin server (sceptest/admin.py) runs as a stand-alone CA for this
module, so every device request is held (CertRep PENDING) until a manager
decides; devices use the static challenge. CA managers (SCEPCAManagerGroup
ca-managers): dave directly, carol through the nested group cert-officers;
alice (who may get passwords) and bob are not. The database is read
directly to show that refused requests change nothing.
"""
import base64
import contextlib
import datetime
import hashlib
import html
import json
import os
import re
import signal
import urllib.parse

import pytest
from cryptography import x509

from sceptest import admin as A
from sceptest import checks, db, pki
from sceptest import client as C
from sceptest import ldap as L
from sceptest.httpd import make_conf

RE_NOT_MANAGER = r'SCEP621: %s may not use the CA manager page: not a CA manager \(not a ' \
                 r'member of \'cn=ca-managers,ou=groups,dc=example,dc=test\''
RE_CSRF_REFUSED = r'SCEP603: CA manager page: POST by %s .*refused'
RE_GET_REFUSED = r'SCEP605: CA manager page: GET with an action by %s'
RE_REVOKED_LOG = r'SCEP602: CA manager %s revoked certificate %s, reason %s'


@pytest.fixture(scope='module')
def held(admin_httpd):
    with A.held_config(admin_httpd):
        yield admin_httpd


@pytest.fixture
def dev(held):
    return A.device(held)


def request_row(httpd, txn):
    rows = checks.request_rows(httpd, txn)
    assert len(rows) == 1, rows
    return rows[0]


def page(httpd, user='dave', **kw):
    r = A.manager_get(httpd, user, **kw)
    assert r.status == 200, 'HTTP %d: %s' % (r.status, r.text[:500])
    return r


def token(httpd, user='dave'):
    return A.csrf_of(page(httpd, user).text)


def decide(httpd, action, field, value, user='dave', accept=None, **more):
    fields = dict(csrf=token(httpd, user), action=action, **{field: value})
    fields.update(more)
    return A.manager_post(httpd, user, fields, accept=accept)


def assert_redirect(r, done, id_):
    """An HTML form's answer: 303 back to the page, saying what happened."""
    assert r.status == 303, 'HTTP %d: %s' % (r.status, r.text[:500])
    loc = urllib.parse.urlsplit(r.header('location'))
    assert loc.path == A.MANAGER_PATH, r.header('location')
    assert urllib.parse.parse_qs(loc.query) == {'done': [done], 'id': [id_]}, loc.query


def pending_ids(httpd, user='dave'):
    return [t['transaction_id'] for t in page(httpd, user, accept='application/json')
            .json()['pending']]


# --- who may use the page ---------------------------------------------------------

@pytest.mark.parametrize('user', ['dave', 'carol'])
def test_managers_see_the_page(held, dev, keys, user):
    """dave is a direct member of the managers' group, carol a nested one."""
    msg = A.hold(dev, keys.take(), 'listed-%s.example.test' % user)
    r = page(held, user)
    assert r.header('content-type') == 'text/html; charset=utf-8', r.headers
    assert 'Signed in as <b>%s</b>' % user in r.text
    assert 'id="txn-%s"' % msg.transaction_id in r.text


@pytest.mark.parametrize('user', ['alice', 'bob'])
def test_non_members_refused(held, user):
    """alice may get passwords, bob nothing: neither is a CA manager. 403
    as HTML and as JSON, with a log line naming the user and the group."""
    for accept in (None, 'application/json'):
        held.errlog.mark()
        r = A.manager_get(held, user, accept=accept)
        assert r.status == 403, r.status
        lines = held.errlog.expect_and_find(RE_NOT_MANAGER % user)
        assert lines, 'no refusal naming %s and the group' % user
        if accept:
            assert r.json()['error'] == 'not_authorized'
        else:
            assert 'You are not a CA manager' in r.text
            assert A.RE_CSRF.search(r.text) is None


def test_non_member_cannot_post(held, dev, keys):
    """bob posting a manager's form (with a manager's token) is refused
    before the form is read: the request stays pending."""
    msg = A.hold(dev, keys.take(), 'bob-tries.example.test')
    fields = dict(csrf=token(held), action='approve', txn=msg.transaction_id)
    held.errlog.expect(RE_NOT_MANAGER % 'bob')
    r = A.manager_post(held, 'bob', fields)
    assert r.status == 403, r.status
    assert request_row(held, msg.transaction_id)['status'] == 'pending'


def test_kerberos(held, kdc):
    """The same decision for a Kerberos login (GssapiLocalName: dave@REALM
    is dave)."""
    url = A.manager_url(held, 'krb')
    for user, status in (('dave', 200), ('alice', 403)):
        ok, out = kdc.kinit(user)
        assert ok, out
        try:
            r = A.curl(url, held.tls_ca.ca_file, negotiate=True, env=kdc.client_env(user),
                       work=held.env.work)
        finally:
            kdc.kdestroy(user)
        assert r.status == status, (user, r.status)
    assert held.errlog.expect_and_find(RE_NOT_MANAGER % 'alice')


def test_plain_http_refused(held):
    held.errlog.expect(A.RE_HTTP_REFUSED)
    r = A.manager_get(held, 'dave', vhost='http')
    assert r.status == 403, r.status
    assert held.errlog.find(A.RE_HTTP_REFUSED)
    assert A.RE_CSRF.search(r.text) is None


def test_headers(held):
    r = page(held)
    assert r.header('cache-control') == 'no-store'
    A.assert_not_frameable(r)
    csp = r.header('content-security-policy')
    assert "form-action 'self'" in csp, csp
    # the one inline style is allowed by its hash, so the browser applies it
    style = re.search(r'<style>(.*?)</style>', r.text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert "style-src 'sha256-%s'" % digest in csp, (csp, digest)


# --- what it lists ----------------------------------------------------------------

def test_pending_request_listed(held, dev, keys):
    msg = A.hold(dev, keys.take(), pki.name('router-7.example.test', 'Example'),
                 dns=['router-7.example.test'], ips=['192.0.2.7'])
    before = datetime.datetime.now(datetime.timezone.utc)
    j = page(held, accept='application/json').json()
    assert re.fullmatch(r'[0-9A-F]{64}', j['csrf']), j['csrf']
    assert j['user'] == 'dave'
    entry = [t for t in j['pending'] if t['transaction_id'] == msg.transaction_id]
    assert len(entry) == 1, j['pending']
    t = entry[0]
    assert t['status'] == 'pending'
    assert t['subject'] == 'O=Example,CN=router-7.example.test', t
    assert 'DNS:router-7.example.test' in t['san'] and '192.0.2.7' in t['san'], t
    assert t['key'] == 'RSA 2048', t
    assert t['template'] == 'IPSECIntermediateOffline', t
    assert t['client_addr'] == '127.0.0.1', t
    created = datetime.datetime.strptime(t['created'], '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    assert abs((created - before).total_seconds()) < 120, t
    # the same row on the HTML page, with its two forms
    text = page(held).text
    row = re.search(r'<tr id="txn-%s">.*?</tr>' % msg.transaction_id, text, re.S)
    assert row, text
    for want in ('O=Example,CN=router-7.example.test', 'router-7.example.test', 'RSA 2048',
                 'IPSECIntermediateOffline', '127.0.0.1', t['created'],
                 'name="action" value="approve"', 'name="action" value="deny"',
                 'name="reason"'):
        assert want in row.group(0), (want, row.group(0))


def test_hostile_subject_is_escaped(held, dev, keys):
    """A subject made to break out of the HTML: on the page it is text,
    escaped; JSON carries it as it is."""
    cn = '<script>alert(1)</script>'
    o = '"><img src=x onerror=alert(2)>'
    msg = A.hold(dev, keys.take(), pki.name(cn, o))
    t = [t for t in page(held, accept='application/json').json()['pending']
         if t['transaction_id'] == msg.transaction_id][0]
    # RFC 2253 text: the hostile characters are there, some backslash-escaped
    plain = t['subject'].replace('\\', '')
    assert cn in plain and o in plain, t['subject']
    text = page(held).text
    assert '<script' not in text and '<img' not in text, 'unescaped subject on the page'
    row = re.search(r'<tr id="txn-%s">.*?</tr>' % msg.transaction_id, text, re.S).group(0)
    assert '<td>%s</td>' % html.escape(t['subject'], quote=True) in row, row


HOSTILE = 'a\tb\nFORGED\x1b[31mred\x7f\u009b31m \\x41 Gr\u00fc\u00dfe "</td><script>'


def test_json_is_valid_utf8_whatever_the_records_hold(held, dev, keys):
    """Control characters as \\u escapes (C0 and C1; jansson leaves DEL,
    which terminals ignore), everything beyond ASCII escaped, bytes that are
    not UTF-8 as U+FFFD: the answer parses with a strict UTF-8 decoder and a
    strict JSON parser, and says what the records hold."""
    A.hold(dev, keys.take(), 'json-ready.example.test')  # the records exist
    values = {c: '%s %s' % (c, HOSTILE) for c in ('subject', 'san', 'key_desc', 'template',
                                                  'client_addr')}
    txid = 'JSON-' + HOSTILE
    db.insert_pending(held, txid, values)
    invalid = held.env.database.kind == 'sqlite'
    if invalid:
        db.insert_pending(held, 'JSON-INVALID', {'subject': b'CN=bad\xc3\x28 \xff\xed\xa0\x80',
                                              'san': b'DNS:\xc0\xaf'})
    try:
        r = page(held, accept='application/json')
        body = r.body.decode('utf-8')  # strict
        assert body.isascii() and not re.search('[\x00-\x1f]', body.replace('\n', '')), \
            'raw control characters in the JSON'
        pending = {t['transaction_id']: t for t in json.loads(body)['pending']}
        t = pending[txid]
        for column, key in (('subject', 'subject'), ('san', 'san'), ('key_desc', 'key'),
                            ('template', 'template'), ('client_addr', 'client_addr')):
            assert t[key] == values[column], (key, t[key])
        # jansson: upper-case hex; DEL (which terminals ignore) as it is
        assert '\\u009B31m' in body and '\\u001B[31m' in body and '\x7f' in body
        if invalid:
            t = pending['JSON-INVALID']
            assert t['subject'] == 'CN=bad\ufffd( \ufffd\ufffd\ufffd\ufffd', t['subject']
            assert t['san'] == 'DNS:\ufffd\ufffd', t['san']
    finally:
        held.db_execute("DELETE FROM scep_request WHERE transaction_id LIKE 'JSON-%'")


def test_html_shows_control_characters_escaped(held, dev, keys):
    """On the page a control character would be invisible (two names that
    differ would look alike): shown as scepctl lists it, then HTML-escaped;
    bytes that are not UTF-8 likewise."""
    A.hold(dev, keys.take(), 'html-ready.example.test')
    txid = 'HTML-ESCAPED'
    db.insert_pending(held, txid, {'subject': 'CN=' + HOSTILE, 'san': 'othername:UPN:' + HOSTILE})
    if held.env.database.kind == 'sqlite':
        db.insert_pending(held, 'HTML-INVALID', {'subject': b'CN=bad\xc3\x28'})
    try:
        body = page(held).body
        text = body.decode('utf-8')  # strict
        assert not re.search('[\x00-\x08\x0b-\x1f\x7f-\x9f]', text), \
            'raw control characters on the page'
        row = re.search(r'<tr id="txn-%s">.*?</tr>' % txid, text, re.S).group(0)
        shown = html.escape('a\\tb\\nFORGED\\x1B[31mred\\x7F\\xC2\\x9B31m \\x41 '
                            'Gr\u00fc\u00dfe "</td><script>', quote=True)
        assert '<td>CN=%s</td>' % shown in row, row
        assert '<td>othername:UPN:%s</td>' % shown in row, row
        if held.env.database.kind == 'sqlite':
            row = re.search(r'<tr id="txn-HTML-INVALID">.*?</tr>', text, re.S).group(0)
            assert '<td>CN=bad\\xC3(</td>' in row, row
    finally:
        held.db_execute("DELETE FROM scep_request WHERE transaction_id LIKE 'HTML-%'")


# --- decisions ----------------------------------------------------------------------

def test_approve(held, dev, keys):
    msg = A.hold(dev, keys.take(), 'approved.example.test')
    m, r, rep = A.poll(dev, msg)
    assert rep is not None and rep.pki_status == C.PENDING, str(rep)
    r = decide(held, 'approve', 'txn', msg.transaction_id)
    assert_redirect(r, 'approved', msg.transaction_id)
    row = request_row(held, msg.transaction_id)
    assert row['status'] == 'issued' and row['decided_by'] == 'dave', row
    assert held.errlog.find(r'SCEP\d{3}: .*%s.*dave|SCEP\d{3}: .*dave.*%s'
                            % (msg.transaction_id, msg.transaction_id))
    assert msg.transaction_id not in pending_ids(held)
    cert = A.assert_poll_issued(dev, msg)
    assert cert.subject == pki.name('approved.example.test')
    checks.assert_recorded(held, msg.transaction_id, cert)
    # the page tells what happened after the redirect
    r = A.manager_get(held, 'dave', query={'done': 'approved', 'id': msg.transaction_id})
    assert 'Request %s approved' % msg.transaction_id in r.text


def test_approve_json_and_twice(held, dev, keys):
    msg = A.hold(dev, keys.take(), 'approved-json.example.test')
    r = decide(held, 'approve', 'txn', msg.transaction_id, accept='application/json')
    assert r.status == 200, (r.status, r.body)
    j = r.json()
    assert j['result'] == 'approved' and j['id'] == msg.transaction_id, j
    assert int(j['serial'], 16) == A.assert_poll_issued(dev, msg).serial_number
    # a second manager's approval comes too late
    r = decide(held, 'approve', 'txn', msg.transaction_id, user='carol',
               accept='application/json')
    assert r.status == 409 and r.json()['result'] == 'not_pending', (r.status, r.body)
    assert request_row(held, msg.transaction_id)['decided_by'] == 'dave'
    r = decide(held, 'approve', 'txn', msg.transaction_id, user='carol')
    assert_redirect(r, 'not_pending', msg.transaction_id)


def test_request_held_by_the_ca_shown_as_waiting_for_it(held, dev, keys):
    """A held request with an external CA's ticket (schema 5, as the engine
    records it when the CA holds a request) waits for the CA: the JSON rows
    and scepctl list's last column say so, scepctl approve refuses it (the
    CA decides) and deny rejects it, clearing the ticket. This server's CA
    is the built-in one, which cannot ask an external CA: the page offers
    the approval, which issues with it."""
    msg = A.hold(dev, keys.take(), 'at-ca.example.test')
    other = A.hold(dev, keys.take(), 'at-ca-2.example.test')
    for m in (msg, other):
        held.db_execute("UPDATE scep_request SET ca_ticket = 'cookie 1', ca_poll_at = 4102444800"
                        " WHERE transaction_id = ?", (m.transaction_id,))
    j = page(held, accept='application/json').json()
    rows = {t['transaction_id']: t for t in j['pending']}
    t = rows[msg.transaction_id]
    assert t['waiting_for'] == 'CA' and t['ca_poll_at'] == '2100-01-01T00:00:00Z', t
    assert all(t['waiting_for'] == 'manager' for i, t in rows.items()
               if i not in (msg.transaction_id, other.transaction_id)), rows
    code, out, err = held.scepctl_records('list')
    lines = out.splitlines()
    assert lines[0].endswith('\treason\twaiting-for'), lines[0]
    listed = {ln.split('\t')[0]: ln.split('\t') for ln in lines[1:]}
    assert listed[msg.transaction_id][1] == 'pending' and listed[msg.transaction_id][-1] == 'CA'
    code, out, err = held.scepctl_records('approve', '--by', 'erin', msg.transaction_id)
    assert code == 1 and 'waits for the CA, which decides it' in err, (code, out, err)
    assert request_row(held, msg.transaction_id)['status'] == 'pending'
    code, out, err = held.scepctl_records('deny', '--by', 'erin', '--reason', 'not ours',
                                          msg.transaction_id)
    assert code == 0, err
    row = request_row(held, msg.transaction_id)
    assert row['status'] == 'rejected' and row['ca_ticket'] is None, row
    # the built-in CA issues what the external one held
    assert 'value="approve"' in page(held).text.split('id="txn-%s"' % other.transaction_id)[1] \
        .split('</tr>')[0]
    r = decide(held, 'approve', 'txn', other.transaction_id, accept='application/json')
    assert r.status == 200 and r.json()['result'] == 'approved', (r.status, r.body)
    row = request_row(held, other.transaction_id)
    assert row['status'] == 'issued' and row['ca_ticket'] is None, row


def test_expired_request_is_not_offered(held, dev, keys):
    """A request held longer than SCEPRefreshPeriod expires when the page
    is listed: it is no longer pending, and approving it comes too late."""
    msg = A.hold(dev, keys.take(), 'expired.example.test')
    held.db_execute('UPDATE scep_request SET created = ? WHERE transaction_id = ?',
                    ('2020-01-01T00:00:00Z', msg.transaction_id))
    j = page(held, accept='application/json').json()
    assert msg.transaction_id not in [t['transaction_id'] for t in j['pending']]
    recent = [t for t in j['recent'] if t['transaction_id'] == msg.transaction_id]
    assert recent and recent[0]['status'] == 'expired', recent
    r = A.manager_post(held, 'dave', dict(csrf=j['csrf'], action='approve',
                                          txn=msg.transaction_id), accept='application/json')
    assert r.status == 409 and r.json()['result'] == 'not_pending', (r.status, r.body)
    assert request_row(held, msg.transaction_id)['status'] == 'expired'


def test_approval_that_cannot_be_issued(held, dev, keys):
    """A held request whose template is no longer configured: approving it
    rejects it with the reason (JSON 422; a form goes back to the page)."""
    for accept in ('application/json', None):
        msg = A.hold(dev, keys.take(), 'no-template.example.test')
        held.db_execute('UPDATE scep_request SET template = ? WHERE transaction_id = ?',
                        ('Gone', msg.transaction_id))
        held.errlog.expect(r'SCEP220: transaction %s approved by dave cannot be issued'
                           % msg.transaction_id)
        r = decide(held, 'approve', 'txn', msg.transaction_id, accept=accept)
        if accept:
            assert r.status == 422, (r.status, r.body)
            j = r.json()
            assert j['result'] == 'not_issued' and 'Gone' in j['message'], j
        else:
            assert_redirect(r, 'not_issued', msg.transaction_id)
        row = request_row(held, msg.transaction_id)
        assert row['status'] == 'rejected' and row['decided_by'] == 'dave', row
        assert 'template Gone is no longer configured' in row['reason'], row
        assert row['serial'] is None, row


def test_unknown_request(held):
    r = decide(held, 'approve', 'txn', 'NO-SUCH-TXN', accept='application/json')
    assert r.status == 404 and r.json()['result'] == 'unknown_request', (r.status, r.body)


def test_deny(held, dev, keys):
    msg = A.hold(dev, keys.take(), 'denied.example.test')
    reason = 'not one of our routers <b>'
    r = decide(held, 'deny', 'txn', msg.transaction_id, user='carol', reason=reason)
    assert_redirect(r, 'denied', msg.transaction_id)
    row = request_row(held, msg.transaction_id)
    assert row['status'] == 'rejected' and row['decided_by'] == 'carol', row
    assert reason in row['reason'], row
    assert held.errlog.find(r'SCEP\d{3}: .*carol.*%s|SCEP\d{3}: .*%s.*carol'
                            % (msg.transaction_id, msg.transaction_id))
    held.errlog.expect(r'SCEP\d{3}: CertPoll for transaction %s refused' % msg.transaction_id)
    m, r, rep = A.poll(dev, msg)
    assert rep is not None, 'HTTP %d' % r.status
    checks.assert_failure(m, r, rep, tuple(C.FAIL_INFO))
    assert reason in rep.fail_info_text, rep.fail_info_text
    # the decision shows in the recent requests, escaped
    text = page(held).text
    assert 'not one of our routers &lt;b&gt;' in text
    assert 'carol' in re.search(r'<table id="recent">.*?</table>', text, re.S).group(0)


def test_deny_needs_a_reason(held, dev, keys):
    """A reason, and one line of text: it goes into the log and the device's
    failInfoText."""
    msg = A.hold(dev, keys.take(), 'no-reason.example.test')
    r = decide(held, 'deny', 'txn', msg.transaction_id, reason='')
    assert r.status == 400, r.status
    assert 'needs a reason' in r.text
    r = decide(held, 'deny', 'txn', msg.transaction_id, reason='two\nlines')
    assert r.status == 400, r.status
    assert 'one line' in r.text
    assert request_row(held, msg.transaction_id)['status'] == 'pending'


# --- the guards of state changes ----------------------------------------------------

@pytest.mark.parametrize('how', ['missing', 'wrong', 'other_user', 'other_key'])
def test_csrf_refused(held, dev, keys, how):
    """No token, a made-up one, carol's token posted by dave, or a token of
    the right shape but another key: 403, a log line, nothing changes."""
    msg = A.hold(dev, keys.take(), 'csrf-%s.example.test' % how.replace('_', '-'))
    fields = dict(action='approve', txn=msg.transaction_id)
    if how == 'wrong':
        fields['csrf'] = 'x'
    elif how == 'other_user':
        fields['csrf'] = token(held, 'carol')
    elif how == 'other_key':
        fields['csrf'] = os.urandom(32).hex().upper()
    held.errlog.expect(RE_CSRF_REFUSED % 'dave')
    for accept in (None, 'application/json'):
        r = A.manager_post(held, 'dave', fields, accept=accept)
        assert r.status == 403, r.status
        if accept:
            assert r.json()['error'] == 'csrf'
    assert held.errlog.find(RE_CSRF_REFUSED % 'dave')
    assert request_row(held, msg.transaction_id)['status'] == 'pending'
    assert msg.transaction_id in pending_ids(held)


def test_get_with_action_is_405(held, dev, keys):
    msg = A.hold(dev, keys.take(), 'get-action.example.test')
    held.errlog.expect(RE_GET_REFUSED % 'dave')
    r = A.manager_get(held, 'dave', query={'action': 'approve', 'txn': msg.transaction_id,
                                           'csrf': token(held)})
    assert r.status == 405, r.status
    assert 'POST' in r.header('allow'), r.headers
    assert held.errlog.find(RE_GET_REFUSED % 'dave')
    assert request_row(held, msg.transaction_id)['status'] == 'pending'


def head(held, query=None):
    return A.curl(A.manager_url(held, query=query), held.tls_ca.ca_file, user='dave',
                  password=L.USERS['dave'], work=held.env.work, extra=['--head'])


def test_head_changes_nothing(held, dev, keys):
    """HEAD with an action is refused as GET is (405); the page's HEAD
    expires no request held too long (its GET does)."""
    msg = A.hold(dev, keys.take(), 'head.example.test')
    held.errlog.expect(RE_GET_REFUSED % 'dave')
    r = head(held, {'action': 'approve', 'txn': msg.transaction_id, 'csrf': token(held)})
    assert r.status == 405, r.status
    assert request_row(held, msg.transaction_id)['status'] == 'pending'
    created = request_row(held, msg.transaction_id)['created']
    held.db_execute('UPDATE scep_request SET created = ? WHERE transaction_id = ?',
                    ('2020-01-01T00:00:00Z', msg.transaction_id))
    assert head(held).status == 200
    assert request_row(held, msg.transaction_id)['status'] == 'pending'
    held.db_execute('UPDATE scep_request SET created = ? WHERE transaction_id = ?',
                    (created, msg.transaction_id))


def test_other_methods(held):
    r = A.curl(A.manager_url(held), held.tls_ca.ca_file, user='dave',
               password=L.USERS['dave'], work=held.env.work, extra=['-X', 'PUT'])
    assert r.status == 405, r.status


def test_form_limits(held, dev, keys):
    """A body beyond the form limit is 413; a field given twice is 400."""
    msg = A.hold(dev, keys.take(), 'limits.example.test')
    r = decide(held, 'deny', 'txn', msg.transaction_id, reason='x' * 5000)
    assert r.status == 413, r.status
    tok = token(held)
    r = A.curl(A.manager_url(held), held.tls_ca.ca_file, user='dave', password=L.USERS['dave'],
               work=held.env.work,
               extra=['--data', 'csrf=%s&action=approve&txn=%s&txn=OTHER'
                      % (tok, msg.transaction_id)])
    assert r.status == 400, r.status
    assert request_row(held, msg.transaction_id)['status'] == 'pending'


def test_token_survives_graceful_restart(held, dev, keys):
    """The token key lives in the parent's process pool: a page loaded
    before `apachectl graceful` still posts after it."""
    msg = A.hold(dev, keys.take(), 'graceful.example.test')
    tok = token(held)
    held.errlog.mark()
    os.kill(held.proc.pid, signal.SIGUSR1)
    # event and prefork word it differently
    assert held.errlog.find(r'SIGUSR1 received|Graceful restart requested', wait=10)
    assert held.errlog.find(r'configured -- resuming normal operations', wait=20)
    r = A.manager_post(held, 'dave', dict(csrf=tok, action='approve', txn=msg.transaction_id))
    assert_redirect(r, 'approved', msg.transaction_id)


# --- certificates: search and revocation ---------------------------------------------

def approved_cert(held, dev, keys, subject):
    msg = A.hold(dev, keys.take(), subject)
    assert_redirect(decide(held, 'approve', 'txn', msg.transaction_id), 'approved',
                    msg.transaction_id)
    return A.assert_poll_issued(dev, msg)


def serial_of(held, cert):
    return checks.cert_rows_of_serial(held, cert.serial_number)[0]['serial']


def get_crl(dev, keys):
    m = C.pki_message(C.issuer_and_serial(dev.ca.ca.subject, 1), C.GETCRL, keys.any(3),
                      [dev.ca.ra_enc])
    r, rep = dev.send(m)
    assert rep is not None and rep.pki_status == C.SUCCESS, 'HTTP %d %s' % (r.status, rep)
    crl = x509.load_der_x509_crl(rep.crls[0])
    assert crl.is_signature_valid(dev.ca.ca.public_key())
    return crl


def test_search(held, dev, keys):
    a = approved_cert(held, dev, keys, 'Search-Alpha.example.test')
    b = approved_cert(held, dev, keys, 'search-beta.example.test')
    found = page(held, accept='application/json', query={'q': 'search-ALPHA'}).json()
    serials = [c['serial'] for c in found['certificates']]
    assert serials == [serial_of(held, a)], found['certificates']
    c = found['certificates'][0]
    assert c['subject'] == 'CN=Search-Alpha.example.test' and c['revoked_at'] is None, c
    assert c['not_after'] > c['not_before'], c
    # by serial, on the HTML page: the search box keeps what was searched
    s = serial_of(held, b)
    text = page(held, query={'q': s[-10:].lower()}).text
    assert 'id="cert-%s"' % s in text and 'id="cert-%s"' % serial_of(held, a) not in text
    assert 'value="%s"' % s[-10:].lower() in text


def test_revoke(held, dev, keys):
    cert = approved_cert(held, dev, keys, 'revoked.example.test')
    serial = serial_of(held, cert)
    assert get_crl(dev, keys).get_revoked_certificate_by_serial_number(
        cert.serial_number) is None
    r = decide(held, 'revoke', 'serial', serial, reason='1')
    assert_redirect(r, 'revoked', serial)
    row = checks.cert_rows_of_serial(held, cert.serial_number)[0]
    assert row['revoked_at'] and row['revocation_reason'] == 1, row
    assert held.errlog.find(RE_REVOKED_LOG % ('dave', serial, 'keyCompromise'),
                            levels=('notice',))
    entry = get_crl(dev, keys).get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None, 'the revoked certificate is not on the CRL'
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    # revoked once: the first reason stays, and the page says so
    r = decide(held, 'revoke', 'serial', serial, reason='superseded',
               accept='application/json')
    assert r.status == 409 and r.json()['result'] == 'already_revoked', (r.status, r.body)
    assert checks.cert_rows_of_serial(held, cert.serial_number)[0]['revocation_reason'] == 1
    c = [c for c in page(held, accept='application/json', query={'q': serial}).json()
         ['certificates']][0]
    assert c['revocation_reason'] == 'keyCompromise' and c['revoked_at'], c


def test_revoke_refusals(held, dev, keys):
    cert = approved_cert(held, dev, keys, 'not-revoked.example.test')
    serial = serial_of(held, cert)
    for reason in ('8', 'removeFromCRL', '6', '42', ''):
        r = decide(held, 'revoke', 'serial', serial, reason=reason)
        assert r.status == 400, (reason, r.status)
    r = decide(held, 'revoke', 'serial', 'ABCDEF', reason='1', accept='application/json')
    assert r.status == 404 and r.json()['result'] == 'unknown_cert', (r.status, r.body)
    assert checks.cert_rows_of_serial(held, cert.serial_number)[0]['revoked_at'] is None


def test_revoke_refused_when_an_external_ca_issues(held, dev, keys):
    """In front of an external CA, whose CRL GetCRL serves, a revocation in
    the records would be on no CRL: the page offers none and refuses one
    (409, logged); the built-in CA's page revokes (test_revoke)."""
    cert = approved_cert(held, dev, keys, 'revoke-at-ca.example.test')
    serial = serial_of(held, cert)
    A.hold(dev, keys.take(), 'a-form-on-the-page.example.test')  # for the form token
    with held.external_ca('helper', ('SCEPCAHelper', '/usr/lib/certmonger/local-submit -d /x')):
        row = page(held).text.split('id="cert-%s"' % serial)[1].split('</tr>')[0]
        assert 'at the CA' in row and 'value="revoke"' not in row, row
        r = decide(held, 'revoke', 'serial', serial, reason='1', accept='application/json')
        assert r.status == 409 and r.json()['result'] == 'revoke_at_ca', (r.status, r.body)
        assert held.errlog.expect_and_find(r'SCEP607: CA manager dave asked to revoke certificate '
                                           r'%s: the external CA revokes' % serial)
    assert checks.cert_rows_of_serial(held, cert.serial_number)[0]['revoked_at'] is None
    row = page(held).text.split('id="cert-%s"' % serial)[1].split('</tr>')[0]
    assert 'value="revoke"' in row, row


# --- last: a configuration of its own ------------------------------------------------

def test_manager_group_without_ldap_url_refused(held):
    """SCEPCAManagerGroup without SCEPLDAPURL: the group could not be checked,
    and Apache's Require alone would let every signed-in user manage; Apache
    refuses to start instead (the admin groups too: see test_startup.py)."""
    directives = [kv for kv in held.directives if kv[0] != 'SCEPLDAPURL']
    # Without LeakSanitizer: when apache2 -t fails with mod_ldap loaded, the
    # libraries it pulled in are unloaded before exit and LeakSanitizer
    # (GCC 12) crashes on their stale dynamic TLS ("Tracer caught signal
    # 11"). The same refusal is leak-checked in test_startup.py.
    rc, out = held.config_test(make_conf(held.env, directives, held.raw_extra), leak_check=False)
    assert rc != 0, 'SCEPCAManagerGroup without SCEPLDAPURL passed the configuration test'
    assert re.search(r'SCEP045: main server: SCEPCAManagerGroup is set but SCEPLDAPURL is not',
                     out), out


@contextlib.contextmanager
def without_ldap(admin_httpd):
    """The stand-alone CA with neither SCEPLDAPURL nor any group (also the
    <SCEPTemplate> section's EnrollGroup left out); the admin server's own
    configuration again afterwards."""
    line = '    EnrollGroup "%s"\n' % L.TEMPLATE_GROUPS[A.SECTION_GROUP_TEMPLATE]
    base = admin_httpd.base_raw_extra
    assert line in base
    admin_httpd.base_raw_extra = base.replace(line, '')
    try:
        with A.held_config(admin_httpd, ('SCEPLDAPURL', None), ('SCEPCAManagerGroup', None),
                           ('SCEPCAAdminGroup', None), ('SCEPTemplateEnrollGroup', None)):
            yield admin_httpd
    finally:
        admin_httpd.base_raw_extra = base
        admin_httpd.restart_with()


def test_without_ldap_url_require_decides(held, keys):
    """Without SCEPLDAPURL and without SCEPCAManagerGroup the module checks no
    group: every user Apache's Require lets through manages (bob here), and
    no LDAP compare is made."""
    with without_ldap(held):
        dev = A.device(held)
        msg = A.hold(dev, keys.take(), 'no-ldap.example.test')
        r = decide(held, 'approve', 'txn', msg.transaction_id, user='bob')
        assert_redirect(r, 'approved', msg.transaction_id)
        assert request_row(held, msg.transaction_id)['decided_by'] == 'bob'
        assert not held.errlog.find(r'SCEP62\d', wait=0)
