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
import base64
import collections
import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
import types
import urllib.parse

import pytest
from cryptography import x509

import test_faults as F
import test_soak as S
from sceptest import admin as A
from sceptest import checks
from sceptest import client as C
from sceptest import pki
from sceptest import process
from sceptest.httpd import APACHE, CHALLENGE, Apache, Env
from sceptest.service import copy_pki

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


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


# --- a service, not a crowd: a server with other certificates stops ----------

RE_OTHER_SERVICE = r'SCEP020: this server is not the enrollment service its database records'
RE_CHILD_FATAL = r'(returned a Fatal error|AH00(0|1)\d\d).*'
RE_RECORDS_FAULT = r'SCEP3\d\d: '
RE_DBD_LINES = r'\[dbd:(error|crit)\]'
RE_NO_CONNECTION_AT_START = r'SCEP023: no database connection from mod_dbd at the start'


def third_server(service, mpm, name, pki_of=None, directives=(), port_base=19400):
    """A server C on the service's database: its own root t/gen/<mpm>/<name>,
    its own PKI (a new CA key under the same CA name), or a copy of pki_of's
    files; not started (its port is chosen now: two of them at once need
    their own port_base)."""
    e = Env(REPO, mpm=mpm, name=name, port_base=port_base)
    e.clean()  # its own database, before it gets the service's
    e.database = service.database
    if pki_of is None:
        e.setup_pki()
    else:
        copy_pki(pki_of.env.pki, e.pki)
    c = Apache(e)
    c.directives = c.base_directives + list(directives)
    return c


def kill_leftovers(server):
    """Kills what is left of a server whose parent exited on a child's fatal
    error: prefork's parent exits without reclaiming its other children
    (httpd), which go on running until their own first use of the records."""
    for pid in process.with_argument(server.env.conf):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue  # gone meanwhile


def start_and_wait_for_exit(server, timeout=30):
    """Starts server (foreground) and waits for its parent to exit (its exit
    code tells nothing: 0 under event). The port may open first: the
    children check the service. Asserts httpd's line about a child's fatal
    error, which is what stopped it."""
    server.write_conf()
    with open(os.path.join(server.env.logs, 'stderr_log'), 'ab') as out:
        proc = subprocess.Popen([APACHE, '-d', server.env.gen, '-f', server.env.conf,
                                 '-DFOREGROUND'], stdout=out, stderr=subprocess.STDOUT,
                                env=server.command_env(), start_new_session=True)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc = proc
        server.stop()
        raise AssertionError('the server did not stop:\n' + server.log_tail())
    assert server.errlog.find(r'AH00050: Child \d+ returned a Fatal error\.\.\. Apache is '
                              r'exiting!', wait=0), server.log_tail()


def scepctl_service(service, server, *extra):
    pk = server.env.p
    p = subprocess.run([server.env.scepctl, 'service'] + service.database.scepctl_args()
                       + ['--ca-cert', pk('ca.crt'), '--sign-cert', pk('ra-sign.crt'),
                          '--enc-cert', pk('ra-enc.crt')] + list(extra),
                       capture_output=True, text=True, timeout=60, env=server.env.scepctl_env)
    return p.returncode, p.stdout + p.stderr


def sha256_hex(cert):
    return hashlib.sha256(pki.cert_der(cert)).hexdigest().upper()


def test_the_first_server_recorded_the_service(service):
    ca = service.a.client.ca
    (row,) = service.db_rows('SELECT * FROM scep_service')
    assert row['ca_sha256'] == sha256_hex(ca.ca)
    assert row['ra_sha256'] == '%s %s' % (sha256_hex(ca.ra_sign), sha256_hex(ca.ra_enc))
    assert row['issuer'] == ca.ca.subject.rfc4514_string()
    code, out = scepctl_service(service, service.a)
    assert code == 0 and 'the same service' in out, out


