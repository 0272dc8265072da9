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
"""One-time passwords shared by the servers of a service (SCEPPasswordStore
sql) on the `service` fixture: servers A and B, one PostgreSQL database,
the admin page of each behind Basic authentication. A password from one
server enrolls at the other, once; NDES's key-usage rule holds across them;
SCEPPasswordMax counts the whole service; the single password is one for
both; every refusal is tried both ways."""
import concurrent.futures
import re
import subprocess

import pytest

from sceptest import checks
from sceptest import client as C
from sceptest import pki
from sceptest.admin import admin_get, basic_admin_config, get_password, make_htpasswd, \
    otp_directives
from sceptest.httpd import make_conf
from sceptest.service import Service
from test_api import api_config, api_get, api_module  # noqa: F401 (a fixture)

EVENT_29 = r'\(NDES event 29\)'
EVENT_43 = r'\(NDES event 43\)'
RE_EVENT_29 = r'SCEP201: .*' + EVENT_29
RE_FULL = r'SCEP524: '
KU_SIGN = pki.key_usage(digital_signature=True)       # 0x80
KU_ENCRYPT = pki.key_usage(key_encipherment=True)     # 0x20
PARALLEL = 20


def sql_directives(server, password_max=5, *pairs):
    return [('SCEPPasswordStore', 'sql'), ('SCEPSecretKeyFile', Service.secret_key(server))] \
        + otp_directives(password_max=password_max) + list(pairs)


def configure(service, password_max=5, *pairs):
    for s in service.servers:
        s.restart_with(sql_directives(s, password_max, *pairs))


@pytest.fixture(scope='module')
def svc(service):
    """The service with SCEPPasswordStore sql and the admin page; the
    default configuration again at the end."""
    bases = [s.base_raw_extra for s in service.servers]  # the service's own (pid_log)
    for s in service.servers:
        s.base_raw_extra += basic_admin_config(make_htpasswd(s.env))
    configure(service)
    get_password(service.a)  # the schema exists before the tests empty its tables
    yield service
    for s, base in zip(service.servers, bases):
        s.base_raw_extra = base
        s.restart_with()


@pytest.fixture(autouse=True)
def no_passwords(svc):
    """Every test starts with no password and no single password recorded,
    and ends in the module's configuration."""
    svc.db_execute('DELETE FROM scep_password')
    svc.db_execute('DELETE FROM scep_secret')
    yield
    configure(svc)


def enroll(server, password, name, key, ku=None):
    msg = C.pkcsreq(pki.make_csr(key, name, challenge=password, ku=ku), key,
                    [server.client.ca.ra_enc])
    r, rep = server.client.send(msg)
    return msg, r, rep


def assert_enrolls(server, password, name, key, ku=None):
    msg, r, rep = enroll(server, password, name, key, ku)
    return checks.assert_issued(msg, r, rep, server.client.ca.ca)


def assert_refused(server, password, name, key, event, ku=None):
    """FAILURE badRequest, and the refusal's line with its NDES event."""
    msg, r, rep = enroll(server, password, name, key, ku)
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    line = r'SCEP201: .*%s.*%s' % (re.escape(msg.transaction_id), event)
    assert server.errlog.expect_and_find(line), 'no refusal line %r' % line
    return msg


def test_password_from_a_enrolls_at_b_once(svc, keys):
    password, doc = get_password(svc.a)
    assert doc['single_password'] is False
    assert_enrolls(svc.b, password, 'from-a.example.test', keys.take())
    assert_refused(svc.a, password, 'again-at-a.example.test', keys.take(), EVENT_29)
    assert_refused(svc.b, password, 'again-at-b.example.test', keys.take(), EVENT_29)
    # and the other way round
    password, _ = get_password(svc.b)
    assert_enrolls(svc.a, password, 'from-b.example.test', keys.take())
    assert_refused(svc.b, password, 'again-at-b2.example.test', keys.take(), EVENT_29)


def test_records_hold_no_password(svc, keys):
    password, _ = get_password(svc.a)
    assert_enrolls(svc.b, password, 'hmac.example.test', keys.take())
    rows = svc.db_rows('SELECT mac, served, spender_sign, spender_encrypt FROM scep_password')
    assert len(rows) == 1 and rows[0]['served'] == 3
    assert re.fullmatch(r'[0-9A-Fa-f]{64}', rows[0]['mac'])
    assert rows[0]['spender_sign'] == rows[0]['spender_encrypt']
    assert checks.places_holding(svc.a, password) == []


def test_unknown_password_refused_at_both(svc, keys):
    for s in svc.servers:
        assert_refused(s, '0123456789ABCDEF', 'unknown.example.test', keys.take(), EVENT_29)


def test_halves_across_servers(svc, keys):
    """NDES's rule across A and B: one signing and one encryption request
    per password; a second of a kind is event 43 while the other half is
    free, then event 29; a general-purpose one after a half is event 43."""
    password, _ = get_password(svc.a)
    assert_enrolls(svc.a, password, 'sign.example.test', keys.take(), KU_SIGN)
    assert_refused(svc.b, password, 'sign2.example.test', keys.take(), EVENT_43, KU_SIGN)
    assert_refused(svc.b, password, 'general.example.test', keys.take(), EVENT_43)
    assert_enrolls(svc.b, password, 'encrypt.example.test', keys.take(), KU_ENCRYPT)
    assert_refused(svc.a, password, 'encrypt2.example.test', keys.take(), EVENT_29,
                   KU_ENCRYPT)
    assert_refused(svc.b, password, 'sign3.example.test', keys.take(), EVENT_29, KU_SIGN)


