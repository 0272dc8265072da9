"""The audit log (issue 16): with SCEPAuditLog, one JSON line per decision
(issued, refused, held, approved, denied, revoked, password_issued) in a
file the parent opens as root, or through a piped logger. Real enrollments
(the suite's client, certmonger's scep-submit, a renewal), held requests
approved and denied on the CA manager page and by scepctl, revocations on
the page and by scepctl --audit-log, passwords from the admin page; every
line parsed and checked against the records (the database's rows and
`scepctl list`). Several worker processes under load write whole lines
(a file, and a pipe with lines longer than PIPE_BUF); hostile device text
(quotes, newlines, escapes, bytes that are not UTF-8) comes out escaped,
one line of ASCII; no password or challenge is ever written."""
import base64
import concurrent.futures
import datetime
import json
import os
import pwd
import re
import subprocess
import time
import urllib.parse

import pytest
from cryptography.x509.oid import NameOID

from sceptest import admin as A
from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import issued_certs, openssl_req, run_scep_submit
from sceptest.httpd import APACHE, CHALLENGE, free_port, make_conf
from test_escaping import hostile_csr
from test_pending import poll
from test_renewal import renewal

KEYS = ['time', 'event', 'server', 'transaction_id', 'message_type', 'subject',
        'subject_alt_names', 'serial', 'template', 'client_address', 'user', 'fail_info',
        'fail_info_text', 'reason']
PASSWORD_KEYS = KEYS + ['device', 'expires']
EVENTS = {'issued', 'refused', 'held', 'approved', 'denied', 'revoked', 'password_issued'}
MANAGER_PATH = A.ADMIN_PATH.rstrip('/') + '/manager/'
MANAGER = """<Location /certsrv/mscep_admin/manager>
    SetHandler scep-manager
</Location>
"""
REFUSED_29 = r'SCEP\d{3}: PKCSReq for transaction .* refused: .*\(NDES event 29\)'
TEMPLATE = 'IPSECIntermediateOffline'


@pytest.fixture(scope='module')
def htpasswd(env):
    return A.make_htpasswd(env)


class AuditLog:
    """The audit log's lines written since mark()."""

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def mark(self):
        self.pos = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def raw(self):
        with open(self.path, 'rb') as f:
            f.seek(self.pos)
            return f.read()

    def lines(self, count=None, wait=10.0):
        """Every line since mark(), each checked: ASCII, one JSON object with
        the keys in order; count: waits for that many (a piped logger's
        lines arrive a little later)."""
        end = time.time() + wait
        while True:
            data = self.raw() if os.path.exists(self.path) else b''
            n = data.count(b'\n')
            if count is None or n >= count or time.time() > end:
                break
            time.sleep(0.05)
        assert data == b'' or data.endswith(b'\n'), 'a line is cut: %r' % data[-200:]
        docs = [parse_line(ln) for ln in data.split(b'\n')[:-1]]
        if count is not None:
            assert len(docs) == count, '%d lines, not %d:\n%s' % (len(docs), count, data.decode())
        return docs


