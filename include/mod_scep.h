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
 * The public face of mod_scep for other httpd modules, in the manner of
 * mod_ssl.h: what another module may rely on without including the
 * module's private headers. Installed next to httpd's own headers.
 *
 * mod_scep registers optional functions; a module finds them with
 * APR_RETRIEVE_OPTIONAL_FN once every module's register_hooks has run
 * (in its post_config or later), and keeps working when mod_scep is not
 * loaded, the function pointer being NULL then:
 *
 *     static APR_OPTIONAL_FN_TYPE(mod_scep_mint_password) *mint;
 *     ... post_config:  mint = APR_RETRIEVE_OPTIONAL_FN(mod_scep_mint_password);
 *     ... handler:      if (mint && mint(r, &password, &expires) == APR_SUCCESS) ...
 */
#ifndef mod_scep_mod_scep_h
#define mod_scep_mod_scep_h

#include <apr_optional.h>
#include <apr_pools.h>
#include <apr_time.h>
#include <httpd.h>

#include "mod_scep_version.h"

/* The name other modules see in `httpd -M` and in the Server header. */
#define MOD_SCEP_NAME "mod_scep"

/* What a server's SCEP service is, for a status page or a health check. */
typedef struct mod_scep_status_t {
    const char *version;       /* MOD_SCEP_VERSION of the loaded module */
    int enabled;               /* the server has SCEPCACertificateFile: SCEP is served */
    const char *ca_thumbprint; /* SHA-1 of the CA certificate, 40 upper-case hex
                                * digits as NDES shows it; NULL when not enabled */
    int passwords_waiting;     /* one-time passwords handed out, not yet used, not expired */
    int passwords_max;         /* SCEPPasswordMax: more are refused until one is used or expires */
    int single_password;       /* SCEPUseSinglePassword On: one password for every device */
} mod_scep_status_t;

/*
 * A challenge password for a device, as the admin page hands out: a new
 * one-time password from the same server-wide cache (with SCEPPasswordStore
 * sql: the service's, in the records), under the same limits
 * (SCEPPasswordMax, SCEPPasswordValidity, SCEPPasswordLength), or the
 * single password in single-password mode (*expires 0). Logged under
 * mod_scep's name with r's client and user. The caller decides who may
 * have one: the admin page's own rules (SCEPPasswordVDir, SCEPCAType and
 * its groups, HTTPS only) are not applied.
 *
 * *password lives in r->pool, which cleanses it when cleared. Returns
 * APR_SUCCESS; APR_ENOSPC when SCEPPasswordMax passwords wait already;
 * APR_ENOTIMPL when r's server does not serve SCEP (no
 * SCEPCACertificateFile); another error on a server fault (logged).
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, mod_scep_mint_password,
                        (request_rec * r, const char **password, apr_time_t *expires));

/*
 * Fills *st for server s (its strings on p). Returns APR_SUCCESS, or an
 * error when the password cache cannot be read (logged; the other fields
 * are filled then). With SCEPPasswordStore sql, passwords_waiting counts
 * the whole service's, read through a database connection of its own:
 * not to be called while the same request holds mod_scep's connection.
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, mod_scep_status,
                        (apr_pool_t * p, server_rec *s, mod_scep_status_t *st));

#endif /* mod_scep_mod_scep_h */
