/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/*
 * The GET `message` decoder (scep_get.c). The input is the parameter as
 * httpd hands it over after URL unescaping: text up to the first NUL
 * (ap_unescape_url() refuses %00). What decodes is read in full, and must
 * be shorter than the text it came from.
 */

#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"

/* Where the decoded bytes are summed to, so that reading them stays. */
static volatile unsigned char sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *text = apr_pstrmemdup(p, (const char *)data, size);
    unsigned char *der = NULL, sum = 0;
    apr_size_t len = 0, i;

    if (scep_decode_get_message(p, text, &der, &len) == APR_SUCCESS) {
        if (!der || len == 0 || len > (strlen(text) + 3) / 4 * 3) {
            fuzz_fail("a decoded message that cannot have come from the text");
        }
        for (i = 0; i < len; i++) {
            sum ^= der[i];
        }
        sink = sum;
    }
    fuzz_pool_done(p);
    return 0;
}
