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
"""mod_status's SCEP section (mod_scep_status.c, mod_scep_stats.c,
scep_stats.c): mod_status on a loopback /server-status, real enrollments
by certmonger's scep-submit and micromdm's scepclient (issued, refused,
held; a replay and polls not counted twice), a CA manager's approval and
denial on the manager page and scepctl's approval, a password from the
admin page, every figure of ?auto checked exactly, the same after a
graceful restart; the records' fault shown (SQLite's file read-only, or
PostgreSQL stopped) and ok again once the cause ends; two servers counted
apart. Own server root t/gen/<mpm>/status."""
import base64
import datetime
import json
import math
import os
import re
import subprocess
import urllib.parse

import pytest
from cryptography import x509

from sceptest import admin as A
from sceptest import checks, db, pki
from sceptest import client as C
from sceptest import templates as T
from sceptest.certmonger import REQ_CNF, issued_certs, run_scep_submit
from sceptest.httpd import CHALLENGE, MODULES_DIR, Apache, Env
from sceptest.process import children

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SCEPCLIENT = '/usr/bin/scepclient'
LEGACY_START = r'SCEP\d{3}: SCEPAllowLegacyAlgorithms On: single DES and MD5'
LEGACY_USE = r'SCEP\d{3}: .*(single DES|MD5)'
RE_RECORDS_FAULT = r'SCEP3\d\d: .*\(NDES event (23|31)\)'
RE_DBD_LINES = r'\[dbd:(error|crit)\]'
RE_TIME = r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$'

STATUS_CONF = f"""<IfModule !status_module>
    LoadModule status_module {MODULES_DIR}/mod_status.so
</IfModule>
<IfModule !authz_host_module>
    LoadModule authz_host_module {MODULES_DIR}/mod_authz_host.so
</IfModule>
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
"""
MANAGER_CONF = """<Location /certsrv/mscep_admin/manager>
    SetHandler scep-manager
</Location>
"""
# keyUsage digitalSignature alone: SCEPSignatureTemplate, held for a manager
HELD_TEMPLATE = 'Manual'


@pytest.fixture(scope='module')
def server():
    e = Env(REPO, name='status', port_base=18900)
    e.clean()
    e.setup_pki()
    a = Apache(e)
    a.base_directives += [('SCEPAllowLegacyAlgorithms', 'On'), ('SCEPPasswordMax', '7'),
                          ('SCEPPasswordValidity', '45'), ('SCEPAdminAllowHTTP', 'On'),
                          ('SCEPSignatureTemplate', HELD_TEMPLATE)]
    a.directives = list(a.base_directives)
    a.base_raw_extra = a.raw_extra = (
        STATUS_CONF + T.section(HELD_TEMPLATE, 'Issuance manual')
        + A.basic_admin_config(A.make_htpasswd(e), MANAGER_CONF))
    a.startup_expected = [LEGACY_START]
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    yield a
    a.stop()


def status_auto(server):
    """The SCEP lines of /server-status?auto as a dict; every line is
    "Key: value" with a key a reader can split off at the first colon."""
    r = C.http_request('GET', server.url('/server-status?auto'))
    assert r.status == 200, 'HTTP %d %r' % (r.status, r.body[:300])
    lines = [ln for ln in r.body.decode().splitlines() if ln.startswith('SCEP')]
    assert lines, 'no SCEP line in ?auto:\n' + r.body.decode()
    for ln in lines:
        assert re.match(r'^SCEP[A-Za-z]+(\[[A-Za-z0-9._/#-]+\])?: \S', ln), ln
    got = dict(ln.split(': ', 1) for ln in lines)
    assert len(got) == len(lines), 'a key twice:\n' + '\n'.join(lines)
    return got


def assert_figures(server, **want):
    got = status_auto(server)
    wrong = {k: (got.get('SCEP' + k), str(v)) for k, v in want.items()
             if got.get('SCEP' + k) != str(v)}
    assert not wrong, 'figures (got, wanted): %r\nall: %r' % (wrong, got)
    return got


def days_left(*certs):
    """Whole days until the earliest of certs expires, rounded down."""
    now = datetime.datetime.utcnow()
    return min(math.floor((c.not_valid_after - now).total_seconds() / 86400) for c in certs)


