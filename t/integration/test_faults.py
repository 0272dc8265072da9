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
"""Database faults (mod_scep_store_dbd.c, scep_store_sql.c): while the
records cannot be written, an enrollment gets a signed FAILURE badRequest
and one error-log line, and nothing is recorded; once the fault is fixed
the first enrollment succeeds, and so does every child's, although mod_dbd
lent them connections that failed. Own server root t/gen/<mpm>/faults.

The fault follows SCEP_DB: SQLite's file made read-only (mode 0400 for the
children's user) across a graceful restart, so that the new children open
their connections read-only, then given back its mode; PostgreSQL's server
(the session's own, sceptest/pgsql.py) stopped and started again, and
restarted under a small load of enrollments."""
import concurrent.futures
import os
import re
import threading
import time

import pytest

from sceptest import checks
from sceptest import client as C
from sceptest import db
from sceptest import pki
from sceptest.httpd import CHALLENGE, Apache, Env
from sceptest.process import children

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# the module's line for a records fault: the store's, or no connection at all
RE_RECORDS_FAULT = r'SCEP3\d\d: .*\(NDES event (23|31)\)'
# mod_dbd's own lines while PostgreSQL is down (AH00629 Can't connect, ...)
RE_DBD_LINES = r'\[dbd:(error|crit)\]'
CONCURRENT = 8


@pytest.fixture(scope='module')
def server():
    e = Env(REPO, name='faults', port_base=18650)
    e.clean()
    e.setup_pki()
    a = Apache(e)
    # which child answered each request (%P), to see every child recover
    a.base_raw_extra = a.raw_extra = 'CustomLog "%s" "%%P %%r %%>s"\n' % os.path.join(
        e.logs, 'pid_log')
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    yield a
    a.stop()


