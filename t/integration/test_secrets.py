"""Secrets at rest (issue 11): a held request is recorded without its
challenge password (its CSR without the challengePassword attribute and
without the signature, which would let a reader of the records test guesses
of the password), and nothing of it is kept once it is decided (issued,
denied, expired). Every column of every table is searched for the password,
as text, hex and base64, and inside every PEM block; on SQLite the database
file and its WAL too. Schema migration 4 strips CSRs that older versions
kept whole (run here by scepctl, which migrates like the server)."""
import dataclasses
import glob
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

# scep_store_sql.c's migration schema_v3_no_secrets (renumber with it)
NO_SECRETS_VERSION = 4


@pytest.fixture(scope='module')
def standalone(httpd):
    with httpd.config(SCEPCAType='Standalone'):
        yield httpd


def hold(httpd, scep, key, cn):
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE, dns=[cn]), key)
    checks.assert_pending(msg, r, rep)
    return msg


def row(httpd, msg):
    (req,) = checks.request_rows(httpd, msg.transaction_id)
    return req


def poll(scep, files, msg):
    csr = x509.load_der_x509_csr(msg.inner)
    body = C.issuer_and_subject(files.ca.subject, csr.subject)
    pm = C.pki_message(body, C.CERTPOLL, msg.key, [files.ra_enc], subject=csr.subject,
                       transaction_id=msg.transaction_id)
    r, rep = scep.send(pm)
    # the checks of an issued certificate compare it with the request's CSR
    return dataclasses.replace(pm, inner=msg.inner), r, rep


def test_held_request_keeps_what_approval_needs_without_the_password(standalone, scep, files,
                                                                     keys):
    key = keys.take()
    msg = hold(standalone, scep, key, 'secret-held.example.test')
    assert checks.places_holding(standalone, CHALLENGE) == []
    kept = x509.load_pem_x509_csr(row(standalone, msg)['csr_pem'].encode())
    sent = x509.load_der_x509_csr(msg.inner)
    assert kept.subject == sent.subject
    assert kept.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) \
        == pki.public_der(key)
    assert list(kept.extensions) == list(sent.extensions)
    assert not [a for a in kept.attributes
                if a.oid == x509.oid.AttributeOID.CHALLENGE_PASSWORD]
    assert kept.signature == b'' and not kept.is_signature_valid
    # the manager's approval issues from it, as scepctl's does at the next poll
    code, out, err = standalone.scepctl_records('approve', '--by', 'alice', msg.transaction_id)
    assert code == 0, out + err
    assert row(standalone, msg)['csr_pem'] is not None  # approved: issued at the next poll
    pm, r, rep = poll(scep, files, msg)
    cert = checks.assert_issued(pm, r, rep, files.ca, subject=sent.subject)
    checks.check_issued_cert(cert, msg.inner, files.ca)
    req = row(standalone, msg)
    assert (req['status'], req['csr_pem']) == ('issued', None)
    assert checks.places_holding(standalone, CHALLENGE) == []


def test_denied_request_keeps_no_csr(standalone, scep, files, keys):
    msg = hold(standalone, scep, keys.take(), 'secret-denied.example.test')
    code, out, err = standalone.scepctl_records('deny', '--reason', 'no', msg.transaction_id)
    assert code == 0, out + err
    req = row(standalone, msg)
    assert (req['status'], req['csr_pem']) == ('rejected', None)
    assert checks.places_holding(standalone, CHALLENGE) == []


def test_expired_request_keeps_no_csr(standalone, scep, files, keys):
    msg = hold(standalone, scep, keys.take(), 'secret-expired.example.test')
    standalone.db_execute('UPDATE scep_request SET created = ? WHERE transaction_id = ?',
                          ('2020-01-01T00:00:00Z', msg.transaction_id))
    standalone.errlog.expect(r'SCEP219: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    req = row(standalone, msg)
    assert (req['status'], req['csr_pem']) == ('expired', None)
    assert checks.places_holding(standalone, CHALLENGE) == []


def back_to_version_3(httpd):
    """The records as version 3 left them: what the later migrations added
    (version 5: the columns ca_ticket, ca_poll_at, ca_backend and
    csr_sealed, and ca_poll_at's index) dropped and their versions
    forgotten, so that they run again (version 6 makes its tables only where
    they are missing)."""
    httpd.db_execute('DROP INDEX IF EXISTS scep_request_ca_poll')
    for column in ('ca_poll_at', 'ca_ticket', 'ca_backend', 'csr_sealed'):
        httpd.db_execute('ALTER TABLE scep_request DROP COLUMN %s' % column)
    httpd.db_execute('DELETE FROM scep_schema WHERE version >= ?', (NO_SECRETS_VERSION,))


def test_migration_strips_csrs_kept_whole(standalone, scep, files, keys):
    """Records of an older version: a held CSR with its password, a denied
    one that kept its CSR. The migration (here at scepctl's connection)
    strips the one and drops the other; the held one is still approved and
    issued. (A password of its own: what the records held before the
    migration may stay in an SQLite file's free pages, which the other
    tests search.)"""
    old_secret = 'old-version-kept-this-secret'
    key, other = keys.take(), keys.take()
    held = hold(standalone, scep, key, 'secret-old-held.example.test')
    denied = hold(standalone, scep, other, 'secret-old-denied.example.test')
    whole, whole_denied = (
        x509.load_der_x509_csr(pki.make_csr(k, cn, challenge=old_secret, dns=[cn])).public_bytes(
            serialization.Encoding.PEM).decode()
        for k, cn in ((key, 'secret-old-held.example.test'),
                      (other, 'secret-old-denied.example.test')))
    standalone.db_execute("UPDATE scep_request SET csr_pem = ? WHERE transaction_id = ?",
                          (whole, held.transaction_id))
    standalone.db_execute("UPDATE scep_request SET csr_pem = ?, status = 'rejected' "
                          "WHERE transaction_id = ?", (whole_denied, denied.transaction_id))
    back_to_version_3(standalone)
    assert ('scep_request', 'csr_pem') in checks.places_holding(standalone, old_secret)
    code, out, err = standalone.scepctl_records('list')
    assert code == 0, err
    (version,) = standalone.db_rows('SELECT MAX(version) AS v FROM scep_schema')
    assert version['v'] >= NO_SECRETS_VERSION
    assert [(t, c) for t, c in checks.places_holding(standalone, old_secret) if c] == []
    assert row(standalone, denied)['csr_pem'] is None
    code, out, err = standalone.scepctl_records('approve', held.transaction_id)
    assert code == 0, out + err
    pm, r, rep = poll(scep, files, held)
    cert = checks.assert_issued(pm, r, rep, files.ca)
    checks.check_issued_cert(cert, held.inner, files.ca)


def test_sqlite_files_are_private(standalone, scep, keys):
    """SQLite makes its files with the umask (0644 under Apache): the module
    makes the database and its WAL files 0600 (the install and demo tests
    check the directory too)."""
    if standalone.env.database.kind != 'sqlite':
        pytest.skip('SQLite files')
    hold(standalone, scep, keys.take(), 'secret-files.example.test')
    for path in glob.glob(standalone.env.database.path + '*'):
        mode = os.stat(path).st_mode & 0o777
        assert mode == 0o600, '%s: mode %o' % (path, mode)
