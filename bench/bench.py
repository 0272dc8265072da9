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
"""The enrollment benchmark: mod_scep in Apache against micromdm's
scepserver and against the RSA limit of the machine. bench/run starts it
inside a network namespace that has only loopback; bench/README.md says
what it measures and how.
"""
import argparse
import datetime
import json
import os
import re
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

os.environ['SCEP_DB'] = 'sqlite'   # the benchmark's records are SQLite (sceptest.db)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 't', 'integration'))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

import messages  # noqa: E402
from sceptest import client as C  # noqa: E402
from sceptest import hsm as H  # noqa: E402
from sceptest import pki  # noqa: E402
from sceptest.httpd import Apache, Env, default_directives  # noqa: E402
from sceptest.paths import gen_dir  # noqa: E402
from sceptest.process import terminate  # noqa: E402
from sceptest.service import Service  # noqa: E402

NPROC = os.cpu_count() or 1
CONNECTIONS = (1, 8, 32)
GROWTH_CERTS = 100000
MICROMDM_PORT = 28016
WARMUP_SECONDS = 1
SCEP_PATH = '/certsrv/mscep/mscep.dll'

# The MPM the README recommends for enrollment (bench/run --mpm): its
# threads keep their keep-alive connections between requests, where the
# event MPM hands each back to its listener thread and wakes a worker for
# the next request (twice the context switches).
MPM = 'worker'

# The Apache tuning the README recommends for enrollment: one process per
# core, started at once and never reaped (no spare process
# churn; every thread keeps its database connection and prepared
# statements), threads enough for the connections, a database connection
# for every thread, SQLite commits without an fsync (WAL with
# synchronous=NORMAL: a power cut may lose the last commits, never the
# database), keep-alive connections that are not closed after 100 requests,
# no .htaccess lookups, and no per-request info lines in the error log.
def mpm_tuning(processes, threads):
    """All processes (of threads threads each) at start, none reaped."""
    workers = processes * threads
    threaded = f"""
    StartServers {processes}
    ServerLimit {processes}
    ThreadsPerChild {threads}
    ThreadLimit {threads}
    MaxRequestWorkers {workers}
    MinSpareThreads 1
    MaxSpareThreads {workers}
    MaxConnectionsPerChild 0"""
    return f"""
<IfModule mpm_event_module>{threaded}
</IfModule>
<IfModule mpm_worker_module>{threaded}
</IfModule>
<IfModule mpm_prefork_module>
    StartServers {processes}
    ServerLimit {processes}
    MaxRequestWorkers {processes}
    MinSpareServers 1
    MaxSpareServers {processes}
    MaxConnectionsPerChild 0
</IfModule>
"""


SQLITE_NORMAL = 'DBDInitSQL "PRAGMA synchronous = NORMAL"\n'
COMMON_TUNING = """DBDMin 4
DBDKeep 32
DBDMax 32
MaxKeepAliveRequests 0
<Directory />
    AllowOverride None
</Directory>
LogLevel warn
"""
APACHE_TUNING = mpm_tuning(NPROC, 32) + SQLITE_NORMAL + COMMON_TUNING
# The records' default durability (SQLite's synchronous=FULL: every commit
# synced), and PostgreSQL (its own durability settings).
APACHE_TUNING_DURABLE = mpm_tuning(NPROC, 32) + COMMON_TUNING
APACHE_TUNING_PGSQL = APACHE_TUNING_DURABLE
# bench/run --mpm: (MPM, processes, threads per process) compared at 8
# connections; the recommended one first.
MPM_SETUPS = (('worker', NPROC, 32), ('worker', NPROC, 8), ('event', NPROC, 32),
              ('event', NPROC, 8), ('event', 1, 64), ('prefork', 12, 1), ('prefork', 32, 1))
SERVICE_CONNECTIONS = 8