def test_expired_password_refused_at_both(svc, keys):
    password, _ = get_password(svc.b)
    svc.db_execute('UPDATE scep_password SET expires_at = 1')
    for s in svc.servers:
        assert_refused(s, password, 'expired.example.test', keys.take(), EVENT_29)
    # a fresh one passes: the refusal was the expiry's
    password, _ = get_password(svc.b)
    assert_enrolls(svc.a, password, 'fresh.example.test', keys.take())


def test_twenty_parallel_requests_one_password(svc):
    """Twenty PKCSReqs with one password, half at each server at once:
    exactly one SUCCESS, nineteen FAILUREs (event 29), one certificate."""
    password, _ = get_password(svc.a)
    keys = [pki.new_key() for _ in range(PARALLEL)]
    msgs = [C.pkcsreq(pki.make_csr(k, 'race-%d.example.test' % i, challenge=password), k,
                      [svc.a.client.ca.ra_enc]) for i, k in enumerate(keys)]
    servers = [svc.servers[i % 2] for i in range(PARALLEL)]
    for s in svc.servers:
        s.errlog.expect(RE_EVENT_29)
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(lambda i: servers[i].client.send(msgs[i]), range(PARALLEL)))
    statuses = [rep.pki_status if rep else r.status for r, rep in answers]
    assert statuses.count(C.SUCCESS) == 1, statuses
    assert statuses.count(C.FAILURE) == PARALLEL - 1, statuses
    assert all(rep.fail_info == C.BAD_REQUEST for _, rep in answers
               if rep.pki_status == C.FAILURE)
    ids = [m.transaction_id for m in msgs]
    issued = [r for r in svc.db_rows('SELECT transaction_id FROM scep_cert')
              if r['transaction_id'] in ids]
    assert len(issued) == 1
    refusals = sum(len(s.errlog.find(RE_EVENT_29, wait=0.5)) for s in svc.servers)
    assert refusals == PARALLEL - 1


def test_password_max_counts_the_service(svc, keys):
    """SCEPPasswordMax 3: two from A and one from B fill it for both; a
    password used up makes room again, at either server."""
    configure(svc, 3)
    first, _ = get_password(svc.a)
    get_password(svc.a)
    _, doc = get_password(svc.b)
    for s in svc.servers:
        s.errlog.expect(RE_FULL)
        r = admin_get(s)
        assert r.status == 503, r.body[:200]
        assert b'password_cache_full' in r.body
        assert s.errlog.find(RE_FULL)
    assert_enrolls(svc.b, first, 'room.example.test', keys.take())
    get_password(svc.b)
    assert admin_get(svc.a).status == 503


def test_public_api_mints_and_counts_for_the_service(svc, api_module, keys):  # noqa: F811
    """include/mod_scep.h with sql: a password minted at A enrolls at B;
    the status at either server counts the service's waiting passwords."""
    for s in svc.servers:
        s.restart_with(sql_directives(s), api_config(api_module))
    minted = api_get(svc.a, 'mint')
    assert re.fullmatch(r'[0-9A-F]{16}', minted['password']), minted
    api_get(svc.b, 'mint')
    for s in svc.servers:
        st = api_get(s, 'status')
        assert (st['status'], st['passwords_waiting'], st['passwords_max']) == ('0', '2', '5')
    assert_enrolls(svc.b, minted['password'], 'minted.example.test', keys.take())
    assert api_get(svc.a, 'status')['passwords_waiting'] == '1'


def scepctl_single_password(svc, *args):
    p = subprocess.run([svc.a.env.scepctl, 'single-password', '--key',
                        Service.secret_key(svc.a)] + svc.database.scepctl_args() + list(args),
                       capture_output=True, text=True, timeout=60, env=svc.a.env.scepctl_env)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip()


def test_single_password_shared(svc, keys):
    """SCEPUseSinglePassword On with sql: the first server makes it, the
    other shows the same; it enrolls at both, any number of times; scepctl
    sets a new one in the records for both at once."""
    configure(svc, 5, ('SCEPUseSinglePassword', 'On'))
    single, doc = get_password(svc.b)
    assert doc['single_password'] is True
    assert get_password(svc.a)[0] == single
    assert scepctl_single_password(svc, '--show') == single
    assert_enrolls(svc.a, single, 'single-1.example.test', keys.take())
    assert_enrolls(svc.b, single, 'single-2.example.test', keys.take())
    assert_enrolls(svc.b, single, 'single-3.example.test', keys.take())
    assert checks.places_holding(svc.a, single) == []
    scepctl_single_password(svc, '--set', 'NEW-SINGLE-PASSWORD')
    for s in svc.servers:
        assert get_password(s)[0] == 'NEW-SINGLE-PASSWORD'
        assert_refused(s, single, 'old-single.example.test', keys.take(), EVENT_29)
    assert_enrolls(svc.a, 'NEW-SINGLE-PASSWORD', 'single-4.example.test', keys.take())


def test_sql_store_needs_the_shared_key_file(svc):
    """sql without SCEPSecretKeyFile, or with one that does not exist, does
    not start (SCEP013, SCEP014); shm (the default) needs neither."""
    a = svc.a

    def config_test(*changes):
        return a.config_test(make_conf(a.env, a.base_directives + list(changes),
                                       a.base_raw_extra))

    rc, out = config_test(*[d for d in sql_directives(a) if d[0] != 'SCEPSecretKeyFile'])
    assert rc != 0 and 'SCEP013' in out, out
    rc, out = config_test(*sql_directives(a), ('SCEPSecretKeyFile', a.env.p('missing.key')))
    assert rc != 0 and 'SCEP014' in out and 'missing.key' in out, out
    rc, out = config_test(*sql_directives(a))
    assert rc == 0, out
    rc, out = config_test(('SCEPPasswordStore', 'shm'))
    assert rc == 0, out
