"""Device-controlled strings in the operator's views (issue 11): subject,
subjectAltName of every type (otherName/UPN too), transactionID, and the
other columns of a request (another server or an older version may have
written anything there) reach `scepctl list` escaped (a tab, a newline or a
terminal escape neither forges a row nor reaches the terminal; the text can
be restored: backslash, \\t \\n \\r and \\xNN, see README), and the error log
escaped. The manager page's JSON and HTML are in test_manager.py, rows
written into the records; here, the JSON of what a device really sent and
of a decision on a transaction ID that a form names with any bytes.

Two sources: real enrollments (a held request, whose names the records keep;
where a later policy refuses such names instead, the refusal is checked), and
rows written into the records directly (`db_execute`), which cover what
devices cannot send any more. Invalid UTF-8 goes into the records only on
SQLite: PostgreSQL's UTF8 databases refuse it (the module records a
device's names as UTF-8, stray bytes as U+FFFD)."""
import json
import re

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from sceptest import admin as A
from sceptest import checks, db, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

OID_SAN = ObjectIdentifier('2.5.29.17')
OID_UPN = '1.3.6.1.4.1.311.20.2.3'
HOSTILE = 'a\tb\nFORGED\tROW\x1b[31mred\x1b]0;title\x07\x7f\u009b31m\\x41 Gr\u00fc\u00dfe'
COLUMNS = ('transaction_id', 'status', 'created', 'subject', 'san', 'key_desc', 'template',
           'client_addr', 'decided_by', 'reason', 'waiting_for')


@pytest.fixture(scope='module')
def standalone(httpd):
    with httpd.config(SCEPCAType='Standalone'):
        yield httpd


def raw_san(dns, upn, email):
    """A subjectAltName with raw bytes: dNSName and rfc822Name (IA5String,
    whatever bytes), an otherName UPN (UTF8String, whatever bytes)."""
    other = pki.der_tlv(0xa0, pki.oid_der(OID_UPN) + pki.der_tlv(0xa0, pki.der_tlv(0x0c, upn)))
    return pki.der_tlv(0x30, pki.der_tlv(0x82, dns) + pki.der_tlv(0x81, email) + other)


def unescape(field):
    """scepctl list's escaping undone (README: scepctl list)."""
    out = bytearray()
    i = 0
    raw = field.encode()
    while i < len(raw):
        if raw[i:i + 1] == b'\\':
            nxt = raw[i + 1:i + 2]
            if nxt == b'x':
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
            out += {b't': b'\t', b'n': b'\n', b'r': b'\r', b'\\': b'\\'}[nxt]
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return bytes(out)


def assert_safe_lines(out):
    """Nothing a terminal acts on, nothing that is not UTF-8, every row
    with its columns."""
    data = out.encode() if isinstance(out, str) else out
    text = data.decode('utf-8')  # strict
    bad = [c for c in text if (ord(c) < 0x20 and c not in '\t\n') or 0x7f <= ord(c) <= 0x9f]
    assert not bad, 'control characters reach the terminal: %r' % bad
    return text


def list_rows(httpd, *args):
    p = httpd.scepctl_records('list', '--status', 'all', *args)
    code, out, err = p
    assert code == 0, err
    text = assert_safe_lines(out)
    lines = text.splitlines()
    assert lines[0].startswith('# transaction-id\t')
    rows = [ln.split('\t') for ln in lines[1:]]
    for r in rows:
        assert len(r) == len(COLUMNS), 'a forged or broken row: %r' % r
    return {unescape(r[0]).decode(): dict(zip(COLUMNS, r)) for r in rows}


def records_ready(httpd, scep, keys):
    """The server made the records (scepctl as root would make a file its
    children cannot write): a plain held request."""
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'plain.example.test', challenge=CHALLENGE), key)
    checks.assert_pending(msg, r, rep)


