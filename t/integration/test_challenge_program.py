"""The challenge program (issue 15): SCEPChallengeCheck program with
SCEPChallengeProgram, a real program (challenge-program, Python, as a site's
verifier) that checks the contract itself (a clean environment with the
request's facts, the CSR's DER on standard input) and answers as the test
tells it: allowed, denied with its first line as failInfoText, and each
fault failing closed (exit 2, killed, the timeout, too much output). The
combination rules (password then program, program alone, a template's
ChallengeCheck), a RenewalReq not asked about, the startup refusals, and
real clients end to end: certmonger's scep-submit and micromdm's scepclient
(sscep is not packaged here)."""
import json
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest
from sceptest import checks, pki
from sceptest import client as C
from sceptest import templates as T
from sceptest.certmonger import SCEP_SUBMIT, issued_certs, openssl_req, pem
from sceptest.httpd import CHALLENGE, make_conf
from test_enroll_clients import LEGACY_START, run_scepclient

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'challenge-program')
MDM_CHALLENGE = 'mdm-dynamic-challenge-4711'
KU_SIGN = pki.key_usage(digital_signature=True)
EVENT_29 = r'\(NDES event 29\)'
REFUSED = r'SCEP201: PKCSReq for transaction %s refused: %s ' + EVENT_29
FAULT = (r'SCEP288: PKCSReq for transaction %s: the challenge check program could not decide '
         r'\(the challenge program failed\): nothing was issued ' + EVENT_29)
PROGRAM_FAULT = r'SCEP290: transaction %s: challenge program \S+ %s'
# the device learns which check failed, not why
FAULT_TEXT = 'the challenge program failed; nothing was issued, try again later'


