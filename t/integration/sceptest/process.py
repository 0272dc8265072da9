"""Stopping the servers the tests start (Apache, slapd, krb5kdc)."""
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
