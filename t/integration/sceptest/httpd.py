"""A generated Apache server root with the freshly built mod_scep (pyhttpd style).

    env = Env(repo, mpm)            paths, ports, the PKI made by scepctl
    httpd = Apache(env); httpd.start()
    httpd.url('/certsrv/mscep/mscep.dll')
    with httpd.config(SCEPEnforcePassword='Off'): ...   restarts, restores after
    httpd.errlog.expect(r'SCEP\\d+: .*\\(NDES event 11\\)')
"""
import contextlib
import grp
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

from . import sanitizer
from .db import database
from .paths import gen_dir
from .process import children, terminate

MODULES_DIR = '/usr/lib/apache2/modules'
APACHE = '/usr/sbin/apache2'
CHALLENGE = 'mod-scep-test-challenge'
CA_SUBJECT = '/CN=mod_scep Test CA/O=mod_scep tests'

# "[Wed Nov 25 23:00:25.123456 2026] [scep:error] [pid 1:tid 2] [client ...] SCEP101: ..."
RE_LEVEL = re.compile(r'^\[[^\]]*\] \[(?:(?P<module>[^:\]]+):)?(?P<level>emerg|alert|crit|error|warn|'
                      r'notice|info|debug|trace\d)\]')
BAD_LEVELS = ('emerg', 'alert', 'crit', 'error', 'warn')
# logged at [notice] but always a failure: a child crashed
RE_CRASH = re.compile(r'AH00052: child pid \d+ exit signal|exit signal (Segmentation|Abort|Bus)')
# gdb's lines about reading a core, not about the crash
RE_GDB_NOISE = re.compile(r'\[New LWP \d+\]|warning: ')
# a sanitizer's report where it could not write its own file (see sanitizer.py)
RE_ALWAYS_BAD = (RE_CRASH, sanitizer.RE_REPORT)


