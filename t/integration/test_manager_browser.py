"""The CA manager page in headless Chromium (issue 4): a device's request is
held (CertRep PENDING), a CA manager signs in, clicks Approve on that
request's row, and the device's next poll (CertPoll) receives its
certificate. Denying works the same way with a reason typed into the form.

The server is the admin server as a stand-alone CA (sceptest/admin.py,
held_config); dave is a CA manager.
"""
import os
import re

import pytest
from cryptography import x509

from sceptest import admin as A
from sceptest import browser as B
from sceptest import checks, pki
from sceptest import client as C
from sceptest import ldap as L


@pytest.fixture(scope='module')
def held(admin_httpd):
    with A.held_config(admin_httpd):
        yield admin_httpd


@pytest.fixture
def chromium(held):
    work = os.path.join(held.env.work, 'chromium-manager')
    os.makedirs(work, exist_ok=True)
    with B.Chromium(work, trust_spki=[B.spki_hash(held.server_cert)]) as b:
        yield b


def signed_in(chromium, user='dave'):
    """A tab that signs in with LDAP Basic as user when a page asks."""
    return chromium.tab(basic=(user, L.USERS[user]))


def test_approve_in_browser_device_gets_certificate(held, chromium, keys):
    dev = A.device(held)
    msg = A.hold(dev, keys.take(), pki.name('browser-approved.example.test', 'Example'),
                 dns=['browser-approved.example.test'])
    m, r, rep = A.poll(dev, msg)
    assert rep is not None and rep.pki_status == C.PENDING, str(rep)
    with signed_in(chromium) as tab:
        page = tab.navigate(A.manager_url(held))
        assert page.status == 200, (page.status, page.text)
        assert [c['scheme'] for c in page.auth_challenges] == ['basic'], page.auth_challenges
        assert page.headers.get('x-frame-options') == 'DENY', page.headers
        # the strict CSP lets the page's own style through (by its hash)
        assert tab.evaluate('getComputedStyle(document.querySelector("table"))'
                            '.borderCollapse') == 'collapse'
        assert msg.transaction_id in page.text
        assert 'DNS:browser-approved.example.test' in page.text
        page = tab.click('#txn-%s button[value="approve"]' % msg.transaction_id)
        # the POST answered 303 and the browser is back on the page
        assert page.status == 200, (page.status, page.text)
        assert 'done=approved' in page.url, page.url
        assert 'Request %s approved' % msg.transaction_id in page.text, page.text
        assert 'id="txn-%s"' % msg.transaction_id not in page.html
    row = checks.request_rows(held, msg.transaction_id)[0]
    assert row['status'] == 'issued' and row['decided_by'] == 'dave', row
    cert = A.assert_poll_issued(dev, msg)
    assert cert.subject == pki.name('browser-approved.example.test', 'Example')
    san = pki.ext(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ['browser-approved.example.test']
    # openssl agrees: the certificate chains to the CA
    ok, out = pki.openssl_verify(held.env.work, held.env.p('ca.crt'), cert)
    assert ok, out


def test_deny_in_browser(held, chromium, keys):
    dev = A.device(held)
    msg = A.hold(dev, keys.take(), 'browser-denied.example.test')
    with signed_in(chromium, 'carol') as tab:
        tab.navigate(A.manager_url(held))
        form = '#txn-%s form:has(button[value="deny"])' % msg.transaction_id
        tab.type_into('%s input[name="reason"]' % form, 'unknown device')
        page = tab.click('%s button' % form)
        assert page.status == 200, (page.status, page.text)
        assert 'Request %s denied' % msg.transaction_id in page.text, page.text
        assert re.search(r'browser-denied\.example\.test\s+rejected\s+carol\s+unknown device',
                         page.text), page.text
    row = checks.request_rows(held, msg.transaction_id)[0]
    assert row['status'] == 'rejected' and row['decided_by'] == 'carol', row
    assert row['reason'] and 'unknown device' in row['reason'], row
    held.errlog.expect(r'SCEP\d{3}: CertPoll for transaction %s refused: unknown device'
                       % msg.transaction_id)
    m, r, rep = A.poll(dev, msg)
    assert rep is not None and rep.pki_status == C.FAILURE, str(rep)
    assert rep.fail_info_text == 'unknown device', rep.fail_info_text
