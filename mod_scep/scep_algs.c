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

#include "scep_algs.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>

/* The algorithms SCEP messages, certificates and the records use. */
static const int md_nids[] = { NID_sha1, NID_sha224, NID_sha256, NID_sha384, NID_sha512 };
static const int cipher_nids[] = { NID_aes_128_cbc, NID_aes_192_cbc, NID_aes_256_cbc,
                                   NID_des_ede3_cbc, NID_aes_256_gcm };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static EVP_MD *mds[COUNT(md_nids)];
static EVP_CIPHER *ciphers[COUNT(cipher_nids)];
static CRYPTO_ONCE fetched = CRYPTO_ONCE_STATIC_INIT;

/* Never freed: the process ends with them. A failed fetch leaves NULL and
 * its error is not the caller's. */
static void fetch_all(void)
{
    size_t i;

    ERR_set_mark();
    for (i = 0; i < COUNT(md_nids); i++) {
        mds[i] = EVP_MD_fetch(NULL, OBJ_nid2sn(md_nids[i]), NULL);
    }
    for (i = 0; i < COUNT(cipher_nids); i++) {
        ciphers[i] = EVP_CIPHER_fetch(NULL, OBJ_nid2sn(cipher_nids[i]), NULL);
    }
    ERR_pop_to_mark();
}

const EVP_MD *scep_md(int nid)
{
    size_t i;

    if (CRYPTO_THREAD_run_once(&fetched, fetch_all)) {
        for (i = 0; i < COUNT(md_nids); i++) {
            if (md_nids[i] == nid && mds[i]) {
                return mds[i];
            }
        }
    }
    return EVP_get_digestbynid(nid);
}

const EVP_CIPHER *scep_cipher(int nid)
{
    size_t i;

    if (CRYPTO_THREAD_run_once(&fetched, fetch_all)) {
        for (i = 0; i < COUNT(cipher_nids); i++) {
            if (cipher_nids[i] == nid && ciphers[i]) {
                return ciphers[i];
            }
        }
    }
    return EVP_get_cipherbynid(nid);
}
