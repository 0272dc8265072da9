"""Notifications (issue 15): with SCEPNotifyWebhook, each decision on a
PKCSReq, RenewalReq or CertPoll is POSTed as JSON, signed as step-ca signs
its webhooks, to the suite's webhook server (sceptest/webhook.py, HTTPS on
loopback, which checks the signature and records every call): issued (the
serial and thumbprints of the certificate the device got), refused
(failInfo and its text), held then approved, a renewal, certmonger's
scep-submit end to end; GetCert decides nothing and notifies nothing. A
webhook that is down, slow, answers 500 or refuses the signature (a wrong
secret) never keeps the device from its answer, and a warning says the
notification was dropped. The directives' startup refusals."""
import base64
import datetime
import hashlib
import os
import re
import shutil
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sceptest import checks, pki
from sceptest import client as C
from sceptest.certmonger import issued_certs, openssl_req, run_scep_submit
from sceptest.httpd import CHALLENGE, free_port, make_conf
from sceptest.tls import TestCA
from sceptest.webhook import WebhookServer, write_secret
from test_pending import approve, poll
from test_renewal import renewal

PROVISIONER = 'localhost'  # the test server's ServerName
SECRET = b'the notification webhook\'s secret \x00\xff'
DROPPED = (r'\[scep:warn\].*SCEP680: transaction %s: the notification webhook was not reached '
           r'\(above\); the notification is dropped')


@pytest.fixture(scope='module')
def wh_dir(env):
    d = os.path.join(env.gen, 'notify')
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


@pytest.fixture(scope='module')
def tls(wh_dir):
    return TestCA(os.path.join(wh_dir, 'tls'))


@pytest.fixture(scope='module')
def hook(wh_dir, tls):
    h = WebhookServer(os.path.join(wh_dir, 'hook'), tls, secret=SECRET, port_base=19500)
    h.start()
    yield h
    h.stop()


@pytest.fixture(scope='module')
def secret_file(wh_dir):
    return write_secret(os.path.join(wh_dir, 'notify-secret'), SECRET)


def notify_directives(hook, secret_file, *pairs):
    return [('SCEPNotifyWebhook', hook.url('/notify')),
            ('SCEPNotifyWebhookSecretFile', secret_file),
            ('SCEPWebhookCAFile', hook.tls_ca.ca_file)] + list(pairs)


@pytest.fixture
def notifying(httpd, hook, secret_file):
    with httpd.config(*notify_directives(hook, secret_file)):
        yield httpd


def only_call(hook):
    """The one notification the webhook got since it was reset (waits for it:
    it leaves after the device's answer); its signature was checked."""
    (call,) = hook.wait_calls(1)
    assert call.signature_ok, call
    assert call.path == '/notify'
    assert call.header('X-Smallstep-Webhook-ID') == PROVISIONER
    assert call.header('Content-Type').startswith('application/json')
    return call.json


def rfc3339(when):
    return when.strftime('%Y-%m-%dT%H:%M:%SZ')


def assert_names_certificate(doc, cert):
    """x509Certificate is the certificate cert, field by field."""
    c = doc['x509Certificate']
    der = cert.public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(c['raw']) == der
    assert int(c['serialNumber'], 16) == cert.serial_number
    assert c['serialNumber'] == c['serialNumber'].upper()
    assert c['sha1Thumbprint'] == hashlib.sha1(der).hexdigest().upper()
    assert c['sha256Thumbprint'] == hashlib.sha256(der).hexdigest().upper()
    assert c['subject'] == cert.subject.rfc4514_string()
    assert c['issuer'] == cert.issuer.rfc4514_string()
    assert c['notAfter'] == rfc3339(cert.not_valid_after)
    assert c['notBefore'] == rfc3339(cert.not_valid_before)


def assert_request_without_challenge(doc, msg):
    """x509CertificateRequest is the device's request without its password."""
    sent = x509.load_der_x509_csr(msg.inner)
    kept = x509.load_der_x509_csr(base64.b64decode(doc['x509CertificateRequest']['raw']))
    assert kept.subject == sent.subject
    assert kept.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) == \
        sent.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    assert not [a for a in kept.attributes
                if a.oid == x509.oid.AttributeOID.CHALLENGE_PASSWORD]
    assert doc['x509CertificateRequest']['subject'] == sent.subject.rfc4514_string()


def assert_common(doc, msg, outcome, message_type='PKCSReq'):
    assert doc['provisionerName'] == PROVISIONER
    assert doc['outcome'] == outcome
    assert doc['scepMessageType'] == message_type
    assert doc['scepTransactionID'] == msg.transaction_id
    assert doc['clientAddress'] == '127.0.0.1'
    stamp = datetime.datetime.strptime(doc['timestamp'], '%Y-%m-%dT%H:%M:%SZ')
    assert abs((datetime.datetime.utcnow() - stamp).total_seconds()) < 120


