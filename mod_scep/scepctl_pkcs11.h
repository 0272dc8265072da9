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
 * scepctl setup's keys in a PKCS#11 token, through libp11 (Debian's
 * libp11-dev): whether the token a pkcs11: URI names (token=) holds a
 * private key labelled as its object=, and the key pair made in the token
 * when not (RSA: libp11 0.4.12 makes no other kind). Each call loads the
 * module, logs in and unloads it again, so call them before OpenSSL's
 * pkcs11 engine uses the module in this process (scep_key_pkcs11.c): the
 * unload finalizes the module for every user in the process.
 */

#ifndef SCEPCTL_PKCS11_H
#define SCEPCTL_PKCS11_H

#include <apr_pools.h>

/* *exists: the token holds a private key labelled as the URI's object=.
 * Failures (the module, no such token, the PIN refused) are described in
 * *err, which never holds the PIN. */
apr_status_t scepctl_pkcs11_has_key(apr_pool_t *p, const char *module, const char *pin,
                                    const char *uri, int *exists, const char **err);

/* An RSA key pair of bits made in the token, private and sensitive (it
 * never leaves the token), labelled as the URI's object=, with a random
 * 16-byte id. */
apr_status_t scepctl_pkcs11_make_key(apr_pool_t *p, const char *module, const char *pin,
                                     const char *uri, int bits, const char **err);

#endif
