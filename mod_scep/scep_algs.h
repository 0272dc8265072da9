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
 * The digests and ciphers of SCEP messages, fetched once per process.
 *
 * OpenSSL 3 looks up a provider's implementation each time an EVP_MD or
 * EVP_CIPHER of the built-in table (EVP_sha256(), EVP_get_digestbynid())
 * starts a digest or a cipher: a search of the method store under its
 * lock. These are the objects of an explicit fetch instead, made on first
 * use and shared by all threads for the life of the process (they are
 * read-only). An algorithm that no loaded provider has (single DES without
 * the legacy provider, SHA-1 under a FIPS configuration) falls back to the
 * built-in table's object, as before.
 */
#ifndef mod_scep_scep_algs_h
#define mod_scep_scep_algs_h

#include <openssl/evp.h>

/* The digest of nid (NID_sha256, ...), or NULL when OpenSSL knows none. */
const EVP_MD *scep_md(int nid);

/* The cipher of nid (NID_aes_128_cbc, ...), or NULL when OpenSSL knows none. */
const EVP_CIPHER *scep_cipher(int nid);

#endif
