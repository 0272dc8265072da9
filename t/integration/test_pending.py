"""Pending approval (issue 4): requests held for a CA manager (SCEPCAType
Standalone, or a template with Issuance manual) answer PENDING; CertPoll and
resent PKCSReqs follow the decision (scepctl approve/deny here, the manager
page in test_manager*.py); SCEPRefreshPeriod expires undecided requests;
SCEPCacheRequest bounds how long a direct issuance answers retries; certmonger's
scep-submit reports a held request as pending and gets the certificate once it
is approved."""
import dataclasses

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import issued_certs, openssl_req, run_scep_submit
from sceptest.httpd import CHALLENGE

HELD_LINE = r'SCEP265: transaction %s: request for "%s" \(template %s\) from 127\.0\.0\.1 held'


@pytest.fixture(scope='module')
def standalone(httpd):
    with httpd.config(SCEPCAType='Standalone'):
        yield httpd


def held_request(httpd, scep, key, cn, dns=None, **kw):
    """A PKCSReq that the server holds: asserts PENDING and the log line."""
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE, dns=dns), key, **kw)
    checks.assert_pending(msg, r, rep)
    assert httpd.errlog.find(HELD_LINE % (msg.transaction_id, 'CN=' + cn,
                                          'IPSECIntermediateOffline'))
    return msg


def poll(scep, files, msg, key=None, signer_cert=None):
    """CertPoll (IssuerAndSubject) for msg's transaction, signed by key (default:
    the request's key, with a fresh self-signed certificate)."""
    csr = x509.load_der_x509_csr(msg.inner)
    key = key or msg.key
    body = C.issuer_and_subject(files.ca.subject, csr.subject)
    pm = C.pki_message(body, C.CERTPOLL, key, [files.ra_enc], signer_cert=signer_cert,
                       subject=csr.subject, transaction_id=msg.transaction_id)
    r, rep = scep.send(pm)
    # the checks of an issued certificate compare it with the request's CSR
    return dataclasses.replace(pm, inner=msg.inner), r, rep


def row(httpd, msg):
    (req,) = checks.request_rows(httpd, msg.transaction_id)
    return req


def approve(httpd, msg, *extra):
    code, out, err = httpd.scepctl_records('approve', *extra, msg.transaction_id)
    assert code == 0, out + err
    return out


# --- the default server (Enterprise, templates issue at once) -----------------
# (first: the module's Standalone server stays configured once a test uses it)

def test_cache_request_bounds_retries_of_direct_issuance(httpd, scep, files, keys):
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'cached.example.test', challenge=CHALLENGE), key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    r, rep = scep.send(msg)
    assert checks.assert_issued(msg, r, rep, files.ca) == cert
    httpd.db_execute('UPDATE scep_request SET updated = ? WHERE transaction_id = ?',
                     ('2020-01-01T00:00:00Z', msg.transaction_id))
    httpd.errlog.expect(r'SCEP216: PKCSReq for transaction %s refused' % msg.transaction_id)
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    serial = row(httpd, msg)['serial']
    assert rep.fail_info_text == (
        'the transaction was completed more than 20 minutes ago (SCEPCacheRequest); GetCert '
        'with serial number %s returns its certificate' % serial)


def test_scepctl_revokes_with_a_reason(httpd, scep, files, keys):
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'revoke.example.test', challenge=CHALLENGE), key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    serial = row(httpd, msg)['serial']
    code, out, err = httpd.scepctl_records('revoke', '--reason', 'keyCompromise', serial)
    assert (code, out.strip()) == (0, '%s: revoked (keyCompromise)' % serial), err
    (c,) = checks.cert_rows_of_serial(httpd, cert.serial_number)
    assert c['revoked_at'] and int(c['revocation_reason']) == 1
    code, out, err = httpd.scepctl_records('revoke', serial)
    assert code == 1 and 'was revoked before' in err
    code, out, err = httpd.scepctl_records('list', '--certs', '--search', 'REVOKE.example')
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.startswith(serial)]
    assert line.split('\t')[4] == 'keyCompromise', line
    code, out, err = httpd.scepctl_records('revoke', 'ABCDEF')
    assert code == 1 and 'no certificate ABCDEF' in err


# --- SCEPCAType Standalone: every request is held ------------------------------

def test_held_request_is_recorded_for_the_manager(standalone, scep, keys):
    key = keys.take()
    msg = held_request(standalone, scep, key, 'held.example.test', dns=['held.example.test'])
    req = row(standalone, msg)
    assert req['status'] == 'pending'
    assert req['template'] == 'IPSECIntermediateOffline'
    assert req['san'] == 'DNS:held.example.test'
    assert req['key_desc'] == 'RSA 2048'
    assert req['client_addr'] == '127.0.0.1'
    assert req['serial'] is None
    # without the challenge password and the signature (test_secrets.py)
    kept = x509.load_pem_x509_csr(req['csr_pem'].encode())
    assert kept.subject == x509.load_der_x509_csr(msg.inner).subject and kept.signature == b''
    code, out, err = standalone.scepctl_records('list')
    assert code == 0, err
    line = [ln for ln in out.splitlines() if ln.startswith(msg.transaction_id)]
    assert line and line[0].split('\t')[1:2] == ['pending'], out
    assert 'CN=held.example.test\tDNS:held.example.test\tRSA 2048\tIPSECIntermediateOffline' \
        in line[0]