def test_scepctl_list_escapes_what_the_records_hold(standalone, scep, keys):
    records_ready(standalone, scep, keys)
    values = {c: '%s %s' % (c, HOSTILE) for c in ('subject', 'san', 'key_desc', 'template',
                                                  'client_addr', 'decided_by', 'reason')}
    txid = 'TX\tFORGED\n\x1b[2J' + HOSTILE
    db.insert_pending(standalone, txid, values)
    rows = list_rows(standalone)
    row = rows[txid]
    for column, value in values.items():
        assert unescape(row[column]) == value.encode(), (column, row[column])
    assert '\\x1B[31mred' in row['subject'] and '\\xC2\\x9B31m' in row['subject'], row
    assert '\\\\x41' in row['subject'], row  # a backslash of the text, doubled
    assert 'Gr\u00fc\u00dfe' in row['subject']  # UTF-8 as it is
    assert row['status'] == 'pending' and row['waiting_for'] == 'manager', row


def test_scepctl_list_escapes_bytes_that_are_not_utf8(standalone, scep, keys):
    if standalone.env.database.kind != 'sqlite':
        pytest.skip('PostgreSQL keeps no invalid UTF-8 in text')
    records_ready(standalone, scep, keys)
    txid = 'INVALID-UTF8-ROW'
    db.insert_pending(standalone, txid, {'subject': b'CN=bad\xc3\x28 \xff\xfe\xed\xa0\x80',
                                      'san': b'DNS:\xc0\xaf'})
    row = list_rows(standalone)[txid]
    assert row['subject'] == 'CN=bad\\xC3( \\xFF\\xFE\\xED\\xA0\\x80', row
    assert row['san'] == 'DNS:\\xC0\\xAF', row
    code, out, err = standalone.scepctl_records('list', '--certs')
    assert code == 0, err
    assert_safe_lines(out)


def test_scepctl_list_certs_escapes_subjects(standalone, scep, keys):
    records_ready(standalone, scep, keys)
    standalone.db_execute(
        'INSERT INTO scep_cert (serial, transaction_id, subject, issuer, not_before, not_after,'
        ' cert_pem, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        ('0ABCDEF0', 'TX\nCERT', 'CN=' + HOSTILE, 'CN=CA', '2030-01-01T00:00:00Z',
         '2031-01-01T00:00:00Z', 'x', '2030-01-01T00:00:00Z'))
    code, out, err = standalone.scepctl_records('list', '--certs', '--search', '0ABCDEF0')
    assert code == 0, err
    lines = assert_safe_lines(out).splitlines()
    assert len(lines) == 2, lines
    fields = lines[1].split('\t')
    assert len(fields) == 6, fields
    assert unescape(fields[1]) == ('CN=' + HOSTILE).encode()
    assert unescape(fields[5]) == b'TX\nCERT'


def hostile_csr(key, cn, dns=b'bad\xc3\x28.example.test', upn=b'u\x1b[31m@\xc3\x28example',
                email=b'e\tmail@example.test'):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    san = x509.UnrecognizedExtension(OID_SAN, raw_san(dns, upn, email))
    return pki.make_csr(key, subject, challenge=CHALLENGE, extensions=[(san, False)])


