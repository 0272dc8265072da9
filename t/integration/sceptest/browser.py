"""Headless Chromium (Debian package chromium) driven through the DevTools
protocol over a pipe (--remote-debugging-pipe: NUL-terminated JSON on file
descriptors 3 and 4), so no extra Python package is needed.

    with Chromium(workdir, trust_spki=[spki_b64]) as b:
        page = b.open(url, basic=('alice', 'pw'))     # answers the Basic challenge
        page.status, page.text (document.body.innerText), page.html
        with b.tab(basic=('dave', 'pw')) as t:        # a tab kept open for forms
            t.navigate(url); page = t.click('#row-1 button')   # a real mouse click

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
        with self.tab(basic, own_context) as t:
            return t.navigate(url, wait)

    def tab(self, basic=None, own_context=True):
        """A tab that stays open across navigations (a Tab, to use in a
        with statement), for pages whose forms are clicked."""
        return Tab(self, basic, own_context)


class Tab:
    """One tab of the browser, for as long as the with statement lasts:

        with chromium.tab(basic=('dave', pw)) as t:
            page = t.navigate(url)
            page = t.click('#txn-X button[value="approve"]')

    Basic credentials answer the first challenge of each navigation (the
    browser then sends them by itself, as after a user typed them)."""

    def __init__(self, browser, basic, own_context):
        self.b = browser
        self.basic = basic
        self.own_context = own_context
        self.ctx = self.target = self.session = None
        self.state = {}

    def __enter__(self):
        b = self.b
        params = {'url': 'about:blank'}
        if self.own_context:
            self.ctx = b.call('Target.createBrowserContext',
                              {'disposeOnDetach': True})['browserContextId']
            params['browserContextId'] = self.ctx
        self.target = b.call('Target.createTarget', params)['targetId']
        self.session = b.call('Target.attachToTarget', {'targetId': self.target,
                                                        'flatten': True})['sessionId']
        b._handler = self._handle
        self._reset()
        try:
            b.call('Page.enable', session=self.session)
            b.call('Network.enable', session=self.session)
            b.call('Fetch.enable', {'handleAuthRequests': True,
                                    'patterns': [{'urlPattern': '*'}]}, session=self.session)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.b._handler = None
        try:
            self.b.call('Target.closeTarget', {'targetId': self.target})
            if self.ctx:
                self.b.call('Target.disposeBrowserContext', {'browserContextId': self.ctx})
        except BrowserError:
            pass

    def _reset(self):
        self.state = {'status': None, 'headers': {}, 'challenges': [], 'loaded': False}

    def _handle(self, ev):
        """Answers paused requests and auth challenges at once (also while
        a command waits for its reply); True when consumed."""
        if ev.get('sessionId') != self.session:
            return False
        b, state = self.b, self.state
        method, params = ev.get('method'), ev.get('params', {})
        if method == 'Fetch.requestPaused':
            b._send('Fetch.continueRequest', {'requestId': params['requestId']},
                    session=self.session)
        elif method == 'Fetch.authRequired':
            state['challenges'].append(params.get('authChallenge', {}))
            if self.basic and len(state['challenges']) == 1:
                resp = {'response': 'ProvideCredentials', 'username': self.basic[0],
                        'password': self.basic[1]}
            else:
                resp = {'response': 'CancelAuth'}
            b._send('Fetch.continueWithAuth', {'requestId': params['requestId'],
                                               'authChallengeResponse': resp},
                    session=self.session)
        elif method == 'Network.responseReceived' and params.get('type') == 'Document':
            state['status'] = params['response']['status']
            state['headers'] = {k.lower(): v for k, v in params['response']['headers'].items()}
        elif method == 'Page.loadEventFired':
            state['loaded'] = True
        else:
            return False
        return True

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (DevTools, not
        the page's own scripts: the page's CSP does not apply)."""
        return self.b.call('Runtime.evaluate', {'expression': expression,
                                                'returnByValue': True},
                           session=self.session)['result'].get('value')

    def _page(self, wait):
        deadline = time.time() + (wait or self.b.timeout)
        while not self.state['loaded']:
            self.b.next_event(deadline)
        text = self.evaluate('document.body ? document.body.innerText : ""') or ''
        html = self.evaluate('document.documentElement.outerHTML') or ''
        url = self.evaluate('document.location.href')
        return Page(url, self.state['status'], self.state['headers'], text, html,
                    self.state['challenges'])

    def navigate(self, url, wait=None):
        """Loads url; the Page once its load event fired."""
        self._reset()
        frame = self.b.call('Page.navigate', {'url': url}, session=self.session)
        if frame.get('errorText'):
            raise BrowserError('navigation to %s failed: %s' % (url, frame['errorText']))
        return self._page(wait)

    def type_into(self, selector, text):
        """Types text into the input that selector finds, as a user does:
        the input gets the focus, then the keyboard's text."""
        if not self.evaluate('(() => { const e = document.querySelector(%s); if (!e) return false; '
                             'e.focus(); return true; })()' % json.dumps(selector)):
            raise BrowserError('nothing on the page matches %s' % selector)
        self.b.call('Input.insertText', {'text': text}, session=self.session)

    def click(self, selector, wait=None):
        """Clicks the element (a button) that selector finds, with the mouse
        as a user does, and returns the Page that the click loads (a form
        submission, after its redirects)."""
        where = self.evaluate(
            '(() => { const e = document.querySelector(%s); if (!e) return null; '
            'e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect(); '
            'return [r.left + r.width / 2, r.top + r.height / 2]; })()' % json.dumps(selector))
        if where is None:
            raise BrowserError('nothing on the page matches %s' % selector)
        self._reset()
        x, y = where
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.b.call('Input.dispatchMouseEvent', {'type': kind, 'x': x, 'y': y,
                                                     'button': 'left', 'clickCount': 1},
                        session=self.session)
        return self._page(wait)
