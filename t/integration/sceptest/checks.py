"""Assertions shared by the test files."""
import base64
import datetime
import glob
import os
import re

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from . import client as C
from . import pki
from . import templates as T


# a refusal is logged at [warn] or [error] with the module's own tag
REFUSAL_LEVELS = ('warn', 'error')
# the OpenSSL error queue a refusal drains into the log
OPENSSL_LINES = r'SCEP\d{3}: OpenSSL: '


def event(n):
    """A log line pattern: the module's tag and NDES event n (a number or a
    regular expression such as '1[56]')."""
    return r'SCEP\d{3}: .*\(NDES event %s\)' % n


def expect_line(httpd, pattern, levels=REFUSAL_LEVELS, openssl=True):
    """Asserts a line matching pattern was logged and declares it expected
    (with the OpenSSL error lines that may follow it, when openssl)."""
    httpd.errlog.expect(pattern)
    if openssl:
        httpd.errlog.expect(OPENSSL_LINES)
    lines = httpd.errlog.find(pattern, levels=levels)
    assert lines, 'no error-log line matching %r; log since the test started:\n%s' % (
        pattern, '\n'.join(httpd.errlog.lines()))
    return lines


def assert_not_logged(httpd, *secrets):
    """None of the secrets is in the error or access log, as text, UTF-16LE
    or base64."""
    for path in (httpd.env.error_log, os.path.join(httpd.env.logs, 'access_log')):
        with open(path, 'rb') as f:
            text = f.read()
        for s in secrets:
            for form in (s.encode(), s.encode('utf-16-le'), base64.b64encode(s.encode())):
                assert form not in text, 'a secret is in %s' % path


def assert_reply_ok(msg, rep):
    probs = C.check_reply(msg, rep)
    assert not probs, '%s: %s' % (rep, '; '.join(probs))


def assert_failure(msg, r, rep, fail_infos):
    """A signed CertRep FAILURE (HTTP 200) with one of fail_infos."""
    if isinstance(fail_infos, int):
        fail_infos = (fail_infos,)
    assert r.status == 200, 'HTTP %d, expected a CertRep FAILURE: %r' % (r.status, r.body[:200])
    assert rep is not None, 'no CertRep (content type %r)' % r.content_type
    assert_reply_ok(msg, rep)
    assert rep.pki_status == C.FAILURE, str(rep)
    assert rep.fail_info in fail_infos, '%s, expected failInfo %s' % (
        rep, '/'.join(C.FAIL_INFO[f] for f in fail_infos))
    assert rep.fail_info_text, 'FAILURE without failInfoText'
    assert not rep.econtent_present or rep.certs == [], 'FAILURE carries a payload'


def assert_pending(msg, r, rep):
    """A signed CertRep PENDING (HTTP 200): no failInfo, no certificate."""
    assert r.status == 200, 'HTTP %d, expected a CertRep PENDING: %r' % (r.status, r.body[:200])
    assert rep is not None, 'no CertRep (content type %r)' % r.content_type
    assert_reply_ok(msg, rep)
    assert rep.pki_status == C.PENDING, str(rep)
    assert rep.fail_info is None, str(rep)
    assert not rep.econtent_present or rep.certs == [], 'PENDING carries a payload'


def assert_issued(msg, r, rep, ca, subject=None, chain=False, validity_days=365,
                  sig_hash='sha256', ku=T.BUILTIN_KU, eku=T.BUILTIN_EKU):
    """SUCCESS: the checks of every reply, then the issued certificate:
    chains to ca, the requester's key, the CSR's subject and SAN, the
    template's KU and EKU (default: the built-in template's; T.FROM_REQUEST:
    the CSR's), random positive serial, validity, signature hash, AKI+SKI."""
    assert r.status == 200, 'HTTP %d: %r' % (r.status, r.body[:300])
    assert r.content_type.split(';')[0].strip() == C.CT_PKI, r.content_type
    assert rep is not None
    assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    cert = rep.certs[0]
    if chain:
        assert len(rep.certs) >= 2 and rep.certs[1] == ca, \
            'SCEPCertRepIncludeChain On: expected [issued, CA], got %d certs' % len(rep.certs)
    else:
        assert len(rep.certs) == 1, 'expected the issued certificate alone, got %d' % len(rep.certs)
    check_issued_cert(cert, msg.inner, ca, subject, validity_days, sig_hash, ku, eku)
    return cert