def test_poll_and_resend_answer_pending_then_the_approved_certificate(standalone, scep, files,
                                                                      keys):
    key = keys.take()
    msg = held_request(standalone, scep, key, 'poll.example.test')
    pm, r, rep = poll(scep, files, msg)
    checks.assert_pending(pm, r, rep)
    # the same PKCSReq again (a device that lost the reply) spends nothing
    r, rep = scep.send(msg)
    checks.assert_pending(msg, r, rep)
    out = approve(standalone, msg, '--by', 'alice')
    assert out.strip() == '%s: approved by alice' % msg.transaction_id
    assert row(standalone, msg)['status'] == 'approved'
    pm, r, rep = poll(scep, files, msg)
    cert = checks.assert_issued(pm, r, rep, files.ca, subject=pki.name('poll.example.test'))
    assert pki.public_der(cert) == pki.public_der(key)
    checks.check_issued_cert(cert, msg.inner, files.ca)
    checks.assert_recorded(standalone, msg.transaction_id, cert)
    assert row(standalone, msg)['decided_by'] == 'alice'
    assert standalone.errlog.find(r'SCEP217: transaction %s: issued certificate for '
                                  r'"CN=poll.example.test", approved by alice'
                                  % msg.transaction_id)
    # later polls and resends get the same certificate
    pm, r, rep = poll(scep, files, msg)
    assert checks.assert_issued(pm, r, rep, files.ca) == cert
    r, rep = scep.send(msg)
    assert checks.assert_issued(msg, r, rep, files.ca) == cert


