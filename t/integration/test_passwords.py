"""Challenge passwords against a real Apache: one-time passwords from the
admin page (Basic authentication with an htpasswd file, over HTTP with
SCEPAdminAllowHTTP On) used by devices under NDES's rule (0xa0 or no
keyUsage once; 0x20 and 0x80 once each), refusals with events 28, 29 and
43, the full cache, the race of many devices on one password across worker
processes (prefork and event, each on its own server root), graceful
restarts (passwords survive; a bigger SCEPPasswordMax keeps them), a full
stop (passwords are gone, as with NDES), and single-password mode (set with
scepctl, made at first start, kept across a full restart, event 49 when it
does not decrypt).

Expiry is tested in the unit tests (t/unit/test_password.c) with a fake
clock: SCEPPasswordValidity counts in minutes, too slow here.
"""
import concurrent.futures
import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest

from sceptest import checks, pki
from sceptest.admin import (admin_get, basic_admin_config, get_password, make_htpasswd,
                            otp_directives)
from sceptest import client as C
from sceptest.httpd import CHALLENGE, Apache, Env, default_directives, make_conf

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


KU_GENERAL = pki.key_usage(digital_signature=True, key_encipherment=True)  # 0xa0
KU_SIGN = pki.key_usage(digital_signature=True)                            # 0x80
KU_ENCRYPT = pki.key_usage(key_encipherment=True)                          # 0x20

RE_PASSWORD = re.compile(r'^[0-9A-F]{16}$')
RE_PAGE_PASSWORD = re.compile(r'The enrollment challenge password is: <B> ([0-9A-F]+) </B>')
CACHE_FULL = 'The password cache is full.'
CACHE_FULL_LINE = r'SCEP\d{3}: no password for .*the password cache is full'
GROWN_LINE = r'SCEP\d{3}: password cache grown from %d to %d entries'
WARN = ('warn', 'error')

RACE_DEVICES = 24


def event(n):
    return r'SCEP\d{3}: .*\(NDES event %s\)' % n


def expect_refusal_line(server, n, txid):
    """The refusal's [warn] line names the transaction and the event."""
    pattern = r'SCEP\d{3}: .*%s.*\(NDES event %d\)' % (txid, n)
    server.errlog.expect(event(n))
    lines = server.errlog.find(pattern, levels=WARN)
    assert lines, 'no line matching %r:\n%s' % (pattern, '\n'.join(server.errlog.lines()))


def assert_not_logged(server, *passwords):
    """Passwords never reach a log, whatever happened."""
    for path in (server.env.error_log, os.path.join(server.env.logs, 'access_log')):
        with open(path, errors='replace') as f:
            text = f.read()
        for pw in passwords:
            assert pw not in text, 'a password is in %s' % path


# ---------------------------------------------------------------------------
# configurations

def use_config(server, directives, raw_extra='', startup_expected=()):
    """Restarts server with the default directives plus these (nothing when
    it already runs them)."""
    server.startup_expected = list(startup_expected)
    try:
        server.restart_with(directives, raw_extra)
    finally:
        server.startup_expected = []


def graceful(server, directives=None, raw_extra=None, timeout=20):
    """`apache2 -k graceful` (with the configuration rewritten first when
    directives/raw_extra are given); returns once the new generation answers."""
    if directives is not None:
        server.directives = list(server.base_directives) + list(directives)
    if raw_extra is not None:
        server.raw_extra = raw_extra
    server.graceful(timeout)


@pytest.fixture(scope='module', autouse=True)
def _default_config_after(httpd):
    yield
    httpd.restart_with()


@pytest.fixture(scope='module')
def htpasswd(env):
    return make_htpasswd(env)


@pytest.fixture
def otp(httpd, htpasswd):
    use_config(httpd, otp_directives(), basic_admin_config(htpasswd))
    return httpd


# ---------------------------------------------------------------------------
# the two sides

def enroll(client, key, cn, challenge, ku):
    csr = pki.make_csr(key, cn, challenge=challenge, ku=ku)
    return client.enroll(csr, key)