def parse_line(raw):
    text = raw.decode('ascii')  # strict: jansson writes ASCII (JSON_ENSURE_ASCII)
    assert not [c for c in text if ord(c) < 0x20], 'a raw control character: %r' % text
    doc = json.loads(text)
    want = PASSWORD_KEYS if doc.get('event') == 'password_issued' else KEYS
    assert list(doc) == want, list(doc)
    assert doc['event'] in EVENTS, doc
    stamp = datetime.datetime.strptime(doc['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
    assert abs((datetime.datetime.utcnow() - stamp).total_seconds()) < 300, doc['time']
    return doc


def audit_file(env):
    return os.path.join(env.logs, 'audit.log')


@pytest.fixture
def audited(httpd, htpasswd):
    """The default server with SCEPAuditLog to a file, the admin page and the
    manager page (Basic, plain HTTP)."""
    log = AuditLog(audit_file(httpd.env))
    with httpd.config(('SCEPAuditLog', log.path), ('SCEPAdminAllowHTTP', 'On'),
                      raw_extra=A.basic_admin_config(htpasswd, MANAGER)):
        log.mark()
        httpd.audit = log
        yield httpd


@pytest.fixture
def standalone(httpd, htpasswd):
    """The same, a stand-alone CA: every request is held for a manager."""
    log = AuditLog(audit_file(httpd.env))
    with httpd.config(('SCEPAuditLog', log.path), ('SCEPAdminAllowHTTP', 'On'),
                      ('SCEPCAType', 'Standalone'),
                      raw_extra=A.basic_admin_config(htpasswd, MANAGER)):
        log.mark()
        httpd.audit = log
        yield httpd


# --- the records --------------------------------------------------------------

def san_text(doc):
    """subject_alt_names as the records join them."""
    return ', '.join(doc['subject_alt_names']) or None


def assert_matches_request_row(httpd, doc, status):
    """The line says what the records hold of its transaction."""
    (row,) = checks.request_rows(httpd, doc['transaction_id'])
    assert row['status'] == status, row
    assert doc['subject'] == row['subject'], (doc, row)
    assert san_text(doc) == row['san'], (doc, row)
    assert doc['template'] == row['template'], (doc, row)
    assert doc['serial'] == row['serial'], (doc, row)
    return row


def assert_matches_cert(httpd, doc, cert):
    assert int(doc['serial'], 16) == cert.serial_number
    assert doc['serial'] == doc['serial'].upper()
    (crow,) = checks.cert_rows_of_serial(httpd, cert.serial_number)
    assert crow['serial'] == doc['serial'] and crow['subject'] == doc['subject'], (doc, crow)
    assert crow['transaction_id'] == doc['transaction_id'], (doc, crow)


def scepctl_list(httpd, *args):
    """`scepctl list --status all` by transaction ID (the columns of its
    header)."""
    code, out, err = httpd.scepctl_records('list', '--status', 'all', *args)
    assert code == 0, err
    lines = out.splitlines()
    columns = lines[0].lstrip('# ').split('\t')
    rows = [dict(zip(columns, ln.split('\t'))) for ln in lines[1:]]
    return {r[columns[0]]: r for r in rows}


def assert_device_line(doc, msg, event, message_type='PKCSReq'):
    assert doc['event'] == event, doc
    assert doc['server'] == 'localhost'
    assert doc['transaction_id'] == msg.transaction_id
    assert doc['message_type'] == message_type
    assert doc['client_address'] == '127.0.0.1'
    assert doc['user'] is None and doc['reason'] is None


def assert_no_secret(httpd, *secrets):
    with open(httpd.audit.path, 'rb') as f:
        data = f.read()
    for s in secrets:
        assert s.encode() not in data, 'a secret in the audit log'


# --- PKIOperation ---------------------------------------------------------------

def test_issued_and_refused_lines_match_the_records(audited, scep, files, keys):
    key = keys.take()
    csr = pki.make_csr(key, 'audit-issued.example.test', challenge=CHALLENGE,
                       dns=['audit-issued.example.test', 'alt.example.test'], ips=['192.0.2.9'])
    msg, r, rep = scep.enroll(csr, key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    (doc,) = audited.audit.lines(1)
    assert_device_line(doc, msg, 'issued')
    assert doc['subject_alt_names'] == ['DNS:audit-issued.example.test', 'DNS:alt.example.test',
                                        'IP Address:192.0.2.9']
    assert doc['template'] == TEMPLATE
    assert doc['fail_info'] is None and doc['fail_info_text'] is None
    assert_matches_request_row(audited, doc, 'issued')
    assert_matches_cert(audited, doc, cert)
    listed = scepctl_list(audited)[msg.transaction_id]
    assert listed['subject'] == doc['subject'] and listed['template'] == doc['template']
    assert listed['address'] == doc['client_address']

    audited.audit.mark()
    audited.errlog.expect(REFUSED_29)
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'audit-refused.example.test',
                                           challenge='not-the-password'), key)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    (doc,) = audited.audit.lines(1)
    assert_device_line(doc, msg, 'refused')
    assert doc['subject'] == 'CN=audit-refused.example.test'
    assert doc['subject_alt_names'] == []
    assert doc['fail_info'] == 'badRequest'
    assert doc['fail_info_text'] == rep.fail_info_text
    assert doc['serial'] is None
    assert checks.request_rows(audited, msg.transaction_id) == []  # nothing recorded
    assert_no_secret(audited, CHALLENGE, 'not-the-password')


def test_replayed_request_and_getcert(audited, scep, files, keys):
    """A retry of an issued transaction is answered again (a line each: the
    device got the certificate again); GetCert decides nothing."""
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'audit-replay.example.test',
                                           challenge=CHALLENGE), key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    r, rep = scep.send(msg)
    checks.assert_issued(msg, r, rep, files.ca)
    pm = C.pki_message(C.issuer_and_serial(files.ca.subject, cert.serial_number), C.GETCERT,
                       keys.any(3), [files.ra_enc])
    r, rep = scep.send(pm)
    assert rep.pki_status == C.SUCCESS
    docs = audited.audit.lines(2)
    assert [d['event'] for d in docs] == ['issued', 'issued']
    for doc in docs:
        assert_device_line(doc, msg, 'issued')
        assert_matches_cert(audited, doc, cert)


