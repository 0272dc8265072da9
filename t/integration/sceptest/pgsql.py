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
"""A real PostgreSQL server (Debian package postgresql) for the tests, on loopback.

    c = Cluster(directory)      a cluster of its own: initdb into directory/data
    c.start()                   pg_ctl start on 127.0.0.1:<free port>, role `scep`
    c.reset_database('scep_event')    an empty database owned by scep
    c.dbd_params('scep_event')  Apache's DBDParams for it (DBDriver pgsql)
    c.rows('scep_event', 'SELECT ... WHERE x = ?', (x,))   rows as dicts
    c.execute('scep_event', 'UPDATE ... WHERE x = ?', (x,))  rows changed
    c.halt(); c.resume()        the server down and up again (same port, same data)
    c.restart()                 pg_ctl restart -m fast: every session ends
    c.stop()                    pg_ctl stop -m fast

Nothing of the system's PostgreSQL is used: no system cluster, no Unix
socket (unix_socket_directories is empty), only TCP on 127.0.0.1 with
passwords (scram-sha-256) made up for the session. Run as root, the server
runs as the user postgres (initdb and postgres refuse root), so the
directory is given to that user. The server's log is directory/postgresql.log.
"""
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time

import psycopg2
import psycopg2.extras

from .httpd import free_port

SUPERUSER = 'postgres'
ROLE = 'scep'


