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
 * Private keys that are PKCS#11 objects (an HSM, a smart card, SoftHSM2),
 * named by a "pkcs11:" URI (RFC 7512) where a key file would be named, and
 * used through OpenSSL's pkcs11 engine (Debian's libengine-pkcs11-openssl,
 * libp11). scep_read_private_key() (scep_pki.c) comes here for such a
 * name, so every other part of the tree sees an EVP_PKEY as from a file.
 *
 * The PKCS#11 module and the PIN are the process's (the engine is one per
 * process): scep_key_pkcs11_configure() before the first key is loaded.
 * The PIN never appears in a URI (refused: URIs are logged) nor in a
 * message. libp11 logs in again after a fork(), with the PIN it keeps,
 * so a key loaded by Apache's parent serves its children (prefork, worker,
 * event).
 */

#ifndef SCEP_KEY_PKCS11_H
#define SCEP_KEY_PKCS11_H

#include <apr_pools.h>

#include <openssl/evp.h>

#include "scep.h"

/* Whether a key's location is a pkcs11: URI (the scheme in any case)
 * rather than a file name. */
int scep_key_is_pkcs11(const char *location);

/* The value of one attribute of a pkcs11: URI (path "token", "object",
 * "id", "type", ...; query "pin-value", "module-path", ...), percent-
 * decoded, on p: *value NULL when the URI has none. APR_EINVAL when the URI
 * is not a pkcs11: URI or an escape is broken. */
apr_status_t scep_pkcs11_uri_attr(apr_pool_t *p, const char *uri, const char *name,
                                  const char **value);

/* NULL when uri may name a private key here; else why not, without
 * quoting the URI (it may hold a PIN): a PIN in the URI (pin-value,
 * pin-source: the PIN belongs in the PIN file), a module in it (the
 * module is the configuration's), no object or id, a type other than
 * private, a broken escape. */
const char *scep_key_pkcs11_unfit(apr_pool_t *p, const char *uri);

/* The PKCS#11 module (a shared object's path) and the PIN (NULL: none;
 * the token must not need a login) of every pkcs11: key loaded after, kept
 * until p's cleanup (which also lets the engine go). Called again, it
 * replaces both (the keys loaded before keep their engine). */
apr_status_t scep_key_pkcs11_configure(apr_pool_t *p, const char *module, const char *pin,
                                       scep_problem_t *prob);

/* The first line of a private PIN file (scep_read_private_file()'s rule,
 * mode 0600), on p; the read copy is cleansed. */
apr_status_t scep_key_pkcs11_read_pin(apr_pool_t *p, const char *file, const char **pin,
                                      scep_problem_t *prob);

/* The private key a pkcs11: URI names, through the engine, owned by p.
 * Failures name the URI and what the token or the engine said (a wrong PIN,
 * no such object, the module not loadable, no module configured). */
apr_status_t scep_key_pkcs11_load(apr_pool_t *p, const char *uri, EVP_PKEY **key,
                                  scep_problem_t *prob);

#endif