def test_renewal_line(audited, scep, files, keys):
    old_key, new_key = keys.take(), keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(old_key, 'audit-renew.example.test',
                                           challenge=CHALLENGE), old_key)
    old = checks.assert_issued(msg, r, rep, files.ca)
    audited.audit.mark()
    msg, r, rep = renewal(scep, files, old_key, old, new_key, 'audit-renew.example.test')
    new = checks.assert_issued(msg, r, rep, files.ca)
    (doc,) = audited.audit.lines(1)
    assert_device_line(doc, msg, 'issued', 'RenewalReq')
    assert_matches_request_row(audited, doc, 'issued')
    assert_matches_cert(audited, doc, new)
    assert doc['serial'] != '%X' % old.serial_number


def test_scep_submit_end_to_end(audited, files, keys):
    """certmonger's scep-submit: the line names the certificate it printed."""
    key = keys.take()
    csr = openssl_req(audited.env.work, key, 'submit-audit', CHALLENGE)
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    p = run_scep_submit(audited, msg.der, 'submit-audit')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    (cert,) = issued_certs(p.stdout, msg, files.ra_sign)
    (doc,) = audited.audit.lines(1)
    assert_device_line(doc, msg, 'issued')
    assert_matches_request_row(audited, doc, 'issued')
    assert_matches_cert(audited, doc, cert)


# --- held requests, the manager page, scepctl ----------------------------------------

def basic():
    auth = base64.b64encode(('%s:%s' % (A.ADMIN_USER, A.ADMIN_SECRET)).encode()).decode()
    return {'Authorization': 'Basic ' + auth}


def manager_csrf(server):
    r = C.http_request('GET', server.url(MANAGER_PATH),
                       headers=dict(basic(), Accept='application/json'))
    assert r.status == 200, (r.status, r.body[:300])
    return json.loads(r.body)['csrf']


def manager_post(server, **fields):
    fields['csrf'] = manager_csrf(server)
    r = C.http_request('POST', server.url(MANAGER_PATH),
                       body=urllib.parse.urlencode(fields).encode(),
                       headers=dict(basic(), Accept='application/json',
                                    **{'Content-Type': 'application/x-www-form-urlencoded'}))
    return r.status, json.loads(r.body)