class Program:
    """challenge-program copied beside the server (Apache's children may not
    reach the checkout) with its directory, which they may write."""

    def __init__(self, work):
        self.dir = os.path.join(work, 'challenge-program.d')
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.path = os.path.join(work, 'challenge-program')
        shutil.copy(PROGRAM, self.path)
        os.chmod(self.path, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam('www-data')
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.words = '%s %s' % (self.path, self.dir)

    def mode(self, text):
        with open(os.path.join(self.dir, 'mode'), 'w') as f:
            f.write(text + '\n')
        os.chmod(os.path.join(self.dir, 'mode'), 0o644)

    def calls(self):
        try:
            with open(os.path.join(self.dir, 'calls.jsonl')) as f:
                return [json.loads(ln) for ln in f]
        except FileNotFoundError:
            return []

    def clear(self):
        for name in ('calls.jsonl', 'mode'):
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass


@pytest.fixture(scope='module')
def program(env):
    return Program(env.work)


@pytest.fixture
def prog(program):
    program.clear()
    return program


def with_program(program, *methods, extra=()):
    """httpd.config() pairs: the methods of SCEPChallengeCheck and the program."""
    return [('SCEPChallengeCheck', ' '.join(methods)),
            ('SCEPChallengeProgram', program.words)] + list(extra)


# Class-scoped: each class's configuration ends with the class (a later
# test's httpd.config() would replace a module's).
@pytest.fixture(scope='class')
def program_only(httpd, program):
    with httpd.config(*with_program(program, 'program')):
        yield httpd


@pytest.fixture(scope='class')
def password_then_program(httpd, program):
    with httpd.config(*with_program(program, 'password', 'program')):
        yield httpd


def enroll(scep, keys, name, challenge, ku=KU_SIGN):
    key = keys.take()
    csr = pki.make_csr(key, name, challenge=challenge, ku=ku)
    msg, r, rep = scep.enroll(csr, key)
    return csr, msg, r, rep


def x509_csr(hex_der):
    from cryptography import x509
    return x509.load_der_x509_csr(bytes.fromhex(hex_der))


def assert_nothing_recorded(httpd, msg):
    assert checks.request_rows(httpd, msg.transaction_id) == []


def assert_refused_by_program(httpd, msg, r, rep, text):
    checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
    want = 'the challenge program refused the request: ' + text
    assert rep.fail_info_text == want, rep.fail_info_text
    # httpd's error log doubles the backslashes of our escapes
    checks.expect_line(httpd, REFUSED % (msg.transaction_id,
                                         re.escape(want.replace('\\', '\\\\'))))
    assert_nothing_recorded(httpd, msg)


# --- the program alone ---------------------------------------------------------

class TestProgramAlone:
    """SCEPChallengeCheck program."""

    def test_allowed_with_the_contract_checked(self, program_only, scep, files, keys, prog):
        """The program checked its environment and the CSR itself (it refuses a
        broken contract); the test checks its record again."""
        csr, msg, r, rep = enroll(scep, keys, 'mdm-device.example.test', MDM_CHALLENGE)
        cert = checks.assert_issued(msg, r, rep, files.ca)
        checks.assert_recorded(program_only, msg.transaction_id, cert)
        calls = prog.calls()
        assert len(calls) == 1, calls
        assert calls[0]['env'] == {
            'PATH': '/usr/bin:/bin', 'TRANSACTIONID': msg.transaction_id,
            'SCEP_CHALLENGE': MDM_CHALLENGE, 'SCEP_MESSAGE_TYPE': 'PKCSReq',
            'SCEP_TEMPLATE': T.BUILTIN, 'SCEP_CLIENT_ADDRESS': '127.0.0.1'}
        assert bytes.fromhex(calls[0]['stdin']) == csr
        if os.geteuid() == 0:
            assert calls[0]['uid'] == pwd.getpwnam('www-data').pw_uid
        assert program_only.errlog.find(r'SCEP287: transaction %s: the challenge check program '
                                        r'allowed it' % msg.transaction_id)

    def test_no_challenge_reaches_the_program_without_one(self, program_only, scep, files, keys,
                                                          prog):
        csr, msg, r, rep = enroll(scep, keys, 'no-challenge.example.test', None)
        checks.assert_issued(msg, r, rep, files.ca)
        env = prog.calls()[0]['env']
        assert 'SCEP_CHALLENGE' not in env and env['TRANSACTIONID'] == msg.transaction_id

    def test_denied_with_its_first_line(self, program_only, scep, keys, prog):
        prog.mode('deny device 42 is not \x1b[31mmanaged')
        csr, msg, r, rep = enroll(scep, keys, 'denied.example.test', MDM_CHALLENGE)
        assert_refused_by_program(program_only, msg, r, rep, 'device 42 is not \\x1B[31mmanaged')
        assert len(prog.calls()) == 1

    def test_the_static_password_alone_does_not_pass(self, program_only, scep, keys, prog):
        """Without password in the list, SCEPChallengePasswordFile's password is
        only a challenge for the program to judge."""
        prog.mode('deny unknown challenge')
        csr, msg, r, rep = enroll(scep, keys, 'static.example.test', CHALLENGE)
        assert_refused_by_program(program_only, msg, r, rep, 'unknown challenge')
        assert prog.calls()[0]['env']['SCEP_CHALLENGE'] == CHALLENGE

    @pytest.mark.parametrize('mode,logged', [
        ('exit 2', r'exited with status 2: "exiting with 2"'),
        ('kill', 'was killed by a signal'),
        ('flood', r'wrote more than 65536 bytes, stopped after \d+ ms'),
    ])
    def test_faults_fail_closed(self, program_only, scep, keys, prog, mode, logged):
        prog.mode(mode)
        csr, msg, r, rep = enroll(scep, keys, 'fault.example.test', MDM_CHALLENGE)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert rep.fail_info_text == FAULT_TEXT, rep.fail_info_text
        checks.expect_line(program_only, PROGRAM_FAULT % (msg.transaction_id, logged),
                           levels=('error',))
        checks.expect_line(program_only, FAULT % msg.transaction_id)
        assert_nothing_recorded(program_only, msg)

    def test_renewal_not_asked(self, program_only, scep, files, keys, prog):
        """RenewalReq is not challenge-checked: the old certificate's
        signature is the proof, even while the program refuses everyone."""
        new_key = keys.take()
        csr, msg, r, rep = enroll(scep, keys, 'renewed.example.test', MDM_CHALLENGE)
        old = checks.assert_issued(msg, r, rep, files.ca)
        prog.mode('deny nobody today')
        csr = pki.make_csr(new_key, 'renewed.example.test')
        msg = C.pkcsreq(csr, msg.key, [files.ra_enc], signer_cert=old,
                        message_type=C.RENEWALREQ)
        r, rep = scep.send(msg)
        new = checks.assert_issued(msg, r, rep, files.ca)
        assert pki.public_der(new) == pki.public_der(new_key)
        assert len(prog.calls()) == 1, 'the program was asked about the renewal'

    def test_scep_submit_with_the_program(self, program_only, files, keys, prog):
        """certmonger's scep-submit carries a PKCSReq (an `openssl req` CSR with
        the MDM's challenge) by GET; the program allows it, then refuses the
        next with its text."""
        httpd = program_only
        work = httpd.env.work
        for name, mode in (('submit-allowed', 'allow'), ('submit-denied', 'deny not in the MDM')):
            prog.mode(mode)
            key = keys.take()
            csr = openssl_req(work, key, 'challenge-' + name, MDM_CHALLENGE)
            msg = C.pkcsreq(csr, key, [files.ra_enc], cipher='aes128', digest_name='sha256')
            msgf = os.path.join(work, 'challenge-%s.p7' % name)
            with open(msgf, 'w') as f:
                f.write(pem('PKCS7', msg.der))
            p = subprocess.run([SCEP_SUBMIT, '-u', httpd.url('/cgi-bin/pkiclient.exe'),
                                '-r', httpd.env.p('ra-enc.crt'), '-N', httpd.env.p('ca.crt'),
                                '-p', msgf], capture_output=True, text=True, timeout=60)
            call = prog.calls()[-1]
            assert bytes.fromhex(call['stdin']) == csr
            assert call['env']['SCEP_CHALLENGE'] == MDM_CHALLENGE
            if mode == 'allow':
                assert p.returncode == 0, p.stdout + p.stderr
                certs = issued_certs(p.stdout, msg, files.ra_sign)
                assert len(certs) == 1
                checks.check_issued_cert(certs[0], csr, files.ca)
                checks.assert_recorded(httpd, msg.transaction_id, certs[0])
            else:
                # certmonger's "rejected" (2), with its words for badRequest
                assert p.returncode == 2, p.stdout + p.stderr
                assert 'Transaction either is not permitted' in p.stdout, p.stdout + p.stderr
                checks.expect_line(httpd, REFUSED % (msg.transaction_id, re.escape(
                    'the challenge program refused the request: not in the MDM')))
                assert_nothing_recorded(httpd, msg)


def test_timeout_fails_closed(httpd, program, scep, keys, prog):
    prog.mode('sleep')
    with httpd.config(*with_program(program, 'program',
                                    extra=[('SCEPChallengeProgramTimeout', '1')])):
        start = time.monotonic()
        csr, msg, r, rep = enroll(scep, keys, 'slow.example.test', MDM_CHALLENGE)
        took = time.monotonic() - start
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert rep.fail_info_text == FAULT_TEXT, rep.fail_info_text
        assert 1 <= took < 8, took
        checks.expect_line(httpd, PROGRAM_FAULT % (msg.transaction_id,
                                                   r'ran past its time limit, stopped after'),
                           levels=('error',))
        checks.expect_line(httpd, FAULT % msg.transaction_id)
        assert_nothing_recorded(httpd, msg)


# --- password then program ------------------------------------------------------

class TestPasswordThenProgram:
    """SCEPChallengeCheck password program."""

    def test_password_first_then_program(self, password_then_program, scep, files, keys, prog):
        httpd = password_then_program
        # the static password allows: the program is not asked
        csr, msg, r, rep = enroll(scep, keys, 'pw-first.example.test', CHALLENGE)
        checks.assert_issued(msg, r, rep, files.ca)
        assert prog.calls() == []
        assert httpd.errlog.find(r'SCEP287: transaction %s: the challenge check password allowed it'
                                 % msg.transaction_id)
        # the MDM's challenge: the password refuses, the program allows
        csr, msg, r, rep = enroll(scep, keys, 'then-program.example.test', MDM_CHALLENGE)
        checks.assert_issued(msg, r, rep, files.ca)
        assert [c['env']['TRANSACTIONID'] for c in prog.calls()] == [msg.transaction_id]
        # both refuse: the program's refusal is the answer
        prog.mode('deny not ours either')
        csr, msg, r, rep = enroll(scep, keys, 'nobody.example.test', 'wrong')
        assert_refused_by_program(httpd, msg, r, rep, 'not ours either')


    def test_a_program_fault_after_the_password_fails_closed(self, password_then_program, scep,
                                                             keys, prog):
        httpd = password_then_program
        prog.mode('exit 2')
        csr, msg, r, rep = enroll(scep, keys, 'pw-fault.example.test', 'wrong')
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert rep.fail_info_text == FAULT_TEXT
        checks.expect_line(httpd, PROGRAM_FAULT % (msg.transaction_id, 'exited with status 2'),
                           levels=('error',))
        checks.expect_line(httpd, FAULT % msg.transaction_id)
        assert_nothing_recorded(httpd, msg)


# --- per template ------------------------------------------------------------------

def test_template_challenge_check(httpd, program, scep, files, keys, prog):
    """The server checks passwords; the Devices template (keyUsage
    digitalSignature) asks the program instead; the other requests keep
    the server's rule."""
    section = T.section('Devices', 'ChallengeCheck program')
    with httpd.config(('SCEPChallengeProgram', program.words),
                      ('SCEPSignatureTemplate', 'Devices'), raw_extra=section):
        prog.mode('deny only managed devices')
        # under Devices the password does not help
        csr, msg, r, rep = enroll(scep, keys, 'devices.example.test', CHALLENGE)
        assert_refused_by_program(httpd, msg, r, rep, 'only managed devices')
        assert prog.calls()[0]['env']['SCEP_TEMPLATE'] == 'Devices'
        prog.mode('allow')
        csr, msg, r, rep = enroll(scep, keys, 'devices2.example.test', MDM_CHALLENGE)
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        assert pki.verify_issued_by(rep.certs[0], files.ca)
        assert prog.calls()[-1]['env']['SCEP_TEMPLATE'] == 'Devices'
        # no keyUsage: the built-in template, the server's password rule
        prog.clear()
        csr, msg, r, rep = enroll(scep, keys, 'general.example.test', MDM_CHALLENGE, ku=None)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        checks.expect_line(httpd, r'SCEP201: PKCSReq for transaction %s refused: .*%s'
                           % (msg.transaction_id, EVENT_29))
        csr, msg, r, rep = enroll(scep, keys, 'general2.example.test', CHALLENGE, ku=None)
        checks.assert_issued(msg, r, rep, files.ca)
        assert prog.calls() == []


# --- startup refusals ---------------------------------------------------------------

def refused(httpd, changes, says, tag):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives + changes[0],
                                          changes[1]))
    assert rc != 0, 'apache2 -t accepted it:\n' + out
    assert re.search(says, out), out
    if tag:
        assert re.search(r'%s: main server: .*\(NDES event 2\)' % tag, out), out


