"""SCEPCABackend and its directives (issue 13): every configuration that
cannot work keeps Apache from starting with one SCEP012 line naming the
directive (`apache2 -t`), and the corrected configuration starts; GetCRL in
front of an external CA: SCEPExternalCRL's CRL served once verified against
the CA certificate (another CA's refused and logged), refused with event 44
without one. The backends' enrollments end to end: test_ca_helper_*.py and
test_ca_cmp_*.py."""
import datetime
import re
import time
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sceptest import admin, checks, pki
from sceptest import client as C
from sceptest.httpd import CHALLENGE, external_ca_directives, make_conf

CMP_URL = 'http://127.0.0.1:9/pkix/'


def event(n):
    return r'SCEP\d{3}: .*\(NDES event %d\)' % n


def executable(path, mode=0o755):
    with open(path, 'w') as f:
        f.write('#!/bin/sh\nexit 3\n')
    os.chmod(path, mode)
    return path


def private_file(path, text, mode=0o600):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@pytest.fixture(scope='module')
def paths(env):
    """The files the configurations name: a helper (it is never run here), a
    file that is not executable, the CMP secret (0600 and 0644)."""
    w = env.work
    return {
        'helper': executable(os.path.join(w, 'helper.sh')),
        'not_exec': executable(os.path.join(w, 'not-exec.sh'), 0o644),
        'secret': private_file(os.path.join(w, 'cmp-secret'), 'mac-secret-1234\n'),
        'open_secret': private_file(os.path.join(w, 'cmp-secret-open'), 'mac-secret\n', 0o644),
        'ca': env.p('ca.crt'),
    }


def helper(paths, *pairs):
    return external_ca_directives('helper', ('SCEPCAHelper', paths['helper']), *pairs)


def cmp(paths, *pairs):
    return external_ca_directives('cmp', ('SCEPCMPServer', CMP_URL),
                                  ('SCEPCMPTrustFile', paths['ca']), *pairs)


def without(changes, name):
    """changes with every line of name removed (also from the defaults)."""
    return [kv for kv in changes if kv[0] != name] + [(name, None)]


