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
 * GET PKIOperation messages. RFC 8894 wants base64 that is then
 * percent-escaped; real clients send something else: Cisco and jscep leave
 * '+' raw (a form decoder would make it a space), macOS escapes only '=',
 * sscep keeps OpenSSL's line breaks as %0A, some send the base64url
 * alphabet, some drop the padding. The URL unescaping is done by the caller
 * (httpd); here the text is brought back to the standard alphabet and handed
 * to OpenSSL's decoder.
 */

#include <limits.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/evp.h>

#include "scep.h"

/* The standard base64 character for c, 0 for characters that carry no data
 * (white space, padding), -1 for characters that cannot be base64. */
static int normalized_b64_char(char c)
{
    switch (c) {
    case ' ': /* a raw '+' after form decoding */
    case '-': /* base64url */
        return '+';
    case '_': /* base64url */
        return '/';
    case '\r':
    case '\n':
    case '\t':
    case '=':
        return 0;
    default:
        return apr_isalnum(c) || c == '+' || c == '/' ? c : -1;
    }
}

apr_status_t scep_decode_get_message(apr_pool_t *p, const char *text, unsigned char **der,
                                     apr_size_t *len)
{
    apr_size_t text_len = strlen(text), n = 0, i;
    char *b64 = apr_palloc(p, text_len + 4);
    unsigned char *out;
    int c, decoded, padding;

    for (i = 0; i < text_len; i++) {
        c = normalized_b64_char(text[i]);
        if (c < 0) {
            return APR_EINVAL;
        }
        if (c > 0) {
            b64[n++] = (char)c;
        }
    }
    if (n == 0 || n % 4 == 1 || n > INT_MAX - 4) {
        return APR_EINVAL;
    }
    padding = (int)((4 - n % 4) % 4);
    memset(b64 + n, '=', (size_t)padding);
    n += (apr_size_t)padding;

    out = apr_palloc(p, n / 4 * 3);
    decoded = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (decoded < padding) {
        return APR_EINVAL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    *der = out;
    *len = (apr_size_t)(decoded - padding);
    return APR_SUCCESS;
}
