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
"""A SoftHSM2 token of a test's own (test_hsm.py, bench/run --hsm): its
configuration and token directory below a directory given (SOFTHSM2_CONF),
the keys of a mod_scep PKI made in it by scepctl setup, and the server
directives that use them.

    h = SoftHSM(dir, fresh=True); h.init_token()
    h.setup_pki(env)              # scepctl setup --pkcs11-module ... --ca-key ...
    h.give_to_children(env)       # Apache's children (www-data) open it again
    httpd.extra_env = h.environ(); httpd.directives = h.directives(env)
"""
import grp
import os
import pwd
import shutil
import subprocess

MODULE = '/usr/lib/softhsm/libsofthsm2.so'
TOKEN = 'scep-test'
PIN = '5813-2134-test-pin'
SO_PIN = '0000-so-test-pin'
CA_URI = 'pkcs11:token=%s;object=scep-ca;type=private' % TOKEN
RA_PREFIX = 'pkcs11:token=%s;object=scep-ra' % TOKEN
RA_SIGN_URI = 'pkcs11:token=%s;object=scep-ra-sign' % TOKEN
RA_ENC_URI = 'pkcs11:token=%s;object=scep-ra-enc' % TOKEN


def available():
    return os.path.exists(MODULE)


class SoftHSM:
    def __init__(self, directory, fresh=False):
        """fresh: the tokens an earlier run left are removed."""
        self.dir = directory
        self.tokens = os.path.join(directory, 'tokens')
        self.conf = os.path.join(directory, 'softhsm2.conf')
        self.pin_file = os.path.join(directory, 'pin.txt')
        if fresh:
            shutil.rmtree(self.tokens, ignore_errors=True)
        os.makedirs(self.tokens, exist_ok=True)
        os.chmod(directory, 0o755)
        with open(self.conf, 'w') as f:
            f.write('directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n'
                    % self.tokens)
        os.chmod(self.conf, 0o644)
        self.write_pin(self.pin_file, PIN)

    def environ(self):
        return {'SOFTHSM2_CONF': self.conf}

    def run(self, cmd, **kw):
        kw.setdefault('capture_output', True)
        kw.setdefault('text', True)
        return subprocess.run(cmd, env=dict(os.environ, **self.environ()), **kw)

    @staticmethod
    def write_pin(path, pin, mode=0o600):
        with open(path, 'w') as f:
            f.write(pin + '\n')
        os.chmod(path, mode)
        return path

    def has_token(self):
        p = self.run(['softhsm2-util', '--show-slots'])
        return ('Label:            %s' % TOKEN) in p.stdout

    def init_token(self):
        p = self.run(['softhsm2-util', '--init-token', '--free', '--label', TOKEN,
                      '--so-pin', SO_PIN, '--pin', PIN])
        assert p.returncode == 0, p.stdout + p.stderr

    def setup_args(self):
        return ['--pkcs11-module', MODULE, '--pin-file', self.pin_file,
                '--ca-key', CA_URI, '--ra-key-prefix', RA_PREFIX]

    def setup_pki(self, env, pki_dir=None):
        """scepctl setup with the keys in the token: its output."""
        p = self.run([env.scepctl, 'setup', '-d', pki_dir or env.pki, '--ca-subject',
                      '/CN=mod_scep HSM Test CA/O=mod_scep tests'] + self.setup_args())
        assert p.returncode == 0, 'scepctl setup: %s%s' % (p.stdout, p.stderr)
        return p.stdout

    def give_to_children(self, env):
        """The token's files to www-data, whom Apache's children run as: the
        parent (root) loads the keys, each child opens the token again."""
        if not env.as_root:
            return
        uid, gid = pwd.getpwnam('www-data').pw_uid, grp.getgrnam('www-data').gr_gid
        for root, dirs, names in os.walk(self.tokens):
            for n in [root] + [os.path.join(root, x) for x in dirs + names]:
                os.chown(n, uid, gid)

    def objects(self):
        p = self.run(['pkcs11-tool', '--module', MODULE, '--token-label', TOKEN, '--login',
                      '--pin', PIN, '--list-objects'])
        assert p.returncode == 0, p.stderr
        return p.stdout

    def directives(self, env, pin_file=None, ca_uri=CA_URI, module=True):
        """The SCEP directives of a server whose CA and RA keys are the
        token's (the PKI's certificates from env.pki)."""
        d = []
        if module:
            d += [('SCEPPKCS11Module', MODULE), ('SCEPPKCS11PINFile', pin_file or self.pin_file)]
        return d + [
            ('SCEPCACertificateFile', env.p('ca.crt')),
            ('SCEPCAKeyFile', '"%s"' % ca_uri),
            ('SCEPRACertificate', '%s "%s"' % (env.p('ra-sign.crt'), RA_SIGN_URI)),
            ('SCEPRACertificate', '%s "%s"' % (env.p('ra-enc.crt'), RA_ENC_URI)),
            ('SCEPChallengePasswordFile', env.challenge_file),
        ]
