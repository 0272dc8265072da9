"""Stopping the servers the tests start (Apache, slapd, krb5kdc), and
finding their worker processes."""
import os
import signal
import subprocess


def terminate(proc, timeout):
    """SIGTERM, then SIGKILL when the process has not exited after timeout seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def with_argument(arg):
    """pids of the live processes with arg among their command line's words
    (what is left of a server whose parent is gone: orphans belong to init,
    so children() of its pid finds nothing)."""
    want = arg.encode()
    found = []
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                if want in f.read().split(b'\0'):
                    found.append(int(name))
        except OSError:
            continue  # gone meanwhile
    return found


def children(ppid):
    """(pid, real uid, effective uid) of the live processes whose parent is
    ppid (Apache's workers, for its parent's pid); zombies, which have exited
    but are not reaped yet, are left out."""
    found = []
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/status' % name) as f:
                status = dict(ln.split(':', 1) for ln in f.read().splitlines() if ':' in ln)
        except OSError:
            continue  # gone meanwhile
        if int(status['PPid']) == ppid and not status['State'].strip().startswith('Z'):
            uids = status['Uid'].split()
            found.append((int(name), int(uids[0]), int(uids[1])))
    return found