@pytest.mark.parametrize('mpm', ['event', 'prefork'])
def test_a_server_with_another_ca_key_stops(service, mpm):
    """C's CA has the service's CA name but another key: its first child
    refuses, with both digests, and APEXIT_CHILDFATAL stops the whole
    server, under either MPM. A and B serve on."""
    c = third_server(service, mpm, 'service-other-' + mpm)
    start_and_wait_for_exit(c)
    ours = sha256_hex(pki.load_cert_file(c.env.p('ca.crt')))
    theirs = sha256_hex(service.a.client.ca.ca)
    lines = c.errlog.find(RE_OTHER_SERVICE, levels=('emerg',))
    assert lines, c.log_tail()
    assert 'CA certificate SHA-256 %s where the records have %s' % (ours, theirs) in lines[0]
    assert "scepctl service --record" in lines[0]
    code, out = scepctl_service(service, c)
    assert code == 1 and 'not the service: CA certificate' in out, out
    for s in service.servers:
        assert s.client.get_ca_caps()


def test_a_server_in_simple_mode_stops(service):
    """The service's files but no RA certificates (the CA acts as RA): other
    RA certificates, refused as well."""
    c = third_server(service, None, 'service-simple', pki_of=service.a,
                     directives=[('SCEPRACertificate', None)])
    start_and_wait_for_exit(c)
    lines = c.errlog.find(RE_OTHER_SERVICE, levels=('emerg',))
    assert lines and 'RA certificates (signing encryption) SHA-256' in lines[0], c.log_tail()
    assert 'CA certificate SHA-256' not in lines[0]


def test_a_server_with_the_service_files_joins(service, keys):
    """C with a copy of the service's files starts and enrolls; the records
    keep one service row."""
    c = third_server(service, None, 'service-copy', pki_of=service.a)
    c.start()
    try:
        c.client = C.Client(c.url())
        c.client.get_ca_cert()
        msg, r, rep = enroll(c, keys.take(), 'third.example.test')
        checks.assert_issued(msg, r, rep, service.a.client.ca.ca)
        assert not c.errlog.find(RE_OTHER_SERVICE, wait=0)
    finally:
        c.stop()
    assert len(service.db_rows('SELECT * FROM scep_service')) == 1


def test_a_rollover_is_recorded_with_scepctl(service):
    """After `scepctl service --record` with C's files, C starts (and a
    server with the old files would stop); recording the old ones back
    restores the service."""
    c = third_server(service, None, 'service-rollover')
    try:
        code, out = scepctl_service(service, c, '--record')
        assert code == 0 and 'recorded' in out, out
        c.start()
        assert C.Client(c.url()).get_ca_caps()
        c.stop()
        old = third_server(service, None, 'service-old', pki_of=service.a, port_base=19500)
        start_and_wait_for_exit(old)
        assert old.errlog.find(RE_OTHER_SERVICE, levels=('emerg',)), old.log_tail()
    finally:
        c.stop()
        code, out = scepctl_service(service, service.a, '--record')
        assert code == 0, out
    code, out = scepctl_service(service, service.b)
    assert code == 0, out


def test_service_checked_at_first_use_when_the_database_was_down(service, keys):
    """PostgreSQL down while C starts: C starts (a warning), and the check
    runs at the first use of the records once the database is back: the
    service's files enroll; another CA key stops the server then."""
    cluster = service.database.cluster()
    for s in service.servers:
        s.errlog.expect(RE_RECORDS_FAULT, RE_DBD_LINES)
    same = third_server(service, None, 'service-late', pki_of=service.a)
    other = third_server(service, None, 'service-late-other', port_base=19500)
    for c in (same, other):
        c.startup_expected = [RE_NO_CONNECTION_AT_START, RE_RECORDS_FAULT, RE_DBD_LINES]
    cluster.halt()
    try:
        same.start()
        other.start()
    finally:
        cluster.resume()
    try:
        assert same.errlog.find(RE_NO_CONNECTION_AT_START), same.log_tail()
        same.client = C.Client(same.url())
        same.client.get_ca_cert()
        msg, r, rep = enroll(same, keys.take(), 'late.example.test')
        checks.assert_issued(msg, r, rep, service.a.client.ca.ca)
        # other: its first PKIOperation ends its child, and the server stops
        other.client = C.Client(other.url())
        other.client.get_ca_cert()
        try:
            enroll(other, keys.take(), 'late-other.example.test')
        except Exception:
            pass  # the connection ends with the child
        end = time.time() + 20
        while other.proc.poll() is None and time.time() < end:
            time.sleep(0.1)
        assert other.proc.poll() is not None, 'the other service still runs'
        other.proc = None
        assert other.errlog.find(RE_OTHER_SERVICE, levels=('emerg',)), other.log_tail()
    finally:
        same.stop()
        other.stop()
        kill_leftovers(other)


