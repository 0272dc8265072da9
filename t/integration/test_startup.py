"""Apache refuses to start, with a message naming the file, when the PKI is
unusable. Runs `apache2 -t` (and one real start) on a separate server root
t/gen/<mpm>/startup."""
import os
import re
import shutil

import pytest

from sceptest import pki
from sceptest.httpd import MODULES_DIR, Apache, default_directives, make_conf
from sceptest.roots import fresh_env

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


@pytest.fixture(scope='module')
def senv():
    return fresh_env(REPO, 'startup', 18480)


@pytest.fixture(scope='module')
def ca(senv):
    return pki.load_cert_file(senv.p('ca.crt')), pki.load_key_file(senv.p('ca.key'))


def conf_with(senv, directives):
    return make_conf(senv, directives)


def config_test(senv, directives):
    a = Apache(senv)
    return a.config_test(conf_with(senv, directives))


def write_key(path, key):
    with open(path, 'wb') as f:
        f.write(pki.key_pem(key))
    os.chmod(path, 0o600)


def write_cert(path, cert):
    with open(path, 'wb') as f:
        f.write(pki.cert_pem(cert))


def test_default_config_ok(senv):
    rc, out = config_test(senv, default_directives(senv))
    assert rc == 0, out
    assert 'Syntax OK' in out
    assert not re.search(r'\[(\w+:)?(warn|error|crit|alert|emerg)\]', out), out


def test_scepctl_setup_idempotent(senv):
    before = {f: open(senv.p(f), 'rb').read() for f in os.listdir(senv.pki)}
    p = senv.setup_pki()
    assert re.search(r'CA thumbprint: [0-9A-F]{40}', p.stdout + p.stderr, re.I)
    after = {f: open(senv.p(f), 'rb').read() for f in os.listdir(senv.pki)}
    assert before == after, 'a re-run of scepctl setup changed files'
    for f in os.listdir(senv.pki):
        if f.endswith('.key'):
            assert os.stat(senv.p(f)).st_mode & 0o077 == 0, '%s is not 0600' % f


def test_missing_ca_certificate(senv):
    missing = os.path.join(senv.gen, 'no-such-ca.crt')
    d = [(k, missing if k == 'SCEPCACertificateFile' else v) for k, v in default_directives(senv)]
    rc, out = config_test(senv, d)
    assert rc != 0, 'config test passed without a CA certificate:\n' + out
    assert missing in out, out
    assert re.search(r'SCEP\d{3}: ', out), out


def test_missing_ca_certificate_start(senv):
    """Not only the config test: the server itself does not come up."""
    missing = os.path.join(senv.gen, 'no-such-ca.crt')
    a = Apache(senv)
    a.directives = [(k, missing if k == 'SCEPCACertificateFile' else v)
                    for k, v in default_directives(senv)]
    with pytest.raises(RuntimeError) as e:
        a.start(timeout=10)
    a.stop()
    assert missing in str(e.value)


def _ra_variant(senv, ca, name, ku, eku=(pki.OID_CERT_REQUEST_AGENT,)):
    ca_cert, ca_key = ca
    key = pki.new_key()
    cert = pki.issue(ca_cert, ca_key, key, 'mod_scep test RA ' + name, ku=ku, eku=list(eku))
    cpath, kpath = os.path.join(senv.gen, name + '.crt'), os.path.join(senv.gen, name + '.key')
    write_cert(cpath, cert)
    write_key(kpath, key)
    return cpath, kpath


def _ra_directives(senv, pairs):
    d = [kv for kv in default_directives(senv) if kv[0] != 'SCEPRACertificate']
    return d + [('SCEPRACertificate', '%s %s' % p) for p in pairs]


def test_ra_encryption_cert_without_key_encipherment(senv, ca):
    bad = _ra_variant(senv, ca, 'ra-enc-wrong-ku', pki.key_usage(key_agreement=True,
                                                                  data_encipherment=True))
    d = _ra_directives(senv, [(senv.p('ra-sign.crt'), senv.p('ra-sign.key')), bad])
    rc, out = config_test(senv, d)
    assert rc != 0, 'started with an RA certificate lacking keyEncipherment:\n' + out
    assert bad[0] in out, out
    assert '(NDES event 10)' in out, out


def test_ra_signing_cert_without_digital_signature(senv, ca):
    bad = _ra_variant(senv, ca, 'ra-sign-wrong-ku', pki.key_usage(content_commitment=True))
    d = _ra_directives(senv, [bad, (senv.p('ra-enc.crt'), senv.p('ra-enc.key'))])
    rc, out = config_test(senv, d)
    assert rc != 0, 'started with an RA certificate lacking digitalSignature:\n' + out
    assert bad[0] in out, out
    assert '(NDES event 10)' in out, out