# (id, refused changes, what the refusal says, corrected changes), each
# change list applied to the default directives.
CASES = [
    ('ca-key-with-helper',
     lambda p: helper(p) + [('SCEPCAKeyFile', None), ('SCEPCAKeyFile', p['ca'][:-3] + 'key')],
     r'SCEPCAKeyFile is set with SCEPCABackend helper', helper),
    ('ca-key-with-cmp',
     lambda p: cmp(p) + [('SCEPCAKeyFile', p['ca'][:-3] + 'key')],
     r'SCEPCAKeyFile is set with SCEPCABackend cmp', cmp),
    ('no-ra-certificates',
     lambda p: helper(p, ('SCEPRACertificate', None)),
     r'SCEPCABackend helper needs RA certificates of its own \(SCEPRACertificate\)', helper),
    ('cmp-without-server',
     lambda p: without(cmp(p), 'SCEPCMPServer'),
     r'SCEPCABackend cmp needs SCEPCMPServer', cmp),
    ('https-without-tls-ca',
     lambda p: cmp(p, ('SCEPCMPServer', None), ('SCEPCMPServer', 'https://127.0.0.1:9/pkix/')),
     r'is https:// but SCEPCMPTLSCAFile is not set',
     lambda p: cmp(p, ('SCEPCMPServer', None), ('SCEPCMPServer', 'https://127.0.0.1:9/pkix/'),
                   ('SCEPCMPTLSCAFile', p['ca']))),
    ('tls-ca-with-http',
     lambda p: cmp(p, ('SCEPCMPTLSCAFile', p['ca'])),
     r'SCEPCMPTLSCAFile is set but SCEPCMPServer http://127.0.0.1:9/pkix/ is not https://',
     cmp),
    ('neither-secret-nor-trust',
     lambda p: without(cmp(p), 'SCEPCMPTrustFile'),
     r'neither SCEPCMPSecretFile nor SCEPCMPTrustFile is set',
     lambda p: without(cmp(p, ('SCEPCMPSecretFile', p['secret']), ('SCEPCMPReference', 'ra')),
                       'SCEPCMPTrustFile')),
    ('reference-without-secret',
     lambda p: cmp(p, ('SCEPCMPReference', 'ra')),
     r'SCEPCMPSecretFile and SCEPCMPReference go together',
     lambda p: cmp(p, ('SCEPCMPReference', 'ra'), ('SCEPCMPSecretFile', p['secret']))),
    ('secret-without-reference',
     lambda p: cmp(p, ('SCEPCMPSecretFile', p['secret'])),
     r'SCEPCMPSecretFile and SCEPCMPReference go together',
     lambda p: cmp(p, ('SCEPCMPReference', 'ra'), ('SCEPCMPSecretFile', p['secret']))),
    ('secret-open-to-others',
     lambda p: cmp(p, ('SCEPCMPReference', 'ra'), ('SCEPCMPSecretFile', p['open_secret'])),
     r'SCEP009: .*SCEPCMPSecretFile .*cmp-secret-open',
     lambda p: cmp(p, ('SCEPCMPReference', 'ra'), ('SCEPCMPSecretFile', p['secret']))),
    ('helper-without-path',
     lambda p: without(helper(p), 'SCEPCAHelper'),
     r'SCEPCABackend helper needs SCEPCAHelper', helper),
    ('helper-not-executable',
     lambda p: helper(p, ('SCEPCAHelper', None), ('SCEPCAHelper', p['not_exec'])),
     r'SCEPCAHelper .*not-exec\.sh is not an executable file', helper),
    ('cmp-directive-with-helper',
     lambda p: helper(p, ('SCEPCMPServer', CMP_URL)),
     r'SCEPCMPServer is set but SCEPCABackend is helper, which does not use it', helper),
    ('helper-directive-with-cmp',
     lambda p: cmp(p, ('SCEPCAHelperTimeout', '10')),
     r'SCEPCAHelperTimeout is set but SCEPCABackend is cmp, which does not use it', cmp),
    ('helper-directive-with-builtin',
     lambda p: [('SCEPCAHelper', p['helper'])],
     r'SCEPCAHelper is set but SCEPCABackend is builtin, which does not use it',
     lambda p: [('SCEPCABackend', 'builtin')]),
    ('external-crl-with-builtin',
     lambda p: [('SCEPExternalCRL', p['ca'])],
     r'SCEPExternalCRL is set but SCEPCABackend is builtin, which does not use it',
     lambda p: helper(p, ('SCEPExternalCRL', p['ca']))),
    ('poll-interval-with-builtin',
     lambda p: [('SCEPCAPollInterval', '5')],
     r'SCEPCAPollInterval is set but SCEPCABackend is builtin',
     lambda p: helper(p, ('SCEPCAPollInterval', '5'))),
]


@pytest.mark.parametrize('refused,says,corrected', [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_refused_then_corrected_starts(httpd, paths, refused, says, corrected):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives + refused(paths)))
    assert rc != 0, 'apache2 -t accepted it:\n' + out
    assert len([ln for ln in out.splitlines() if 'emerg' in ln]) == 1, out

    assert re.search(says, out), out
    assert re.search(r'SCEP0(12|09): main server: .*\(NDES event 2\)', out), out
    with httpd.config(*corrected(paths)):
        r = C.http_request('GET', httpd.url() + '?operation=GetCACaps')
        assert r.status == 200


@pytest.mark.parametrize('args,says', [
    ('helper.sh', 'the first word must be the helper\'s absolute path'),
    ('', 'the first word must be the helper\'s absolute path'),
])
def test_helper_path_must_be_absolute(httpd, paths, args, says):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives +
                                          helper(paths, ('SCEPCAHelper', None),
                                                 ('SCEPCAHelper', args))))
    assert rc != 0 and says in out, out