def test_enrolled_hostile_names_are_escaped(standalone, scep, keys):
    """A device's subject with a tab, a newline and terminal escapes, and
    a subjectAltName with bytes that are not UTF-8 and an escape in a UPN.
    Held: the records keep them, scepctl shows them escaped, the log line
    too. Refused (a policy that does not take such names): nothing of it
    is recorded, and the log is escaped all the same."""
    key = keys.take()
    cn = 'evil\tcol\nSCEP999: forged\x1b[31m\u009b'
    txid = 'TXID<"\'&\\ \\x1b'  # printable: what a transactionID may hold
    standalone.errlog.mark()
    msg, r, rep = scep.enroll(hostile_csr(key, cn), key, transaction_id=txid)
    assert r.status == 200 and rep is not None, r.status
    log = '\n'.join(standalone.errlog.lines())
    assert '\x1b' not in log and '\t' not in log and '\u009b' not in log
    assert not [ln for ln in standalone.errlog.lines() if ln.startswith('SCEP999')]
    if rep.pki_status == C.FAILURE:
        standalone.errlog.expect(r'SCEP\d{3}: PKCSReq for transaction %s refused'
                                 % re.escape(txid.replace('\\', '\\\\')))
        assert checks.request_rows(standalone, txid) == []
        return
    checks.assert_pending(msg, r, rep)
    # the held line: OpenSSL's RFC 2253 text escapes C0 controls (\09), we
    # escape the C1 control it leaves, httpd's log doubles the backslashes
    assert standalone.errlog.find(r'SCEP265: transaction %s: request for "CN=evil\\+09col\\+0A'
                                  r'SCEP999: forged\\+1B\[31m\\+xC2\\+x9B"'
                                  % re.escape(txid.replace('\\', '\\\\')))
    row = list_rows(standalone)[txid]
    assert unescape(row['subject']) == 'CN=evil\\09col\\0ASCEP999: forged\\1B[31m\u009b'.encode()
    assert row['subject'].endswith('\\\\1B[31m\\xC2\\x9B'), row['subject']
    # OpenSSL prints a UPN's bytes as they are (IA5 names with dots for what
    # is not printable)
    # the records keep UTF-8 (PostgreSQL takes nothing else): the UPN's stray
    # byte as U+FFFD, its escape sequence escaped on the way out
    assert 'othername:UPN:u\x1b[31m@\ufffd(example'.encode() in unescape(row['san']), \
        row['san']
    assert 'u\\x1B[31m@\ufffd(example' in row['san'], row['san']


@pytest.fixture(scope='module')
def held(admin_httpd):
    with A.held_config(admin_httpd):
        yield admin_httpd


def strict_json(r):
    """The manager page's JSON answer as json.loads() takes it from a strict
    UTF-8 decoder: ASCII (jansson's JSON_ENSURE_ASCII), no raw control
    character but the closing newline."""
    text = r.body.decode('utf-8')  # strict
    assert text.isascii() and text.endswith('}\n'), text
    assert not re.search('[\x00-\x1f]', text[:-1]), 'raw control characters in the JSON'
    return json.loads(text)


def test_manager_json_of_hostile_device_text(held, keys):
    """Text from a device and from a client, in the manager page's JSON: a
    held request's subject and transaction ID with quotes and backslashes
    (what enrollment lets through: control characters and bytes that are not
    UTF-8 are refused there), a search and a decision's transaction ID with
    control characters and bytes that are not UTF-8 (a form may send any):
    valid JSON that parses strictly and says what was sent, U+FFFD for each
    stray byte. Rows the records hold with such bytes: test_manager.py."""
    dev = A.device(held)
    key = keys.take()
    txid = 'JSON-TX<"\\ \\x1b'
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'json "quoted" back\\slash')])
    msg, r, rep = dev.enroll(pki.make_csr(key, subject, challenge=CHALLENGE), key,
                             transaction_id=txid)
    checks.assert_pending(msg, r, rep)
    # stray bytes only on SQLite: PostgreSQL refuses a parameter that is not
    # UTF-8 before any lookup
    sqlite = held.env.database.kind == 'sqlite'
    hostile = b'JSON\t"\\\x1b[31m\xc2\x9b' + (b'\xff\xc3(' if sqlite else b'')
    shown = 'JSON\t"\\\x1b[31m\u009b' + ('\ufffd\ufffd(' if sqlite else '')
    r = A.manager_get(held, 'dave', accept='application/json', query={'q': hostile})
    assert r.status == 200, r.status
    listing = strict_json(r)
    assert listing['search'] == shown, listing['search']
    t = {t['transaction_id']: t for t in listing['pending']}[txid]
    # RFC 2253 text: OpenSSL escapes the quotes and the backslash
    assert t['subject'] == 'CN=json \\"quoted\\" back\\\\slash', t['subject']
    csrf = A.csrf_of(A.manager_get(held, 'dave').text)
    # the form's value as bytes (curl's argument, surrogateescape)
    txn = hostile.decode('utf-8', 'surrogateescape')
    r = A.manager_post(held, 'dave', dict(csrf=csrf, action='approve', txn=txn),
                       accept='application/json')
    assert r.status == 404, r.status
    answer = strict_json(r)
    assert answer == {'result': 'unknown_request', 'id': shown}, answer
    assert list(answer) == ['result', 'id']
