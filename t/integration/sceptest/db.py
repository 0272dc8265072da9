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
"""The records database of a server root, on the database the environment
variable SCEP_DB names: sqlite (default, a file in the root) or pgsql (a
database of its own on the session's PostgreSQL server, see pgsql.py).

    d = database(gen_dir, name)   name: unique per server root, e.g. 'event/admin'
    d.reset()                     empty, as mod_scep finds a new database
    d.dbd_directives()            DBDriver/DBDParams lines for httpd.conf
    d.scepctl_args()              the same for scepctl list/approve/deny/revoke
    d.rows('SELECT * FROM scep_cert WHERE serial = ?', (s,))   rows as dicts
    d.execute('UPDATE scep_cert SET ... WHERE serial = ?', (s,))  rows changed
"""
import os
import re
import sqlite3

KIND = os.environ.get('SCEP_DB', 'sqlite')
if KIND not in ('sqlite', 'pgsql'):
    raise RuntimeError('SCEP_DB=%s: expected sqlite or pgsql' % KIND)

_cluster = None


def use_cluster(cluster):
    """The running PostgreSQL server of the session (None: stopped)."""
    global _cluster
    _cluster = cluster


class SQLiteDatabase:
    kind = 'sqlite'

    def __init__(self, path):
        self.path = path

    def reset(self):
        for suffix in ('', '-wal', '-shm', '-journal'):
            if os.path.exists(self.path + suffix):
                os.unlink(self.path + suffix)

    def dbd_directives(self):
        return 'DBDriver sqlite3\nDBDParams "%s"' % self.path

    def scepctl_args(self):
        return ['--db-driver', 'sqlite3', '--db', self.path]

    def rows(self, sql, args=()):
        con = sqlite3.connect('file:%s?mode=ro' % self.path, uri=True, timeout=10)
        try:
            # records may hold any bytes (test_escaping writes some that are
            # not UTF-8): they read as str with the stray bytes escaped
            con.text_factory = lambda b: b.decode('utf-8', 'surrogateescape')
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, args)]
        finally:
            con.close()

    def execute(self, sql, args=()):
        con = sqlite3.connect(self.path, timeout=10)
        try:
            with con:
                return con.execute(sql, args).rowcount
        finally:
            con.close()


class PostgreSQLDatabase:
    kind = 'pgsql'

    def __init__(self, name, server=None):
        self.name = name
        self.server = server  # a pgsql.Cluster; None: the session's (SCEP_DB=pgsql)

    def cluster(self):
        if self.server is not None:
            return self.server
        if _cluster is None:
            raise RuntimeError('SCEP_DB=pgsql but no PostgreSQL server runs (the session '
                               'fixture database_server of conftest.py starts it)')
        return _cluster

    def reset(self):
        self.cluster().reset_database(self.name)

    def dbd_directives(self):
        return 'DBDriver pgsql\nDBDParams "%s"' % self.cluster().dbd_params(self.name)

    def scepctl_args(self):
        return ['--db-driver', 'pgsql', '--db', self.cluster().dbd_params(self.name)]

    def rows(self, sql, args=()):
        return self.cluster().rows(self.name, sql, args)

    def execute(self, sql, args=()):
        return self.cluster().execute(self.name, sql, args)


def insert_pending(server, txid, values):
    """A pending request written into the records of server (an Apache)
    directly, as an older version or another server may have written
    anything: values maps columns to str, or to bytes (SQLite only: text of
    any bytes)."""
    cols = ['transaction_id', 'key_id', 'status', 'created', 'updated'] + list(values)
    args = [txid, 'K', 'pending', '2030-01-01T00:00:00Z', '2030-01-01T00:00:00Z'] + \
        list(values.values())
    marks = ['CAST(? AS TEXT)' if isinstance(v, bytes) else '?' for v in args]
    server.db_execute('INSERT INTO scep_request (%s) VALUES (%s)' % (', '.join(cols),
                                                                    ', '.join(marks)), args)


def database(gen_dir, name):
    """The database of the server root gen_dir (SQLite: gen_dir/db/scep.db)."""
    if KIND == 'pgsql':
        return PostgreSQLDatabase('scep_' + re.sub(r'[^a-z0-9]+', '_', name.lower()))
    return SQLiteDatabase(os.path.join(gen_dir, 'db', 'scep.db'))
