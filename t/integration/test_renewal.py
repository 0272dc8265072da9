"""Renewal (issue 4): RenewalReq, and PKCSReq signed by a certificate this CA
issued, authenticated by the signer certificate instead of a password
(white paper, "Certificate Renewal"; NDES event 28 when refused)."""
import datetime

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

EVENT_28 = r'SCEP\d{3}: .*%s.*renewal .*\(NDES event 28\)'


def enroll(scep, files, key, cn, dns=None):
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE, dns=dns), key)
    return checks.assert_issued(msg, r, rep, files.ca)


def renewal(scep, files, old_key, old_cert, new_key, cn, mtype=C.RENEWALREQ, dns=None,
            challenge=None, **kw):
    """A renewal signed by old_cert, for new_key, without a password by default."""
    csr = pki.make_csr(new_key, cn, challenge=challenge, dns=dns)
    msg = C.pkcsreq(csr, old_key, [files.ra_enc], signer_cert=old_cert, message_type=mtype,
                    **kw)
    r, rep = scep.send(msg)
    return msg, r, rep


def ca_signed(files, key, cn, days=30, start=None):
    """A certificate signed with the CA key outside the service (no record)."""
    start = start or datetime.datetime.utcnow() - datetime.timedelta(hours=1)
    return (x509.CertificateBuilder()
            .subject_name(pki.name(cn)).issuer_name(files.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .sign(files.ca_key, pki.hash_algo('sha256')))


def refused(httpd, msg, r, rep, fail_info, needle):
    checks.assert_failure(msg, r, rep, fail_info)
    assert needle in rep.fail_info_text, rep.fail_info_text
    lines = httpd.errlog.expect_and_find(EVENT_28 % msg.transaction_id)
    assert lines, 'no event 28 line for %s' % msg.transaction_id


@pytest.mark.parametrize('mtype', [C.RENEWALREQ, C.PKCSREQ])
def test_renewal_with_new_key(scep, files, keys, httpd, mtype):
    old_key, new_key = keys.take(), keys.take()
    cn = 'renew-%d.example.test' % mtype
    old = enroll(scep, files, old_key, cn, dns=[cn])
    msg, r, rep = renewal(scep, files, old_key, old, new_key, cn, mtype=mtype, dns=[cn])
    new = checks.assert_issued(msg, r, rep, files.ca)
    assert pki.public_der(new) == pki.public_der(new_key)
    assert new.serial_number != old.serial_number
    # the reply is enveloped to the signer: the old certificate's key opened it
    assert rep.envelope_recipients == 1
    checks.assert_recorded(httpd, msg.transaction_id, new, message_type=mtype)
    assert httpd.errlog.find(r'SCEP240: .*%s.*renewal of certificate 0?%X\b' %
                             (msg.transaction_id, old.serial_number))


def test_renewal_with_same_key_and_a_challenge(scep, files, keys):
    """macOS sends its challenge again: the signer decides, not the password."""
    key = keys.take()
    old = enroll(scep, files, key, 'renew-same-key.example.test')
    msg, r, rep = renewal(scep, files, key, old, key, 'renew-same-key.example.test',
                          mtype=C.PKCSREQ, challenge='not-the-password')
    new = checks.assert_issued(msg, r, rep, files.ca)
    assert pki.public_der(new) == pki.public_der(old)


def test_renewal_replay(scep, files, keys):
    old_key, new_key = keys.take(), keys.take()
    old = enroll(scep, files, old_key, 'renew-replay.example.test')
    csr = pki.make_csr(new_key, 'renew-replay.example.test')
    msg = C.pkcsreq(csr, old_key, [files.ra_enc], signer_cert=old, message_type=C.RENEWALREQ)
    first = checks.assert_issued(msg, *scep.send(msg), files.ca)
    again = C.pkcsreq(csr, old_key, [files.ra_enc], signer_cert=old,
                      message_type=C.RENEWALREQ, transaction_id=msg.transaction_id)
    assert checks.assert_issued(again, *scep.send(again), files.ca) == first


def test_subject_must_match(scep, files, keys, httpd):
    old_key, new_key = keys.any(0), keys.any(1)
    old = enroll(scep, files, old_key, 'renew-subject.example.test')
    msg, r, rep = renewal(scep, files, old_key, old, new_key, 'someone-else.example.test')
    refused(httpd, msg, r, rep, C.BAD_REQUEST, 'subject')


def test_subject_alt_name_must_match(scep, files, keys, httpd):
    old_key, new_key = keys.any(2), keys.any(3)
    cn = 'renew-san.example.test'
    old = enroll(scep, files, old_key, cn, dns=[cn])
    msg, r, rep = renewal(scep, files, old_key, old, new_key, cn, dns=[cn, 'extra.example.test'])
    refused(httpd, msg, r, rep, C.BAD_REQUEST, 'subjectAltName')


def test_subject_match_disabled(httpd, scep, files, keys):
    old_key, new_key = keys.any(4), keys.any(5)
    with httpd.config(('SCEPDisableRenewalSubjectNameMatch', 'On')):
        old = enroll(scep, files, old_key, 'renew-free.example.test')
        msg, r, rep = renewal(scep, files, old_key, old, new_key, 'renamed.example.test',
                              dns=['renamed.example.test'])
        new = checks.assert_issued(msg, r, rep, files.ca)
        assert new.subject == pki.name('renamed.example.test')


def test_self_signed_renewalreq(scep, files, keys, httpd):
    key = keys.any(6)
    signer = pki.self_signed(key, 'renew-self.example.test')
    msg, r, rep = renewal(scep, files, key, signer, key, 'renew-self.example.test')
    refused(httpd, msg, r, rep, C.BAD_MESSAGE_CHECK, 'does not verify')


def test_signer_from_an_impostor_ca(scep, files, keys, httpd):
    """A certificate under a CA that only copies our CA's name."""
    key, fake_ca_key = keys.any(7), keys.any(8)

    class Impostor:
        ca = files.ca
        ca_key = fake_ca_key
    signer = ca_signed(Impostor, key, 'renew-impostor.example.test')
    msg, r, rep = renewal(scep, files, key, signer, key, 'renew-impostor.example.test',
                          mtype=C.PKCSREQ)
    refused(httpd, msg, r, rep, C.BAD_MESSAGE_CHECK, 'does not verify')


def test_expired_signer(scep, files, keys, httpd):
    key = keys.any(9)
    start = datetime.datetime.utcnow() - datetime.timedelta(days=40)
    signer = ca_signed(files, key, 'renew-expired.example.test', days=30, start=start)
    msg, r, rep = renewal(scep, files, key, signer, key, 'renew-expired.example.test')
    refused(httpd, msg, r, rep, C.BAD_REQUEST, 'expired')


def test_signer_not_issued_by_the_service(scep, files, keys, httpd):
    key = keys.any(0)
    signer = ca_signed(files, key, 'renew-unrecorded.example.test')
    msg, r, rep = renewal(scep, files, key, signer, key, 'renew-unrecorded.example.test')
    refused(httpd, msg, r, rep, C.BAD_REQUEST, 'not issued through this service')


def test_revoked_signer(scep, files, keys, httpd):
    """Revoked in the database directly: the manager page comes later."""
    old_key, new_key = keys.any(1), keys.any(2)
    old = enroll(scep, files, old_key, 'renew-revoked.example.test')
    serial = checks.cert_rows_of_serial(httpd, old.serial_number)[0]['serial']
    httpd.db_execute("UPDATE scep_cert SET revoked_at = '2026-01-01T00:00:00Z',"
                     " revocation_reason = 1 WHERE serial = ?", (serial,))
    msg, r, rep = renewal(scep, files, old_key, old, new_key, 'renew-revoked.example.test')
    refused(httpd, msg, r, rep, C.BAD_REQUEST, 'revoked')


def test_initial_pkcsreq_still_needs_its_own_key(scep, files, keys, httpd):
    """A self-signed signer is no renewal: the CSR key must sign (event 42)."""
    key, other = keys.any(3), keys.any(4)
    signer = pki.self_signed(other, 'not-a-renewal.example.test')
    msg = C.pkcsreq(pki.make_csr(key, 'not-a-renewal.example.test', challenge=CHALLENGE),
                    other, [files.ra_enc], signer_cert=signer)
    r, rep = scep.send(msg)
    checks.assert_failure(msg, r, rep, C.BAD_MESSAGE_CHECK)
    httpd.errlog.expect(r'SCEP209: .*%s' % msg.transaction_id)
