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
"""Where an enrollment's instructions go: one Apache process (-X) of the
benchmark's configuration under callgrind, counting only inside
ap_process_async_request (request handling, not startup), while wrk sends
PKCSReq messages on one connection. Prints the share of the three RSA
private-key operations and the biggest other costs.

    unshare -n sh -c 'ip link set lo up && /usr/bin/python3 bench/profile.py [SECONDS]'

(bench/run does not call it; run it as root after bench/run built the
message pool.) The raw profile stays in t/gen/bench-cache/callgrind/ for
callgrind_annotate.
"""
import glob
import os
import re
import shutil
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


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
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
