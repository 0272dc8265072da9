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

/* JSON values of the module (scep_json.h). */

#include <openssl/evp.h>

#include "scep_json.h"

json_t *scep_json_text(apr_pool_t *p, const char *text)
{
    return text ? json_string(scep_utf8_text(p, text)) : json_null();
}

json_t *scep_json_base64(apr_pool_t *p, const unsigned char *der, int len)
{
    char *b64;

    if (len <= 0) {
        return NULL;
    }
    b64 = apr_palloc(p, (apr_size_t)(len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b64, der, len);
    return json_string(b64);
}

/* Measured first, then written by json_dumpb() (jansson 2.10). */
const char *scep_json_dump(apr_pool_t *p, const json_t *doc, apr_size_t *len)
{
    size_t need = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    char *text = need ? apr_palloc(p, need + 1) : NULL;

    if (!text || json_dumpb(doc, text, need, JSON_COMPACT) != need) {
        return NULL;
    }
    text[need] = '\0';
    *len = need;
    return text;
}