STARTUP_CASES = [
    ('enforce-off-with-a-list',
     lambda p: ([('SCEPEnforcePassword', 'Off'), ('SCEPChallengeCheck', 'program'),
                 ('SCEPChallengeProgram', p.words)], ''),
     r'SCEPEnforcePassword Off and SCEPChallengeCheck contradict each other', 'SCEP024',
     lambda p: ([('SCEPChallengeCheck', 'program'), ('SCEPChallengeProgram', p.words)], '')),
    ('program-without-its-path',
     lambda p: ([('SCEPChallengeCheck', 'password program')], ''),
     r'SCEPChallengeCheck lists program, which needs SCEPChallengeProgram \(its path\)',
     'SCEP026',
     lambda p: ([('SCEPChallengeCheck', 'password program'),
                 ('SCEPChallengeProgram', p.words)], '')),
    ('webhook-without-its-url',
     lambda p: ([('SCEPChallengeCheck', 'webhook')], ''),
     r'SCEPChallengeCheck lists webhook, which needs SCEPChallengeWebhook', 'SCEP026',
     lambda p: ([('SCEPChallengeCheck', 'password')], '')),
    ('template-lists-program-without-it',
     lambda p: ([], T.section('Devices', 'ChallengeCheck program')),
     r'<SCEPTemplate Devices>\'s ChallengeCheck lists program, which needs '
     r'SCEPChallengeProgram', 'SCEP026',
     lambda p: ([('SCEPChallengeProgram', p.words)], T.section('Devices',
                                                               'ChallengeCheck program'))),
    ('program-not-executable',
     lambda p: ([('SCEPChallengeCheck', 'program'),
                 ('SCEPChallengeProgram', p.dir + '/mode')], ''),
     r'SCEPChallengeProgram .*/mode is not an executable file', 'SCEP025',
     lambda p: ([('SCEPChallengeCheck', 'program'), ('SCEPChallengeProgram', p.words)], '')),
]