@pytest.mark.parametrize('name,value,says', [
    ('SCEPCABackend', 'ejbca', "is not one of builtin, cmp, helper"),
    ('SCEPCMPServer', 'ftp://ca.example.test/', 'is not a full http:// or https:// URL'),
    ('SCEPCMPTimeout', '121', 'between 1 and 120'),
    ('SCEPExternalCRL', 'https://ca.example.test/ca.crl', 'neither a file nor a full http:// URL'),
])
def test_directive_values(httpd, name, value, says):
    rc, out = httpd.config_test(make_conf(httpd.env, httpd.base_directives + [(name, value)]))
    assert rc != 0 and says in out and name in out, out


def test_helper_arguments_split_like_config_words(httpd, paths):
    """Quotes group words; the server starts (the helper runs only on a request)."""
    with httpd.config(*helper(paths, ('SCEPCAHelper', None),
                              ('SCEPCAHelper', '%s -d "/a dir" plain' % paths['helper']))):
        assert C.http_request('GET', httpd.url() + '?operation=GetCACaps').status == 200


# --- GetCRL in front of an external CA ----------------------------------------

def make_crl(issuer_cert, issuer_key, serials=(), subject=None):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(subject or issuer_cert.subject)
         .last_update(now - datetime.timedelta(minutes=1))
         .next_update(now + datetime.timedelta(days=1)))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                      .revocation_date(now).build())
    return b.sign(issuer_key, hashes.SHA256())


def get_crl(scep, files, keys):
    key = keys.any(3)
    msg = C.pki_message(C.issuer_and_serial(files.ca.subject, 1), C.GETCRL, key, [files.ra_enc])
    r, rep = scep.send(msg)
    return msg, r, rep


def write_crl(path, crl, pem):
    from cryptography.hazmat.primitives.serialization import Encoding
    with open(path, 'wb') as f:
        f.write(crl.public_bytes(Encoding.PEM if pem else Encoding.DER))
    os.chmod(path, 0o644)
    return path


@pytest.mark.parametrize('pem', [True, False], ids=['PEM', 'DER'])
def test_external_crl_file_is_served(httpd, scep, files, keys, paths, pem):
    crl = make_crl(files.ca, files.ca_key, serials=[0x1234, 0x5678])
    path = write_crl(os.path.join(httpd.env.work, 'external-%s.crl' % pem), crl, pem)
    with httpd.config(*helper(paths, ('SCEPExternalCRL', path))):
        msg, r, rep = get_crl(scep, files, keys)
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        served = x509.load_der_x509_crl(rep.crls[0])
        assert served == crl
        assert served.is_signature_valid(files.ca.public_key())
        assert sorted(e.serial_number for e in served) == [0x1234, 0x5678]
        assert httpd.errlog.find(r'SCEP156: SCEPExternalCRL %s read: 2 revoked' % path)


def test_external_crl_of_another_ca_is_refused(httpd, scep, files, keys, paths):
    other_key = pki.new_key()
    other = pki.self_signed(other_key, pki.name('Another CA'))
    path = write_crl(os.path.join(httpd.env.work, 'other-ca.crl'),
                     make_crl(other, other_key), True)
    forged = write_crl(os.path.join(httpd.env.work, 'forged.crl'),
                       make_crl(other, other_key, subject=files.ca.subject), True)
    for crl_file, why in ((path, 'issued by another CA'), (forged, 'signature')):
        with httpd.config(*helper(paths, ('SCEPExternalCRL', crl_file))):
            msg, r, rep = get_crl(scep, files, keys)
            checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
            assert 'no verified CRL of the external CA' in rep.fail_info_text
            lines = httpd.errlog.expect_and_find(
                r'SCEP155: SCEPExternalCRL %s: .*%s.*no CRL can be served \(NDES event 44\)'
                % (crl_file, why))
            assert lines
            httpd.errlog.expect(r'SCEP090: OpenSSL: ')  # what the failed check left
            assert httpd.errlog.expect_and_find(r'%s.*\(NDES event 44\)' % msg.transaction_id)