def hold(server, scep, keys, cn, **kw):
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE, **kw), key)
    checks.assert_pending(msg, r, rep)
    return msg


def test_held_approved_denied_on_the_manager_page(standalone, scep, files, keys):
    a = hold(standalone, scep, keys, 'audit-approve.example.test', dns=['approve.example.test'])
    d = hold(standalone, scep, keys, 'audit-deny.example.test', dns=['deny.example.test'])
    held = standalone.audit.lines(2)
    for doc, msg in zip(held, (a, d)):
        assert_device_line(doc, msg, 'held')
        assert doc['template'] == TEMPLATE and doc['serial'] is None
        assert_matches_request_row(standalone, doc, 'pending')

    standalone.audit.mark()
    status, answer = manager_post(standalone, action='approve', txn=a.transaction_id)
    assert status == 200 and answer['result'] == 'approved', answer
    status, answer = manager_post(standalone, action='deny', txn=d.transaction_id,
                                  reason='not one of "ours"\\')
    assert status == 200 and answer['result'] == 'denied', answer
    approved, denied = standalone.audit.lines(2)
    assert approved['event'] == 'approved' and approved['user'] == A.ADMIN_USER
    assert approved['transaction_id'] == a.transaction_id
    assert approved['message_type'] == 'PKCSReq'
    assert approved['client_address'] == '127.0.0.1'
    assert approved['subject_alt_names'] == ['DNS:approve.example.test']
    row = assert_matches_request_row(standalone, approved, 'issued')
    assert row['decided_by'] == A.ADMIN_USER and approved['serial']
    assert denied['event'] == 'denied' and denied['user'] == A.ADMIN_USER
    assert denied['reason'] == 'not one of "ours"\\'
    assert denied['subject_alt_names'] == ['DNS:deny.example.test']
    assert denied['serial'] is None
    row = assert_matches_request_row(standalone, denied, 'rejected')
    assert row['reason'] == denied['reason'] and row['decided_by'] == A.ADMIN_USER

    # the device's next poll gets what the manager decided
    standalone.audit.mark()
    pm, r, rep = poll(scep, files, a)
    cert = checks.assert_issued(pm, r, rep, files.ca)
    (doc,) = standalone.audit.lines(1)
    assert_device_line(doc, a, 'issued', 'CertPoll')
    assert doc['serial'] == approved['serial']
    assert_matches_cert(standalone, doc, cert)


def test_revoked_on_the_manager_page_and_by_scepctl(audited, scep, files, keys):
    certs = []
    for cn in ('audit-revoke-page.example.test', 'audit-revoke-ctl.example.test'):
        key = keys.take()
        msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE, dns=[cn]), key)
        certs.append((msg, checks.assert_issued(msg, r, rep, files.ca)))
    audited.audit.mark()
    (m1, c1), (m2, c2) = certs
    serial1, serial2 = (checks.cert_rows_of_serial(audited, c.serial_number)[0]['serial']
                        for c in (c1, c2))
    status, answer = manager_post(audited, action='revoke', serial=serial1,
                                  reason='keyCompromise')
    assert status == 200 and answer['result'] == 'revoked', answer
    code, out, err = audited.scepctl_records('revoke', '--audit-log', audited.audit.path,
                                             '--reason', 'superseded', serial2)
    assert code == 0, out + err
    page, ctl = audited.audit.lines(2)
    for doc, msg, cert in ((page, m1, c1), (ctl, m2, c2)):
        assert doc['event'] == 'revoked'
        assert doc['transaction_id'] == msg.transaction_id
        assert doc['template'] == TEMPLATE
        assert doc['subject_alt_names'] == ['DNS:' + cert.subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)[0].value]
        assert_matches_cert(audited, doc, cert)
        (crow,) = checks.cert_rows_of_serial(audited, cert.serial_number)
        assert crow['revoked_at']
    assert page['reason'] == 'keyCompromise' and page['user'] == A.ADMIN_USER
    assert page['server'] == 'localhost' and page['client_address'] == '127.0.0.1'
    assert ctl['reason'] == 'superseded' and ctl['user'] == login_name()
    assert ctl['client_address'] is None and ctl['server'] == os.uname().nodename


