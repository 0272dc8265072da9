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
"""Several Apache servers, one enrollment service (sceptest/service.py):
two real servers, A and B, on one real PostgreSQL database."""
from sceptest import checks
from sceptest import client as C
from sceptest import pki
from sceptest.httpd import CHALLENGE


def enroll(server, key, name, challenge=CHALLENGE):
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=challenge), key,
                    [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    return msg, r, rep


def test_both_servers_present_the_same_ca(service):
    a, b = service.a.client.ca, service.b.client.ca
    assert a.ca == b.ca and a.ra_sign == b.ra_sign and a.ra_enc == b.ra_enc


def test_transaction_sent_again_at_the_other_server_gets_the_same_answer(service, keys):
    key = keys.take()
    msg, r, rep = enroll(service.a, key, 'replayed.example.test')
    cert = checks.assert_issued(msg, r, rep, service.a.client.ca.ca)
    r2, rep2 = service.b.client.send(msg)
    again = checks.assert_issued(msg, r2, rep2, service.b.client.ca.ca)
    assert again == cert
    rows = service.db_rows('SELECT serial FROM scep_cert WHERE transaction_id = ?',
                           (msg.transaction_id,))
    assert len(rows) == 1
