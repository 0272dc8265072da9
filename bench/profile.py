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
"""Where an enrollment's time and instructions go.

    unshare -n sh -c 'ip link set lo up && /usr/bin/python3 bench/profile.py [SECONDS]'
    unshare -n sh -c 'ip link set lo up && /usr/bin/python3 bench/profile.py --perf [SECONDS]'

By instructions (the default): one Apache process (-X) of the benchmark's
configuration under callgrind, counting only inside ap_process_async_request
(request handling, not startup), while wrk sends PKCSReq messages on one
connection; it prints the share of the three RSA private-key operations and
of the biggest other costs. Valgrind's CPU has no AVX-512, so OpenSSL's RSA
takes a path of more instructions than on the machine: read these shares
as instructions, not time.

By CPU time (--perf): the benchmark's server (bench.ModScep, its tuning)
under wrk at 8 connections, sampled by perf (Debian linux-perf) with DWARF
call stacks; it prints each phase's and each kind of cost's share of the
server's CPU time (kernel included), and the server's user and system time
and context switches per enrollment.

(bench/run does not call it; run it as root after bench/run built the
message pool.) The raw profiles stay in t/gen/bench-cache/callgrind/ for
callgrind_annotate, and t/gen/bench-cache/perf/ for perf report.
"""
import collections
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import bench
import messages
from sceptest.paths import gen_dir

# Inclusive costs worth naming; the RSA ones are the floor.
RSA_PRIVATE = ('RSA_private_encrypt', 'RSA_private_decrypt')
SHOWN = RSA_PRIVATE + ('scep_request_parse', 'scep_ca_issue', 'scep_certrep_build',
                       'OSSL_DECODER_CTX_new_for_pkey', 'OSSL_ENCODER_CTX_new_for_pkey',
                       'd2i_CMS_ContentInfo', 'd2i_X509_REQ', 'RSA_public_decrypt',
                       'RSA_public_encrypt', 'RSA_setup_blinding', 'scep_key_id',
                       'sqlite3_step', 'apr_dbd_pquery', 'apr_dbd_pselect', 'ap_log_rerror_')


# --perf: a sample's phase is the first of these on its stack, innermost
# first; its cost the first match of COSTS (names OpenSSL exports; its
# static functions have no symbols without debug packages).
PHASES = ('scep_request_parse', 'scep_certrep_build', 'scep_ca_issue', 'record_new',
          'scep_enroll_message', 'mod_scep_handler', 'ap_process_async_request')
COSTS = (('RSA private-key operations', ('BN_mod_exp_mont_consttime_x2',
                                         'BN_mod_exp_mont_consttime')),
         ('RSA public-key operations', ('BN_mod_exp_mont',)),
         ('OpenSSL 3.0 decoder set-up', ('OSSL_DECODER_CTX_new_for_pkey',)),
         ('SQLite', ('sqlite3_',)),
         ('ASN.1 decoding', ('ASN1_item_d2i',)),
         ('ASN.1 encoding', ('ASN1_item_ex_i2d', 'ASN1_item_i2d')),
         ('algorithm fetches', ('EVP_MD_fetch', 'EVP_CIPHER_fetch', 'EVP_KEYMGMT_fetch',
                                'EVP_SIGNATURE_fetch', 'EVP_ASYM_CIPHER_fetch')),
         ('malloc and free', ('malloc', 'free', '_int_malloc', '_int_free', 'cfree')),
         ('locks', ('pthread_rwlock', 'CRYPTO_THREAD_', 'pthread_mutex', '__lll_lock')))


def read_stacks(path):
    """perf script's samples: [(symbols innermost first, in the kernel)]."""
    out = subprocess.run(['perf', 'script', '-i', path, '-F', 'comm,ip,sym,dso'],
                         capture_output=True, text=True, check=True).stdout
    samples = []
    for line in out.splitlines():
        if line and not line[0].isspace():      # a sample's header: comm
            samples.append([])
            continue
        m = re.match(r'\s+\S+\s+(.*?) \((.*)\)$', line)
        if m and samples:
            samples[-1].append((m.group(1), m.group(2)))
    return [([n for n, _ in s], 'kernel' in s[0][1]) for s in samples if s]