def check_issued_cert(cert, csr_der, ca, subject=None, validity_days=365, sig_hash='sha256',
                      ku=T.BUILTIN_KU, eku=T.BUILTIN_EKU):
    csr = x509.load_der_x509_csr(csr_der)
    assert pki.verify_issued_by(cert, ca), 'issued certificate does not verify with the CA'
    assert pki.public_der(cert) == pki.public_der(csr), 'issued for another key'
    assert cert.subject == (subject or csr.subject), '%s != %s' % (
        cert.subject.rfc4514_string(), (subject or csr.subject).rfc4514_string())
    assert cert.serial_number > 0
    assert cert.serial_number.bit_length() > 63, 'serial %x does not look random' % cert.serial_number
    assert cert.version == x509.Version.v3
    days = (cert.not_valid_after - cert.not_valid_before).total_seconds() / 86400
    assert abs(days - validity_days) <= 1.01, 'validity %.2f days, expected %d' % (days,
                                                                                  validity_days)
    now = datetime.datetime.utcnow()
    assert cert.not_valid_before <= now + datetime.timedelta(minutes=1)
    assert cert.signature_hash_algorithm.name == {'sha256': 'sha256', 'sha384': 'sha384',
                                                  'sha512': 'sha512', 'sha1': 'sha1'}[sig_hash]
    aki = pki.ext(cert, x509.AuthorityKeyIdentifier)
    ca_ski = pki.ext(ca, x509.SubjectKeyIdentifier)
    assert aki is not None, 'no authorityKeyIdentifier'
    if ca_ski is not None:
        assert aki.key_identifier == ca_ski.digest, 'AKI does not name the CA key'
    assert pki.ext(cert, x509.SubjectKeyIdentifier) is not None, 'no subjectKeyIdentifier'
    bc = pki.ext(cert, x509.BasicConstraints)
    assert bc is None or not bc.ca, 'issued a CA certificate'
    # extensions copied from the CSR: the SAN, and KU/EKU when the template
    # takes them from the request; otherwise the template's
    want = {}
    try:
        for e in csr.extensions:
            want[e.oid] = e
    except x509.UnsupportedGeneralNameType:
        pass
    copied = [ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    if ku == T.FROM_REQUEST:
        copied.append(ExtensionOID.KEY_USAGE)
    else:
        got = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert got.critical, 'keyUsage not critical'
        assert got.value == ku, 'keyUsage %r, expected the template\'s %r' % (got.value, ku)
    if eku == T.FROM_REQUEST:
        copied.append(ExtensionOID.EXTENDED_KEY_USAGE)
    else:
        got = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert got == list(eku), 'extendedKeyUsage %r, expected the template\'s %r' % (got, eku)
    for oid in copied:
        if oid in want:
            try:
                got = cert.extensions.get_extension_for_oid(oid)
            except x509.ExtensionNotFound:
                raise AssertionError('%s of the CSR missing from the certificate' % oid._name)
            assert got.value == want[oid].value, '%s: %r != %r' % (oid._name, got.value,
                                                                    want[oid].value)


def request_rows(httpd, transaction_id):
    return httpd.db_rows('SELECT * FROM scep_request WHERE transaction_id = ?', (transaction_id,))


def cert_rows_of_serial(httpd, serial):
    return [row for row in httpd.db_rows('SELECT * FROM scep_cert')
            if int(row['serial'], 16) == serial]


def assert_recorded(httpd, transaction_id, cert, message_type=None):
    """The request and its certificate are in the database (schema of
    scep_store_sql.c: scep_request, scep_cert); message_type: also check
    that column."""
    reqs = request_rows(httpd, transaction_id)
    assert len(reqs) == 1, 'scep_request rows for %s: %d' % (transaction_id, len(reqs))
    req = reqs[0]
    assert req['status'] == 'issued', req
    assert req['key_id'].upper() == pki.key_id(cert), req
    assert req['serial'] and int(req['serial'], 16) == cert.serial_number, req
    assert req['client_addr'] == '127.0.0.1', req
    assert req['subject'], req
    if message_type is not None:
        assert req['message_type'] == message_type, \
            'scep_request.message_type %r, expected %d' % (req['message_type'], message_type)
    certs = cert_rows_of_serial(httpd, cert.serial_number)
    assert len(certs) == 1, 'scep_cert rows for serial %X: %d' % (cert.serial_number, len(certs))
    row = certs[0]
    assert row['transaction_id'] == transaction_id, row
    assert x509.load_pem_x509_certificate(row['cert_pem'].encode()) == cert
    assert row['revoked_at'] is None


def assert_private_records(db_dir, uid, gid):
    """A SQLite records directory as README's installation has it: 0700,
    of the user Apache's children run as; its files (the database, its WAL
    and shared memory) 0600, theirs too."""
    st = os.stat(db_dir)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o700, uid, gid), \
        '%s: mode %o, owner %d:%d' % (db_dir, st.st_mode & 0o777, st.st_uid, st.st_gid)
    names = sorted(os.listdir(db_dir))
    assert 'scep.db' in names, names
    for name in names:
        st = os.stat(os.path.join(db_dir, name))
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, uid, gid), \
            '%s: mode %o, owner %d:%d' % (name, st.st_mode & 0o777, st.st_uid, st.st_gid)


# --- secrets in the records ---------------------------------------------------

RE_PEM = re.compile(r'-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----', re.S)


def table_names(httpd):
    if httpd.env.database.kind == 'pgsql':
        sql = ("SELECT table_name AS name FROM information_schema.tables"
               " WHERE table_schema = 'public'")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return [r['name'] for r in httpd.db_rows(sql)]


def secret_forms(secret):
    raw = secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
             base64.urlsafe_b64encode(raw)]
    # base64 of the password where it does not start on a 3-byte boundary
    for pad in (1, 2):
        enc = base64.b64encode(b'\0' * pad + raw)
        forms.append(enc[4:-4])
    return forms


def places_holding(httpd, secret):
    """Where the records hold secret in any form: (table, column) pairs, and
    on SQLite the files."""
    forms = secret_forms(secret)
    found = []
    for table in table_names(httpd):
        for row in httpd.db_rows('SELECT * FROM %s' % table):
            for column, value in row.items():
                value = '' if value is None else str(value)
                blobs = [value.encode('utf-8', 'surrogateescape')] + [
                    base64.b64decode(re.sub(r'\s', '', b)) for b in RE_PEM.findall(value)]
                if any(f in blob for f in forms for blob in blobs):
                    found.append((table, column))
    if httpd.env.database.kind == 'sqlite':
        for path in glob.glob(httpd.env.database.path + '*'):
            with open(path, 'rb') as f:
                data = f.read()
            if any(f in data for f in forms):
                found.append((path, None))
    return found
