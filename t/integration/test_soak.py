"""Soak and crash consistency (marker `soak`: not part of the normal runs;
`pytest -m soak t/integration/test_soak.py`, build/test runs it on SQLite and
on PostgreSQL).

16 clients enroll for SCEP_SOAK_SECONDS (60) seconds: some with one-time
passwords from the admin page (a password serves a 0x20 and a 0x80 request
once each; a third, general-purpose request with it is refused), the others
with the static challenge, while Apache restarts gracefully every few
seconds. Afterwards: no 5xx, no failed connection, every SUCCESS a client
got is recorded once with its certificate, every issued record was answered
to a client, no serial number twice, no password used more often than
NDES's rule allows.

Then the same load while worker processes are killed with SIGKILL: the
records stay consistent (a request issued has its certificate and the other
way round), no client holds a certificate without its record, and the exact
messages whose answers were lost get, when sent again: SUCCESS with the
recorded certificate when it was recorded; otherwise, with the static
challenge, a new certificate; with a one-time password too, also when the
killed worker had spent the password before it recorded the request (the
cache lets the same transaction and key through again); only the
general-purpose request that every one-time client sends after both halves
is refused, as always (the summary printed names how often each happened).
"""
import collections
import concurrent.futures
import http.client
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Optional

import pytest

from sceptest import checks, pki
from sceptest import client as C
from sceptest.admin import basic_admin_config, get_password, make_htpasswd, otp_directives
from sceptest.httpd import CHALLENGE, Apache, Env, default_directives
from sceptest.process import children

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

pytestmark = pytest.mark.soak