# --- one service: what one server did, the other continues --------------------

def test_renewal_at_b_of_a_certificate_issued_at_a(service, keys):
    """B knows A's certificate from the records: the renewal signed by it
    needs no password, and B answers enveloped to the old certificate."""
    ca = service.a.client.ca
    old_key, new_key = keys.take(), keys.take()
    cn = 'renewed-at-b.example.test'
    msg, r, rep = enroll(service.a, old_key, cn)
    old = checks.assert_issued(msg, r, rep, ca.ca)
    renewal = C.pkcsreq(pki.make_csr(new_key, cn), old_key, [service.b.client.ca.ra_enc],
                        signer_cert=old, message_type=C.RENEWALREQ)
    r, rep = service.b.client.send(renewal)
    new = checks.assert_issued(renewal, r, rep, ca.ca)
    assert pki.public_der(new) == pki.public_der(new_key)
    assert new.serial_number != old.serial_number
    assert rep.envelope_recipients == 1
    checks.assert_recorded(service.b, renewal.transaction_id, new, message_type=C.RENEWALREQ)
    assert service.b.errlog.find(r'SCEP240: .*%s.*renewal of certificate 0?%X\b' %
                                 (renewal.transaction_id, old.serial_number))
    assert not service.a.errlog.find(renewal.transaction_id, wait=0)
    # the other way round is refused alike: revoked at B, no renewal at A
    (row,) = service.db_rows('SELECT serial FROM scep_cert WHERE transaction_id = ?',
                             (renewal.transaction_id,))
    serial = row['serial']
    code, out, err = service.b.scepctl_records('revoke', serial)
    assert code == 0, out + err
    again = C.pkcsreq(pki.make_csr(keys.take(), cn), new_key, [ca.ra_enc], signer_cert=new,
                      message_type=C.RENEWALREQ)
    r, rep = service.a.client.send(again)
    checks.assert_failure(again, r, rep, C.BAD_REQUEST)
    assert service.a.errlog.expect_and_find(r'%s.*\(NDES event 28\)' % again.transaction_id)


@pytest.fixture
def manager_on_b(service):
    """Both servers hold every request (SCEPCAType Standalone); B also has
    the CA manager page over plain HTTP behind Basic authentication."""
    pairs = [('SCEPCAType', 'Standalone'), ('SCEPAdminAllowHTTP', 'On')]
    page = A.basic_admin_config(A.make_htpasswd(service.b.env), """<Location /certsrv/mscep_admin/manager>
    SetHandler scep-manager
</Location>
""")
    try:
        service.a.restart_with(pairs)
        service.b.restart_with(pairs, page)
        yield service
    finally:
        service.configure()


def manager_json(server, method='GET', form=None):
    auth = base64.b64encode(('%s:%s' % (A.ADMIN_USER, A.ADMIN_SECRET)).encode()).decode()
    headers = {'Authorization': 'Basic ' + auth, 'Accept': 'application/json'}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
    r = C.http_request(method, server.url('/certsrv/mscep_admin/manager/'), body, headers)
    return r, json.loads(r.body) if r.body else None


@pytest.fixture
def managers_on_both(service):
    """Both servers hold every request and have the CA manager page (plain
    HTTP, Basic authentication), as behind a load balancer that sends an
    administrator's requests anywhere; pairs_of(server) adds directives."""
    def configure(pairs_of):
        for s in service.servers:
            page = A.basic_admin_config(A.make_htpasswd(s.env), """<Location /certsrv/mscep_admin/manager>
    SetHandler scep-manager
</Location>
""")
            s.restart_with([('SCEPCAType', 'Standalone'), ('SCEPAdminAllowHTTP', 'On')]
                           + pairs_of(s), page)
    try:
        yield configure
    finally:
        service.configure()


def approve_with_the_others_form(service, keys, name):
    """A request held at A, approved at B with the form token of A's page:
    (the held request, B's answer)."""
    msg, r, rep = enroll(service.a, keys.take(), name)
    checks.assert_pending(msg, r, rep)
    r, page = manager_json(service.a)
    assert r.status == 200, r.body[:300]
    r, answer = manager_json(service.b, 'POST', {'csrf': page['csrf'], 'action': 'approve',
                                                  'txn': msg.transaction_id})
    return msg, r