def test_issued_names_the_certificate_the_device_got(notifying, hook, scep, files, keys):
    hook.reset()
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'notify-issued.example.test',
                                           challenge=CHALLENGE), key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    doc = only_call(hook)
    assert_common(doc, msg, 'issued')
    assert doc['template'] == 'IPSECIntermediateOffline'
    assert_names_certificate(doc, cert)
    assert_request_without_challenge(doc, msg)
    assert CHALLENGE not in hook.calls[0].body.decode()
    assert not {'scepFailInfo', 'scepErrorCode', 'scepErrorDescription'} & set(doc)
    assert notifying.errlog.find(r'SCEP682: transaction %s: notification delivered \(HTTP 200\)'
                                 % msg.transaction_id)


def test_refused_says_fail_info_and_text(notifying, hook, scep, keys):
    hook.reset()
    key = keys.take()
    notifying.errlog.expect(r'SCEP\d{3}: PKCSReq for transaction .* refused: .*\(NDES event 29\)')
    msg, r, rep = scep.enroll(pki.make_csr(key, 'notify-refused.example.test',
                                           challenge='not-the-password'), key)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    doc = only_call(hook)
    assert_common(doc, msg, 'refused')
    assert doc['template'] == 'IPSECIntermediateOffline'  # chosen before the challenge
    assert doc['scepFailInfo'] == 'badRequest'
    assert doc['scepErrorCode'] == C.BAD_REQUEST
    assert doc['scepErrorDescription'] == rep.fail_info_text
    assert 'x509Certificate' not in doc
    assert_request_without_challenge(doc, msg)


def test_held_then_approved(httpd, hook, secret_file, scep, files, keys):
    with httpd.config(*notify_directives(hook, secret_file, ('SCEPCAType', 'Standalone'))):
        hook.reset()
        key = keys.take()
        msg, r, rep = scep.enroll(pki.make_csr(key, 'notify-held.example.test',
                                               challenge=CHALLENGE), key)
        checks.assert_pending(msg, r, rep)
        doc = only_call(hook)
        assert_common(doc, msg, 'held')
        assert doc['template'] == 'IPSECIntermediateOffline'
        assert not {'x509Certificate', 'scepFailInfo'} & set(doc)

        hook.reset()
        pm, r, rep = poll(scep, files, msg)
        checks.assert_pending(pm, r, rep)
        doc = only_call(hook)
        assert_common(doc, msg, 'held', 'CertPoll')
        assert 'x509CertificateRequest' not in doc  # a CertPoll carries no CSR

        approve(httpd, msg, '--by', 'alice')
        hook.reset()
        pm, r, rep = poll(scep, files, msg)
        cert = checks.assert_issued(pm, r, rep, files.ca)
        doc = only_call(hook)
        assert_common(doc, msg, 'issued', 'CertPoll')
        assert doc['template'] == 'IPSECIntermediateOffline'
        assert_names_certificate(doc, cert)


def test_scep_submit_end_to_end(notifying, hook, files, keys):
    """certmonger's scep-submit carries a PKCSReq built here from an
    `openssl req` CSR: the notification names the certificate it printed."""
    hook.reset()
    key = keys.take()
    csr = openssl_req(notifying.env.work, key, 'submit-notify', CHALLENGE)
    msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
    p = run_scep_submit(notifying, msg.der, 'submit-notify')
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    (cert,) = issued_certs(p.stdout, msg, files.ra_sign)
    doc = only_call(hook)
    assert_common(doc, msg, 'issued')
    assert_names_certificate(doc, cert)
    assert_request_without_challenge(doc, msg)


def test_renewal_is_notified(notifying, hook, scep, files, keys):
    hook.reset()
    old_key, new_key = keys.take(), keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(old_key, 'notify-renew.example.test',
                                           challenge=CHALLENGE), old_key)
    old = checks.assert_issued(msg, r, rep, files.ca)
    assert len(hook.wait_calls(1)) == 1
    hook.reset()
    msg, r, rep = renewal(scep, files, old_key, old, new_key, 'notify-renew.example.test')
    new = checks.assert_issued(msg, r, rep, files.ca)
    doc = only_call(hook)
    assert_common(doc, msg, 'issued', 'RenewalReq')
    assert_names_certificate(doc, new)
    assert_request_without_challenge(doc, msg)


def test_getcert_is_not_notified(notifying, hook, scep, files, keys):
    hook.reset()
    key = keys.take()
    msg, r, rep = scep.enroll(pki.make_csr(key, 'notify-getcert.example.test',
                                           challenge=CHALLENGE), key)
    cert = checks.assert_issued(msg, r, rep, files.ca)
    assert len(hook.wait_calls(1)) == 1
    hook.reset()
    pm = C.pki_message(C.issuer_and_serial(files.ca.subject, cert.serial_number), C.GETCERT,
                       keys.any(3), [files.ra_enc])
    r, rep = scep.send(pm)
    checks.assert_reply_ok(pm, rep)
    assert rep.pki_status == C.SUCCESS and rep.certs == [cert], str(rep)
    time.sleep(1)
    assert hook.calls == []