@pytest.mark.parametrize('bad,says,tag,good', [pytest.param(*c[1:], id=c[0])
                                               for c in STARTUP_CASES])
def test_startup_refused_then_corrected(httpd, prog, bad, says, tag, good):
    prog.mode('allow')
    refused(httpd, bad(prog), says, tag)
    pairs, raw = good(prog)
    with httpd.config(*pairs, raw_extra=raw):
        assert C.http_request('GET', httpd.url() + '?operation=GetCACaps').status == 200


@pytest.mark.parametrize('name,value,says', [
    ('SCEPChallengeCheck', 'password ldap', r"unknown method 'ldap'"),
    ('SCEPChallengeCheck', 'program password program', r'program is listed twice'),
    ('SCEPChallengeCheck', '', r'needs at least one method'),
    ('SCEPChallengeProgram', 'challenge-program', r"the first word must be the program's "
                                                  r'absolute path'),
    ('SCEPChallengeProgramTimeout', '0', r'between 1 and 600'),
])
def test_directive_values(httpd, name, value, says):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives + [(name, value)]))
    assert rc != 0 and re.search(says, out) and name in out, out


def test_template_directive_value(httpd):
    raw = T.section('Devices', 'ChallengeCheck radius')
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives, raw))
    assert rc != 0 and re.search(r"Devices> ChallengeCheck: unknown method 'radius'", out), out