def test_manager_form_of_one_server_is_taken_by_the_other(service, managers_on_both, keys):
    """With SCEPPasswordStore sql the servers share the form tokens' key
    (derived from the secret key file): A's form approves at B."""
    managers_on_both(lambda s: [('SCEPPasswordStore', 'sql'),
                                ('SCEPSecretKeyFile', service.secret_key(s))])
    msg, r = approve_with_the_others_form(service, keys, 'form-from-a.example.test')
    assert r.status == 200, r.body[:300]
    pm, r, rep = certpoll(service.a, msg)
    checks.assert_issued(pm, r, rep, service.a.client.ca.ca)


def test_manager_form_of_one_server_is_refused_by_another_without_a_shared_key(
        service, managers_on_both, keys):
    """Without it each server's key is its own: A's form is refused at B
    and nothing is decided."""
    managers_on_both(lambda s: [])
    service.b.errlog.expect(r'SCEP603: CA manager page: POST by .* refused')
    msg, r = approve_with_the_others_form(service, keys, 'form-refused.example.test')
    assert r.status == 403, (r.status, r.body[:300])
    assert service.b.errlog.find(r'SCEP603: .*approve')
    (row,) = checks.request_rows(service.a, msg.transaction_id)
    assert row['status'] == 'pending', row


def certpoll(server, msg):
    csr = x509.load_der_x509_csr(msg.inner)
    ca = server.client.ca
    pm = C.pki_message(C.issuer_and_subject(ca.ca.subject, csr.subject), C.CERTPOLL, msg.key,
                       [ca.ra_enc], subject=csr.subject, transaction_id=msg.transaction_id)
    r, rep = server.client.send(pm)
    return dataclasses.replace(pm, inner=msg.inner), r, rep


def test_held_at_a_approved_on_bs_manager_page_collected_at_a(manager_on_b, keys):
    service = manager_on_b
    msg, r, rep = enroll(service.a, keys.take(), 'approved-at-b.example.test')
    checks.assert_pending(msg, r, rep)
    # B's page lists A's request; a denial of another one goes the same way
    r, page = manager_json(service.b)
    assert r.status == 200, r.body[:300]
    assert msg.transaction_id in [t['transaction_id'] for t in page['pending']], page['pending']
    pm, r, rep = certpoll(service.a, msg)
    checks.assert_pending(pm, r, rep)
    r, answer = manager_json(service.b, 'POST', {'csrf': page['csrf'], 'action': 'approve',
                                                  'txn': msg.transaction_id})
    assert r.status == 200, r.body[:300]
    assert service.b.errlog.find(r'SCEP221: .*%s' % msg.transaction_id)
    pm, r, rep = certpoll(service.a, msg)
    cert = checks.assert_issued(pm, r, rep, service.a.client.ca.ca)
    checks.assert_recorded(service.a, msg.transaction_id, cert)
    (row,) = checks.request_rows(service.a, msg.transaction_id)
    assert row['decided_by'] == A.ADMIN_USER
    # and the other way: held at B, denied by scepctl, refused at A's poll
    msg2, r, rep = enroll(service.b, keys.take(), 'denied.example.test')
    checks.assert_pending(msg2, r, rep)
    code, out, err = service.a.scepctl_records('deny', '--reason', 'not ours',
                                              msg2.transaction_id)
    assert code == 0, out + err
    pm, r, rep = certpoll(service.a, msg2)
    checks.assert_failure(pm, r, rep, C.BAD_REQUEST)
    assert rep.fail_info_text == 'not ours'
    assert service.a.errlog.expect_and_find(r'SCEP205: CertPoll for transaction %s refused: '
                                            r'not ours' % msg2.transaction_id)


