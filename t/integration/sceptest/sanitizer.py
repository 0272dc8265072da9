"""Running Apache with a mod_scep built by `./configure --enable-sanitizers`
(ASan + UBSan) and finding what the sanitizers reported.

apache2 itself is not instrumented, so the ASan runtime has to be the first
library of the process (LD_PRELOAD), or the module does not load. ASan and
LeakSanitizer reports go to files (log_path) in one directory per session,
because a child's stderr is Apache's error log only after startup, and
LeakSanitizer reports when a child exits, long after the request that
leaked. GCC's UBSan runtime writes to stderr all the same (Apache's error
log, or stderr_log at startup): the error log check fails on RE_REPORT.

    env = sanitizer.apache_env(module)   {} for a normal build
    env = sanitizer.program_env(program) the tests' own for a normal build
    reports = sanitizer.Reports(dir)     reports.new(): texts of new reports
"""
import os
import re
import subprocess

from .paths import gen_dir

# the lines a sanitizer writes to stderr when it has no log_path (or before
# it read its options): the error log check treats them as failures too
RE_REPORT = re.compile(r'ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: \w+Sanitizer|'
                       r'runtime error: |Sanitizer CHECK failed')

SUPPRESSIONS = os.path.join(os.path.dirname(__file__), 'lsan.supp')

# httpd's lines of a sanitized run, where every allocation is slow and every
# process checks for leaks as it exits, which are not mod_scep's failures:
# the parent losing patience with children still busy exiting at a restart
# (AH00045), and the event MPM of httpd 2.4.57 finishing a keep-alive
# connection after its listener closed the pollset at a restart (AH03093).
SLOW_HTTPD_LINES = (
    re.compile(r'\[core:warn\] .*AH00045: child process \d+ still did not exit, sending a SIGTERM'),
    re.compile(r'\[mpm_event:error\] .*\(9\)Bad file descriptor: AH03093: '),
)


def linked(binary, name):
    """Path of the library `name` (libasan, libaprutil-1...) that ldd
    resolves for the binary, None when it does not link it."""
    p = subprocess.run(['ldd', binary], capture_output=True, text=True)
    m = re.search(r'%s\.so\S* => (\S+)' % re.escape(name), p.stdout)
    return m.group(1) if m else None


def runtime(module):
    """Path of the ASan runtime the module needs, None when it needs none."""
    return linked(module, 'libasan')


def dbd_drivers(program):
    """apr-util's database drivers next to the apr-util the program uses."""
    aprutil = linked(program, 'libaprutil-1')
    if aprutil is None:
        return []
    d = os.path.join(os.path.dirname(aprutil), 'apr-util-1')
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if n.startswith('apr_dbd_') and n.endswith('-1.so'))


def program_env(program):
    """The environment of a sanitized program the tests run with a database
    (scepctl): the tests' own, with apr-util's database drivers preloaded
    after the ASan runtime when the program is sanitized. apr-util loads a
    driver with dlopen and unloads it as the program exits; GCC 12's
    LeakSanitizer then crashes on the dynamic TLS that the libraries of
    PostgreSQL's driver (libpq, Kerberos, LDAP) left behind ("Tracer caught
    signal 11") instead of checking for leaks. A preloaded driver stays
    loaded, so the leak check runs to its end."""
    env = dict(os.environ)
    lib = runtime(program)
    if lib is not None:
        env['LD_PRELOAD'] = ':'.join([lib] + dbd_drivers(program))
    return env


def report_dir(repo):
    return os.path.join(gen_dir(repo), 'sanitizer-reports')


def apache_env(module, repo):
    """The environment apache2 needs for this module: the ASan runtime
    preloaded and the sanitizers' options; {} when the module is not
    sanitized."""
    lib = runtime(module)
    if lib is None:
        return {}
    d = report_dir(repo)
    os.makedirs(d, exist_ok=True)
    # the children run as www-data: they must create their report files
    os.chmod(d, 0o1777)
    # one file per process: report.apache2.<pid>
    common = 'log_path=%s/report:log_exe_name=1' % d
    return {
        'LD_PRELOAD': lib,
        # halt_on_error: a memory error must not go on to corrupt what the
        # tests check; detect_leaks: every process (parent and children) is
        # checked when it exits (lsan.supp: what is not ours)
        'ASAN_OPTIONS': common + ':halt_on_error=1:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=64',
        'LSAN_OPTIONS': common + ':suppressions=%s:print_suppressions=0' % SUPPRESSIONS,
        'UBSAN_OPTIONS': common + ':print_stacktrace=1:halt_on_error=0',
    }


class Reports:
    """Report files in the sanitizers' directory: new() returns the texts of
    the files that appeared (or grew) since the last call."""

    def __init__(self, directory):
        self.dir = directory
        self.seen = {}
        self.new()

    def _sizes(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return {}
        return {n: os.path.getsize(os.path.join(self.dir, n)) for n in names}

    def new(self):
        out = []
        for name, size in sorted(self._sizes().items()):
            old = self.seen.get(name, 0)
            if size > old:
                with open(os.path.join(self.dir, name), 'rb') as f:
                    f.seek(old)
                    out.append('--- %s:\n%s' % (name, f.read().decode('utf-8', 'replace')))
            self.seen[name] = size
        return out
