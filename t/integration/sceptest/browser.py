"""Headless Chromium (Debian package chromium) driven through the DevTools
protocol over a pipe (--remote-debugging-pipe: NUL-terminated JSON on file
descriptors 3 and 4), so no extra Python package is needed.

    with Chromium(workdir, trust_spki=[spki_b64]) as b:
        page = b.open(url, basic=('alice', 'pw'))     # answers the Basic challenge
        page.status, page.text (document.body.innerText), page.html

Basic credentials are given the way a user types them into the browser's
login dialog: Fetch.authRequired -> Fetch.continueWithAuth. Without
credentials the challenge is cancelled (the 401 page stays). Kerberos is
not driven through Chromium: Debian's chromium 156 answers a Negotiate
challenge with ERR_UNSUPPORTED_AUTH_SCHEME even with --auth-server-allowlist
(the Kerberos tests use curl --negotiate).

The TLS certificate of the test server is accepted by its public key
(--ignore-certificate-errors-spki-list), not by ignoring every error.
"""
import base64
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import time

from cryptography.hazmat.primitives import serialization

CHROMIUM = '/usr/bin/chromium'


def spki_hash(cert):
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as Chromium's
    --ignore-certificate-errors-spki-list wants it."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class BrowserError(Exception):
    pass


class Page:
    def __init__(self, url, status, headers, text, html, auth_challenges):
        self.url = url
        self.status = status
        self.headers = headers
        self.text = text
        self.html = html
        self.auth_challenges = auth_challenges


