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
"""Where the tests and the benchmark keep what their servers write.

Apache's children run as www-data and PostgreSQL as postgres when the tests
run as root: both write below the generated tree (the SQLite records, cores,
sanitizer reports, the cluster's data). That is the checkout's t/gen when
those users can reach it; a checkout they cannot reach (cloned under /root,
or inside a 0700 directory) gets a tree of its own below /var/lib, named
after the checkout, as build/demo does for its database.

    gen_dir(repo)         t/gen of repo, or /var/lib/mod_scep-test-<hash>
"""
import functools
import hashlib
import os
import subprocess

# the users that write below the generated tree when the tests run as root
SERVER_USERS = ('www-data', 'postgres')


def _reaches(user, path):
    """Whether user may pass through every directory up to path."""
    p = subprocess.run(['runuser', '-u', user, '--', 'test', '-x', path],
                       capture_output=True)
    return p.returncode == 0


@functools.lru_cache(maxsize=None)
def gen_dir(repo):
    repo = os.path.abspath(repo)
    inside = os.path.join(repo, 't', 'gen')
    if os.geteuid() != 0 or all(_reaches(u, os.path.join(repo, 't')) for u in SERVER_USERS):
        return inside
    outside = '/var/lib/mod_scep-test-' + hashlib.sha256(repo.encode()).hexdigest()[:12]
    os.makedirs(outside, mode=0o755, exist_ok=True)
    os.chmod(outside, 0o755)
    return outside