def classify(names, in_kernel):
    phase = next((p for p in PHASES if p in names), 'other (HTTP, MPM)')
    if in_kernel:
        return phase, 'kernel (network, files, scheduling)'
    for cost, prefixes in COSTS:
        if any(n.startswith(prefixes) for n in names):
            return phase, cost
    return phase, 'other'


def perf_main(seconds):
    cache = os.path.join(gen_dir(bench.REPO), 'bench-cache')
    server = bench.ModScep(cache)
    pool = messages.pool(cache, server.recipient_pem(),
                         int(2000 * (seconds + 2)), bench.say)
    out_dir = os.path.join(cache, 'perf')
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    data = os.path.join(out_dir, 'perf.data')
    server.start()
    try:
        url = server.url + '?operation=PKIOperation'
        first = bench.wrk(url, 1, 1, 'post', pool, 0)['sent']
        first += bench.wrk(url, 8, 1, 'post', pool, first)['sent']
        pids = bench.process_tree(server.pid)
        perf = subprocess.Popen(['perf', 'record', '-q', '-F', '499', '--call-graph',
                                 'dwarf,16384', '-o', data, '-p', ','.join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        before = bench.usage([server.pid])
        res = bench.wrk(url, 8, seconds, 'post', pool, first)
        bench.account(res, before, bench.usage([server.pid]))
        perf.send_signal(signal.SIGINT)
        perf.wait()
    finally:
        server.stop()
    samples = read_stacks(data)
    by_phase, by_cost = collections.Counter(), collections.Counter()
    for names, in_kernel in samples:
        phase, cost = classify(names, in_kernel)
        by_phase[phase] += 1
        by_cost[cost] += 1
    total = max(len(samples), 1)
    print('%d enrollments at 8 connections, %d samples; per enrollment: CPU %.2f ms (user '
          '%.2f, system %.2f), %.1f context switches' % (
              res['success'], len(samples), res['cpu_ms'], res['user_ms'], res['sys_ms'],
              res['switches']))
    print('by phase:')
    for name, n in by_phase.most_common():
        print('  %-40s %5.1f%%' % (name, 100 * n / total))
    print('by kind of cost:')
    for name, n in by_cost.most_common():
        print('  %-40s %5.1f%%' % (name, 100 * n / total))


def main():
    args = sys.argv[1:]
    if args[:1] == ['--perf']:
        perf_main(int(args[1]) if len(args) > 1 else 5)
        return
    seconds = int(args[0]) if args else 20
    cache = os.path.join(gen_dir(bench.REPO), 'bench-cache')
    server = bench.ModScep(cache)
    pool = messages.pool(cache, server.recipient_pem(), 2000, bench.say)
    server.start()      # writes the configuration and PKI, empty records
    server.stop()
    out_dir = os.path.join(cache, 'callgrind')
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    out = os.path.join(out_dir, 'callgrind.out')
    env = server.env
    proc = subprocess.Popen(['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out,
                             '--collect-atstart=no',
                             '--toggle-collect=ap_process_async_request',
                             '/usr/sbin/apache2', '-X', '-d', env.gen, '-f', env.conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = server.url + '?operation=PKIOperation'
        end = time.time() + 120
        while time.time() < end:
            try:
                if bench.C.http_request('GET', server.url + '?operation=GetCACaps',
                                        timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(1)
        # Apache's child (www-data under root) writes the profile at exit
        if env.as_root:
            for path in glob.glob(out + '*'):
                shutil.chown(path, 'www-data', 'www-data')
        res = bench.wrk(url, 1, seconds, 'post', pool, 0)
    finally:
        proc.terminate()
        proc.wait()
    report = subprocess.run(['callgrind_annotate', '--inclusive=yes', '--threshold=100', out],
                            capture_output=True, text=True).stdout
    costs = {}
    for line in report.splitlines():
        m = re.match(r'^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:(\S+)', line)
        if m:
            costs.setdefault(m.group(2), int(m.group(1).replace(',', '')))
    total = costs.get('ap_process_async_request') or 1
    n = max(res['success'], 1)
    print('%d enrollments profiled, %.1f M instructions each' % (n, total / n / 1e6))
    for name in SHOWN:
        if name in costs:
            print('  %-32s %5.1f%%' % (name, 100 * costs[name] / total))
    rsa = sum(costs.get(name, 0) for name in RSA_PRIVATE)
    print('all instructions / three RSA private-key operations: %.2f' % (total / rsa))


if __name__ == '__main__':
    main()