def say(*args):
    print('bench:', *args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


# ----------------------------------------------------------------------
# the limit

def rsa_sign_rate(seconds):
    """RSA-2048 signatures per second on all cores (openssl speed -multi)."""
    out = run(['openssl', 'speed', '-multi', str(NPROC), '-seconds', str(seconds),
               'rsa2048']).stdout
    m = re.search(r'^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+[\d.]+\s*$', out, re.M)
    if not m:
        raise RuntimeError('cannot read openssl speed output:\n' + out)
    return float(m.group(1))


def sign_cpu_ms(count=300):
    """CPU milliseconds of one RSA-2048 signature (OpenSSL through
    python3-cryptography), from the process's CPU time: unlike openssl
    speed's rate, it does not move with other work on the machine."""
    key = pki.new_key()
    start = time.process_time()
    for i in range(count):
        key.sign(b'%d' % i, padding.PKCS1v15(), hashes.SHA256())
    return 1000 * (time.process_time() - start) / count


# ----------------------------------------------------------------------
# process accounting (/proc)

TICK = os.sysconf('SC_CLK_TCK')


def _stat(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # after the name: state ppid ... utime(14) stime cutime cstime, 1-based
    return int(fields[1]), [int(x) for x in fields[11:15]]


def _switches(pid):
    """Voluntary and involuntary context switches of all threads of pid."""
    out = [0, 0]
    for tid in os.listdir('/proc/%d/task' % pid):
        with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
            for line in f:
                if line.startswith('voluntary_ctxt_switches'):
                    out[0] += int(line.split()[1])
                elif line.startswith('nonvoluntary_ctxt_switches'):
                    out[1] += int(line.split()[1])
    return out


def process_tree(root):
    """root and its children (Apache's parent and workers)."""
    pids = [root]
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                if _stat(int(name))[0] == root:
                    pids.append(int(name))
            except (OSError, IndexError):
                pass
    return pids


def usage(roots):
    """User and system CPU seconds of the roots and their children, living
    and reaped, and the living threads' context switches (voluntary: a
    wait for I/O or a lock; involuntary: preempted); with the CPU seconds
    of this process's reaped children (the load generators)."""
    out = {'user': 0.0, 'sys': 0.0, 'vcs': 0, 'ics': 0}
    for root in roots:
        for pid in process_tree(root):
            try:
                times = _stat(pid)[1]
                vcs, ics = _switches(pid)
            except OSError:
                continue
            out['user'] += (times[0] + (times[2] if pid == root else 0)) / TICK
            out['sys'] += (times[1] + (times[3] if pid == root else 0)) / TICK
            out['vcs'] += vcs
            out['ics'] += ics
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    out['load'] = own.ru_utime + own.ru_stime
    return out


def account(res, before, after):
    """Per successful enrollment: server CPU (user, system), context
    switches, and the load generator's CPU."""
    n = res['success']
    per = (lambda x: 1000 * x / n) if n else (lambda x: float('nan'))
    res['cpu_s'] = after['user'] + after['sys'] - before['user'] - before['sys']
    res['cpu_ms'] = per(res['cpu_s'])
    res['user_ms'] = per(after['user'] - before['user'])
    res['sys_ms'] = per(after['sys'] - before['sys'])
    res['switches'] = (after['vcs'] + after['ics'] - before['vcs'] - before['ics']) / n \
        if n else float('nan')
    res['load_ms'] = per(after['load'] - before['load'])


def reset_peak_rss(root):
    for pid in process_tree(root):
        try:
            with open('/proc/%d/clear_refs' % pid, 'w') as f:
                f.write('5')
        except OSError:
            pass


def peak_rss_mb(root):
    """Sum of the processes' peak resident sets since reset_peak_rss()."""
    kb = 0
    for pid in process_tree(root):
        try:
            with open('/proc/%d/status' % pid) as f:
                m = re.search(r'^VmHWM:\s+(\d+) kB', f.read(), re.M)
            kb += int(m.group(1)) if m else 0
        except OSError:
            pass
    return kb / 1024


# ----------------------------------------------------------------------
# load

def wrk(url, connections, seconds, *script_args):
    cmd = ['wrk', '-t1', '-c%d' % connections, '-d%ds' % seconds, '--timeout', '10s',
           '-s', os.path.join(HERE, 'wrk.lua'), url, '--'] + [str(a) for a in script_args]
    out = run(cmd).stdout
    m = re.search(r'^bench-wrk (\{.*\})$', out, re.M)
    if not m:
        raise RuntimeError('no result line from wrk:\n' + out)
    return json.loads(m.group(1))


def measure(server, connections, seconds, pool, operation='PKIOperation', first=0):
    """One measured wrk run against a started server (after a warm-up at the
    same concurrency); its figures as a dict. PKIOperation: the pool's
    messages from number `first` on."""
    url = server.url + '?operation=' + operation
    if operation == 'PKIOperation':
        warm = wrk(url, connections, WARMUP_SECONDS, 'post', pool, first)
        args = ('post', pool, first + warm['sent'])
    else:
        wrk(url, connections, WARMUP_SECONDS, 'get')
        args = ('get',)
    reset_peak_rss(server.pid)
    before = usage([server.pid])
    res = wrk(url, connections, seconds, *args)
    account(res, before, usage([server.pid]))
    res['rss_mb'] = peak_rss_mb(server.pid)
    res['seconds'] = res['duration_us'] / 1e6
    res['rate'] = res['success'] / res['seconds']
    res['failures'] = (res['failure'] + res['pending'] + res['unclassified'] + res['http_error']
                       + res['socket_errors'])
    res['connections'] = connections
    return res


# ----------------------------------------------------------------------
# the servers

class ModScep:
    """mod_scep in Apache with the bench's PKI: by default the recommended
    tuning (APACHE_TUNING); name, mpm and tuning for the other setups."""

    def __init__(self, cache, name='mod_scep', mpm=MPM, tuning=APACHE_TUNING):
        self.name = name
        self.env = Env(REPO, mpm, name='bench', port_base=28080)
        if not self.env.built():
            raise RuntimeError('mod_scep is not built (make)')
        pki = os.path.join(cache, 'mod_scep-pki')
        if not os.path.exists(os.path.join(pki, 'ra-enc.crt')):
            self.env.setup_pki(pki)
        self.pki_cache = pki
        self.httpd = Apache(self.env)
        self.httpd.directives = default_directives(self.env) + [('SCEPEnforcePassword', 'Off')]
        self.httpd.raw_extra = tuning
        self.url = self.httpd.url(SCEP_PATH)

    def recipient_pem(self):
        with open(os.path.join(self.pki_cache, 'ra-enc.crt'), 'rb') as f:
            return f.read()

    @property
    def pid(self):
        return self.httpd.proc.pid

    def start(self):
        """Starts with empty records."""
        self.env.clean()
        shutil.copytree(self.pki_cache, self.env.pki, dirs_exist_ok=True)
        self.httpd.start()
        self.httpd.errlog.mark()

    def stop(self):
        self.httpd.stop()

    def problems(self):
        return self.httpd.errlog.unexpected()

    def issued_serials(self):
        rows = self.httpd.db_rows('SELECT cert_pem FROM scep_cert')
        return [x509.load_pem_x509_certificate(r['cert_pem'].encode()).serial_number
                for r in rows]

    def fill(self, count):
        """count certificates and their requests in the records, in one
        transaction, like those the server issued (the PEM of one of them)."""
        path = self.env.db
        con = sqlite3.connect(path, timeout=30)
        try:
            pem, subject, issuer = con.execute(
                'SELECT cert_pem, subject, issuer FROM scep_cert LIMIT 1').fetchone()
            now = datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')
            reqs, certs = [], []
            for _ in range(count):
                txid, serial = secrets.token_hex(16).upper(), secrets.token_hex(16).upper()
                reqs.append((txid, secrets.token_hex(20), 'issued', subject, 19, serial, None,
                             '127.0.0.1', now, now))
                certs.append((serial, txid, subject, issuer, now, now, pem, None, None, now))
            with con:
                con.executemany('INSERT INTO scep_request (transaction_id, key_id, status, '
                                'subject, message_type, serial, reason, client_addr, created, '
                                'updated) VALUES (?,?,?,?,?,?,?,?,?,?)', reqs)
                con.executemany('INSERT INTO scep_cert (serial, transaction_id, subject, '
                                'issuer, not_before, not_after, cert_pem, revoked_at, '
                                'revocation_reason, created) VALUES (?,?,?,?,?,?,?,?,?,?)', certs)
            con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        finally:
            con.close()


class ModScepHSM(ModScep):
    """mod_scep with its CA and RA keys in a SoftHSM2 token (--hsm): the
    keys made once by scepctl setup in a token kept in the cache."""
    name = 'softhsm'

    def __init__(self, cache):  # the token instead of ModScep's key files
        self.env = Env(REPO, MPM, name='bench-hsm', port_base=28180)
        if not self.env.built():
            raise RuntimeError('mod_scep is not built (make)')
        self.hsm = H.SoftHSM(os.path.join(cache, 'softhsm'))
        pki = os.path.join(cache, 'mod_scep-hsm-pki')
        if not self.hsm.has_token():
            shutil.rmtree(pki, ignore_errors=True)
            self.hsm.init_token()
        if not os.path.exists(os.path.join(pki, 'ra-enc.crt')):
            self.hsm.setup_pki(self.env, pki)
        self.hsm.give_to_children(self.env)
        self.pki_cache = pki
        self.httpd = Apache(self.env)
        self.httpd.extra_env = self.hsm.environ()
        self.httpd.directives = self.hsm.directives(self.env) + [('SCEPEnforcePassword', 'Off')]
        self.httpd.raw_extra = APACHE_TUNING
        self.url = self.httpd.url(SCEP_PATH)


class MicroMDM:
    name = 'micromdm'

    def __init__(self, cache):
        self.depot = os.path.join(cache, 'micromdm-depot')
        if not os.path.exists(os.path.join(self.depot, 'ca.pem')):
            run(['scepserver', 'ca', '-init', '-depot', self.depot, '-keySize', '2048'])
        self.log = os.path.join(cache, 'micromdm.log')
        self.url = 'http://127.0.0.1:%d/scep' % MICROMDM_PORT
        self.proc = None
        self.unreadable = 0

    def recipient_pem(self):
        with open(os.path.join(self.depot, 'ca.pem'), 'rb') as f:
            return f.read()

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        """Starts with an empty depot (its index is rescanned on every
        issuance: a full one would slow it down)."""
        for name in os.listdir(self.depot):
            if name not in ('ca.pem', 'ca.key'):
                os.unlink(os.path.join(self.depot, name))
        self.proc = subprocess.Popen(['scepserver', '-depot', self.depot,
                                      '-port', str(MICROMDM_PORT)],
                                     stdout=open(self.log, 'w'), stderr=subprocess.STDOUT)
        end = time.time() + 10
        while time.time() < end:
            try:
                if C.http_request('GET', self.url + '?operation=GetCACaps', timeout=1).status \
                        == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('scepserver did not answer; see ' + self.log)

    def stop(self):
        if self.proc:
            terminate(self.proc, 10)
            self.proc = None

    def issued_serials(self):
        """Serials of the certificates in the depot; unreadable files (two
        issuances writing one file) are counted in self.unreadable."""
        serials, self.unreadable = [], 0
        for name in os.listdir(self.depot):
            if name.endswith('.pem') and name != 'ca.pem':
                with open(os.path.join(self.depot, name), 'rb') as f:
                    try:
                        serials.append(x509.load_pem_x509_certificate(f.read()).serial_number)
                    except ValueError:
                        self.unreadable += 1
        return serials

    def problems(self):
        if self.unreadable:
            return ['%d certificate files in the depot cannot be read' % self.unreadable]
        return []


class ServiceServers:
    """Two Apache servers of one service (sceptest/service.py: roots
    bench-a and bench-b, the bench's PKI copied to both) on one PostgreSQL
    database, on this machine: what a second server costs, not what it
    gains (both share the cores, and the database's too)."""
    name = 'service'

    def __init__(self, cache, pg):
        self.svc = Service(REPO, pg, names=('bench-a', 'bench-b'), port_base=28180, mpm=MPM)
        self.pki_cache = os.path.join(cache, 'mod_scep-pki')
        for s in self.svc.servers:
            s.directives = default_directives(s.env) + [('SCEPEnforcePassword', 'Off')]
            s.raw_extra = APACHE_TUNING_PGSQL

    def start(self):
        """Both servers on empty records."""
        self.svc.database.reset()
        for s in self.svc.servers:
            shutil.copytree(self.pki_cache, s.env.pki, dirs_exist_ok=True)
            s.start()
            s.errlog.mark()

    def stop(self):
        self.svc.stop()

    def problems(self):
        return [ln for s in self.svc.servers for ln in s.errlog.unexpected()]

    def targets(self, n):
        """(SCEP URL, Apache's pid) of the first n servers."""
        return [(s.url(SCEP_PATH), s.proc.pid) for s in self.svc.servers[:n]]

    def issued_serials(self):
        rows = self.svc.db_rows('SELECT serial FROM scep_cert')
        return [int(r['serial'], 16) for r in rows]


def measure_together(targets, connections, seconds, pool):
    """One measured wrk run per server (targets: (URL, Apache's pid)) at
    once, after warm-ups, the connections shared out, each from its own
    part of the pool; the figures summed (latencies: the worst run's)."""
    size = messages.count(pool)
    each = connections // len(targets)
    firsts = [i * size // len(targets) for i in range(len(targets))]

    def together(args_of):
        out = [None] * len(targets)

        def one(i):
            out[i] = wrk(targets[i][0] + '?operation=PKIOperation', each, *args_of(i))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    warm = together(lambda i: (WARMUP_SECONDS, 'post', pool, firsts[i]))
    pids = [pid for _, pid in targets]
    before = usage(pids)
    runs = together(lambda i: (seconds, 'post', pool, firsts[i] + warm[i]['sent']))
    res = {k: sum(r[k] for r in runs) for k in ('success', 'failure', 'pending', 'unclassified',
                                                  'http_error', 'socket_errors', 'repeats')}
    account(res, before, usage(pids))
    res['seconds'] = max(r['duration_us'] for r in runs) / 1e6
    res['p50_us'] = max(r['p50_us'] for r in runs)
    res['p99_us'] = max(r['p99_us'] for r in runs)
    res['rate'] = res['success'] / res['seconds']
    res['failures'] = (res['failure'] + res['pending'] + res['unclassified'] + res['http_error']
                       + res['socket_errors'])
    return res


def service_runs(cache, seconds, pool):
    """SERVICE_CONNECTIONS connections at one server of the service, then
    shared by both: {servers: figures}. PostgreSQL is a server of the
    bench's own (sceptest/pgsql.py) with PostgreSQL's durability: every
    commit flushed (concurrent commits share a flush)."""
    from sceptest.pgsql import Cluster
    pg = Cluster(os.path.join(gen_dir(REPO), 'bench-pgsql'), durable=True)
    pg.start()
    try:
        service = ServiceServers(cache, pg)
        out = {}
        for n in (1, 2):
            service.start()
            try:
                res = measure_together(service.targets(n), SERVICE_CONNECTIONS, seconds, pool)
                serials = service.issued_serials()
                res['issued'] = len(serials)
                res['duplicates'] = len(serials) - len(set(serials))
                res['problems'] = service.problems()
            finally:
                service.stop()
            if res['issued'] < res['success']:
                res['problems'].append('%d SUCCESS replies but %d certificates recorded'
                                       % (res['success'], res['issued']))
            out[n] = res
        return out
    finally:
        pg.stop()


def print_service(runs):
    one, two = runs[1], runs[2]
    print('one service on PostgreSQL, %d connections (this machine: overhead, not scale):'
          % SERVICE_CONNECTIONS)
    for n, r in sorted(runs.items()):
        print('  %d server%s %10.1f enroll/s %8d failures  p99 %6.1f ms  CPU %6.2f ms  '
              'dups %d' % (n, ' ' if n == 1 else 's', r['rate'], r['failures'],
                           ms(r['p99_us']), r['cpu_ms'], r['duplicates']))
    print('  two servers / one: %.2f x the rate, %.2f x the CPU per enrollment'
          % (two['rate'] / one['rate'] if one['rate'] else float('nan'),
             two['cpu_ms'] / one['cpu_ms'] if one['cpu_ms'] else float('nan')))


def enrollment_run(server, connections, seconds, pool, before=None):
    """Starts the server with empty records, measures, checks the issued
    certificates (every serial once, at least as many as wrk saw), stops.
    First one second of enrollments on one connection makes the tables:
    concurrent first requests on a new SQLite database wait seconds for each
    other's schema creation, which is not what is measured. before(server)
    then prepares the records."""
    server.start()
    try:
        first = wrk(server.url + '?operation=PKIOperation', 1, WARMUP_SECONDS, 'post', pool,
                    0)['sent']
        if before:
            before(server)
        res = measure(server, connections, seconds, pool, first=first)
        serials = server.issued_serials()
        res['issued'] = len(serials)
        res['duplicates'] = len(serials) - len(set(serials))
        res['problems'] = server.problems()
    finally:
        server.stop()
    if res['issued'] < res['success']:
        res['problems'].append('%d SUCCESS replies but %d certificates recorded'
                               % (res['success'], res['issued']))
    return res


def cold_start(server, pool):
    """8 connections from the first request on a new database (its schema
    made by whichever request comes first, the others waiting): wrk's
    figures for the first second."""
    server.start()
    try:
        res = wrk(server.url + '?operation=PKIOperation', 8, WARMUP_SECONDS, 'post', pool, 0)
        res['problems'] = server.problems()
    finally:
        server.stop()
    return res


def get_runs(server, seconds):
    server.start()
    try:
        return {op: measure(server, 8, seconds, None, op) for op in ('GetCACert', 'GetCACaps')}
    finally:
        server.stop()


# ----------------------------------------------------------------------
# report

def ms(us):
    return us / 1000.0


def print_table(results, limit):
    print('%-13s %5s %9s %8s %6s %6s %6s %6s %6s %5s %6s %6s %5s %4s' % (
        'server', 'conns', 'enroll/s', 'failures', 'p50', 'p99', 'CPU', 'user', 'sys', 'cs',
        'load', 'RSS MB', 'of L', 'dups'))
    for name, runs in results.items():
        for r in runs:
            print('%-13s %5d %9.1f %8d %6.1f %6.1f %6.2f %6.2f %6.2f %5.1f %6.2f %6.1f %4.0f%% %4d'
                  % (name, r['connections'], r['rate'], r['failures'], ms(r['p50_us']),
                     ms(r['p99_us']), r['cpu_ms'], r['user_ms'], r['sys_ms'], r['switches'],
                     r['load_ms'], r['rss_mb'], 100 * r['rate'] / limit, r['duplicates']))
    print("(p50, p99: ms; CPU = user + sys: the server's CPU ms per enrollment; cs: its context "
          "switches per enrollment; load: wrk's CPU ms per enrollment, on the same cores)")


def print_targets(columns, micromdm, three_signs_ms, cacert, growth):
    """The issue's targets at 8 connections, one column per record store:
    columns is [(heading, figures of its 8-connection run)]; cacert and
    growth only apply to the first (the GET runs and the growth run are
    SQLite's)."""
    def row(name, figure, met, first_only=False):
        cells = []
        for i, (_, r) in enumerate(columns):
            if first_only and i:
                cells.append('%16s' % '-')
                continue
            ok = met(r)
            cells.append('%16s' % ('%s %s' % (figure(r), 'met' if ok else 'NOT met')))
        print('  %-32s%s' % (name, ''.join(cells)))

    print('targets at 8 connections:')
    print('  %-32s%s' % ('', ''.join('%16s' % h for h, _ in columns)))
    row('CPU <= 1.25 x three signatures', lambda r: '%.2f x' % (r['cpu_ms'] / three_signs_ms),
        lambda r: r['cpu_ms'] <= 1.25 * three_signs_ms)
    row('>= 3 x micromdm', lambda r: '%.2f x' % (r['rate'] / micromdm),
        lambda r: r['rate'] >= 3 * micromdm)
    row('p99 <= 30 ms', lambda r: '%.1f ms' % ms(r['p99_us']), lambda r: r['p99_us'] <= 30000)
    row('no failures', lambda r: '%d' % r['failures'], lambda r: r['failures'] == 0)
    row('no duplicate serials', lambda r: '%d' % r['duplicates'], lambda r: r['duplicates'] == 0)
    row('GetCACert >= micromdm', lambda r: '%.2f x' % cacert, lambda r: cacert >= 1, True)
    row('100,000 certificates: within 10%',
        lambda r: '%+.1f%%' % (100 * (growth['rate'] / r['rate'] - 1)),
        lambda r: growth['rate'] >= 0.9 * r['rate'], True)


def report_problems(results):
    for name, runs in results.items():
        for r in runs:
            for p in r['problems']:
                print('problem: %s, %d connections: %s' % (name, r['connections'], p))
            if r['repeats']:
                print('problem: %s, %d connections: the message pool ran out (%d repeats)'
                      % (name, r['connections'], r['repeats']))


def hsm_main(cache, seconds, quick):
    """--hsm: mod_scep with file keys and with SoftHSM2 keys, the same load."""
    if not H.available():
        raise SystemExit('bench: softhsm2 is missing: build/deps installs it')
    sign_rate = rsa_sign_rate(2 if quick else 5)
    limit = sign_rate / 3
    servers = [ModScep(cache), ModScepHSM(cache)]
    wanted = int(limit * (seconds + 2 * WARMUP_SECONDS) * 1.2) + 100
    pools = {s.name: messages.pool(cache, s.recipient_pem(), wanted, say) for s in servers}
    results = {}
    for s in servers:
        results[s.name] = []
        for c in (1, 8):
            say('%s: PKCSReq by POST, %d connections, %d s' % (s.name, c, seconds))
            results[s.name].append(enrollment_run(s, c, seconds, pools[s.name]))
    print()
    print('RSA-2048: %.0f signatures/s on %d cores; limit L = %.0f enrollments/s'
          % (sign_rate, NPROC, limit))
    print('mod_scep: keys in files; softhsm: the CA and RA keys in a SoftHSM2 token '
          '(OpenSSL pkcs11 engine)')
    print()
    print_table(results, limit)
    report_problems(results)
    f8, h8 = (next(r for r in results[n] if r['connections'] == 8)
              for n in ('mod_scep', 'softhsm'))
    print()
    print('bench-hsm: files=%.1f softhsm=%.1f ratio=%.3f cpu_ms_files=%.2f cpu_ms_softhsm=%.2f '
          'failures=%d' % (f8['rate'], h8['rate'], h8['rate'] / f8['rate'] if f8['rate'] else 0,
                           f8['cpu_ms'], h8['cpu_ms'], f8['failures'] + h8['failures']))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--quick', action='store_true', help='short runs (about a minute)')
    ap.add_argument('--seconds', type=int, help='length of each measured run')
    ap.add_argument('--growth', type=int, default=GROWTH_CERTS,
                    help='certificates in the database for the growth run')
    ap.add_argument('--hsm', action='store_true',
                    help='only mod_scep with file keys against SoftHSM2 keys')
    ap.add_argument('--mpm', action='store_true',
                    help='only mod_scep, under each MPM and thread count of MPM_SETUPS')
    args = ap.parse_args()
    seconds = args.seconds or (3 if args.quick else 15)
    get_seconds = 2 if args.quick else 5

    cache = os.path.join(gen_dir(REPO), 'bench-cache')
    os.makedirs(cache, exist_ok=True)
    for tool in ('wrk', 'scepserver', 'openssl'):
        if not shutil.which(tool):
            raise SystemExit('bench: %s is missing: build/deps installs it' % tool)
    if args.hsm:
        hsm_main(cache, seconds, args.quick)
        return
    if args.mpm:
        mpm_main(cache, seconds)
        return

    say('RSA-2048 signatures on %d cores (openssl speed)' % NPROC)
    sign_rate = rsa_sign_rate(2 if args.quick else 5)
    limit = sign_rate / 3
    three_signs_ms = 3 * sign_cpu_ms()
    say('%.0f signatures/s: limit L = %.0f enrollments/s, three signatures = %.2f CPU ms'
        % (sign_rate, limit, three_signs_ms))

    servers = [ModScep(cache), MicroMDM(cache)]
    # The most one run can use: the limit for its length and its two warm-ups.
    wanted = int(limit * (seconds + 2 * WARMUP_SECONDS) * 1.2) + 100
    pools = {s.name: messages.pool(cache, s.recipient_pem(), wanted, say) for s in servers}

    results, gets = {}, {}
    for s in servers:
        results[s.name] = []
        for c in CONNECTIONS:
            say('%s: PKCSReq by POST, %d connections, %d s' % (s.name, c, seconds))
            results[s.name].append(enrollment_run(s, c, seconds, pools[s.name]))
        say('%s: GetCACert and GetCACaps, 8 connections, %d s each' % (s.name, get_seconds))
        gets[s.name] = get_runs(s, get_seconds)

    def fill(server):
        server.fill(args.growth)

    say('mod_scep: PKCSReq, 8 connections, %d certificates in the database' % args.growth)
    growth = enrollment_run(servers[0], 8, seconds, pools['mod_scep'], before=fill)
    say('mod_scep: PKCSReq, 8 connections from the first request on a new database')
    cold = cold_start(servers[0], pools['mod_scep'])
    say('mod_scep, SQLite with synchronous=FULL (the default): PKCSReq, 8 connections')
    durable = ModScep(cache, 'sqlite FULL', tuning=APACHE_TUNING_DURABLE)
    results[durable.name] = [enrollment_run(durable, 8, seconds, pools['mod_scep'])]
    say('one service on PostgreSQL: PKCSReq, %d connections at one server, then at two'
        % SERVICE_CONNECTIONS)
    service = service_runs(cache, seconds, pools['mod_scep'])
    for n, r in service.items():
        r['connections'] = SERVICE_CONNECTIONS
        r['rss_mb'] = float('nan')
        results['pgsql, %d srv' % n] = [r]

    print()
    print('RSA-2048: %.0f signatures/s on %d cores; limit L = %.0f enrollments/s; '
          'three signatures = %.2f CPU ms' % (sign_rate, NPROC, limit, three_signs_ms))
    print()
    print_table(results, limit)
    print()
    print('%-9s %14s %14s' % ('server', 'GetCACert/s', 'GetCACaps/s'))
    for name, g in gets.items():
        print('%-9s %14.0f %14.0f' % (name, g['GetCACert']['rate'], g['GetCACaps']['rate']))
    m, u = (next(r for r in results[name] if r['connections'] == 8)
            for name in ('mod_scep', 'micromdm'))
    print()
    print('growth: %.1f enrollments/s with %d certificates stored, %.1f with an empty '
          'database (%+.1f%%), p99 %.1f ms' % (growth['rate'], args.growth, m['rate'],
                                               100 * (growth['rate'] / m['rate'] - 1),
                                               ms(growth['p99_us'])))
    print('new database: %d enrollments in the first second at 8 connections from the first '
          'request, p99 %.1f ms, %d failures' % (
              cold['success'], ms(cold['p99_us']), cold['failure'] + cold['pending'] +
              cold['unclassified'] + cold['http_error'] + cold['socket_errors']))
    print_durability(m, results[durable.name][0])
    print()
    print_service(service)
    problems = []
    cold['connections'] = 8
    for name, runs in list(results.items()) + [('mod_scep growth', [growth]),
                                              ('mod_scep new database', [cold])]:
        for r in runs:
            problems += ['%s, %d connections: %s' % (name, r['connections'], p)
                         for p in r['problems']]
            if r['repeats']:
                problems.append('%s, %d connections: the message pool ran out (%d repeats)'
                                % (name, r['connections'], r['repeats']))
    for p in problems:
        print('problem:', p)
    print()
    cacert = gets['mod_scep']['GetCACert']['rate'] / gets['micromdm']['GetCACert']['rate']
    print_targets([('SQLite', m), ('PostgreSQL', service[1]), ('two servers', service[2])],
                  u['rate'], three_signs_ms, cacert, growth)
    print()
    ratio_micromdm = m['rate'] / u['rate'] if u['rate'] else float('inf')
    print('bench: mod_scep=%.1f micromdm=%.1f limit=%.1f ratio_limit=%.3f ratio_micromdm=%.2f '
          'p99_ms=%.1f failures=%d cpu_ratio=%.2f' % (
              m['rate'], u['rate'], limit, m['rate'] / limit, ratio_micromdm, ms(m['p99_us']),
              m['failures'], m['cpu_ms'] / three_signs_ms))


def print_durability(normal, full):
    """What syncing every commit costs SQLite (its default) against the
    tuning's synchronous=NORMAL."""
    print('durable SQLite (synchronous=FULL, the default): %.1f enrollments/s (%+.1f%% against '
          'NORMAL), CPU %+.2f ms (system %+.2f ms), %+.1f context switches per enrollment, '
          'p99 %.1f ms' % (full['rate'], 100 * (full['rate'] / normal['rate'] - 1),
                           full['cpu_ms'] - normal['cpu_ms'], full['sys_ms'] - normal['sys_ms'],
                           full['switches'] - normal['switches'], ms(full['p99_us'])))


def mpm_main(cache, seconds):
    """--mpm: the recommended setup against the other MPMs and thread
    counts, 8 connections each, SQLite as tuned."""
    sign_rate = rsa_sign_rate(2)
    limit = sign_rate / 3
    three_signs_ms = 3 * sign_cpu_ms()
    def server(setup):
        return ModScep(cache, '%s %dx%d' % setup, setup[0],
                       mpm_tuning(setup[1], setup[2]) + SQLITE_NORMAL + COMMON_TUNING)

    wanted = int(limit * (seconds + 2 * WARMUP_SECONDS) * 1.2) + 100
    pool = messages.pool(cache, server(MPM_SETUPS[0]).recipient_pem(), wanted, say)
    results, gets = {}, {}
    for setup in MPM_SETUPS:
        s = server(setup)
        say('%s: PKCSReq by POST, 8 connections, %d s' % (s.name, seconds))
        results[s.name] = [enrollment_run(s, 8, seconds, pool)]
        say('%s: GetCACert and GetCACaps, 8 connections, 2 s each' % s.name)
        gets[s.name] = get_runs(s, 2)
    print()
    print('three signatures = %.2f CPU ms; MPM processes x threads per process' % three_signs_ms)
    print()
    print_table(results, limit)
    report_problems(results)
    print()
    print('%-13s %14s %14s' % ('server', 'GetCACert/s', 'GetCACaps/s'))
    for name, g in gets.items():
        print('%-13s %14.0f %14.0f' % (name, g['GetCACert']['rate'], g['GetCACaps']['rate']))
    best = max(results, key=lambda n: results[n][0]['rate'])
    print()
    print('bench-mpm: ' + ' '.join('%s=%.1f/%.2f/%.0f' % (
        n.replace(' ', ':'), r[0]['rate'], r[0]['cpu_ms'] / three_signs_ms,
        gets[n]['GetCACert']['rate']) for n, r in results.items()) + ' fastest=' +
        best.replace(' ', ':'))


if __name__ == '__main__':
    main()