def csr_for_submit(server, key, name, challenge=CHALLENGE, key_usage=None):
    """An `openssl req` CSR as certmonger makes them (REQ_CNF), with another
    CN and, when given, another keyUsage line."""
    work = server.env.work
    keyf = os.path.join(work, name + '.key')
    with open(keyf, 'wb') as f:
        f.write(pki.key_pem(key))
    os.chmod(keyf, 0o600)
    cnf = REQ_CNF.format(challenge=challenge).replace('submit.example.test', name)
    if key_usage:
        cnf = re.sub(r'keyUsage = .*', 'keyUsage = ' + key_usage, cnf)
    cnff = os.path.join(work, name + '.cnf')
    with open(cnff, 'w') as f:
        f.write(cnf)
    out = os.path.join(work, name + '.csr.der')
    p = subprocess.run(['openssl', 'req', '-new', '-config', cnff, '-key', keyf, '-outform', 'DER',
                        '-out', out, '-sha256'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(out, 'rb') as f:
        return f.read()


def submit(server, keys, name, **kw):
    """A PKCSReq from an openssl req CSR, carried by scep-submit: (msg, the
    finished process)."""
    key = keys.take()
    csr = csr_for_submit(server, key, name, **kw)
    msg = C.pkcsreq(csr, key, [server.client.ca.ra_enc], cipher='aes128', digest_name='sha256')
    return msg, run_scep_submit(server, msg.der, name)


def submit_poll(server, msg, name):
    """The CertPoll of msg's request, carried by scep-submit."""
    subject = x509.load_der_x509_csr(msg.inner).subject
    poll = C.pki_message(C.issuer_and_subject(server.client.ca.ca.subject, subject), C.CERTPOLL,
                         msg.key, [server.client.ca.ra_enc], signer_cert=msg.signer_cert,
                         transaction_id=msg.transaction_id)
    return poll, run_scep_submit(server, poll.der, name + '-poll')


def assert_submit_issued(server, msg, p):
    assert p.returncode == 0, 'scep-submit exit %d:\n%s\n%s' % (p.returncode, p.stdout, p.stderr)
    (cert,) = issued_certs(p.stdout, msg, server.client.ca.ra_sign)
    assert pki.public_der(cert) == pki.public_der(msg.key)
    return cert


def status_of(server, msg):
    (row,) = checks.request_rows(server, msg.transaction_id)
    return row['status']


def run_scepclient(server, name, challenge=CHALLENGE):
    """micromdm's scepclient (single DES: SCEPAllowLegacyAlgorithms On) in a
    directory of its own: (its directory, the finished process)."""
    d = os.path.join(server.env.work, 'scepclient-' + name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    cnf = os.path.join(server.env.work, 'openssl-legacy.cnf')
    with open(cnf, 'w') as f:
        f.write('openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n'
                '[provider_sect]\ndefault = default_sect\nlegacy = legacy_sect\n'
                '[default_sect]\nactivate = 1\n[legacy_sect]\nactivate = 1\n')
    cmd = [SCEPCLIENT, '-private-key', os.path.join(d, 'key.pem'),
           '-certificate', os.path.join(d, 'cert.pem'),
           '-server-url', server.url('/certsrv/mscep/mscep.dll'),
           '-cn', name, '-keySize', '2048', '-challenge', challenge]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OPENSSL_CONF=cnf))
    return d, p


def manager(server, form=None):
    """The CA manager page's JSON (GET, or a POST of form)."""
    auth = base64.b64encode(('%s:%s' % (A.ADMIN_USER, A.ADMIN_SECRET)).encode()).decode()
    headers = {'Authorization': 'Basic ' + auth, 'Accept': 'application/json'}
    body = None
    method = 'GET'
    if form is not None:
        method = 'POST'
        body = urllib.parse.urlencode(form).encode()
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
    r = C.http_request(method, server.url('/certsrv/mscep_admin/manager/'), body, headers)
    assert r.status == 200, 'manager page: HTTP %d %r' % (r.status, r.body[:300])
    return json.loads(r.body)


def decide(server, action, msg, reason=None):
    form = {'csrf': manager(server)['csrf'], 'action': action, 'txn': msg.transaction_id}
    if reason:
        form['reason'] = reason
    return manager(server, form)


def hold(server, keys, name):
    """A request held for a manager (keyUsage digitalSignature: the Manual
    template), carried by scep-submit."""
    msg, p = submit(server, keys, name, key_usage='critical, digitalSignature')
    assert status_of(server, msg) == 'pending', p.stdout + p.stderr
    return msg


def test_figures_of_real_enrollments(server, keys):
    server.errlog.expect(LEGACY_USE, r'\(NDES event 29\)')
    ca = server.client.ca
    first = assert_figures(server, Issued=0, Refused=0, Held=0, Faults=0, PasswordsWaiting=0,
                           PasswordLimit=7, PasswordValidityMinutes=45,
                           CACertificateDays=days_left(ca.ca),
                           RACertificateDays=days_left(ca.ra_sign, ca.ra_enc),
                           RecordStore='ok', RecordStoreFaults=0)
    assert re.match(RE_TIME, first['SCEPSince']) and re.match(RE_TIME, first['SCEPRecordStoreSince'])
    assert 'SCEPRecordStoreLastFault' not in first
    assert not [k for k in first if '[' in k], 'one server: no per-server lines %r' % first

    # scep-submit: issued, then the same message again (answered from the
    # records: not issued twice), then a wrong challenge
    msg, p = submit(server, keys, 'status-submit.example.test')
    assert_submit_issued(server, msg, p)
    assert_figures(server, Issued=1, Refused=0, Held=0)
    assert_submit_issued(server, msg, run_scep_submit(server, msg.der, 'status-submit-again'))
    assert_figures(server, Issued=1, Refused=0, Held=0)
    msg, p = submit(server, keys, 'status-wrong.example.test', challenge='wrong')
    assert p.returncode != 0 and not checks.request_rows(server, msg.transaction_id)
    assert_figures(server, Issued=1, Refused=1, Held=0)

    # scepclient: issued, refused
    d, p = run_scepclient(server, 'status-sc.example.test')
    assert os.path.exists(os.path.join(d, 'cert.pem')), p.stdout + p.stderr
    d, p = run_scepclient(server, 'status-sc-wrong.example.test', challenge='wrong')
    assert not os.path.exists(os.path.join(d, 'cert.pem')), p.stdout + p.stderr
    assert_figures(server, Issued=2, Refused=2, Held=0)

    # held; the device's poll while held is no new decision
    approved = hold(server, keys, 'status-held-1.example.test')
    assert_figures(server, Issued=2, Refused=2, Held=1)
    poll, p = submit_poll(server, approved, 'status-held-1')
    assert status_of(server, approved) == 'pending'
    assert_figures(server, Issued=2, Refused=2, Held=1)
    # a manager approves on the page: issued then, fetched by the poll
    assert decide(server, 'approve', approved)['result'] == 'approved'
    assert_figures(server, Issued=3, Refused=2, Held=1)
    poll, p = submit_poll(server, approved, 'status-held-1b')
    assert_submit_issued(server, poll, p)
    assert_figures(server, Issued=3, Refused=2, Held=1)

    # a manager denies: refused then; the poll's refusal repeats it
    denied = hold(server, keys, 'status-held-2.example.test')
    assert decide(server, 'deny', denied, reason='not one of ours')['result'] == 'denied'
    assert_figures(server, Issued=3, Refused=3, Held=2)
    poll, p = submit_poll(server, denied, 'status-held-2')
    assert p.returncode != 0 and status_of(server, denied) == 'rejected'
    assert_figures(server, Issued=3, Refused=3, Held=2)

    # scepctl approves: issued when the device polls
    later = hold(server, keys, 'status-held-3.example.test')
    rc, out, err = server.scepctl_records('approve', '--by', 'ops', later.transaction_id)
    assert rc == 0, out + err
    assert_figures(server, Issued=3, Refused=3, Held=3)
    poll, p = submit_poll(server, later, 'status-held-3')
    assert_submit_issued(server, poll, p)
    assert_figures(server, Issued=4, Refused=3, Held=3)

    # a password from the admin page waits
    password, doc = A.get_password(server)
    assert password
    before = assert_figures(server, Issued=4, Refused=3, Held=3, Faults=0, PasswordsWaiting=1,
                            RecordStore='ok', RecordStoreFaults=0)

    # a graceful restart keeps every figure, and the start of the counting
    server.errlog.expect(LEGACY_START)
    server.graceful()
    after = status_auto(server)
    for k in ('SCEPSince', 'SCEPRecordStoreSince'):
        assert after[k] == before[k], (k, before, after)
    assert_figures(server, Issued=4, Refused=3, Held=3, Faults=0, PasswordsWaiting=1)

    # the HTML page's section says the same
    r = C.http_request('GET', server.url('/server-status'))
    assert r.status == 200
    page = r.body.decode()
    assert '<h2>SCEP</h2>' in page, page[-2000:]
    assert re.search(r'<td>Certificates issued</td><td>4</td>', page), page[-2000:]
    assert re.search(r'<td>Records</td><td>ok</td>', page), page[-2000:]
    r = C.http_request('GET', server.url('/server-status?notable'))
    assert 'Certificates issued: 4<br />' in r.body.decode(), r.body.decode()[-2000:]


class SQLiteReadOnly:
    """The database read-only for the children (not root) across a graceful
    restart, then its mode (and its -wal's, -shm's) given back, as
    test_faults.py does."""

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
        self.server.errlog.expect(LEGACY_START)
        self.server.graceful()

    def end(self):
        for p in self.files():
            os.chmod(p, self.mode)


class PostgreSQLDown:
    def __init__(self, server):
        self.cluster = server.env.database.cluster()

    def begin(self):
        self.cluster.halt()

    def end(self):
        self.cluster.resume()


def enroll(server, keys, name):
    key = keys.take()
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=CHALLENGE), key, [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    return msg, r, rep


def test_records_fault_shown_and_ended(server, keys):
    before = status_auto(server)
    issued, faults = int(before['SCEPIssued']), int(before['SCEPFaults'])
    store_faults = int(before['SCEPRecordStoreFaults'])
    fault = SQLiteReadOnly(server) if db.KIND == 'sqlite' else PostgreSQLDown(server)
    fault.begin()
    try:
        server.errlog.expect(RE_RECORDS_FAULT, RE_DBD_LINES)
        began = datetime.datetime.utcnow().replace(microsecond=0)
        msg, r, rep = enroll(server, keys, 'status-during.example.test')
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'try again later' in rep.fail_info_text, rep.fail_info_text
        during = assert_figures(server, RecordStore='fault', RecordStoreFaults=store_faults + 1,
                                Faults=faults + 1, Issued=issued)
        since = datetime.datetime.strptime(during['SCEPRecordStoreSince'], '%Y-%m-%dT%H:%M:%SZ')
        assert began <= since, (began, during)
        assert during['SCEPRecordStoreLastFault'] == during['SCEPRecordStoreSince'], during
        # the status page reads no records: still the fault it saw
        assert_figures(server, RecordStore='fault')
    finally:
        fault.end()
    msg, r, rep = enroll(server, keys, 'status-after.example.test')
    checks.assert_issued(msg, r, rep, server.client.ca.ca)
    after = assert_figures(server, RecordStore='ok', RecordStoreFaults=store_faults + 1,
                           Faults=faults + 1, Issued=issued + 1)
    assert after['SCEPRecordStoreSince'] >= during['SCEPRecordStoreSince'], (during, after)
    assert after['SCEPRecordStoreLastFault'] == during['SCEPRecordStoreLastFault']


def test_two_servers_counted_apart(server, keys):
    """A virtual host with SCEP on a port of its own: its own figures,
    named by its ServerName and port, beside the whole server's sums."""
    port = server.env.port + 1
    vhost = f"""Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName second.example.test
    SCEPCACertificateFile {server.env.p('ca.crt')}
</VirtualHost>
"""
    # not config(): its restart afterwards expects no startup warning, and
    # this server's SCEPAllowLegacyAlgorithms On warns at each start
    server.errlog.expect(LEGACY_START)
    server.restart_with(raw_extra=vhost)
    try:
        before = status_auto(server)
        other = C.Client('http://127.0.0.1:%d/certsrv/mscep/mscep.dll' % port)
        other.get_ca_cert()
        key = keys.take()
        msg = C.pkcsreq(pki.make_csr(key, 'status-second.example.test', challenge=CHALLENGE),
                        key, [other.ca.ra_enc])
        r, rep = other.send(msg)
        checks.assert_issued(msg, r, rep, other.ca.ca)
        got = status_auto(server)
        mine = 'SCEPIssued[second.example.test/%d]' % port
        assert got.get(mine) == str(int(before.get(mine, '0')) + 1), got
        assert int(got['SCEPIssued']) == int(before['SCEPIssued']) + 1, got
        # each server's lines: the counters and the records of both
        per_server = [k for k in got if k.startswith('SCEPIssued[')]
        assert len(per_server) == 2, got
        assert sum(int(got[k]) for k in per_server) == int(got['SCEPIssued']), got
        assert got['SCEPRecordStore[second.example.test/%d]' % port] == 'ok', got
    finally:
        server.restart_with()