def test_postgresql_restarted_under_load_both_servers_recover(service, keys):
    """PostgreSQL restarted (every session ends) while both servers enroll:
    every answer is a CertRep, a refused one records nothing, and afterwards
    every child of each server enrolls again, without a restart of its own."""
    cluster = service.database.cluster()
    pids = {s: s.proc.pid for s in service.servers}
    for s in service.servers:
        s.errlog.expect(F.RE_RECORDS_FAULT, F.RE_DBD_LINES)
    loads = [F.Load(s, keys, threads=3) for s in service.servers]
    try:
        time.sleep(1)
        cluster.restart()
        time.sleep(1)
    finally:
        outcomes = [(s, load.stop()) for s, load in zip(service.servers, loads)]
    for s, outs in outcomes:
        failed = 0
        for msg, r, rep in outs:
            assert msg is not None, 'no answer: %r' % rep
            assert r.status == 200 and rep is not None, 'HTTP %d: %r' % (r.status, r.body[:200])
            if rep.pki_status == C.SUCCESS:
                checks.assert_recorded(s, msg.transaction_id,
                                       checks.assert_issued(msg, r, rep, s.client.ca.ca))
            else:
                checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
                assert not checks.request_rows(s, msg.transaction_id)
                failed += 1
        assert len(outs) > failed, 'no enrollment succeeded around the restart'
    for s in service.servers:
        F.assert_every_child_recovers(s, keys, 'pg-restarted')
        assert s.proc.pid == pids[s] and s.proc.poll() is None


def test_graceful_restart_of_one_server_while_the_other_serves(service, keys):
    """A restarts gracefully again and again while clients enroll at B and
    at A: B never stops, A's answers are all CertReps (its old children
    finish what they serve), and everything issued is recorded once."""
    loads = [F.Load(s, keys, threads=2, count=15) for s in service.servers]
    try:
        for _ in range(3):
            service.a.graceful()
            time.sleep(0.5)
    finally:
        outcomes = [o for load in loads for o in load.stop()]
    serials = []
    for msg, r, rep in outcomes:
        assert msg is not None, 'no answer: %r' % rep
        cert = checks.assert_issued(msg, r, rep, service.a.client.ca.ca)
        checks.assert_recorded(service.a, msg.transaction_id, cert)
        serials.append(cert.serial_number)
    assert len(set(serials)) == len(serials) > 0


# --- soak (marker `soak`: pytest -m soak t/integration/test_service.py) ------

SOAK_SECONDS = int(os.environ.get('SCEP_SOAK_SECONDS', '60'))
SOAK_CLIENTS = 12
SOAK_OTP_CLIENTS = 4


@pytest.fixture
def soak_service(service):
    """Both servers with the static challenge and one-time passwords shared
    through the records (SCEPPasswordStore sql, the same secret key), the
    admin page of each behind Basic authentication; the default again at
    the end."""
    for s in service.servers:
        s.restart_with([('SCEPPasswordStore', 'sql'),
                        ('SCEPSecretKeyFile', service.secret_key(s)),
                        ('SCEPAdminAllowHTTP', 'On'), ('SCEPPasswordMax', '5000')],
                       A.basic_admin_config(A.make_htpasswd(s.env)))
        s.errlog.expect(S.RE_REFUSED)
    yield service
    service.configure()


class ServiceLoad:
    """SOAK_CLIENTS threads enrolling until the deadline, each at A and at B
    in turn: most with the static challenge, SOAK_OTP_CLIENTS with a
    one-time password from one server's admin page, whose encryption half,
    signature half and then a general-purpose request (which the rule
    refuses) go to the servers in turn."""

    def __init__(self, service, keys, seconds):
        self.servers = service.servers
        self.deadline = time.time() + seconds
        self.lock = threading.Lock()
        self.outcomes = []  # (server, soak.Outcome)
        self.admin_failures = []
        self.admin_resets = 0  # admin pages a killed worker was serving
        self.ex = concurrent.futures.ThreadPoolExecutor(SOAK_CLIENTS)
        self.futures = [self.ex.submit(self._client, i, keys[i]) for i in range(SOAK_CLIENTS)]

    def running(self):
        return time.time() < self.deadline

    def _send(self, server, name, key, challenge, usage, ku):
        csr = pki.make_csr(key, 'service-soak-%s-%s.example.test' % (usage, name),
                           challenge=challenge, ku=ku)
        out = S.Outcome(C.pkcsreq(csr, key, [server.client.ca.ra_enc]), challenge, usage)
        try:
            out.r, out.rep = server.client.send(out.msg)
        except (OSError, http.client.HTTPException) as e:
            out.error = '%s: %s' % (type(e).__name__, e)
        with self.lock:
            self.outcomes.append((server, out))

    def _client(self, i, key):
        n = 0
        while self.running():
            name = '%d-%d' % (i, n)
            if i >= SOAK_OTP_CLIENTS:
                self._send(self.servers[(i + n) % 2], name, key, CHALLENGE, 'static', None)
            else:
                try:
                    password, _ = A.get_password(self.servers[(i + n) % 2])
                except (ConnectionResetError, http.client.RemoteDisconnected):
                    with self.lock:
                        self.admin_resets += 1
                    continue
                except (OSError, AssertionError, http.client.HTTPException) as e:
                    with self.lock:
                        self.admin_failures.append('%s: %s' % (type(e).__name__, e))
                    continue
                for k, (usage, ku) in enumerate(S.OTP_SEQUENCE):
                    self._send(self.servers[(i + n + k + 1) % 2], name, key, password, usage, ku)
            n += 1

    def wait(self):
        for f in self.futures:
            f.result()
        self.ex.shutdown()
        return self.outcomes