class Chromium:
    def __init__(self, workdir, trust_spki=(), env=None, timeout=60, extra_args=()):
        self.workdir = workdir
        self.profile = os.path.join(workdir, 'chromium-profile')
        self.trust_spki = list(trust_spki)
        self.env = env
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self._buf = b''
        self._id = 0
        self._handler = None
        self.events = []
        self.stderr_path = os.path.join(workdir, 'chromium-stderr.log')

    # -- process ---------------------------------------------------------

    def start(self):
        if os.path.isdir(self.profile):
            shutil.rmtree(self.profile)
        os.makedirs(self.profile)
        args = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--disable-extensions',
                '--disable-default-apps', '--no-first-run', '--no-default-browser-check',
                '--metrics-recording-only', '--password-store=basic', '--use-mock-keychain',
                '--user-data-dir=' + self.profile, '--remote-debugging-pipe', 'about:blank']
        if self.trust_spki:
            args.insert(1, '--ignore-certificate-errors-spki-list=' + ','.join(self.trust_spki))
        args[1:1] = self.extra_args
        # the pipe ends go to descriptors 3 (commands in) and 4 (replies out);
        # first move them above 10 so the dup2s cannot clobber each other
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        err = open(self.stderr_path, 'ab')
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         pass_fds=(3, 4, hi_r, hi_w), preexec_fn=child_fds,
                                         env=self.env if self.env is not None else None,
                                         start_new_session=True)
        finally:
            err.close()
            os.close(hi_r)
            os.close(hi_w)
        self._pgid = self.proc.pid
        self._w = to_child_w
        self._r = from_child_r
        # the browser answers once it is up
        try:
            self.version = self.call('Browser.getVersion')
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc is None:
            return
        try:
            self._send('Browser.close')
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None
        # its helper processes (zygote, renderers) are in its session
        try:
            os.killpg(self._pgid, signal.SIGKILL)
        except OSError:
            pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stderr_tail(self, n=20):
        try:
            with open(self.stderr_path, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    # -- protocol --------------------------------------------------------

    def _send(self, method, params=None, session=None):
        self._id += 1
        msg = {'id': self._id, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = session
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        return self._id

    def _read(self, deadline):
        while b'\0' not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                raise BrowserError('Chromium did not answer in time; stderr:\n' +
                                   self.stderr_tail())
            r, _, _ = select.select([self._r], [], [], left)
            if not r:
                continue
            chunk = os.read(self._r, 65536)
            if not chunk:
                raise BrowserError('Chromium closed the pipe; stderr:\n' + self.stderr_tail())
            self._buf += chunk
        raw, self._buf = self._buf.split(b'\0', 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None):
        """Sends a command and returns its result. Events that arrive
        meanwhile go to the page's handler (which may only _send) or are
        kept in self.events; answers to _send()s nobody waits for are dropped."""
        mid = self._send(method, params, session)
        deadline = time.time() + self.timeout
        while True:
            msg = self._read(deadline)
            if msg.get('id') == mid:
                if 'error' in msg:
                    raise BrowserError('%s: %s' % (method, msg['error']))
                return msg.get('result', {})
            if 'id' in msg:
                continue
            if not (self._handler and self._handler(msg)):
                self.events.append(msg)

    def next_event(self, deadline):
        while True:
            if self.events:
                return self.events.pop(0)
            msg = self._read(deadline)
            if 'id' in msg:
                continue
            if not (self._handler and self._handler(msg)):
                return msg

    # -- pages -----------------------------------------------------------

    def open(self, url, basic=None, wait=None, own_context=True):
        """Loads url in a new tab; basic: (user, password) for a Basic
        challenge. Returns a Page with the main document's status and the
        rendered text. Each page has a browser context of its own (no
        credentials cached from earlier pages); such contexts are off the
        record, where Chromium does no ambient (Negotiate) authentication:
        own_context=False opens the page in the browser's default context."""
        ctx = None
        params = {'url': 'about:blank'}
        if own_context:
            ctx = self.call('Target.createBrowserContext',
                            {'disposeOnDetach': True})['browserContextId']
            params['browserContextId'] = ctx
        target = self.call('Target.createTarget', params)['targetId']
        session = self.call('Target.attachToTarget', {'targetId': target,
                                                      'flatten': True})['sessionId']
        try:
            return self._load(session, url, basic, wait or self.timeout)
        finally:
            try:
                self.call('Target.closeTarget', {'targetId': target})
                if ctx:
                    self.call('Target.disposeBrowserContext', {'browserContextId': ctx})
            except BrowserError:
                pass

    def _load(self, session, url, basic, wait):
        state = {'status': None, 'headers': {}, 'challenges': [], 'loaded': False}

        def handler(ev):
            """Answers paused requests and auth challenges at once (also
            while a command waits for its reply); True when consumed."""
            if ev.get('sessionId') != session:
                return False
            method, params = ev.get('method'), ev.get('params', {})
            if method == 'Fetch.requestPaused':
                self._send('Fetch.continueRequest', {'requestId': params['requestId']},
                           session=session)
            elif method == 'Fetch.authRequired':
                state['challenges'].append(params.get('authChallenge', {}))
                if basic and len(state['challenges']) == 1:
                    resp = {'response': 'ProvideCredentials', 'username': basic[0],
                            'password': basic[1]}
                else:
                    resp = {'response': 'CancelAuth'}
                self._send('Fetch.continueWithAuth', {'requestId': params['requestId'],
                                                      'authChallengeResponse': resp},
                           session=session)
            elif method == 'Network.responseReceived' and params.get('type') == 'Document':
                state['status'] = params['response']['status']
                state['headers'] = {k.lower(): v
                                    for k, v in params['response']['headers'].items()}
            elif method == 'Page.loadEventFired':
                state['loaded'] = True
            else:
                return False
            return True

        self._handler = handler
        try:
            self.call('Page.enable', session=session)
            self.call('Network.enable', session=session)
            self.call('Fetch.enable', {'handleAuthRequests': True,
                                       'patterns': [{'urlPattern': '*'}]}, session=session)
            frame = self.call('Page.navigate', {'url': url}, session=session)
            if frame.get('errorText'):
                raise BrowserError('navigation to %s failed: %s' % (url, frame['errorText']))
            deadline = time.time() + wait
            while not state['loaded']:
                self.next_event(deadline)
            text = self.call('Runtime.evaluate', {'expression': 'document.body ? '
                                                  'document.body.innerText : ""',
                                                  'returnByValue': True},
                             session=session)['result'].get('value', '')
            html = self.call('Runtime.evaluate', {'expression':
                                                  'document.documentElement.outerHTML',
                                                  'returnByValue': True},
                             session=session)['result'].get('value', '')
        finally:
            self._handler = None
        return Page(url, state['status'], state['headers'], text, html, state['challenges'])