def login_name():
    """Who scepctl says ran it: sudo's user when root, else the real user's name."""
    if os.getuid() == 0 and os.environ.get('SUDO_USER'):
        return os.environ['SUDO_USER']
    return pwd.getpwuid(os.getuid()).pw_name


def test_scepctl_approve_and_deny(standalone, scep, files, keys):
    a = hold(standalone, scep, keys, 'audit-ctl-approve.example.test')
    d = hold(standalone, scep, keys, 'audit-ctl-deny.example.test', dns=['ctl-deny.example.test'])
    standalone.audit.mark()
    code, out, err = standalone.scepctl_records('approve', '--audit-log', standalone.audit.path,
                                                '--by', 'alice', a.transaction_id)
    assert code == 0, out + err
    code, out, err = standalone.scepctl_records('deny', '--audit-log', standalone.audit.path,
                                                '--reason', 'unknown device', d.transaction_id)
    assert code == 0, out + err
    approved, denied = standalone.audit.lines(2)
    assert approved['event'] == 'approved' and approved['user'] == login_name()
    row = assert_matches_request_row(standalone, approved, 'approved')
    assert row['decided_by'] == 'alice'
    assert denied['event'] == 'denied' and denied['reason'] == 'unknown device'
    assert denied['subject_alt_names'] == ['DNS:ctl-deny.example.test']
    assert_matches_request_row(standalone, denied, 'rejected')
    listed = scepctl_list(standalone)
    assert listed[a.transaction_id]['status'] == 'approved'
    assert listed[d.transaction_id]['reason'] == 'unknown device'
    # a decision that changes nothing writes nothing
    code, out, err = standalone.scepctl_records('deny', '--audit-log', standalone.audit.path,
                                                '--reason', 'again', d.transaction_id)
    assert code != 0
    assert standalone.audit.lines() == [approved, denied]


# --- passwords ----------------------------------------------------------------

def test_password_issued_says_who_not_which(httpd, htpasswd, scep, files, keys):
    log = AuditLog(audit_file(httpd.env))
    with httpd.config(('SCEPAuditLog', log.path), *A.otp_directives(),
                      raw_extra=A.basic_admin_config(htpasswd, MANAGER)):
        log.mark()
        httpd.audit = log
        password, answer = A.get_password(httpd)
        r = C.http_request('POST', httpd.url(A.ADMIN_PATH), body=b'{"device": "serial-42\\n"}',
                           headers=dict(basic(), Accept='application/json',
                                        **{'Content-Type': 'application/json'}))
        assert r.status == 200, r.body
        other = json.loads(r.body)['password']
        first, second = log.lines(2)
        for doc in (first, second):
            assert doc['event'] == 'password_issued' and doc['user'] == A.ADMIN_USER
            assert doc['client_address'] == '127.0.0.1' and doc['server'] == 'localhost'
            assert doc['transaction_id'] is None and doc['subject'] is None
        assert first['device'] is None and second['device'] == 'serial-42\n'
        assert first['expires'] == answer['expires']
        # the password enrolls; its line never holds it
        key = keys.take()
        msg, r, rep = scep.enroll(pki.make_csr(key, 'audit-otp.example.test',
                                               challenge=password), key)
        checks.assert_issued(msg, r, rep, files.ca)
        assert log.lines(3)[2]['event'] == 'issued'
        assert_no_secret(httpd, password, other)


# --- several processes, a piped logger, hostile text --------------------------------

