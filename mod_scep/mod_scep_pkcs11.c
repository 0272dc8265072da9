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
 * SCEPPKCS11Module and SCEPPKCS11PINFile: keys in a PKCS#11 token. Before
 * any server's PKI is loaded (check_config), the main server's module and
 * PIN become the process's (scep_key_pkcs11_configure()); every
 * SCEPCAKeyFile or SCEPRACertificate key written as a pkcs11: URI is then
 * loaded through OpenSSL's pkcs11 engine by scep_read_private_key(), as a
 * file would be. The parent reads the PIN file as root; libp11 logs each
 * child in again after the fork with the PIN it keeps, so nothing here
 * runs in the children. A pkcs11: key without the module, or a PIN file
 * without the module, refuses to start.
 */

#include <string.h>

#include <apr_file_info.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include <openssl/crypto.h>

#include "mod_scep_private.h"
#include "scep_key_pkcs11.h"

/* A PIN is short; the file's first line may not be longer than this. */
#define PIN_LINE_MAX 1024

/* Whether an enabled server names a key in a token; *where says which
 * directive, for the refusal. */
static int server_uses_pkcs11(const mod_scep_srv_conf_t *conf, const char **where)
{
    int i;

    if (scep_key_is_pkcs11(conf->ca_key_file)) {
        *where = SCEP_CA_KEY_FILE;
        return 1;
    }
    for (i = 0; conf->ra_files && i < conf->ra_files->nelts; i++) {
        if (scep_key_is_pkcs11(APR_ARRAY_IDX(conf->ra_files, i, scep_ra_file_t).key_file)) {
            *where = SCEP_RA_CERTIFICATE;
            return 1;
        }
    }
    return 0;
}

/* The first server that names a key in a token, or NULL. */
static server_rec *first_pkcs11_server(server_rec *main_s, const char **where)
{
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);

        if (conf->enabled && server_uses_pkcs11(conf, where)) {
            return s;
        }
    }
    return NULL;
}

static apr_status_t cleanse_pin(void *pin)
{
    OPENSSL_cleanse(pin, strlen(pin));
    return APR_SUCCESS;
}

/* The module must be a readable file: the engine would only say later
 * that it "failed to load" it. */
static apr_status_t check_module(apr_pool_t *pconf, server_rec *main_s, const char *file)
{
    apr_finfo_t finfo;
    apr_status_t rv = apr_stat(&finfo, file, APR_FINFO_TYPE, pconf);

    if (rv == APR_SUCCESS && finfo.filetype != APR_REG) {
        rv = APR_EINVAL;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, main_s,
                     SCEPLOGNO(742) SCEP_PKCS11_MODULE " %s is not a readable PKCS#11 module%s",
                     file, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    }
    return rv;
}

/* Directives that need each other: a key in a token needs the module, a
 * PIN file without a module would be ignored. */
static apr_status_t check_directives(server_rec *main_s, const mod_scep_srv_conf_t *main_conf)
{
    const char *where = NULL;
    server_rec *s = first_pkcs11_server(main_s, &where);

    if (main_conf->pkcs11_pin_file && !main_conf->pkcs11_module) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_s,
                     SCEPLOGNO(740) SCEP_PKCS11_PIN_FILE " is set without " SCEP_PKCS11_MODULE "%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_EINVAL;
    }
    if (s && !main_conf->pkcs11_module) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(741) "%s: %s names a key in a token (pkcs11:) but "
                                    "the main server sets no " SCEP_PKCS11_MODULE "%s",
                     mod_scep_server_label(s), where, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t mod_scep_pkcs11_setup(apr_pool_t *pconf, server_rec *main_s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(main_s);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *pin = NULL;
    const char *where = NULL;
    apr_status_t rv;

    rv = check_directives(main_s, conf);
    if (rv != APR_SUCCESS || !conf->pkcs11_module) {
        goto leave;
    }
    rv = check_module(pconf, main_s, conf->pkcs11_module);
    if (rv == APR_SUCCESS && conf->pkcs11_pin_file) {
        rv = mod_scep_read_first_line(pconf, main_s, SCEP_PKCS11_PIN_FILE, conf->pkcs11_pin_file,
                                      PIN_LINE_MAX, &pin);
        if (rv == APR_SUCCESS) {
            apr_pool_cleanup_register(pconf, pin, cleanse_pin, apr_pool_cleanup_null);
        }
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = scep_key_pkcs11_configure(pconf, conf->pkcs11_module, pin, &prob);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, main_s,
                     SCEPLOGNO(743) SCEP_PKCS11_MODULE " %s: %s%s", conf->pkcs11_module, prob.text,
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        goto leave;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, main_s,
                 SCEPLOGNO(744) "keys in a PKCS#11 token through %s (%s)%s", conf->pkcs11_module,
                 pin ? "logged in with the PIN of " SCEP_PKCS11_PIN_FILE : "no PIN",
                 first_pkcs11_server(main_s, &where) ? "" : "; no server names a pkcs11: key");
leave:
    return rv;
}
