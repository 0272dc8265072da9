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
"""Several Apache servers, one enrollment service: the roots
t/gen/<mpm>/service-a and service-b with one PKI (`scepctl setup` in A,
copied to B, as a site copies its files to every server) and one records
database on a real PostgreSQL server, each root with its own Apache.

    svc = Service(repo, pg)     pg: a running pgsql.Cluster (the session's
                                with SCEP_DB=pgsql, else one of its own)
    svc.a, svc.b                sceptest.httpd.Apache, not started
    svc.servers                 [svc.a, svc.b]
    svc.start(); svc.stop()     both
    svc.db_rows(sql, args)      rows of the shared database (? placeholders)
    svc.pid_log(server)         path of the log of which child (%P) answered what
    svc.secret_key(server)      the path of the SCEPSecretKeyFile every server
                                has (made by `scepctl secret-key` in A, copied)

Both servers log which child answered each request (pid_log), so that a
test can see every child of a server recover after a fault.

Both servers have the same directives (Apache.directives; set them on each,
or with svc.configure(*pairs), which restarts both)."""
import os
import shutil

from . import db
from .httpd import Apache, Env, run

DATABASE = 'scep_service'
SECRET_KEY = 'secret.key'


def copy_pki(src, dst):
    """The PKI files of src into dst, modes kept (keys 0600)."""
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            shutil.copy2(path, os.path.join(dst, name))


class Service:
    def __init__(self, repo, pg, names=('service-a', 'service-b'), port_base=19000, mpm=None):
        self.pg = pg
        self.database = db.PostgreSQLDatabase(DATABASE, pg)
        envs = []
        for i, name in enumerate(names):
            e = Env(repo, mpm, name=name, port_base=port_base + 100 * i)
            e.database = self.database
            e.clean()
            envs.append(e)
        envs[0].setup_pki()
        p = run([envs[0].scepctl, 'secret-key', '--key', envs[0].p(SECRET_KEY)])
        if p.returncode != 0:
            raise RuntimeError('scepctl secret-key failed: %s%s' % (p.stdout, p.stderr))
        for e in envs[1:]:
            copy_pki(envs[0].pki, e.pki)
        self.servers = [Apache(e) for e in envs]
        for s in self.servers:
            s.base_raw_extra = s.raw_extra = 'CustomLog "%s" "%%P %%r %%>s"\n' % self.pid_log(s)
        self.a, self.b = self.servers[0], self.servers[1]

    @staticmethod
    def pid_log(server):
        return os.path.join(server.env.logs, 'pid_log')

    def start(self):
        for s in self.servers:
            s.start()

    def stop(self):
        for s in self.servers:
            s.stop()

    def configure(self, *pairs):
        """Both servers with the default directives and pairs (restarted
        when that changes their configuration)."""
        for s in self.servers:
            s.restart_with(list(pairs))

    def db_rows(self, sql, args=()):
        return self.database.rows(sql, args)

    @staticmethod
    def secret_key(server):
        return server.env.p(SECRET_KEY)

    def db_execute(self, sql, args=()):
        return self.database.execute(sql, args)