def long_subject_csr(key, n, ous=70):
    """A request whose subject (70 OUs of 60 characters) makes a line longer
    than PIPE_BUF (4096 bytes), with a wrong challenge: refused at once, so
    that the load is the lines' (no records written)."""
    subject = [(NameOID.COMMON_NAME.dotted_string, pki.UTF8_STRING, b'load-%d' % n)]
    subject += [(NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string, pki.UTF8_STRING,
                 (b'%02d-' % i) + b'x' * 57) for i in range(ous)]
    return pki.make_raw_csr(key, subject, challenge='not-the-password')


def load(server, scep, keys, count=48):
    """count requests from 16 threads at once, served by every child."""
    server.errlog.expect(r'SCEP\d{3}: ')
    key_list = [keys.any(i) for i in range(count)]

    def one(n):
        msg, r, rep = scep.enroll(long_subject_csr(key_list[n], n), key_list[n])
        assert r.status == 200 and rep is not None, r.status
        return msg.transaction_id

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        return set(ex.map(one, range(count)))


def assert_whole_lines(docs, txids):
    assert {d['transaction_id'] for d in docs} == txids
    for d in docs:
        assert len(json.dumps(d)) > 4096
        assert d['event'] == 'refused' and d['fail_info'] == 'badRequest', d
        assert d['subject'].count('OU=') == 70, d['subject'][:200]


def test_workers_under_load_write_whole_lines_to_a_file(audited, scep, keys):
    txids = load(audited, scep, keys)
    docs = audited.audit.lines(len(txids))
    assert_whole_lines(docs, txids)


def test_piped_logger_under_load(httpd, htpasswd, scep, keys):
    """`SCEPAuditLog "|$cat >> FILE"` (a shell command, as CustomLog's): the
    logger gets each line whole, the long ones too (written under the
    scep-audit mutex), from every child."""
    path = os.path.join(httpd.env.logs, 'audit-piped.log')
    log = AuditLog(path)
    with httpd.config(('SCEPAuditLog', '"|$cat >> %s"' % path)):
        log.mark()
        httpd.audit = log
        txids = load(httpd, scep, keys)
        docs = log.lines(len(txids))
        assert_whole_lines(docs, txids)
        assert all(d['server'] == 'localhost' for d in docs)


def test_hostile_device_text_is_escaped(audited, scep, keys):
    """Quotes, a backslash, a newline and a terminal escape in the subject,
    bytes that are not UTF-8 in the subjectAltName, a transactionID with
    JSON's own characters: one line of ASCII each, the text as the records
    hold it."""
    key = keys.take()
    cn = 'evil "quoted" back\\slash\nFORGED {"event":"issued"}\x1b[31m\u009b'
    txid = 'TXID<"\'&\\ \\x1b'  # printable: what a transactionID may hold
    msg, r, rep = scep.enroll(hostile_csr(key, cn), key, transaction_id=txid)
    assert r.status == 200 and rep is not None
    if rep.pki_status == C.FAILURE:
        audited.errlog.expect(r'SCEP\d{3}: ')  # the refusal's line (test_escaping.py)
    (doc,) = audited.audit.lines(1)
    raw = audited.audit.raw()
    assert raw.count(b'\n') == 1 and raw.isascii(), raw
    assert b'\x1b' not in raw and b'\xc2\x9b' not in raw
    assert doc['transaction_id'] == txid
    assert doc['event'] in ('issued', 'refused'), doc
    # OpenSSL's RFC 2253 text of the name, its C1 control as sent
    assert 'FORGED {\\"event\\":\\"issued\\"}' in doc['subject'], doc['subject']
    assert '\\0A' in doc['subject'] and '\u009b' in doc['subject'], doc['subject']
    assert any('\ufffd' in n for n in doc['subject_alt_names']), doc['subject_alt_names']
    if doc['event'] == 'issued':
        assert_matches_request_row(audited, doc, 'issued')


# --- configuration -------------------------------------------------------------