def enroll_timed(scep, keys, cn):
    key = keys.take()
    start = time.monotonic()
    msg, r, rep = scep.enroll(pki.make_csr(key, cn, challenge=CHALLENGE), key)
    return msg, r, rep, time.monotonic() - start


def test_webhook_down_does_not_hold_the_answer(httpd, hook, secret_file, scep, files, keys):
    down = 'https://localhost:%d/notify' % free_port(19700)  # nobody listens
    with httpd.config(*notify_directives(hook, secret_file, ('SCEPNotifyWebhook', None),
                                         ('SCEPNotifyWebhook', down))):
        httpd.errlog.expect(r'SCEP6[5-7]\d: ', r'SCEP680: ')
        msg, r, rep, took = enroll_timed(scep, keys, 'notify-down.example.test')
        checks.assert_issued(msg, r, rep, files.ca)
        assert took < 2, 'the device waited %.1f s for its answer' % took
        assert httpd.errlog.find(DROPPED % msg.transaction_id, wait=10)


def test_slow_webhook_is_cut_after_its_timeout(httpd, hook, secret_file, scep, files, keys):
    with httpd.config(*notify_directives(hook, secret_file, ('SCEPWebhookTimeout', '2'))):
        hook.reset('sleep')
        hook.sleep_seconds = 8
        httpd.errlog.expect(r'SCEP6[5-7]\d: ', r'SCEP680: ')
        msg, r, rep, took = enroll_timed(scep, keys, 'notify-slow.example.test')
        checks.assert_issued(msg, r, rep, files.ca)
        assert took < 2, 'the device waited %.1f s for its answer' % took
        start = time.monotonic()
        assert httpd.errlog.find(DROPPED % msg.transaction_id, wait=10)
        assert time.monotonic() - start < 5  # bounded by SCEPWebhookTimeout, not the sleep
    hook.reset()


def test_webhook_error_status_is_logged(notifying, hook, scep, files, keys):
    hook.reset('500')
    notifying.errlog.expect(r'SCEP681: ')
    msg, r, rep, took = enroll_timed(scep, keys, 'notify-500.example.test')
    checks.assert_issued(msg, r, rep, files.ca)
    assert notifying.errlog.find(r'\[scep:warn\].*SCEP681: transaction %s: the notification '
                                 r'webhook answered HTTP 500; the notification is dropped'
                                 % msg.transaction_id, wait=10)
    time.sleep(1)
    assert len(hook.calls) == 1  # tried once, never again
    hook.reset()


def test_wrong_secret_is_refused_by_the_webhook(httpd, hook, wh_dir, scep, files, keys):
    other = write_secret(os.path.join(wh_dir, 'other-secret'), b'another secret')
    with httpd.config(*notify_directives(hook, other)):
        hook.reset()
        httpd.errlog.expect(r'SCEP681: ')
        msg, r, rep, took = enroll_timed(scep, keys, 'notify-wrong-secret.example.test')
        checks.assert_issued(msg, r, rep, files.ca)
        (call,) = hook.wait_calls(1)
        assert not call.signature_ok
        assert httpd.errlog.find(r'SCEP681: transaction %s: the notification webhook answered '
                                 r'HTTP 401' % msg.transaction_id, wait=10)


@pytest.mark.parametrize('pairs,says', [
    (lambda s: [('SCEPNotifyWebhookSecretFile', s)],
     r'SCEP060: main server: SCEPNotifyWebhookSecretFile is set without SCEPNotifyWebhook '
     r'\(the URL\) \(NDES event 2\)'),
    (lambda s: [('SCEPNotifyWebhook', 'https://localhost:9/notify'),
                ('SCEPNotifyWebhookSecretFile', s + '-not-base64')],
     r'SCEP660: main server: SCEPNotifyWebhookSecretFile: .*-not-base64 is not base64 .*'
     r'\(NDES event 2\)'),
    (lambda s: [('SCEPNotifyWebhook', 'https://localhost:9/notify'),
                ('SCEPNotifyWebhookSecretFile', s + '-open')],
     r'SCEPNotifyWebhookSecretFile.*-open'),
])
def test_startup_refusals(httpd, secret_file, pairs, says):
    with open(secret_file + '-not-base64', 'w') as f:
        f.write('not base64 at all!\n')
    os.chmod(secret_file + '-not-base64', 0o600)
    shutil.copy(secret_file, secret_file + '-open')
    os.chmod(secret_file + '-open', 0o644)
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives + pairs(secret_file)))
    assert rc != 0, out
    assert re.search(says, out), out


@pytest.mark.parametrize('url', ['http://mdm.example.test/notify', 'ftp://127.0.0.1/notify'])
def test_url_must_be_https_or_loopback(httpd, url):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives +
                                          [('SCEPNotifyWebhook', url)]))
    assert rc != 0 and 'SCEPNotifyWebhook: ' in out, out
    with httpd.config(SCEPNotifyWebhook='http://127.0.0.1:9/notify'):  # loopback: allowed
        r = C.http_request('GET', httpd.url() + '?operation=GetCACaps')
        assert r.status == 200