def test_scepclient_with_the_program(httpd, program, files, prog):
    """micromdm's scepclient (single DES: legacy algorithms allowed), the
    client of the MDM whose CSR verifier the program's contract follows:
    allowed, then refused."""
    httpd.errlog.expect(r'SCEP\d{3}: .*(single DES|MD5)')
    with httpd.config(*with_program(program, 'program',
                                    extra=[('SCEPAllowLegacyAlgorithms', 'On')]),
                      startup_expected=[LEGACY_START]):
        d, p = run_scepclient(httpd, 'sc-program.example.test', challenge=MDM_CHALLENGE)
        out = p.stdout + p.stderr
        cert = pki.load_cert_file(os.path.join(d, 'cert.pem'))
        key = pki.load_key_file(os.path.join(d, 'key.pem'))
        assert pki.public_der(cert) == pki.public_der(key), out
        assert pki.verify_issued_by(cert, files.ca)
        call = prog.calls()[-1]
        assert call['env']['SCEP_CHALLENGE'] == MDM_CHALLENGE
        assert pki.public_der(x509_csr(call['stdin'])) == pki.public_der(key)
        prog.mode('deny device retired')
        d, p = run_scepclient(httpd, 'sc-program-denied.example.test', challenge=MDM_CHALLENGE)
        out = p.stdout + p.stderr
        assert not os.path.exists(os.path.join(d, 'cert.pem')), out
        assert re.search(r'failInfo: badRequest', out), out
        checks.expect_line(httpd, r'SCEP201: PKCSReq for transaction \S+ refused: the challenge '
                                  r'program refused the request: device retired ' + EVENT_29)
