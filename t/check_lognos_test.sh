#!/bin/bash
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

# The check of t/check_lognos.sh itself: on t/lognos/calls.c, which holds
# the log calls it must accept and one of each kind it must refuse, it
# fails and says exactly t/lognos/expected.

set -euo pipefail
cd "$(dirname "$0")/.."

status=0
got=$(t/check_lognos.sh t/lognos 2>&1 >/dev/null) || status=$?
if [ "$status" -ne 1 ]; then
    echo "check_lognos_test: t/check_lognos.sh exited $status on t/lognos, not 1" >&2
    exit 1
fi
if ! diff -u t/lognos/expected - <<<"$got"; then
    echo "check_lognos_test: t/check_lognos.sh's complaints differ from t/lognos/expected" >&2
    exit 1
fi
echo "check_lognos_test: t/check_lognos.sh refuses what t/lognos/calls.c gets wrong, and only that"