def test_getcrl_without_external_crl_is_refused(httpd, scep, files, keys, paths):
    with httpd.config(*helper(paths)):
        msg, r, rep = get_crl(scep, files, keys)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert 'no CRL is configured for the external CA' in rep.fail_info_text
        assert httpd.errlog.expect_and_find(r'%s.*no CRL is configured .*\(NDES event 44\)'
                                            % msg.transaction_id)



def test_ticket_names_the_backend_that_holds_it(httpd, scep, keys, env):
    """A request the CA holds is recorded with its ticket and the name of
    the backend that holds it (its kind, the server's name and port), by which
    servers sharing the records ask about their own tickets; the device's
    CSR is sealed with it."""
    path = os.path.join(env.work, 'waiting-helper.sh')
    with open(path, 'w') as f:
        f.write('#!/bin/sh\nprintf "7\\ncookie 42\\n"\nexit 5\n')
    os.chmod(path, 0o755)
    with httpd.config(*external_ca_directives('helper', ('SCEPCAHelper', path))):
        msg = admin.hold(scep, keys.take(), 'ticket.example.test')
        (row,) = checks.request_rows(httpd, msg.transaction_id)
        assert row['ca_ticket'] == 'cookie 42', row
        # the main server: ServerName localhost, without a port
        assert row['ca_backend'] == 'helper localhost', row
        assert row['csr_sealed'].startswith('-----BEGIN CMS-----'), row
        # decided, so that no later server polls it: the ticket, its
        # backend and the seal go
        code, out, err = httpd.scepctl_records('deny', '--reason', 'done', msg.transaction_id)
        assert code == 0, out + err
        (row,) = checks.request_rows(httpd, msg.transaction_id)
        assert (row['ca_ticket'], row['ca_backend'], row['csr_sealed']) == (None, None, None), row


# --- the background poll -------------------------------------------------------

DEBUG = 'LogLevel warn scep:debug\n'


def test_background_poll_thread_per_child(httpd, paths):
    """A backend that can hold requests gets one poll thread per child, at
    SCEPCAPollInterval; the children stop at once (the thread is woken from
    its minute's wait and joined, not left to GracefulShutdownTimeout),
    without a crash (the error-log check)."""
    with httpd.config(*helper(paths, ('SCEPCAPollInterval', '60')), raw_extra=DEBUG):
        lines = httpd.errlog.find(r'SCEP160: background poll of the external CAs every 60 '
                                  r'seconds', wait=3.0)
        assert lines
        started = time.time()
        httpd.stop()
        stopped = time.time() - started
    assert stopped < 3, 'the children took %.1f s to stop' % stopped


def test_no_background_poll_with_the_builtin_ca(httpd):
    with httpd.config(('SCEPCABackend', 'builtin'), raw_extra=DEBUG):
        time.sleep(0.5)
        assert not httpd.errlog.find(r'SCEP160: ', wait=0.5)


@pytest.fixture
def crl_server(httpd):
    """A plain HTTP server on loopback serving httpd's work directory: where
    SCEPExternalCRL's URL points."""
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=httpd.env.work)
    handler.func.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_external_crl_url_is_fetched(httpd, scep, files, keys, paths, crl_server):
    crl = make_crl(files.ca, files.ca_key, serials=[0xabc])
    write_crl(os.path.join(httpd.env.work, 'fetched.crl'), crl, False)
    url = crl_server + '/fetched.crl'
    with httpd.config(*helper(paths, ('SCEPExternalCRL', url))):
        msg, r, rep = get_crl(scep, files, keys)
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        assert x509.load_der_x509_crl(rep.crls[0]) == crl
        assert httpd.errlog.find(r'SCEP156: SCEPExternalCRL %s read: 1 revoked' % re.escape(url))


def test_external_crl_url_unreachable(httpd, scep, files, keys, paths, crl_server):
    url = crl_server + '/no-such.crl'
    with httpd.config(*helper(paths, ('SCEPExternalCRL', url))):
        msg, r, rep = get_crl(scep, files, keys)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert httpd.errlog.expect_and_find(
            r'SCEP155: SCEPExternalCRL %s: cannot be fetched .*\(NDES event 44\)' % re.escape(url))
        httpd.errlog.expect(r'SCEP090: OpenSSL: ', r'%s.*\(NDES event 44\)' % msg.transaction_id)


