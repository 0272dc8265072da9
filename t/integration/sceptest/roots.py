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
"""The server roots of the test files that need a server of their own (the
fixtures' side: it fails the test with pytest, which bench/ does without)."""
import pytest

from .httpd import Env


def fresh_env(repo, name, port_base):
    """t/gen/<mpm>/<name> emptied, with the PKI of `scepctl setup`."""
    e = Env(repo, name=name, port_base=port_base)
    if not e.built():
        pytest.fail('mod_scep is not built', pytrace=False)
    e.clean()
    e.setup_pki()
    return e
