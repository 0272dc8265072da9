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
"""Pools of distinct PKCSReq messages for the benchmark, built with the
integration tests' SCEP client (t/integration/sceptest).

A device's RSA key takes far longer to make than a message, so a few keys
sign many requests: every message has its own transactionID, CSR and
subject (CN bench-<pool tag>-<n>, micromdm refuses a CN it has issued),
and the self-signed signer certificate of its key. Building a message
costs milliseconds in Python (asn1crypto), so a pool is kept on disk per
recipient certificate and grown when a run needs more: the servers' records
are emptied before every run, so the same messages are new to them again.

Pool file: messages one after the other, each preceded by its length as 4
bytes big-endian (bench/wrk.lua reads them).
"""
import hashlib
import multiprocessing
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 't',
                                'integration'))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from sceptest import client, pki  # noqa: E402

KEYS = 32
CHUNK = 100


def _keys(cache_dir):
    """The devices' keys, made once and kept in cache_dir/device-keys.pem."""
    path = os.path.join(cache_dir, 'device-keys.pem')
    if os.path.exists(path):
        with open(path, 'rb') as f:
            blocks = f.read().split(b'-----END PRIVATE KEY-----')
        return [serialization.load_pem_private_key(b + b'-----END PRIVATE KEY-----', None)
                for b in blocks if b.strip()]
    with multiprocessing.Pool() as workers:
        keys = workers.map(_new_key_pem, range(KEYS))
    with open(os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as f:
        f.write(b''.join(keys))
    os.replace(path + '.tmp', path)
    return _keys(cache_dir)


def _new_key_pem(_):
    return pki.key_pem(pki.new_key())


_worker = {}


def _init_worker(key_pems, recipient_pem, tag):
    keys = [serialization.load_pem_private_key(k, None) for k in key_pems]
    _worker['keys'] = keys
    _worker['signers'] = [pki.self_signed(k, 'scep bench device', days=3650) for k in keys]
    _worker['recipient'] = x509.load_pem_x509_certificate(recipient_pem)
    _worker['tag'] = tag


def _build(first):
    keys, signers = _worker['keys'], _worker['signers']
    out = []
    for n in range(first, first + CHUNK):
        key, signer = keys[n % len(keys)], signers[n % len(keys)]
        csr = pki.make_csr(key, 'bench-%s-%d' % (_worker['tag'], n),
                           ku=pki.key_usage(digital_signature=True, key_encipherment=True))
        der = client.pkcsreq(csr, key, [_worker['recipient']], signer_cert=signer,
                             cipher='aes128', digest_name='sha256').der
        out.append(struct.pack('>I', len(der)) + der)
    return b''.join(out)


def count(path):
    """How many messages the pool file holds."""
    n = 0
    try:
        with open(path, 'rb') as f:
            while True:
                head = f.read(4)
                if len(head) < 4:
                    return n
                f.seek(struct.unpack('>I', head)[0], os.SEEK_CUR)
                n += 1
    except FileNotFoundError:
        return 0


def pool(cache_dir, recipient_pem, wanted, say=print):
    """The path of a pool of at least `wanted` PKCSReq messages encrypted to
    the certificate recipient_pem (PEM), built in parallel when missing."""
    digest = hashlib.sha256(x509.load_pem_x509_certificate(recipient_pem).public_bytes(
        serialization.Encoding.DER)).hexdigest()[:16]
    path = os.path.join(cache_dir, 'pool-%s.bin' % digest)
    have = count(path)
    if have >= wanted:
        return path
    missing = -(-(wanted - have) // CHUNK) * CHUNK
    say('building %d PKCSReq messages for recipient %s (kept for later runs)' % (missing, digest))
    key_pems = [pki.key_pem(k) for k in _keys(cache_dir)]
    with multiprocessing.Pool(initializer=_init_worker,
                              initargs=(key_pems, recipient_pem, digest[:8])) as workers, \
            open(path, 'ab') as f:
        for block in workers.imap(_build, range(have, have + missing, CHUNK)):
            f.write(block)
    return path