def replay_lost(service, outcomes):
    """What a killed worker left unanswered, sent again at the other server:
    SUCCESS (the recorded certificate, or a new one; a half the killed
    worker spent passes again for the same request), but for the
    general-purpose request after both halves, which is refused as always."""
    replays = []
    for server, out in outcomes:
        if not out.error:
            continue
        other = service.b if server is service.a else service.a
        again = S.Outcome(out.msg, out.challenge, out.usage)
        again.r, again.rep = other.client.send(out.msg)
        if out.one_time and out.usage == 'general':
            checks.assert_failure(out.msg, again.r, again.rep, C.BAD_REQUEST)
        else:
            assert again.succeeded, 'replay of %s at the other server: %s' % (out.txid, again)
        replays.append(again)
    return replays


@pytest.mark.soak
def test_service_soak_with_graceful_restarts_and_a_killed_worker(soak_service):
    """Both servers under load; each restarts gracefully in turn and a
    worker of each is killed. No 5xx; every certificate a client got is
    recorded once; every issued record was answered, or is answered when
    its message is sent again at the other server; no serial twice; no
    one-time password served more than NDES's rule allows, across the
    servers."""
    service = soak_service
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        keys = list(ex.map(lambda _: pki.new_key(), range(SOAK_CLIENTS)))
    view = types.SimpleNamespace(db_rows=service.db_rows, ca_cert=service.a.client.ca.ca,
                                 client=service.b.client)
    before = set(S.records(view)[0])
    load = ServiceLoad(service, keys, SOAK_SECONDS)
    events = collections.Counter()
    rnd = random.Random(8894)
    while load.running():
        time.sleep(2.0 + rnd.random())
        if not load.running():
            break
        server = service.servers[events['graceful'] % 2]
        if events['graceful'] % 3 == 2:
            pids = S.worker_pids(server)
            if pids:
                os.kill(rnd.choice(pids), signal.SIGKILL)
                events['killed'] += 1
        server.graceful()
        events['graceful'] += 1
    outcomes = load.wait()
    S.summary('service soak', [o for _, o in outcomes], **events)
    assert events['graceful'] >= 2 and events['killed'] >= 1, dict(events)
    assert not load.admin_failures, load.admin_failures[:5]
    # a killed worker ends the connections it serves, an admin page's too
    assert load.admin_resets <= SOAK_OTP_CLIENTS * events['killed'], (load.admin_resets, events)
    fivexx = [str(o) for _, o in outcomes if o.http is not None and o.http >= 500]
    assert not fivexx, '\n'.join(fivexx[:20])
    bad = [str(o) for _, o in outcomes if o.http is not None and (o.http != 200 or o.rep is None)]
    assert not bad, '\n'.join(bad[:20])
    answered = [o for _, o in outcomes if o.rep is not None]
    assert any(o.one_time and o.succeeded for o in answered), 'no one-time password served'
    wrong = [str(o) for o in answered if o.succeeded == (o.one_time and o.usage == 'general')]
    assert not wrong, wrong[:10]
    everything = [o for _, o in outcomes] + replay_lost(service, outcomes)
    S.assert_success_recorded(view, everything)
    succeeded = {o.txid for o in everything if o.succeeded}
    assert not S.assert_answered_recorded(view, everything, succeeded, before)
    S.assert_password_rule(everything)
    for s in service.servers:
        S.assert_no_unexpected_lines(s)