def test_audit_log_that_cannot_be_opened_refuses_to_start(httpd):
    """A file the parent cannot open stops the start (SCEP720), as an
    ErrorLog would: decisions are never made unaudited."""
    bad = os.path.join(httpd.env.logs, 'no-such-dir', 'audit.log')
    path = httpd.env.conf + '.bad'
    error_log = os.path.join(httpd.env.logs, 'error_log.bad')
    with open(error_log, 'w'):
        pass
    with open(path, 'w') as f:
        # another port, pid file and scoreboard (the running server's would
        # stop the start first) and error log (the running server's must stay
        # clean)
        f.write(make_conf(httpd.env, httpd.base_directives + [('SCEPAuditLog', bad)])
                .replace(':%d\n' % httpd.env.port, ':%d\n' % free_port(19900))
                .replace('ErrorLog "%s"' % httpd.env.error_log, 'ErrorLog "%s"' % error_log)
                .replace('/httpd.pid"', '/httpd-bad.pid"')
                .replace('/scoreboard"', '/scoreboard-bad"'))
    try:
        p = subprocess.run([APACHE, '-d', httpd.env.gen, '-f', path, '-DFOREGROUND'],
                           capture_output=True, text=True, timeout=20, env=httpd.command_env())
    except subprocess.TimeoutExpired:
        pytest.fail('apache2 started with an audit log it cannot open')
    assert p.returncode != 0
    with open(error_log, errors='replace') as f:
        log = f.read()
    assert re.search(r'\[scep:emerg\].*SCEP720: main server: SCEPAuditLog cannot open %s'
                     % re.escape(bad), log), log + p.stdout + p.stderr


def test_piped_logger_needs_a_command(httpd):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives +
                                          [('SCEPAuditLog', '"| "')]))
    assert rc != 0 and 'SCEPAuditLog: a piped logger needs its command' in out, out


def test_graceful_restart_keeps_writing(audited, scep, files, keys):
    """The new generation opens the file again and appends after the old
    one's lines."""
    for n in range(2):
        key = keys.take()
        msg, r, rep = scep.enroll(pki.make_csr(key, 'audit-graceful-%d.example.test' % n,
                                               challenge=CHALLENGE), key)
        checks.assert_issued(msg, r, rep, files.ca)
        if n == 0:
            audited.graceful()
    first, second = audited.audit.lines(2)
    assert first['subject'] == 'CN=audit-graceful-0.example.test'
    assert second['subject'] == 'CN=audit-graceful-1.example.test'


def test_virtual_host_has_its_own_or_the_main_servers(httpd, scep, files, keys):
    """A virtual host with its own SCEPAuditLog writes there, named by its
    ServerName; the main server keeps its own file."""
    main_log = AuditLog(audit_file(httpd.env))
    vhost_log = AuditLog(os.path.join(httpd.env.logs, 'audit-vhost.log'))
    port = free_port(19950)
    vhost = f"""Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName vhost.example.test
    SCEPAuditLog "{vhost_log.path}"
</VirtualHost>
"""
    with httpd.config(('SCEPAuditLog', main_log.path), raw_extra=vhost):
        main_log.mark()
        vhost_log.mark()
        other = C.Client('http://127.0.0.1:%d/certsrv/mscep/mscep.dll' % port)
        other._ca = scep._ca
        for client, cn in ((scep, 'audit-main.example.test'), (other, 'audit-vhost.example.test')):
            key = keys.take()
            msg, r, rep = client.enroll(pki.make_csr(key, cn, challenge=CHALLENGE), key)
            checks.assert_issued(msg, r, rep, files.ca)
        (m,) = main_log.lines(1)
        (v,) = vhost_log.lines(1)
        assert m['server'] == 'localhost' and m['subject'] == 'CN=audit-main.example.test'
        assert v['server'] == 'vhost.example.test' and v['subject'] == 'CN=audit-vhost.example.test'
        assert_matches_request_row(httpd, v, 'issued')