def free_port(start):
    for port in range(start, start + 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(('127.0.0.1', port))
                return port
            except OSError:
                continue
    raise RuntimeError('no free port from %d' % start)


def allow_cores():
    """Lifts the core size limit for Apache, whose crashed children then dump
    into CoreDumpDirectory (where the kernel's core_pattern is a plain name)."""
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def run(cmd, **kw):
    kw.setdefault('capture_output', True)
    kw.setdefault('text', True)
    return subprocess.run(cmd, **kw)


class Env:
    """Paths of one generated server root t/gen/<mpm>[/<name>]."""

    def __init__(self, repo, mpm=None, name=None, port_base=None):
        self.repo = repo
        self.mpm = mpm or os.environ.get('SCEP_MPM', 'event')
        self.gen = os.path.join(gen_dir(repo), self.mpm)
        if name:
            self.gen = os.path.join(self.gen, name)
        # SCEP_BUILD_DIR: test a build made in another tree (default: the repo)
        build = os.environ.get('SCEP_BUILD_DIR', repo)
        self.module = os.path.join(build, 'mod_scep', '.libs', 'mod_scep.so')
        self.scepctl = os.path.join(build, 'mod_scep', 'scepctl')
        # the environment of scepctl's commands on the records (sanitizer.py)
        self.scepctl_env = sanitizer.program_env(self.scepctl)
        self.pki = os.path.join(self.gen, 'pki')
        self.db_dir = os.path.join(self.gen, 'db')
        self.db = os.path.join(self.db_dir, 'scep.db')
        # the records: self.db, or a PostgreSQL database of this root (SCEP_DB)
        self.database = database(self.gen,
                                 os.path.relpath(self.gen, gen_dir(repo)))
        self.logs = os.path.join(self.gen, 'logs')
        self.run_dir = os.path.join(self.gen, 'run')
        self.conf = os.path.join(self.gen, 'conf', 'httpd.conf')
        self.error_log = os.path.join(self.logs, 'error_log')
        self.challenge_file = os.path.join(self.gen, 'conf', 'challenge.txt')
        self.work = os.path.join(self.gen, 'work')
        # a crashed child leaves its core here (CoreDumpDirectory); see backtraces()
        self.cores = os.path.join(self.gen, 'cores')
        base = port_base or (18080 if self.mpm == 'event' else 18280)
        self.port = free_port(base)
        self.as_root = os.geteuid() == 0

    # the PKI files scepctl setup writes
    def p(self, name):
        return os.path.join(self.pki, name)

    def clean(self):
        """Removes what an earlier run left (only this root's own directories:
        other roots may live below it) and empties the database."""
        for d in (self.pki, self.db_dir, self.logs, self.run_dir, os.path.dirname(self.conf),
                  self.work, self.cores):
            if os.path.isdir(d):
                shutil.rmtree(d)
        for d in (self.gen, self.pki, self.db_dir, self.logs, self.run_dir,
                  os.path.dirname(self.conf), self.work, self.cores):
            os.makedirs(d, exist_ok=True)
        # www-data must reach the db and write its cores (children run as www-data)
        os.chmod(self.gen, 0o755)
        if self.as_root:
            uid, gid = pwd.getpwnam('www-data').pw_uid, grp.getgrnam('www-data').gr_gid
            for d in (self.db_dir, self.cores):
                os.chown(d, uid, gid)
                os.chmod(d, 0o770)
        with open(self.challenge_file, 'w') as f:
            f.write(CHALLENGE + '\n')
        os.chmod(self.challenge_file, 0o600)
        self.database.reset()

    def setup_pki(self, pki_dir=None, extra=()):
        cmd = [self.scepctl, 'setup', '-d', pki_dir or self.pki, '--ca-subject', CA_SUBJECT]
        p = run(cmd + list(extra))
        if p.returncode != 0:
            raise RuntimeError('scepctl setup failed (%d): %s%s' % (p.returncode, p.stdout, p.stderr))
        return p

    def built(self):
        return os.path.exists(self.module) and os.path.exists(self.scepctl)


def default_directives(env):
    """The SCEP directives of the default (RA mode) server."""
    return [
        ('SCEPCACertificateFile', env.p('ca.crt')),
        ('SCEPCAKeyFile', env.p('ca.key')),
        ('SCEPRACertificate', '%s %s' % (env.p('ra-sign.crt'), env.p('ra-sign.key'))),
        ('SCEPRACertificate', '%s %s' % (env.p('ra-enc.crt'), env.p('ra-enc.key'))),
        ('SCEPChallengePasswordFile', env.challenge_file),
    ]


def external_ca_directives(backend, *pairs):
    """Changes of the default directives (Apache.config()'s pairs) that make
    the server an RA in front of an external CA: SCEPCAKeyFile removed (the
    CA keeps its key), SCEPCABackend backend ('cmp' or 'helper'), then pairs,
    e.g. ('SCEPCAHelper', '/usr/lib/certmonger/local-submit -d DIR') or
    ('SCEPCMPServer', url), ('SCEPCMPTrustFile', path). The scepctl PKI's CA
    certificate stays SCEPCACertificateFile: use an external CA's own
    certificate and RA certificates it issued with (name, None) then
    (name, value) pairs."""
    return [('SCEPCAKeyFile', None), ('SCEPCABackend', backend)] + list(pairs)


def dropin_line(repo, directive):
    """The server-level line of directive in the drop-in configuration
    (conf.d/scep.conf), so that the tests run with an installation's limits."""
    with open(os.path.join(repo, 'conf.d', 'scep.conf')) as f:
        lines = [ln.strip() for ln in f if ln.strip().startswith(directive + ' ')]
    assert len(lines) == 1, 'conf.d/scep.conf: %s: %r' % (directive, lines)
    return lines[0]


# The event and the worker MPM: several processes from the start.
THREADED_MPM = """
    StartServers 2
    ServerLimit 4
    ThreadsPerChild 16
    MaxRequestWorkers 64
    MinSpareThreads 8
    MaxSpareThreads 48
"""


def make_conf(env, directives, raw_extra=''):
    """httpd.conf text. directives: [(name, value)] for the SCEP server; a
    value None removes every earlier line of that directive."""
    lines = []
    for k, v in directives:
        if v is None:
            lines = [(a, b) for a, b in lines if a != k]
        else:
            lines.append((k, v))
    scep = '\n'.join('%s %s' % kv for kv in lines)
    user = ''
    if env.as_root:
        user = 'User www-data\nGroup www-data\n'
    return f"""# generated by t/integration/sceptest/httpd.py
ServerRoot "{env.gen}"
DefaultRuntimeDir "{env.run_dir}"
PidFile "{env.run_dir}/httpd.pid"
ScoreBoardFile "{env.run_dir}/scoreboard"
Mutex file:{env.run_dir} default
LoadModule mpm_{env.mpm}_module {MODULES_DIR}/mod_mpm_{env.mpm}.so
LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so
<IfModule !log_config_module>
    LoadModule log_config_module {MODULES_DIR}/mod_log_config.so
</IfModule>
<IfModule !unixd_module>
    LoadModule unixd_module {MODULES_DIR}/mod_unixd.so
</IfModule>
LoadModule dbd_module {MODULES_DIR}/mod_dbd.so
LoadModule scep_module {env.module}
{user}Listen 127.0.0.1:{env.port}
ServerName localhost
ErrorLog "{env.error_log}"
CoreDumpDirectory "{env.cores}"
LogLevel warn scep:info
LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed
CustomLog "{env.logs}/access_log" timed
{dropin_line(env.repo, 'LimitRequestLine')}
Timeout 30
GracefulShutdownTimeout 5
<IfModule mpm_event_module>{THREADED_MPM}</IfModule>
<IfModule mpm_worker_module>{THREADED_MPM}</IfModule>
<IfModule mpm_prefork_module>
    StartServers 2
    MaxRequestWorkers 16
    MinSpareServers 2
    MaxSpareServers 6
</IfModule>
{env.database.dbd_directives()}
{scep}
<Location /certsrv/mscep>
    SetHandler scep
</Location>
<Location /cgi-bin/pkiclient.exe>
    SetHandler scep
</Location>
{raw_extra}
"""


class ErrorLog:
    """Reads the error log from a recorded position; knows which bad lines a
    test declared as expected."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.expected = []
        self.tolerated = ()  # httpd's lines a sanitized run brings (sanitizer.py)

    def _size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def mark(self):
        self.pos = self._size()
        self.expected = []

    def lines(self):
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        return data.decode('utf-8', 'replace').splitlines()

    def expect(self, *patterns):
        """Declares bad ([warn] and above) lines matching a pattern as expected."""
        self.expected += [re.compile(p) for p in patterns]

    def find(self, pattern, wait=2.0, levels=None):
        """Lines since mark() matching pattern (at one of levels if given); waits
        up to `wait` seconds for the first one."""
        rx = re.compile(pattern)
        end = time.time() + wait
        while True:
            found = []
            for ln in self.lines():
                m = RE_LEVEL.match(ln)
                if rx.search(ln) and (levels is None or (m and m.group('level') in levels)):
                    found.append(ln)
            if found or time.time() >= end:
                return found
            time.sleep(0.05)

    def expect_and_find(self, pattern, wait=2.0):
        self.expect(pattern)
        return self.find(pattern, wait)

    def unexpected(self):
        bad = []
        for ln in self.lines():
            m = RE_LEVEL.match(ln)
            if any(rx.search(ln) for rx in RE_ALWAYS_BAD):
                bad.append(ln)
                continue
            if not m or m.group('level') not in BAD_LEVELS:
                continue
            if any(rx.search(ln) for rx in self.tolerated):
                continue
            if any(rx.search(ln) for rx in self.expected):
                continue
            bad.append(ln)
        return bad


class Apache:
    def __init__(self, env):
        self.env = env
        self.errlog = ErrorLog(env.error_log)
        self.proc = None
        self.base_directives = default_directives(env)
        self.directives = list(self.base_directives)
        self.base_raw_extra = ''     # config text every configuration of this server has
        self.raw_extra = ''
        self.extra_env = {}          # environment of apache2 beyond the tests' own
        # a sanitized module needs its runtime preloaded (sanitizer.py)
        self.sanitizer_env = sanitizer.apache_env(env.module, env.repo)
        if self.sanitizer_env:
            self.errlog.tolerated = sanitizer.SLOW_HTTPD_LINES
        self.running_conf = None
        self.startup_expected = []   # warn lines a configuration is expected to log at start

    def url(self, path='/certsrv/mscep/mscep.dll'):
        return 'http://127.0.0.1:%d%s' % (self.env.port, path)

    def write_conf(self, directives=None, raw_extra=None):
        text = make_conf(self.env, self.directives if directives is None else directives,
                         self.raw_extra if raw_extra is None else raw_extra)
        with open(self.env.conf, 'w') as f:
            f.write(text)
        return text

    def config_test(self, conf_text=None, leak_check=True):
        """`apache2 -t` on the current (or given) configuration: (rc, output).
        leak_check=False: a sanitized module's run without LeakSanitizer
        (see test_manager.py::test_manager_group_without_ldap_url_refused)."""
        path = self.env.conf
        if conf_text is not None:
            path = self.env.conf + '.test'
            with open(path, 'w') as f:
                f.write(conf_text)
        env = self.command_env()
        if not leak_check and 'ASAN_OPTIONS' in env:
            env['ASAN_OPTIONS'] += ':detect_leaks=0'  # the last setting counts
        p = run([APACHE, '-d', self.env.gen, '-f', path, '-t'], env=env)
        return p.returncode, p.stdout + p.stderr

    def command_env(self):
        """The environment of every apache2 command line (start, -t, -k)."""
        return dict(os.environ, **self.extra_env, **self.sanitizer_env)

    def _port_open(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            try:
                s.connect(('127.0.0.1', self.env.port))
                return True
            except OSError:
                return False

    def start(self, timeout=20):
        """Starts in the foreground (a child process of the tests); fails when
        the server does not come up or logs an unexpected warn-or-worse line
        while starting."""
        text = self.write_conf()
        # before the error log is open (check_config), httpd writes to stderr
        stderr_path = os.path.join(self.env.logs, 'stderr_log')
        startlogs = [ErrorLog(self.env.error_log), ErrorLog(stderr_path)]
        for lg in startlogs:
            lg.mark()
            lg.expect(*self.startup_expected)
        out = open(stderr_path, 'ab')
        self.proc = subprocess.Popen([APACHE, '-d', self.env.gen, '-f', self.env.conf,
                                      '-DFOREGROUND'], stdout=out, stderr=subprocess.STDOUT,
                                     env=self.command_env(), preexec_fn=allow_cores,
                                     # prefork signals its whole process group on
                                     # shutdown: keep pytest out of it
                                     start_new_session=True)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                out.close()
                rc, self.proc = self.proc.returncode, None
                raise RuntimeError('apache2 exited (%d) at startup:\n%s\n--- error_log tail:\n%s'
                                   % (rc, '\n'.join(startlogs[1].lines()), self.log_tail()))
            if self._port_open():
                self.running_conf = text
                out.close()
                time.sleep(0.2)  # children starting up
                bad = startlogs[0].unexpected() + startlogs[1].unexpected()
                if bad:
                    self.stop()
                    raise RuntimeError('apache2 logged at startup:\n' + '\n'.join(bad))
                return
            time.sleep(0.05)
        out.close()
        self.stop()
        raise RuntimeError('apache2 did not listen on %d:\n%s' % (self.env.port, self.log_tail()))

    def backtraces(self):
        """Backtraces (gdb: the crashing thread, then all) of the cores that
        crashed children left since the last call, which removes them; ''
        when there are none."""
        out = []
        for name in sorted(os.listdir(self.env.cores)):
            core = os.path.join(self.env.cores, name)
            p = run(['gdb', '-batch', '-nx', '-ex', 'bt', '-ex', 'thread apply all bt',
                     APACHE, core], timeout=120)
            text = (p.stdout + p.stderr).splitlines()
            out.append('--- %s:\n%s\n' % (name, '\n'.join(ln for ln in text
                                                        if not RE_GDB_NOISE.match(ln))))
            os.unlink(core)
        return ''.join(out)

    def log_tail(self, n=30):
        try:
            with open(self.env.error_log, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def stop(self, timeout=20):
        """`apache2 -k graceful-stop` (SIGWINCH): the children finish what they
        are doing and exit; then SIGTERM spares the parent its pause of a
        second before it looks at them. Not SIGTERM alone: on an immediate
        stop, the event MPM of httpd 2.4.71 lets a child's main thread close
        the sockets of connections its workers are finishing at that moment,
        and the child sometimes crashes in apr_os_sock_get() on a freed
        socket (no module on its stack; HACKING.md). GracefulShutdownTimeout
        bounds the children's time."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGWINCH)
        end = time.time() + timeout
        while children(self.proc.pid) and self.proc.poll() is None and time.time() < end:
            time.sleep(0.02)
        terminate(self.proc, timeout)
        self.proc = None
        self.running_conf = None
        # the port must be free again before a restart
        end = time.time() + 5
        while self._port_open() and time.time() < end:
            time.sleep(0.05)

    def graceful(self, timeout=20):
        """`apache2 -k graceful` with the current configuration (written first);
        returns once the new generation answers."""
        from .client import http_request
        text = self.write_conf()
        pos = os.path.getsize(self.env.error_log)
        p = run([APACHE, '-d', self.env.gen, '-f', self.env.conf, '-k', 'graceful'],
                env=self.command_env())
        assert p.returncode == 0, 'apache2 -k graceful: %s%s' % (p.stdout, p.stderr)
        end = time.time() + timeout
        while True:
            with open(self.env.error_log, 'rb') as f:
                f.seek(pos)
                if b'resuming normal operations' in f.read():
                    break
            assert time.time() < end, 'no graceful restart:\n' + self.log_tail()
            time.sleep(0.05)
        self.running_conf = text
        while http_request('GET', self.url() + '?operation=GetCACaps').status != 200:
            assert time.time() < end, 'no answer after the graceful restart'
            time.sleep(0.05)

    def expect_log(self, *patterns):
        """Declares warn-or-worse lines matching a pattern as expected in this test."""
        self.errlog.expect(*patterns)

    def restart_with(self, extra=(), raw_extra=''):
        """The default SCEP directives plus extra [(name, value)] (value None
        removes a directive) and raw config text (after base_raw_extra):
        rewrites the configuration and restarts (nothing when unchanged)."""
        self.set_directives(self.base_directives + list(extra),
                            self.base_raw_extra + (raw_extra or ''))

    def set_directives(self, directives, raw_extra=''):
        self.directives = list(directives)
        self.raw_extra = raw_extra
        if self.proc is not None and make_conf(self.env, self.directives, self.raw_extra) \
                == self.running_conf:
            return
        pos = self.errlog.pos
        self.stop()
        self.start()
        self.errlog.pos = pos

    @contextlib.contextmanager
    def config(self, *pairs, raw_extra=None, startup_expected=(), **kw):
        """Runs the body with extra SCEP directives, then restores the default.
        pairs: (name, value) tuples; kw: name=value (value None removes);
        startup_expected: patterns of warnings this configuration logs at start."""
        extra = list(pairs) + list(kw.items())
        self.startup_expected = list(startup_expected)
        try:
            self.restart_with(extra, raw_extra or '')
            yield self
        finally:
            self.startup_expected = []
            self.restart_with()

    def external_ca(self, backend, *pairs, raw_extra=None, startup_expected=()):
        """config() as an RA in front of an external CA (external_ca_directives):
        `with httpd.external_ca('helper', ('SCEPCAHelper', path)):`."""
        return self.config(*external_ca_directives(backend, *pairs), raw_extra=raw_extra,
                           startup_expected=startup_expected)

    def db_rows(self, sql, args=()):
        """Rows of the records database (SQL with ? placeholders) as dicts."""
        return self.env.database.rows(sql, args)

    def scepctl_records(self, command, *args):
        """scepctl list/approve/deny/revoke on this server's records:
        (exit code, stdout, stderr)."""
        p = subprocess.run([self.env.scepctl, command] + self.env.database.scepctl_args()
                           + list(args), capture_output=True, text=True, timeout=60,
                           env=self.env.scepctl_env)
        return p.returncode, p.stdout, p.stderr

    def db_execute(self, sql, args=()):
        """Changes the records behind the server's back (? placeholders);
        the number of rows changed."""
        return self.env.database.execute(sql, args)