def test_external_crl_url_serving_pem_is_refused(httpd, scep, files, keys, paths, crl_server):
    """Over HTTP a CRL is DER (RFC 5280); a PEM body is not taken."""
    write_crl(os.path.join(httpd.env.work, 'pem-at-url.crl'),
              make_crl(files.ca, files.ca_key), True)
    url = crl_server + '/pem-at-url.crl'
    with httpd.config(*helper(paths, ('SCEPExternalCRL', url))):
        msg, r, rep = get_crl(scep, files, keys)
        checks.assert_failure(msg, r, rep, C.BAD_REQUEST)
        assert httpd.errlog.expect_and_find(
            r'SCEP155: SCEPExternalCRL %s: cannot be fetched as DER' % re.escape(url))
        httpd.errlog.expect(r'SCEP090: OpenSSL: ', r'%s.*\(NDES event 44\)' % msg.transaction_id)


def test_external_crl_at_the_crl_url(httpd, files, paths):
    """The scep-crl handler (SCEPCRLURL's location) serves the same CRL."""
    crl = make_crl(files.ca, files.ca_key, serials=[7])
    path = write_crl(os.path.join(httpd.env.work, 'handler.crl'), crl, True)
    location = '<Location /certsrv/mscep/crl>\n    SetHandler scep-crl\n</Location>\n'
    with httpd.config(*helper(paths, ('SCEPExternalCRL', path)), raw_extra=location):
        r = C.http_request('GET', httpd.url('/certsrv/mscep/crl/ca.crl'))
        assert r.status == 200 and r.content_type == 'application/pkix-crl', r.status
        assert x509.load_der_x509_crl(r.body) == crl



def test_crl_url_without_external_crl_is_not_found(httpd, paths):
    """Without SCEPExternalCRL the scep-crl handler has no CRL to serve: 404
    with the reason and one warning (a refusal, not a server fault: no
    SCEP122, no 500)."""
    location = '<Location /certsrv/mscep/crl>\n    SetHandler scep-crl\n</Location>\n'
    with httpd.config(*helper(paths), raw_extra=location):
        r = C.http_request('GET', httpd.url('/certsrv/mscep/crl/ca.crl'))
        assert r.status == 404, r.status
        assert r.content_type.startswith('text/plain'), r.content_type
        assert r.body == b'no CRL is configured for the external CA (SCEPExternalCRL)\n', r.body
        lines = httpd.errlog.expect_and_find(
            r'\[scep:warn\].*SCEP161: no CRL is configured for the external CA '
            r'\(SCEPExternalCRL\) \(NDES event 44\)')
        assert len(lines) == 1, lines
        assert httpd.errlog.find(r'SCEP122|SCEP090', wait=0) == []


def test_crl_url_without_ca_key_is_not_found(httpd):
    """The built-in backend without SCEPCAKeyFile (the RA certificates of an
    external CA, no backend to submit to) signs no CRL either: 404, one
    warning, no server fault."""
    location = '<Location /certsrv/mscep/crl>\n    SetHandler scep-crl\n</Location>\n'
    with httpd.config(('SCEPCAKeyFile', None), raw_extra=location):
        r = C.http_request('GET', httpd.url('/certsrv/mscep/crl/ca.crl'))
        assert r.status == 404, r.status
        assert r.body == b'no CA key is configured: this server signs no CRL\n', r.body
        lines = httpd.errlog.expect_and_find(r'\[scep:warn\].*SCEP161: no CA key is configured')
        assert len(lines) == 1, lines
        assert httpd.errlog.find(r'SCEP122|SCEP090', wait=0) == []


# --- the backend is the one requests use ----------------------------------------