def bindir():
    """The newest installed server's programs (Debian: /usr/lib/postgresql/15/bin)."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'),
                   key=lambda p: int(p.split('/')[-3]))
    if not found:
        raise RuntimeError('no PostgreSQL server installed (build/deps installs postgresql)')
    return os.path.dirname(found[-1])


FAST = """# test data: speed over durability
fsync = off
synchronous_commit = off
full_page_writes = off"""
DURABLE = """# bench/run: a commit is on disk when it returns (PostgreSQL's defaults)
fsync = on
synchronous_commit = on
full_page_writes = on"""


class Cluster:
    """durable: PostgreSQL's own durability (fsync, synchronous_commit),
    for bench/run; the tests' servers trade it for speed."""

    def __init__(self, directory, durable=False):
        self.dir = directory
        self.durable = durable
        self.data = os.path.join(directory, 'data')
        self.log = os.path.join(directory, 'postgresql.log')
        self.bin = bindir()
        self.port = None  # chosen when the server starts
        self.superuser_password = secrets.token_hex(16)
        self.password = secrets.token_hex(16)
        self.as_root = os.geteuid() == 0
        self.running = False

    def _run(self, cmd, check=True):
        """A server program, as postgres when the tests run as root."""
        if self.as_root:
            cmd = ['runuser', '-u', SUPERUSER, '--'] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError('%s failed (%d): %s%s\n--- postgresql.log:\n%s' % (
                ' '.join(cmd), p.returncode, p.stdout, p.stderr, self.log_tail()))
        return p

    def _pg_ctl(self, *args, check=True):
        return self._run([os.path.join(self.bin, 'pg_ctl'), '-D', self.data] + list(args),
                         check=check)

    def _remove_old(self):
        """Stops a server an interrupted session left behind, removes its files."""
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            self._pg_ctl('stop', '-m', 'immediate', '-w', check=False)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        if self.as_root:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)

    def _configure(self):
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write("""
# t/integration/sceptest/pgsql.py
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
# Apache servers of several configurations at once, each with mod_dbd pools
max_connections = 200
%s
log_line_prefix = '%%m [%%p] %%q%%u@%%d '
""" % (DURABLE if self.durable else FAST))

    def start(self, timeout=60):
        self._remove_old()
        pwfile = os.path.join(self.dir, 'pwfile')
        with open(pwfile, 'w') as f:
            f.write(self.superuser_password + '\n')
        if self.as_root:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            self._run([os.path.join(self.bin, 'initdb'), '-D', self.data, '-U', SUPERUSER,
                       '--pwfile', pwfile, '--auth', 'scram-sha-256', '--encoding', 'UTF8',
                       '--no-locale', '--no-sync', '--no-instructions'])
        finally:
            os.unlink(pwfile)
        self._configure()
        self._listen(timeout)
        self.running = True
        try:
            con = self._connect('postgres')
            try:
                with con.cursor() as cur:
                    cur.execute('CREATE ROLE %s LOGIN PASSWORD %%s' % ROLE, (self.password,))
            finally:
                con.close()
        except Exception:
            self.stop()
            raise

    def _listen(self, timeout, attempts=5):
        """pg_ctl start on a free port, chosen right before: another test
        session may take a port between the look and the bind, then the next
        one is tried."""
        port = 18850
        for _ in range(attempts):
            self.port = free_port(port)
            p = self._pg_ctl('start', '-w', '-t', str(timeout), '-l', self.log,
                             '-o', '-p %d' % self.port, check=False)
            if p.returncode == 0:
                return
            if 'could not create any TCP/IP sockets' not in self.log_tail():
                break
            port = self.port + 1
        raise RuntimeError('pg_ctl start failed (%d): %s%s\n--- postgresql.log:\n%s' % (
            p.returncode, p.stdout, p.stderr, self.log_tail()))

    def halt(self):
        """The server stopped (pg_ctl stop -m fast: sessions end), data kept."""
        self._pg_ctl('stop', '-m', 'fast', '-w')

    def resume(self, timeout=60):
        """The server started again after halt(), on the same port."""
        self._pg_ctl('start', '-w', '-t', str(timeout), '-l', self.log,
                     '-o', '-p %d' % self.port)

    def restart(self, timeout=60):
        """pg_ctl restart -m fast: every session ends, the server comes back
        on the same port."""
        self._pg_ctl('restart', '-m', 'fast', '-w', '-t', str(timeout), '-l', self.log,
                     '-o', '-p %d' % self.port)

    def stop(self):
        if not self.running:
            return
        self._pg_ctl('stop', '-m', 'fast', '-w')
        self.running = False

    def log_tail(self, n=30):
        try:
            with open(self.log, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def _connect(self, dbname):
        """A superuser connection in autocommit mode (CREATE/DROP DATABASE need it)."""
        end = time.time() + 10
        while True:
            try:
                con = psycopg2.connect(host='127.0.0.1', port=self.port, dbname=dbname,
                                       user=SUPERUSER, password=self.superuser_password)
                break
            except psycopg2.OperationalError:
                # the server refuses connections for a moment after it started
                if time.time() >= end:
                    raise
                time.sleep(0.1)
        con.autocommit = True
        return con

    def reset_database(self, name):
        """Drops the database if it exists (with the connections to it) and
        creates it empty, owned by the role Apache logs in as."""
        con = self._connect('postgres')
        try:
            with con.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
                cur.execute('CREATE DATABASE "%s" OWNER %s' % (name, ROLE))
        finally:
            con.close()

    def dbd_params(self, name):
        return 'host=127.0.0.1 port=%d dbname=%s user=%s password=%s' % (
            self.port, name, ROLE, self.password)

    def rows(self, name, sql, args=()):
        """The rows of a query with sqlite3-style ? placeholders, as dicts."""
        con = self._connect(name)
        try:
            with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(_pyformat(sql), tuple(args))
                return [dict(r) for r in cur.fetchall()]
        finally:
            con.close()

    def execute(self, name, sql, args=()):
        """A statement with ? placeholders, committed; the number of rows it changed."""
        con = self._connect(name)
        try:
            with con.cursor() as cur:
                cur.execute(_pyformat(sql), tuple(args))
                return cur.rowcount
        finally:
            con.close()


def _pyformat(sql):
    """sqlite3's ? placeholders as psycopg2's %s."""
    return sql.replace('%', '%%').replace('?', '%s')
