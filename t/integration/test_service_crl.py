# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The CRL of a service of two servers (sceptest/service.py): the newest
CRL is kept in the shared records (scep_crl) and both servers serve it,
the same bytes, until a revocation at either (or the middle of its
validity) makes the next, which one server signs; cRLNumbers increase
across the service."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509

from sceptest import checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE

CRL_PATH = '/certsrv/mscep/crl/ca.crl'
CRL_LOCATION = '<Location /certsrv/mscep/crl>\n    SetHandler scep-crl\n</Location>\n'
HOUR = 3600


@pytest.fixture(scope='module')
def crl_service(service):
    """Both servers with the scep-crl handler."""
    for s in service.servers:
        s.restart_with((), CRL_LOCATION)
    yield service
    for s in service.servers:
        s.restart_with()


def get_crl(server, keys):
    """GetCRL at server: the CRL's DER."""
    ca = server.client.ca
    msg = C.pki_message(C.issuer_and_serial(ca.ca.subject, 1), C.GETCRL, keys.any(3),
                        [ca.ra_enc])
    r, rep = server.client.send(msg)
    checks.assert_reply_ok(msg, rep)
    assert rep.pki_status == C.SUCCESS, str(rep)
    return rep.crls[0]


def fetch_crl(server):
    """The CRL at server's scep-crl URL: its DER."""
    r = C.http_request('GET', server.url(CRL_PATH))
    assert r.status == 200, 'HTTP %d' % r.status
    assert r.content_type == 'application/pkix-crl'
    return r.body


def crl_of(server, der):
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(server.client.ca.ca.public_key())
    return crl


def number(der):
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def kept_numbers(service):
    return [int(r['crl_number']) for r in
            service.db_rows('SELECT crl_number FROM scep_crl ORDER BY crl_number')]


def enroll(server, keys, name):
    """A certificate issued at server and its serial as the records write it."""
    key = keys.take()
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=CHALLENGE), key, [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    cert = checks.assert_issued(msg, r, rep, server.client.ca.ca)
    rows = checks.cert_rows_of_serial(server, cert.serial_number)
    assert len(rows) == 1, rows
    return cert, rows[0]['serial']


def revoke_at(server, serial, reason='keyCompromise'):
    code, out, err = server.scepctl_records('revoke', '--reason', reason, serial)
    assert code == 0, err


def make_due(service, hours=100):
    """The kept CRLs signed hours earlier (past the middle of the default
    168 hours), as if time had passed."""
    service.db_execute('UPDATE scep_crl SET this_update = this_update - ?,'
                       ' next_update = next_update - ?', (hours * HOUR, hours * HOUR))


def test_both_servers_serve_the_same_crl(crl_service, keys):
    a, b = crl_service.a, crl_service.b
    first = get_crl(a, keys)
    crl_of(a, first)
    assert get_crl(b, keys) == first
    assert fetch_crl(a) == first
    assert fetch_crl(b) == first
    assert kept_numbers(crl_service)[-1] == number(first)


def test_revoked_at_a_is_listed_by_b(crl_service, keys):
    a, b = crl_service.a, crl_service.b
    before = get_crl(b, keys)
    kept, _ = enroll(a, keys, 'crl-kept.service.test')
    gone, serial = enroll(a, keys, 'crl-gone.service.test')
    assert get_crl(b, keys) == before  # an issuance is no revocation
    revoke_at(a, serial)
    for der in (get_crl(b, keys), fetch_crl(b)):
        crl = crl_of(b, der)
        entry = crl.get_revoked_certificate_by_serial_number(gone.serial_number)
        assert entry is not None, 'the certificate revoked at A is not on B\'s CRL'
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
            x509.ReasonFlags.key_compromise
        assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None
        assert number(der) > number(before)
    # A serves what B signed
    assert get_crl(a, keys) == fetch_crl(b)


def test_crl_numbers_increase_across_servers(crl_service, keys):
    a, b = crl_service.a, crl_service.b
    numbers = [number(get_crl(a, keys))]
    for i, (issuer, server) in enumerate(((a, b), (b, a), (a, a), (b, b))):
        _, serial = enroll(issuer, keys, 'crl-number-%d.service.test' % i)
        revoke_at(issuer, serial, 'superseded')
        numbers.append(number(get_crl(server, keys)))
        make_due(crl_service)
        numbers.append(number(fetch_crl(b if server is a else a)))
    assert numbers == sorted(set(numbers)), numbers
    # a server whose clock is behind the one that signed goes on from its number
    ahead = numbers[-1] + 3600 * 10 ** 6
    crl_service.db_execute('UPDATE scep_crl SET crl_number = ? WHERE crl_number = ?',
                           (ahead, numbers[-1]))
    make_due(crl_service)
    assert number(get_crl(b, keys)) == ahead + 1
    assert len(kept_numbers(crl_service)) <= 4


def test_one_server_signs_the_next_crl(crl_service, keys):
    """Twenty fetches at once, half at each server, of a CRL that is due:
    one server signs, the others serve what it signed."""
    a, b = crl_service.a, crl_service.b
    old = number(get_crl(a, keys))
    make_due(crl_service)
    with ThreadPoolExecutor(20) as pool:
        served = list(pool.map(lambda i: fetch_crl((a, b)[i % 2]), range(20)))
    assert len(set(served)) == 1, '%d different CRLs' % len(set(served))
    assert number(served[0]) > old
    assert [n for n in kept_numbers(crl_service) if n > old] == [number(served[0])]