def test_denied_request_fails_with_the_reason(standalone, scep, files, keys):
    key = keys.take()
    msg = held_request(standalone, scep, key, 'denied.example.test')
    code, out, err = standalone.scepctl_records('deny', '--by', 'bob', '--reason',
                                                'not one of our routers', msg.transaction_id)
    assert code == 0, out + err
    standalone.errlog.expect(r'SCEP205: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'not one of our routers'
    req = row(standalone, msg)
    assert (req['status'], req['decided_by'], req['reason']) == \
        ('rejected', 'bob', 'not one of our routers')
    # decided: a second decision is refused and changes nothing
    code, out, err = standalone.scepctl_records('approve', msg.transaction_id)
    assert code == 1 and 'is not pending' in err, out + err
    assert row(standalone, msg)['status'] == 'rejected'


def test_poll_with_another_key_is_refused(standalone, scep, files, keys):
    key, other = keys.take(), keys.take()
    msg = held_request(standalone, scep, key, 'thief.example.test')
    approve(standalone, msg)
    standalone.errlog.expect(r'SCEP203: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg, key=other)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'the transactionID is already in use with another key'
    # nothing was issued to the other key
    assert row(standalone, msg)['status'] == 'approved'


def same_bits_other_parameters(msg):
    """A signer certificate of the request's own key bits whose
    SubjectPublicKeyInfo writes other AlgorithmIdentifier parameters (as an EC
    point under other domain parameters would be)."""
    subject = x509.load_der_x509_csr(msg.inner).subject
    return pki.with_spki_parameters(pki.self_signed(msg.key, subject), msg.key, b'\x30\x00')


def test_poll_with_the_key_bits_under_other_parameters_is_refused(standalone, scep, files,
                                                                   keys):
    """A transaction is bound to the whole SubjectPublicKeyInfo: the same key
    bits under other parameters are another key and get nothing of an
    approved request; the request's own key then gets the certificate."""
    msg = held_request(standalone, scep, keys.take(), 'same-bits.example.test')
    approve(standalone, msg)
    standalone.errlog.expect(r'SCEP203: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg, signer_cert=same_bits_other_parameters(msg))
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'the transactionID is already in use with another key'
    assert rep.certs == [] and row(standalone, msg)['status'] == 'approved'
    pm, r, rep = poll(scep, files, msg)
    checks.assert_issued(pm, r, rep, files.ca)


def test_held_request_from_before_schema_3_is_polled_by_its_key_only(standalone, scep, files,
                                                                     keys):
    """A request recorded before schema version 3 knows its key by the bits
    alone (marked by the migration) and has no CSR digest: its kept CSR binds
    it to the whole SubjectPublicKeyInfo all the same, and its device polls
    and resends as before."""
    key = keys.take()
    msg = held_request(standalone, scep, key, 'older-row.example.test')
    bits = 'bits:' + pki.key_bits_id(key)
    standalone.db_execute('UPDATE scep_request SET key_id = ?, signer_key_id = ?,'
                          ' csr_digest = NULL WHERE transaction_id = ?',
                          (bits, bits, msg.transaction_id))
    standalone.errlog.expect(r'SCEP203: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg, signer_cert=same_bits_other_parameters(msg))
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    checks.assert_pending(*poll(scep, files, msg))
    checks.assert_pending(msg, *scep.send(msg))
    approve(standalone, msg)
    checks.assert_issued(*poll(scep, files, msg), files.ca)


def test_resent_transaction_id_with_another_csr_is_refused(standalone, scep, files, keys):
    """A held transactionID resent with another CSR of the same key (another
    subject, another subjectAltName) is refused and changes nothing; the
    first CSR, signed again, gets the approved certificate."""
    key = keys.take()
    msg = held_request(standalone, scep, key, 'first-csr.example.test')
    approve(standalone, msg)
    before = row(standalone, msg)
    for other in (pki.make_csr(key, 'second-csr.example.test', challenge=CHALLENGE),
                  pki.make_csr(key, 'first-csr.example.test', challenge=CHALLENGE,
                               dns=['evil.example.test'])):
        resent = C.pkcsreq(other, key, [files.ra_enc], transaction_id=msg.transaction_id)
        standalone.errlog.expect(r'SCEP250: PKCSReq for transaction %s refused: the '
                                 r'transactionID is already in use with another certificate '
                                 r'request .*\(NDES event 23\)' % msg.transaction_id)
        r, rep = scep.send(resent)
        checks.assert_failure(resent, r, rep, C.BAD_REQUEST)
        assert 'another certificate request' in rep.fail_info_text
        assert rep.certs == []
    assert row(standalone, msg) == before
    again = C.pkcsreq(msg.inner, key, [files.ra_enc], transaction_id=msg.transaction_id)
    checks.assert_issued(again, *scep.send(again), files.ca)


def test_refresh_period_expires_undecided_requests(standalone, scep, files, keys):
    key = keys.take()
    msg = held_request(standalone, scep, key, 'stale.example.test')
    standalone.db_execute('UPDATE scep_request SET created = ? WHERE transaction_id = ?',
                          ('2020-01-01T00:00:00Z', msg.transaction_id))
    standalone.errlog.expect(r'SCEP219: CertPoll for transaction %s refused' % msg.transaction_id)
    pm, r, rep = poll(scep, files, msg)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == ('the request waited 7 days without a CA manager\'s decision '
                                  '(SCEPRefreshPeriod)')
    assert row(standalone, msg)['status'] == 'expired'
    code, out, err = standalone.scepctl_records('approve', msg.transaction_id)
    assert code == 1 and 'is not pending' in err


def test_held_certificate_is_answered_beyond_the_cache_window(standalone, scep, files, keys):
    """NDES asks the CA about a pending request whenever its device polls."""
    key = keys.take()
    msg = held_request(standalone, scep, key, 'late.example.test')
    approve(standalone, msg)
    pm, r, rep = poll(scep, files, msg)
    cert = checks.assert_issued(pm, r, rep, files.ca)
    standalone.db_execute('UPDATE scep_request SET updated = ? WHERE transaction_id = ?',
                          ('2020-01-01T00:00:00Z', msg.transaction_id))
    pm, r, rep = poll(scep, files, msg)
    assert checks.assert_issued(pm, r, rep, files.ca) == cert


def test_held_renewal_polled_with_the_old_certificate(standalone, scep, files, keys):
    """Under Standalone a renewal waits too; its device polls signed with the
    old certificate."""
    old_key, new_key = keys.take(), keys.take()
    cn = 'renew-held.example.test'
    msg = held_request(standalone, scep, old_key, cn)
    approve(standalone, msg)
    pm, r, rep = poll(scep, files, msg)
    old = checks.assert_issued(pm, r, rep, files.ca)
    renew = C.pkcsreq(pki.make_csr(new_key, cn), old_key, [files.ra_enc], signer_cert=old,
                      message_type=C.RENEWALREQ)
    r, rep = scep.send(renew)
    checks.assert_pending(renew, r, rep)
    approve(standalone, renew)
    pm, r, rep = poll(scep, files, renew, key=old_key, signer_cert=old)
    new = checks.assert_issued(pm, r, rep, files.ca)
    assert pki.public_der(new) == pki.public_der(new_key)


def test_scep_submit_reports_pending_then_gets_the_certificate(standalone, files, keys):
    """certmonger's helper exits 1 or 5 (poll later) for PENDING, after checking
    the reply's signature, and 0 with the certificate once it is approved."""
    key = keys.take()
    csr = openssl_req(standalone.env.work, key, 'submit-held', CHALLENGE)
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    p = run_scep_submit(standalone, msg.der, 'submit-held')
    assert p.returncode in (1, 5), 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout,
                                                                     p.stderr)
    assert row(standalone, msg)['status'] == 'pending'
    approve(standalone, msg)
    c = x509.load_der_x509_csr(csr)
    body = C.issuer_and_subject(files.ca.subject, c.subject)
    pm = C.pki_message(body, C.CERTPOLL, key, [files.ra_enc], subject=c.subject,
                       transaction_id=msg.transaction_id)
    p = run_scep_submit(standalone, pm.der, 'submit-held-poll')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    (cert,) = issued_certs(p.stdout, pm, files.ra_sign)
    checks.check_issued_cert(cert, csr, files.ca)
    checks.assert_recorded(standalone, msg.transaction_id, cert)