def assert_enrolled(client, files, key, cn, challenge, ku):
    msg, r, rep = enroll(client, key, cn, challenge, ku)
    checks.assert_issued(msg, r, rep, files.ca)
    return msg, r, rep


def assert_refused(server, client, key, cn, challenge, ku, n):
    """FAILURE badRequest, logged with event n; the failInfoText."""
    msg, r, rep = enroll(client, key, cn, challenge, ku)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    expect_refusal_line(server, n, msg.transaction_id)
    return rep.fail_info_text


# ---------------------------------------------------------------------------
# one-time passwords: the devices' side

def test_missing_password_is_event_28(otp, scep, keys):
    assert_refused(otp, scep, keys.any(0), 'otp-none.example.test', None, KU_GENERAL, 28)


def test_unknown_password_is_event_29(otp, scep, keys):
    text = assert_refused(otp, scep, keys.any(0), 'otp-unknown.example.test',
                          '0123456789ABCDEF', KU_GENERAL, 29)
    assert 'not valid' in text
    assert_not_logged(otp, '0123456789ABCDEF')


def test_static_password_needs_its_file(otp, scep, keys):
    """Without SCEPChallengePasswordFile the old static password is just wrong."""
    assert_refused(otp, scep, keys.any(1), 'otp-static.example.test', CHALLENGE, KU_GENERAL, 29)


def test_admin_page_hands_out_distinct_hex_passwords(otp):
    seen = set()
    for _ in range(3):
        pw, doc = get_password(otp)
        assert RE_PASSWORD.match(pw), pw
        assert doc['single_password'] is False
        assert doc['validity_minutes'] == 60
        seen.add(pw)
    assert len(seen) == 3
    r = admin_get(otp, accept='text/html')
    assert r.status == 200
    m = RE_PAGE_PASSWORD.search(r.body.decode('utf-16'))
    assert m and m.group(1) not in seen
    assert_not_logged(otp, *seen, m.group(1))


def test_general_purpose_password_serves_once(otp, scep, files, keys):
    pw, _ = get_password(otp)
    assert_enrolled(scep, files, keys.any(2), 'otp-general.example.test', pw, KU_GENERAL)
    text = assert_refused(otp, scep, keys.any(3), 'otp-general-2.example.test', pw, KU_GENERAL,
                          29)
    assert 'not valid' in text
    assert_refused(otp, scep, keys.any(3), 'otp-general-3.example.test', pw, KU_SIGN, 29)
    assert_not_logged(otp, pw)


def test_password_without_key_usage_serves_once(otp, scep, files, keys):
    pw, _ = get_password(otp)
    assert_enrolled(scep, files, keys.any(4), 'otp-noku.example.test', pw, None)
    assert_refused(otp, scep, keys.any(4), 'otp-noku-2.example.test', pw, KU_ENCRYPT, 29)


def test_encryption_and_signing_once_each(otp, scep, files, keys):
    pw, _ = get_password(otp)
    assert_enrolled(scep, files, keys.any(5), 'otp-enc.example.test', pw, KU_ENCRYPT)
    text = assert_refused(otp, scep, keys.any(6), 'otp-enc-2.example.test', pw, KU_ENCRYPT, 43)
    assert 'key usage' in text
    assert_refused(otp, scep, keys.any(6), 'otp-general-after-enc.example.test', pw,
                   KU_GENERAL, 43)
    assert_enrolled(scep, files, keys.any(6), 'otp-sign.example.test', pw, KU_SIGN)
    assert_refused(otp, scep, keys.any(7), 'otp-sign-2.example.test', pw, KU_SIGN, 29)
    assert_refused(otp, scep, keys.any(7), 'otp-enc-3.example.test', pw, KU_ENCRYPT, 29)
    assert_not_logged(otp, pw)