SIGNING_HELPER = '''#!/bin/sh
# A CA helper signing with a copy of the test CA's key (openssl x509 -req,
# which verifies the CSR's signature), serial number $3.
[ "$CERTMONGER_OPERATION" = SUBMIT ] || exit 6
dir=$(dirname "$0")
printf '%s\\n' "$CERTMONGER_CA_PROFILE" > "$dir/helper-ran"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\\n' "$CERTMONGER_CSR" > "$tmp/req.pem"
openssl x509 -req -in "$tmp/req.pem" -CA "$1" -CAkey "$2" -set_serial "$3" -days 1 \\
    -out "$tmp/cert.pem" 2>"$tmp/err" || { cat "$tmp/err"; exit 4; }
cat "$tmp/cert.pem"
'''


def signing_helper(env, serial):
    """SIGNING_HELPER in a directory of its own, Apache's user's with its key
    copy, issuing serial number serial: (the directory, the SCEPCAHelper
    command)."""
    import pwd
    import shutil
    w = os.path.join(env.work, 'signing-helper')
    os.makedirs(w, exist_ok=True)
    script = os.path.join(w, 'sign.sh')
    with open(script, 'w') as f:
        f.write(SIGNING_HELPER)
    os.chmod(script, 0o755)
    key_copy = os.path.join(w, 'ca.key')
    shutil.copy(env.p('ca.key'), key_copy)
    if env.as_root:
        uid = pwd.getpwnam('www-data').pw_uid
        for p in (w, key_copy):
            os.chown(p, uid, -1)
    ran = os.path.join(w, 'helper-ran')
    if os.path.exists(ran):
        os.unlink(ran)
    return w, '%s %s %s %#x' % (script, env.p('ca.crt'), key_copy, serial)


def test_enrollment_goes_to_the_helper(httpd, scep, files, keys, env):
    """A PKCSReq of a server with SCEPCABackend helper is issued by the
    helper (it runs as Apache's user, with the template as its profile),
    and the device gets what it returned."""
    w, command = signing_helper(env, 0x5ce9)
    with httpd.config(*external_ca_directives('helper', ('SCEPCAHelper', command))):
        key = keys.take()
        msg, r, rep = scep.enroll(pki.make_csr(key, 'helper.example.test',
                                               challenge=CHALLENGE), key)
        checks.assert_reply_ok(msg, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        cert = rep.certs[0]
        assert cert.serial_number == 0x5ce9
        pki.verify_issued_by(cert, files.ca)
        assert pki.public_der(cert) == pki.public_der(key)
    with open(os.path.join(w, 'helper-ran')) as f:
        assert f.read().strip() == 'IPSECIntermediateOffline'


def test_standalone_approval_by_a_ca_verifying_the_signature(httpd, scep, files, keys, env):
    """SCEPCAType Standalone in front of a CA that verifies the CSR's
    signature (SIGNING_HELPER: openssl x509 -req): the held request keeps the
    device's CSR sealed (the password nowhere in the records, in no form),
    scepctl's approval submits it at the device's CertPoll and the CA issues
    it; the seal is wiped then."""
    w, command = signing_helper(env, 0x5ea1)
    with httpd.config(*external_ca_directives('helper', ('SCEPCAHelper', command)),
                      ('SCEPCAType', 'Standalone')):
        key = keys.take()
        msg = admin.hold(scep, key, 'sealed.example.test')
        (row,) = checks.request_rows(httpd, msg.transaction_id)
        assert row['csr_sealed'].startswith('-----BEGIN CMS-----'), row
        assert checks.places_holding(httpd, CHALLENGE) == []
        assert not os.path.exists(os.path.join(w, 'helper-ran'))
        code, out, err = httpd.scepctl_records('approve', msg.transaction_id)
        assert code == 0, out + err
        pm, r, rep = admin.poll(scep, msg)
        checks.assert_reply_ok(pm, rep)
        assert rep.pki_status == C.SUCCESS, str(rep)
        cert = rep.certs[0]
        assert cert.serial_number == 0x5ea1
        pki.verify_issued_by(cert, files.ca)
        assert pki.public_der(cert) == pki.public_der(key)
        (row,) = checks.request_rows(httpd, msg.transaction_id)
        assert row['status'] == 'issued' and row['csr_sealed'] is None, row