SOAK_SECONDS = int(os.environ.get('SCEP_SOAK_SECONDS', '60'))
CRASH_SECONDS = max(SOAK_SECONDS // 2, 10)
CLIENTS = 16
OTP_CLIENTS = 6
GRACEFUL_EVERY = 4.0   # seconds between two graceful restarts
KILL_EVERY = 3.0       # seconds between two killed workers

KU_GENERAL = pki.key_usage(digital_signature=True, key_encipherment=True)  # 0xa0
KU_SIGN = pki.key_usage(digital_signature=True)                            # 0x80
KU_ENCRYPT = pki.key_usage(key_encipherment=True)                          # 0x20
# what a client does with one one-time password: two halves, then a request
# the rule refuses (the password is used up for both key usages)
OTP_SEQUENCE = (('encrypt', KU_ENCRYPT), ('sign', KU_SIGN), ('general', KU_GENERAL))

RE_REFUSED = r'SCEP\d{3}: .*\(NDES event (29|43)\)'


@dataclass
class Outcome:
    """One PKCSReq sent by a soak client and what came back."""
    msg: C.PkiMessage
    challenge: str            # CHALLENGE or a one-time password
    usage: str                # 'static', or the OTP_SEQUENCE name
    r: Optional[C.HttpResult] = None
    rep: Optional[C.CertRep] = None
    error: Optional[str] = None  # the connection failed (no answer)

    @property
    def http(self):
        return self.r.status if self.r else None

    @property
    def txid(self):
        return self.msg.transaction_id

    @property
    def one_time(self):
        return self.challenge != CHALLENGE

    @property
    def cert(self):
        return self.rep.certs[0] if self.succeeded else None

    @property
    def succeeded(self):
        return self.rep is not None and self.rep.pki_status == C.SUCCESS

    def __str__(self):
        if self.error:
            return '%s (%s): no answer: %s' % (self.txid, self.usage, self.error)
        return '%s (%s): HTTP %s %s' % (self.txid, self.usage, self.http, self.rep)


@pytest.fixture(scope='module')
def soak_server():
    """Its own server root (t/gen/<mpm>/soak): the static challenge and one-time
    passwords from the admin page (Basic authentication, plain HTTP)."""
    e = Env(REPO, name='soak', port_base=18700)
    e.clean()
    e.setup_pki()
    a = Apache(e)
    # the static challenge stays: both kinds of client at once
    a.base_directives = default_directives(e) + [
        d for d in otp_directives(password_max=5000) if d[0] != 'SCEPChallengePasswordFile']
    a.directives = list(a.base_directives)
    a.base_raw_extra = basic_admin_config(make_htpasswd(e))
    a.raw_extra = a.base_raw_extra
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    a.ca_cert = pki.load_cert_file(e.p('ca.crt'))
    # one enrollment first: the records' schema exists before the load
    key = pki.new_key()
    checks.assert_issued(*a.client.enroll(pki.make_csr(key, 'soak-first', challenge=CHALLENGE),
                                          key), a.ca_cert)
    yield a
    a.stop()


@pytest.fixture(scope='module')
def client_keys():
    """One key per client (RSA key generation is slow on two cores): a
    client's requests differ by transactionID, subject and challenge."""
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        return list(ex.map(lambda _: pki.new_key(), range(CLIENTS)))


class Load:
    """CLIENTS threads enrolling until the deadline (or stopping is set)."""

    def __init__(self, server, keys, seconds):
        self.server = server
        self.keys = keys
        self.deadline = time.time() + seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.outcomes = []
        self.admin_failures = []
        self.ex = concurrent.futures.ThreadPoolExecutor(CLIENTS)
        self.futures = [self.ex.submit(self._client, i) for i in range(CLIENTS)]

    def running(self):
        return time.time() < self.deadline and not self.stopping.is_set()

    def _send(self, n, key, challenge, usage, ku):
        csr = pki.make_csr(key, 'soak-%s-%s.example.test' % (usage, n), challenge=challenge, ku=ku)
        out = Outcome(C.pkcsreq(csr, key, [self.server.client.ca.ra_enc]), challenge, usage)
        try:
            out.r, out.rep = self.server.client.send(out.msg)
        except (OSError, http.client.HTTPException) as e:
            out.error = '%s: %s' % (type(e).__name__, e)
        with self.lock:
            self.outcomes.append(out)

    def _client(self, i):
        key, n = self.keys[i], 0
        while self.running():
            if i >= OTP_CLIENTS:
                self._send('%d-%d' % (i, n), key, CHALLENGE, 'static', None)
            else:
                try:
                    password, _ = get_password(self.server)
                except (OSError, AssertionError, http.client.HTTPException) as e:
                    with self.lock:
                        self.admin_failures.append('%s: %s' % (type(e).__name__, e))
                    continue
                for usage, ku in OTP_SEQUENCE:
                    self._send('%d-%d' % (i, n), key, password, usage, ku)
            n += 1

    def wait(self):
        for f in self.futures:
            f.result()
        self.ex.shutdown()
        return self.outcomes


def worker_pids(server):
    """The processes whose parent is the Apache parent."""
    return [pid for pid, _, _ in children(server.proc.pid)]


# --- checks -------------------------------------------------------------------

def records(server):
    """(requests by transactionID, certificates by serial as int)."""
    reqs = {row['transaction_id']: row for row in server.db_rows('SELECT * FROM scep_request')}
    certs = {}
    for row in server.db_rows('SELECT * FROM scep_cert'):
        serial = int(row['serial'], 16)
        assert serial not in certs, 'serial %X recorded twice' % serial
        certs[serial] = row
    return reqs, certs


def assert_records_consistent(server):
    """Every issued request has its certificate and every certificate its
    issued request (same transactionID and serial), no serial twice."""
    reqs, certs = records(server)
    issued = {txid: row for txid, row in reqs.items() if row['status'] == 'issued'}
    serials = collections.Counter(int(row['serial'], 16) for row in issued.values())
    twice = [s for s, n in serials.items() if n > 1]
    assert not twice, 'serials of more than one request: %s' % ['%X' % s for s in twice]
    for txid, row in issued.items():
        cert = certs.get(int(row['serial'], 16))
        assert cert is not None, 'request %s issued %s without a certificate row' % (
            txid, row['serial'])
        assert cert['transaction_id'] == txid, (row, cert['transaction_id'])
    for serial, cert in certs.items():
        req = issued.get(cert['transaction_id'])
        assert req is not None and int(req['serial'], 16) == serial, \
            'certificate %X without its issued request %s' % (serial, cert['transaction_id'])
    return issued, certs


def assert_success_recorded(server, outcomes):
    """Every certificate a client got is recorded once, for its transaction,
    and no two clients got the same serial."""
    reqs, certs = records(server)
    seen = {}
    for out in outcomes:
        if not out.succeeded:
            continue
        checks.assert_issued(out.msg, out.r, out.rep, server.ca_cert)
        serial = out.cert.serial_number
        assert seen.setdefault(serial, out.txid) == out.txid, \
            'serial %X issued to %s and %s' % (serial, seen[serial], out.txid)
        req = reqs.get(out.txid)
        assert req is not None and req['status'] == 'issued', \
            'a client got %X for %s, which is not recorded as issued: %r' % (serial, out.txid, req)
        assert int(req['serial'], 16) == serial, (out.txid, req['serial'], serial)
        assert serial in certs, 'certificate %X of %s is not recorded' % (serial, out.txid)


def assert_password_rule(outcomes):
    """Per one-time password: each of encryption and signature used at most
    once, general purpose at most once and never with either (counted by
    transaction, so a replay answered again is one use)."""
    used = collections.defaultdict(set)
    for out in outcomes:
        if out.one_time and out.succeeded:
            used[out.challenge].add((out.usage, out.txid))
    for password, uses in used.items():
        usages = collections.Counter(u for u, _ in uses)
        assert all(n == 1 for n in usages.values()), 'a password served %s' % dict(usages)
        assert 'general' not in usages or len(usages) == 1, \
            'a password served %s' % dict(usages)


def replay(server, out):
    """The exact message again (same DER)."""
    again = Outcome(out.msg, out.challenge, out.usage)
    again.r, again.rep = server.client.send(out.msg)
    return again


def assert_answered_recorded(server, outcomes, answered, before):
    """Every issued record (but those in before) was answered to a client; a
    record whose answer was lost is answered by a replay, with the recorded
    certificate."""
    issued, certs = assert_records_consistent(server)
    by_txid = {out.txid: out for out in outcomes}
    replays = []
    for txid, row in issued.items():
        if txid in answered or txid in before:
            continue
        assert txid in by_txid, 'issued request %s that no client sent' % txid
        again = replay(server, by_txid[txid])
        assert again.succeeded, 'recorded %s, replay answered %s' % (txid, again)
        assert again.cert.serial_number == int(row['serial'], 16), (txid, row['serial'])
        replays.append(again)
    return replays


def assert_no_unexpected_lines(server):
    time.sleep(0.3)
    bad = server.errlog.unexpected()
    assert not bad, 'unexpected error-log lines:\n' + '\n'.join(bad)


def summary(name, outcomes, **extra):
    statuses = collections.Counter(
        'no answer' if o.error else ('HTTP %d' % o.http if o.http != 200 else
                                     o.rep.status_name if o.rep else 'no CertRep')
        for o in outcomes)
    print('\n%s: %d requests: %s %s' % (name, len(outcomes), dict(statuses), extra))


# --- the tests -------------------------------------------------------------------

def test_soak_with_graceful_restarts(soak_server, client_keys):
    server = soak_server
    server.errlog.mark()
    server.errlog.expect(RE_REFUSED)
    before = set(records(server)[0])
    load = Load(server, client_keys, SOAK_SECONDS)
    restarts = 0
    try:
        while load.running():
            time.sleep(GRACEFUL_EVERY)
            if load.running():
                server.graceful()
                restarts += 1
    finally:
        load.stopping.set()
        outcomes = load.wait()
    summary('graceful soak', outcomes, restarts=restarts)
    assert restarts >= 1, 'no graceful restart during the load'
    assert not load.admin_failures, load.admin_failures[:5]
    lost = [str(o) for o in outcomes if o.error or o.http != 200 or o.rep is None]
    assert not lost, '%d requests without a CertRep:\n%s\nerror-log lines:\n%s' % (
        len(lost), '\n'.join(lost[:20]), '\n'.join(server.errlog.unexpected()[:40]))
    # the one-time passwords: two halves, then the refusal, every time
    by_password = collections.defaultdict(list)
    for out in outcomes:
        if out.one_time:
            by_password[out.challenge].append(out)
    assert by_password, 'no client enrolled with a one-time password'
    for outs in by_password.values():
        assert [(o.usage, o.rep.pki_status) for o in outs] == [
            ('encrypt', C.SUCCESS), ('sign', C.SUCCESS), ('general', C.FAILURE)], \
            [str(o) for o in outs]
        checks.assert_failure(outs[2].msg, outs[2].r, outs[2].rep, C.BAD_REQUEST)
    statics = [o for o in outcomes if not o.one_time]
    assert statics and all(o.succeeded for o in statics), \
        [str(o) for o in statics if not o.succeeded][:10]
    assert_success_recorded(server, outcomes)
    answered = {o.txid for o in outcomes if o.succeeded}
    assert not assert_answered_recorded(server, outcomes, answered, before), \
        'issued records whose answer no client got'
    assert_password_rule(outcomes)
    assert_no_unexpected_lines(server)


def test_killed_workers_leave_consistent_records(soak_server, client_keys):
    server = soak_server
    server.errlog.mark()
    server.errlog.expect(RE_REFUSED)
    before = set(records(server)[0])
    load = Load(server, client_keys, CRASH_SECONDS)
    killed = []
    rnd = random.Random(8894)
    try:
        while load.running():
            time.sleep(KILL_EVERY * (0.5 + rnd.random()))
            pids = worker_pids(server)
            if load.running() and pids:
                pid = rnd.choice(pids)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    finally:
        load.stopping.set()
        outcomes = load.wait()
    assert len(killed) >= 2, 'killed %d workers' % len(killed)
    fivexx = [str(o) for o in outcomes if o.http is not None and o.http >= 500]
    assert not fivexx, '\n'.join(fivexx[:20] + ['error-log lines:'] +
                                  server.errlog.unexpected()[:40])
    bad = [str(o) for o in outcomes if o.http is not None and (o.http != 200 or o.rep is None)]
    assert not bad, '\n'.join(bad[:20])
    assert_records_consistent(server)
    assert_success_recorded(server, outcomes)

    # the messages whose answers were lost, sent again exactly
    lost = [o for o in outcomes if o.error]
    reqs, _ = records(server)
    answers = collections.Counter()
    replays = []
    for out in lost:
        recorded = reqs.get(out.txid)
        again = replay(server, out)
        replays.append(again)
        assert again.http == 200 and again.rep is not None, str(again)
        checks.assert_reply_ok(out.msg, again.rep)
        if recorded is not None:
            assert recorded['status'] == 'issued', recorded
            assert again.succeeded and \
                again.cert.serial_number == int(recorded['serial'], 16), \
                'recorded %s, replay answered %s' % (recorded, again)
            answers['recorded: same certificate'] += 1
        elif again.succeeded:
            answers['not recorded: issued now'] += 1
        else:
            # refused by the password rule, as the general-purpose request
            # after both halves always is; a half spent by the killed worker
            # passes again for the same transaction and key
            assert out.one_time and out.usage == 'general', \
                'not recorded, replay refused: %s' % again
            checks.assert_failure(out.msg, again.r, again.rep, C.BAD_REQUEST)
            lines = server.errlog.find(r'%s.*\(NDES event (29|43)\)' % out.txid)
            assert lines, 'no refusal logged for %s' % out.txid
            answers['not recorded, %s: FAILURE badRequest, event %s' % (
                out.usage, lines[0].rsplit('event ', 1)[1].rstrip(')'))] += 1
    summary('killed workers', outcomes, killed=len(killed), lost=len(lost),
            replays=dict(answers))
    everything = outcomes + replays
    assert_success_recorded(server, everything)
    answered = {o.txid for o in everything if o.succeeded}
    assert_answered_recorded(server, everything, answered, before)
    assert_password_rule(everything)
    assert_no_unexpected_lines(server)