def test_replay_spends_nothing(otp, scep, files, keys):
    """A replayed PKCSReq is answered from the records before its challenge
    is checked: it neither fails with event 43 nor spends the other half."""
    pw, _ = get_password(otp)
    msg, r, rep = assert_enrolled(scep, files, keys.any(8), 'otp-replay.example.test', pw,
                                  KU_ENCRYPT)
    r2, rep2 = scep.send(msg)
    checks.assert_issued(msg, r2, rep2, files.ca)
    assert rep2.certs[0] == rep.certs[0]
    assert_enrolled(scep, files, keys.any(9), 'otp-replay-sign.example.test', pw, KU_SIGN)


def test_cache_full(httpd, htpasswd, scep, files, keys):
    use_config(httpd, otp_directives(password_max=2), basic_admin_config(htpasswd))
    # what earlier tests left waiting is gone with the restart to this configuration
    first, _ = get_password(httpd)
    get_password(httpd)
    r = admin_get(httpd, accept='text/html')
    assert r.status == 200
    assert CACHE_FULL in r.body.decode('utf-16')
    r = admin_get(httpd)
    assert r.status == 503 and json.loads(r.body)['error'] == 'password_cache_full'
    httpd.errlog.expect(CACHE_FULL_LINE)
    assert httpd.errlog.find(CACHE_FULL_LINE, levels=WARN)
    # a spent password makes room again
    assert_enrolled(scep, files, keys.any(0), 'otp-full.example.test', first, KU_GENERAL)
    pw, _ = get_password(httpd)
    assert RE_PASSWORD.match(pw)


# ---------------------------------------------------------------------------
# restarts

def test_password_survives_graceful_restart(otp, scep, files, keys):
    waiting, _ = get_password(otp)
    spent, _ = get_password(otp)
    half, _ = get_password(otp)
    assert_enrolled(scep, files, keys.any(0), 'otp-spent.example.test', spent, KU_GENERAL)
    assert_enrolled(scep, files, keys.any(1), 'otp-half.example.test', half, KU_SIGN)
    graceful(otp)
    assert_enrolled(scep, files, keys.any(2), 'otp-graceful.example.test', waiting, KU_GENERAL)
    assert_refused(otp, scep, keys.any(3), 'otp-spent-2.example.test', spent, KU_GENERAL, 29)
    assert_refused(otp, scep, keys.any(3), 'otp-half-2.example.test', half, KU_SIGN, 43)
    assert_enrolled(scep, files, keys.any(3), 'otp-half-3.example.test', half, KU_ENCRYPT)


def test_bigger_password_max_keeps_passwords(httpd, htpasswd, scep, files, keys):
    use_config(httpd, otp_directives(password_max=3), basic_admin_config(htpasswd))
    kept = [get_password(httpd)[0] for _ in range(3)]
    graceful(httpd, otp_directives(password_max=8))
    assert httpd.errlog.find(GROWN_LINE % (3, 8), wait=5), 'the cache did not grow'
    for i, pw in enumerate(kept):
        assert_enrolled(scep, files, keys.any(i), 'otp-grown-%d.example.test' % i, pw,
                        KU_GENERAL)
    new = [get_password(httpd)[0] for _ in range(8)]
    assert len(set(new) | set(kept)) == 11
    r = admin_get(httpd)
    assert r.status == 503
    httpd.errlog.expect(CACHE_FULL_LINE)


def test_full_stop_loses_passwords(otp, scep, keys):
    """As with NDES: what was handed out and not used is gone after a full stop."""
    pw, _ = get_password(otp)
    otp.stop()
    otp.start()
    assert_refused(otp, scep, keys.any(0), 'otp-stopped.example.test', pw, KU_GENERAL, 29)


# ---------------------------------------------------------------------------
# many devices, one password, several worker processes

def race_raw(htpasswd, logs):
    """Four prefork children from the start, and a log of which process
    answered each request."""
    return basic_admin_config(htpasswd, f"""<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 8
</IfModule>
LogFormat "%P %m %U" pids
CustomLog "{logs}/pid_log" pids
""")


@pytest.fixture(scope='module', params=['prefork', 'event'])
def race_server(request):
    mpm = request.param
    e = Env(REPO, mpm=mpm, name='passwords-race', port_base=18700 if mpm == 'event' else 18750)
    e.clean()
    e.setup_pki()
    a = Apache(e)
    a.directives = default_directives(e) + otp_directives(password_max=10)
    a.raw_extra = race_raw(make_htpasswd(e), e.logs)
    a.start()
    a.client = C.Client(a.url())
    a.client.get_ca_cert()
    yield a
    a.stop()