def test_ra_cert_not_issued_by_ca(senv):
    key = pki.new_key()
    other_ca_key = pki.new_key()
    other_ca = pki.self_signed(other_ca_key, 'some other CA')
    cert = pki.issue(other_ca, other_ca_key, key, 'foreign RA',
                     ku=pki.key_usage(key_encipherment=True), eku=[pki.OID_CERT_REQUEST_AGENT])
    cpath, kpath = os.path.join(senv.gen, 'ra-foreign.crt'), os.path.join(senv.gen, 'ra-foreign.key')
    write_cert(cpath, cert)
    write_key(kpath, key)
    d = _ra_directives(senv, [(senv.p('ra-sign.crt'), senv.p('ra-sign.key')), (cpath, kpath)])
    rc, out = config_test(senv, d)
    assert rc != 0, out
    assert cpath in out, out


def test_ra_key_does_not_match(senv):
    d = _ra_directives(senv, [(senv.p('ra-sign.crt'), senv.p('ra-sign.key')),
                              (senv.p('ra-enc.crt'), senv.p('ra-sign.key'))])
    rc, out = config_test(senv, d)
    assert rc != 0, out
    assert senv.p('ra-enc.crt') in out or senv.p('ra-sign.key') in out, out


@pytest.mark.parametrize('keyfile', ['ca.key', 'ra-enc.key'])
def test_group_readable_key(senv, keyfile):
    pdir = os.path.join(senv.gen, 'pki-loose-' + keyfile)
    if os.path.isdir(pdir):
        shutil.rmtree(pdir)
    shutil.copytree(senv.pki, pdir)
    os.chmod(os.path.join(pdir, keyfile), 0o640)
    d = [(k, v.replace(senv.pki, pdir)) for k, v in default_directives(senv)]
    rc, out = config_test(senv, d)
    assert rc != 0, 'started with a group-readable %s:\n%s' % (keyfile, out)
    assert os.path.join(pdir, keyfile) in out, out


def test_missing_challenge_file(senv):
    missing = os.path.join(senv.gen, 'no-such-challenge.txt')
    d = [(k, missing if k == 'SCEPChallengePasswordFile' else v) for k, v in
         default_directives(senv)]
    rc, out = config_test(senv, d)
    assert rc != 0, out
    assert missing in out, out


# --- LDAP groups need SCEPLDAPURL ----------------------------------------------

GROUP = '"cn=scep-admins,ou=groups,dc=example,dc=test"'
LDAP_URL = ('SCEPLDAPURL', '"ldap://127.0.0.1:1/ou=people,dc=example,dc=test?uid"')
LOAD_LDAP = 'LoadModule ldap_module %s/mod_ldap.so\n' % MODULES_DIR
# each way of naming a group: (directives, config text, what the message names)
GROUP_FORMS = {
    'manager': ([('SCEPCAManagerGroup', GROUP)], '', 'SCEPCAManagerGroup'),
    'admin': ([('SCEPCAType', 'Standalone'), ('SCEPCAAdminGroup', GROUP)], '', 'SCEPCAAdminGroup'),
    'template': ([('SCEPTemplateEnrollGroup', 'IPSECIntermediateOffline ' + GROUP)], '',
                 'SCEPTemplateEnrollGroup (or EnrollGroup) of template IPSECIntermediateOffline'),
    'section': ([], '<SCEPTemplate Routers>\n    EnrollGroup %s\n</SCEPTemplate>\n' % GROUP,
                'SCEPTemplateEnrollGroup (or EnrollGroup) of template Routers'),
}


@pytest.mark.parametrize('form', sorted(GROUP_FORMS))
def test_group_without_ldap_url_refused(senv, form):
    """A group the module could not check never leaves Apache's Require to
    decide alone: the configuration test fails, naming the directive."""
    directives, text, named = GROUP_FORMS[form]
    conf = make_conf(senv, default_directives(senv) + directives, LOAD_LDAP + text)
    rc, out = Apache(senv).config_test(conf)
    assert rc != 0, 'a group without SCEPLDAPURL passed the configuration test:\n' + out
    assert re.search(r'SCEP045: main server: %s is set but SCEPLDAPURL is not: .*'
                     r'\(NDES event 2\)' % re.escape(named), out), out


@pytest.mark.parametrize('form', sorted(GROUP_FORMS))
def test_group_with_ldap_url_starts(senv, form):
    directives, text, _ = GROUP_FORMS[form]
    conf = make_conf(senv, default_directives(senv) + directives + [LDAP_URL], LOAD_LDAP + text)
    rc, out = Apache(senv).config_test(conf)
    assert rc == 0, out
    assert 'Syntax OK' in out
    assert not re.search(r'\[(\w+:)?(warn|error|crit|alert|emerg)\]', out), out
