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
"""The records database (mod_scep_store_dbd.c) on the database SCEP_DB names
(SQLite or the session's PostgreSQL server): the schema migrations of a new
database run once when many connections reach it together (SQLite's write
lock, PostgreSQL's advisory lock), and a restarted server finds the schema
current. Own server root t/gen/<mpm>/store.

The connections meet on the new database through CertPolls of unknown
transactions: each needs the records, none writes them. On PostgreSQL the
children meet there first, at their start: each checks the service
(mod_scep_store_dbd.c), which readies its connection."""
import concurrent.futures
import os
import re
import threading

import pytest

from sceptest import checks
from sceptest import client as C
from sceptest import db
from sceptest import pki
from sceptest.httpd import CHALLENGE, Apache, Env

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DEVICES = 12
RE_MIGRATED = r'SCEP302: database schema migrated to version (\d+)'


@pytest.fixture(scope='module')
def store_server():
    """A server on an empty database that has not answered a request yet."""
    e = Env(REPO, name='store', port_base=18550)
    e.clean()
    e.setup_pki()
    a = Apache(e)
    # prefork: several children from the start, each with its connection
    a.raw_extra = """<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 8
</IfModule>
"""
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    yield a
    a.stop()


def poll_unknown_together(server, keys, n):
    """CertPolls of n unknown transactions, all sent at once, each on its own
    connection: each is answered FAILURE badCertId from the records."""
    client = server.client
    msgs = [C.pki_message(C.issuer_and_subject(client.ca.ca.subject, pki.name('nobody-%d' % i)),
                          C.CERTPOLL, keys.any(i), [client.ca.ra_enc]) for i in range(n)]
    server.errlog.expect(r'SCEP\d{3}: .*(%s)' % '|'.join(m.transaction_id for m in msgs))
    barrier = threading.Barrier(len(msgs))

    def one(msg):
        barrier.wait()
        return client.send(msg)
    with concurrent.futures.ThreadPoolExecutor(len(msgs)) as ex:
        results = list(ex.map(one, msgs))
    for msg, (r, rep) in zip(msgs, results):
        checks.assert_failure(msg, r, rep, C.BAD_CERT_ID)


def enroll(server, keys, name):
    client = server.client
    key = keys.take()
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=CHALLENGE), key, [client.ca.ra_enc])
    r, rep = client.send(msg)
    checks.assert_issued(msg, r, rep, client.ca.ca)
    assert len(checks.request_rows(server, msg.transaction_id)) == 1


def schema_versions(server):
    return [row['version'] for row in
            server.db_rows('SELECT version FROM scep_schema ORDER BY version')]


def test_new_database_migrated_once(store_server, keys):
    with open(store_server.env.conf) as f:
        driver = re.search(r'^DBDriver (\S+)', f.read(), re.M).group(1)
    assert driver == {'sqlite': 'sqlite3', 'pgsql': 'pgsql'}[db.KIND]
    # the log from the server's start: on PostgreSQL the children migrate
    # at their start
    poll_unknown_together(store_server, keys, DEVICES)
    versions = schema_versions(store_server)
    assert versions and versions == list(range(1, len(versions) + 1)), \
        'scep_schema versions: %r' % versions
    migrated = [int(re.search(RE_MIGRATED, ln).group(1))
                for ln in store_server.errlog.find(RE_MIGRATED)]
    assert sorted(migrated) == versions, \
        'each migration logged once, got versions %r for %r' % (migrated, versions)
    enroll(store_server, keys, 'store.example.test')
    assert not store_server.errlog.unexpected()


def test_restarted_server_finds_schema_current(store_server, keys):
    before = schema_versions(store_server)
    store_server.stop()
    store_server.start()
    store_server.errlog.mark()
    poll_unknown_together(store_server, keys, 4)
    enroll(store_server, keys, 'store-again.example.test')
    assert not store_server.errlog.find(RE_MIGRATED, wait=0.3)
    assert schema_versions(store_server) == before
    assert not store_server.errlog.unexpected()