def fresh_keys(n):
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        return list(ex.map(lambda _: pki.new_key(), range(n)))


def send_together(client, msgs):
    """All messages at once, each on its own connection."""
    barrier = threading.Barrier(len(msgs))

    def one(msg):
        barrier.wait()
        return client.send(msg)
    with concurrent.futures.ThreadPoolExecutor(len(msgs)) as ex:
        return list(ex.map(one, msgs))


def pids_of_pkioperations(server):
    with open(os.path.join(server.env.logs, 'pid_log')) as f:
        return {ln.split()[0] for ln in f if 'POST' in ln}


def race(server, kus):
    """One password, one device per keyUsage in kus, all at once: the
    statuses by keyUsage, and the refusals' events."""
    server.errlog.mark()
    pw, _ = get_password(server)
    client = server.client
    msgs = []
    for i, (ku, key) in enumerate(zip(kus, fresh_keys(len(kus)))):
        csr = pki.make_csr(key, 'race-%d.example.test' % i, challenge=pw, ku=ku)
        msgs.append(C.pkcsreq(csr, key, [client.ca.ra_enc]))
    results = send_together(client, msgs)
    by_ku = {}
    for ku, msg, (r, rep) in zip(kus, msgs, results):
        assert r.status == 200 and rep is not None, 'HTTP %d %r' % (r.status, r.body[:200])
        checks.assert_reply_ok(msg, rep)
        if rep.pki_status != C.SUCCESS:
            assert rep.pki_status == C.FAILURE and rep.fail_info == C.BAD_REQUEST, str(rep)
        by_ku.setdefault(ku, []).append(rep.pki_status)
    server.errlog.expect(event('(29|43)'))
    time.sleep(0.3)
    refusals = server.errlog.find(event('(29|43)'), levels=WARN)
    assert_not_logged(server, pw)
    return by_ku, refusals


def assert_no_unexpected_lines(server):
    time.sleep(0.15)
    bad = server.errlog.unexpected()
    assert not bad, 'unexpected error-log lines:\n' + '\n'.join(bad)


def test_race_one_general_purpose_password(race_server):
    by_ku, refusals = race(race_server, [KU_GENERAL] * RACE_DEVICES)
    statuses = by_ku[KU_GENERAL]
    assert statuses.count(C.SUCCESS) == 1, statuses
    assert len(refusals) == RACE_DEVICES - 1
    assert all('(NDES event 29)' in ln for ln in refusals)
    if race_server.env.mpm == 'prefork':
        assert len(pids_of_pkioperations(race_server)) > 1, 'one child served every request'
    assert_no_unexpected_lines(race_server)


def test_race_encryption_and_signing_halves(race_server):
    half = RACE_DEVICES // 2
    by_ku, refusals = race(race_server, [KU_ENCRYPT] * half + [KU_SIGN] * half)
    assert by_ku[KU_ENCRYPT].count(C.SUCCESS) == 1, by_ku
    assert by_ku[KU_SIGN].count(C.SUCCESS) == 1, by_ku
    assert len(refusals) == RACE_DEVICES - 2
    assert_no_unexpected_lines(race_server)


# ---------------------------------------------------------------------------
# single-password mode