def enroll(server, key, name):
    """(msg, HttpResult, CertRep or None) of a PKCSReq with the challenge."""
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=CHALLENGE), key,
                    [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    return msg, r, rep


def assert_enrolled(server, outcome):
    msg, r, rep = outcome
    cert = checks.assert_issued(msg, r, rep, server.client.ca.ca)
    checks.assert_recorded(server, msg.transaction_id, cert)


def enroll_together(server, keys, n, tag):
    """n enrollments at once, each on its own HTTP connection (no keep-alive:
    they spread over the children and their threads)."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        return enroll(server, keys.any(i), '%s-%d.example.test' % (tag, i))
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def pid_log_size(server):
    try:
        return os.path.getsize(os.path.join(server.env.logs, 'pid_log'))
    except OSError:
        return 0


def pids_served(server, since):
    with open(os.path.join(server.env.logs, 'pid_log')) as f:
        f.seek(since)
        return {int(ln.split()[0]) for ln in f if 'PKIOperation' in ln}


def assert_every_child_recovers(server, keys, tag, rounds=8):
    """Rounds of concurrent enrollments until every child that was there
    when the fault ended has answered one; every enrollment succeeds."""
    before = {pid for pid, _, _ in children(server.proc.pid)}
    since = pid_log_size(server)
    for i in range(rounds):
        for outcome in enroll_together(server, keys, CONCURRENT, '%s-%d' % (tag, i)):
            assert_enrolled(server, outcome)
        alive = {pid for pid, _, _ in children(server.proc.pid)}
        missing = (before & alive) - pids_served(server, since)
        if not missing:
            return
    pytest.fail('children %s answered no enrollment in %d rounds' % (sorted(missing), rounds))


def fault_lines(server):
    return server.errlog.find(r'SCEP3\d\d: ', wait=0.5, levels=('error',))


def assert_reads_refused(server, keys):
    ca = server.client.ca
    for data, mtype in ((C.issuer_and_subject(ca.ca.subject, pki.name('poll.example.test')),
                         C.CERTPOLL),
                        (C.issuer_and_serial(ca.ca.subject, 1), C.GETCRL)):
        msg = C.pki_message(data, mtype, keys.any(2), [ca.ra_enc])
        r, rep = server.client.send(msg)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    assert len(fault_lines(server)) == 3, '\n'.join(server.errlog.lines())


class SQLiteReadOnly:
    """The database read-only for the children (who are not root, for whom
    modes do not count), across a graceful restart: the new children's
    connections are opened read-only, and stay so for their life. The fix
    gives the file and its -wal and -shm back their mode: SQLite makes those
    with the database's mode, so the ones made during the fault are
    read-only too."""

    def __init__(self, server):
        self.server = server
        self.path = server.env.db
        self.mode = os.stat(self.path).st_mode & 0o777

    def files(self):
        return [p for p in (self.path, self.path + '-wal', self.path + '-shm')
                if os.path.exists(p)]

    def begin(self):
        users = {euid for _, _, euid in children(self.server.proc.pid)}
        assert users and 0 not in users, 'children run as %s' % users
        for p in self.files():
            os.chmod(p, 0o400)
        self.server.graceful()

    def end(self):
        for p in self.files():
            os.chmod(p, self.mode)


class PostgreSQLDown:
    """The session's PostgreSQL server stopped (every session ends), then
    started again."""

    def __init__(self, server):
        self.cluster = server.env.database.cluster()

    def begin(self):
        self.cluster.halt()

    def end(self):
        self.cluster.resume()


def fault_of(server):
    return SQLiteReadOnly(server) if db.KIND == 'sqlite' else PostgreSQLDown(server)


def test_first_enrollment_after_a_fault_succeeds(server, keys):
    server.errlog.mark()
    # several connections in every child's pool, all lent once
    for outcome in enroll_together(server, keys, CONCURRENT, 'before'):
        assert_enrolled(server, outcome)
    fault = fault_of(server)
    fault.begin()
    try:
        server.errlog.mark()
        server.errlog.expect(RE_RECORDS_FAULT, RE_DBD_LINES)
        msg, r, rep = enroll(server, keys.any(0), 'during.example.test')
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'try again later' in rep.fail_info_text, rep.fail_info_text
        lines = fault_lines(server)
        assert len(lines) == 1 and re.search(RE_RECORDS_FAULT, lines[0]), \
            'expected one line for the fault:\n' + '\n'.join(server.errlog.lines())
        if db.KIND == 'pgsql':
            # nothing to read either: CertPoll and GetCRL answer alike
            assert_reads_refused(server, keys)
    finally:
        fault.end()
    assert not checks.request_rows(server, msg.transaction_id)
    server.errlog.mark()
    # the first enrollment after the fix, then every child's
    assert_enrolled(server, enroll(server, keys.any(1), 'first-after.example.test'))
    assert_every_child_recovers(server, keys, 'after')
    assert not server.errlog.unexpected()


class Load:
    """A few threads enrolling, each at most `count` times, until stopped."""

    def __init__(self, server, keys, threads=4, count=40):
        self.server = server
        self.stopping = threading.Event()
        self.outcomes = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(keys.any(i), i, count))
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, key, i, count):
        for n in range(count):
            if self.stopping.is_set():
                return
            try:
                outcome = enroll(self.server, key, 'load-%d-%d.example.test' % (i, n))
            except Exception as e:  # no answer at all: the test fails on it
                outcome = (None, None, e)
            with self.lock:
                self.outcomes.append(outcome)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)
        return self.outcomes


@pytest.mark.skipif(db.KIND != 'pgsql', reason='a database server to restart: SCEP_DB=pgsql')
def test_database_restarted_under_load(server, keys):
    cluster = server.env.database.cluster()
    server.errlog.mark()
    server.errlog.expect(RE_RECORDS_FAULT, RE_DBD_LINES)
    load = Load(server, keys)
    try:
        time.sleep(1)
        cluster.restart()
        time.sleep(1)
    finally:
        outcomes = load.stop()
    failed = 0
    for msg, r, rep in outcomes:
        assert msg is not None, 'no answer: %r' % rep
        assert r.status == 200 and rep is not None, 'HTTP %d: %r' % (r.status, r.body[:200])
        if rep.pki_status == C.SUCCESS:
            assert_enrolled(server, (msg, r, rep))
        else:
            checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
            assert not checks.request_rows(server, msg.transaction_id)
            failed += 1
    assert len(outcomes) > failed, 'no enrollment succeeded around the restart'
    # one line for each refused enrollment
    assert len(fault_lines(server)) == failed, '\n'.join(server.errlog.lines())
    server.errlog.mark()
    assert_every_child_recovers(server, keys, 'restarted')
    assert not server.errlog.unexpected()