def single_files(env, name):
    d = os.path.join(env.work, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return os.path.join(d, 'secret.key'), os.path.join(d, 'single-password')


def single_directives(key_file, pw_file):
    return [('SCEPChallengePasswordFile', None), ('SCEPAdminAllowHTTP', 'On'),
            ('SCEPUseSinglePassword', 'On'), ('SCEPSecretKeyFile', key_file),
            ('SCEPSinglePasswordFile', pw_file)]


def scepctl_single(env, key_file, pw_file, *args, stdin=None):
    p = subprocess.run([env.scepctl, 'single-password', '--key', key_file, '--file', pw_file]
                       + list(args), capture_output=True, text=True, input=stdin)
    return p.returncode, p.stdout, p.stderr


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_single_password_from_scepctl_survives_full_restart(httpd, env, htpasswd, scep, files,
                                                            keys):
    key_file, pw_file = single_files(env, 'single-set')
    secret = 'Factory-Line-7'
    rc, out, err = scepctl_single(env, key_file, pw_file, '--set', '-', stdin=secret + '\n')
    assert rc == 0, err
    assert mode(key_file) == 0o600 and mode(pw_file) == 0o600
    assert secret not in open(pw_file).read()
    use_config(httpd, single_directives(key_file, pw_file), basic_admin_config(htpasswd))
    for i, ku in enumerate((KU_GENERAL, KU_GENERAL, KU_SIGN, KU_SIGN, None)):
        assert_enrolled(scep, files, keys.any(i), 'single-%d.example.test' % i, secret, ku)
    pw, doc = get_password(httpd)
    assert pw == secret and doc['single_password'] is True and doc['expires'] is None
    httpd.stop()
    httpd.start()
    assert_enrolled(scep, files, keys.any(5), 'single-after.example.test', secret, KU_GENERAL)
    assert_refused(httpd, scep, keys.any(6), 'single-wrong.example.test', 'Factory-Line-8',
                   KU_GENERAL, 29)
    assert_not_logged(httpd, secret)


def test_single_password_made_at_first_start(httpd, env, htpasswd, scep, files, keys):
    key_file, pw_file = single_files(env, 'single-made')
    use_config(httpd, single_directives(key_file, pw_file), basic_admin_config(htpasswd))
    assert mode(key_file) == 0o600 and mode(pw_file) == 0o600
    rc, shown, err = scepctl_single(env, key_file, pw_file, '--show')
    assert rc == 0, err
    secret = shown.strip()
    assert RE_PASSWORD.match(secret), secret
    assert get_password(httpd)[0] == secret
    assert_enrolled(scep, files, keys.any(0), 'single-made.example.test', secret, KU_GENERAL)
    assert_not_logged(httpd, secret)


def config_test(httpd, directives):
    return httpd.config_test(make_conf(httpd.env, httpd.base_directives + directives))


def test_undecryptable_single_password_refuses_start(httpd, env):
    key_file, pw_file = single_files(env, 'single-broken')
    rc, out, err = scepctl_single(env, key_file, pw_file, '--generate')
    assert rc == 0, err
    with open(pw_file) as f:
        sealed = f.read().strip()
    broken = sealed[:12] + ('A' if sealed[12] != 'A' else 'B') + sealed[13:]
    with open(pw_file, 'w') as f:
        f.write(broken + '\n')
    rc, out = config_test(httpd, single_directives(key_file, pw_file))
    assert rc != 0, out
    assert '(NDES event 49)' in out and pw_file in out, out
    # another key cannot open it either
    os.remove(key_file)
    scepctl_single(env, key_file, pw_file + '.other', '--generate')
    rc, out, err = scepctl_single(env, key_file, pw_file)
    assert rc != 0 and 'does not decrypt' in err


def test_readable_secret_key_refuses_start(httpd, env):
    key_file, pw_file = single_files(env, 'single-readable')
    assert scepctl_single(env, key_file, pw_file, '--generate')[0] == 0
    os.chmod(key_file, 0o640)
    rc, out = config_test(httpd, single_directives(key_file, pw_file))
    assert rc != 0, out
    assert key_file in out and '0600' in out, out


def test_single_password_needs_its_files(httpd):
    rc, out = config_test(httpd, [('SCEPUseSinglePassword', 'On')])
    assert rc != 0, out
    assert 'SCEPSecretKeyFile' in out and 'SCEPSinglePasswordFile' in out, out


def test_default_config_runs_without_static_password(httpd):
    """SCEPEnforcePassword On (the default) no longer needs
    SCEPChallengePasswordFile: one-time passwords are the default source."""
    rc, out = config_test(httpd, [('SCEPChallengePasswordFile', None)])
    assert rc == 0, out
