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
 * SCEPCABackend: each server's CA backend, built once at startup (check
 * config) from its directives and its loaded PKI: the built-in CA, an
 * external CA over CMP (scep_ca_cmp.c) or through a certmonger CA helper
 * (scep_ca_helper.c), the last two with SCEPExternalCRL's CRL
 * (mod_scep_ext_crl.c). A configuration that cannot work, or that sets a
 * directive the chosen backend would ignore, keeps the server from
 * starting with one line naming the directive: a restriction written in
 * the configuration is never dropped in silence.
 */

#include <unistd.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include <openssl/crypto.h>

#include "mod_scep_private.h"
#include "scep_ca_cmp.h"
#include "scep_ca_helper.h"

/* Longest CMP secret file (its first line is the secret). */
#define CMP_SECRET_FILE_MAX ((apr_size_t)64 * 1024)

static const char *backend_name(int kind)
{
    switch (kind) {
    case SCEP_BACKEND_CMP:
        return "cmp";
    case SCEP_BACKEND_HELPER:
        return "helper";
    default:
        return "builtin";
    }
}

/* The first CMP directive set in conf, NULL if none. */
static const char *cmp_directive_set(const mod_scep_srv_conf_t *conf)
{
    return conf->cmp_server                                        ? SCEP_CMP_SERVER
           : conf->cmp_trust_file                                  ? SCEP_CMP_TRUST_FILE
           : conf->cmp_secret_file                                 ? SCEP_CMP_SECRET_FILE
           : conf->cmp_reference                                   ? SCEP_CMP_REFERENCE
           : conf->cmp_tls_ca_file                                 ? SCEP_CMP_TLS_CA_FILE
           : conf->cmp_timeout != SCEP_KIND_UNSET(INT)             ? SCEP_CMP_TIMEOUT
           : conf->cmp_transaction_timeout != SCEP_KIND_UNSET(INT) ? SCEP_CMP_TRANSACTION_TIMEOUT
                                                                   : NULL;
}

static const char *helper_directive_set(const mod_scep_srv_conf_t *conf)
{
    return conf->ca_helper_argv                              ? SCEP_CA_HELPER
           : conf->ca_helper_timeout != SCEP_KIND_UNSET(INT) ? SCEP_CA_HELPER_TIMEOUT
                                                             : NULL;
}

/* The directives of both external backends. */
static const char *external_directive_set(const mod_scep_srv_conf_t *conf)
{
    return conf->ca_poll_interval != SCEP_KIND_UNSET(INT)               ? SCEP_CA_POLL_INTERVAL
           : conf->external_crl                                         ? SCEP_EXTERNAL_CRL
           : conf->external_crl_refresh_minutes != SCEP_KIND_UNSET(INT) ? SCEP_EXTERNAL_CRL_REFRESH
                                                                        : NULL;
}

/* A directive set for another backend than conf's, NULL if none. */
static const char *misplaced_directive(const mod_scep_srv_conf_t *conf, int kind)
{
    const char *name;

    if (kind != SCEP_BACKEND_CMP && (name = cmp_directive_set(conf))) {
        return name;
    }
    if (kind != SCEP_BACKEND_HELPER && (name = helper_directive_set(conf))) {
        return name;
    }
    return kind == SCEP_BACKEND_BUILTIN ? external_directive_set(conf) : NULL;
}

static apr_status_t refuse(server_rec *s, const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEPLOGNO(012) "%s: %s%s", mod_scep_server_label(s),
                 why, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    return APR_EINVAL;
}

apr_status_t mod_scep_backend_check_directives(server_rec *s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    apr_pool_t *p = s->process->pconf;
    int kind = conf->ca_backend == SCEP_KIND_UNSET(ENUM) ? SCEP_BACKEND_BUILTIN : conf->ca_backend;
    const char *name = misplaced_directive(conf, kind);

    if (name) {
        return refuse(s, apr_psprintf(p,
                                      "%s is set but " SCEP_CA_BACKEND
                                      " is %s, which does not use it: remove it or set the "
                                      "backend it belongs to",
                                      name, backend_name(kind)));
    }
    if (kind == SCEP_BACKEND_BUILTIN) {
        return APR_SUCCESS;
    }
    if (conf->ca_key_file) {
        return refuse(s, apr_psprintf(p,
                                      SCEP_CA_KEY_FILE
                                      " is set with " SCEP_CA_BACKEND
                                      " %s: the external CA keeps its key, Apache holds "
                                      "none; remove " SCEP_CA_KEY_FILE,
                                      backend_name(kind)));
    }
    if (!conf->ra_files || conf->ra_files->nelts == 0) {
        return refuse(s, apr_psprintf(p,
                                      SCEP_CA_BACKEND
                                      " %s needs RA certificates of its own "
                                      "(" SCEP_RA_CERTIFICATE "): devices encrypt to the RA, "
                                      "and the external CA's key is not here to act as one",
                                      backend_name(kind)));
    }
    return APR_SUCCESS;
}

/* The built-in CA (SCEPCAKeyFile; without it, GetCRL is refused). */
static scep_ca_backend_t *builtin_backend(apr_pool_t *pconf, const mod_scep_srv_conf_t *conf)
{
    scep_ca_builtin_conf_t bc = { conf->pki, conf->validity_days, conf->hash_md, conf->crl_url,
                                  conf->crl_validity_hours };

    return scep_ca_builtin(pconf, &bc);
}

static apr_status_t cleanse_secret(void *data)
{
    char *secret = data;

    OPENSSL_cleanse(secret, strlen(secret));
    return APR_SUCCESS;
}

/* What the CMP directives say about protection and transport, checked
 * together: NULL when they fit, else why not. (Signed requests need the
 * RA signing certificate: mod_scep_backend_check_directives() required
 * SCEPRACertificate, and the PKI loaded one.) */
static const char *cmp_conf_error(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    int https;

    if (!conf->cmp_server) {
        return SCEP_CA_BACKEND " cmp needs " SCEP_CMP_SERVER " (the CA's CMP URL)";
    }
    https = strncasecmp(conf->cmp_server, "https:", 6) == 0;
    if (https && !conf->cmp_tls_ca_file) {
        return apr_pstrcat(p, SCEP_CMP_SERVER " ", conf->cmp_server,
                           " is https:// but " SCEP_CMP_TLS_CA_FILE
                           " is not set: name the trust anchors of its TLS certificate",
                           NULL);
    }
    if (!https && conf->cmp_tls_ca_file) {
        return apr_pstrcat(p, SCEP_CMP_TLS_CA_FILE " is set but " SCEP_CMP_SERVER " ",
                           conf->cmp_server, " is not https://: nothing would use it", NULL);
    }
    if (!conf->cmp_secret_file != !conf->cmp_reference) {
        return SCEP_CMP_SECRET_FILE " and " SCEP_CMP_REFERENCE
                                    " go together: the MAC secret and its reference "
                                    "(senderKID)";
    }
    if (!conf->cmp_secret_file && !conf->cmp_trust_file) {
        return "neither " SCEP_CMP_SECRET_FILE " nor " SCEP_CMP_TRUST_FILE
               " is set: the CA's answers could not be checked; set " SCEP_CMP_TRUST_FILE
               " (the trust anchors of its CMP signer)";
    }
    return NULL;
}

static apr_status_t cmp_backend(apr_pool_t *pconf, server_rec *s, mod_scep_srv_conf_t *conf,
                                scep_ca_backend_t **ca)
{
    scep_ca_cmp_conf_t cc = { 0 };
    const char *why = cmp_conf_error(pconf, conf);
    const char *secret = NULL;

    if (why) {
        return refuse(s, why);
    }
    if (conf->cmp_secret_file) {
        if (mod_scep_read_first_line(pconf, s, SCEP_CMP_SECRET_FILE, conf->cmp_secret_file,
                                     CMP_SECRET_FILE_MAX, &secret) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        apr_pool_cleanup_register(pconf, secret, cleanse_secret, apr_pool_cleanup_null);
    }
    else {
        cc.ra_cert = conf->pki->ra_sign_cert;
        cc.ra_key = conf->pki->ra_sign_key;
    }
    cc.server_url = conf->cmp_server;
    cc.tls_ca_file = conf->cmp_tls_ca_file;
    cc.mac_ref = conf->cmp_reference;
    cc.mac_secret = secret;
    cc.trust_file = conf->cmp_trust_file;
    cc.ca_cert = conf->pki->ca_cert;
    cc.ca_chain = conf->pki->chain;
    cc.msg_timeout = conf->cmp_timeout;
    cc.total_timeout = conf->cmp_transaction_timeout;
    cc.log = mod_scep_log_server;
    cc.log_baton = s;
    if (!(*ca = scep_ca_cmp(pconf, &cc, &why))) {
        return refuse(s, apr_pstrcat(pconf, SCEP_CA_BACKEND " cmp: ", why, NULL));
    }
    return APR_SUCCESS;
}

/* The CA certificate, then what is above it: what a helper's certificate
 * must chain to. */
static STACK_OF(X509) *ca_chain_of(apr_pool_t *pconf, const scep_pki_t *pki)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    int i;

    if (!chain) {
        return NULL;
    }
    SCEP_OWN(pconf, chain, OPENSSL_sk_free);
    if (!sk_X509_push(chain, pki->ca_cert)) {
        return NULL;
    }
    for (i = 0; pki->chain && i < sk_X509_num(pki->chain); i++) {
        if (!sk_X509_push(chain, sk_X509_value(pki->chain, i))) {
            return NULL;
        }
    }
    return chain;
}

static apr_status_t helper_backend(apr_pool_t *pconf, server_rec *s, mod_scep_srv_conf_t *conf,
                                   scep_ca_backend_t **ca)
{
    scep_ca_helper_conf_t hc = { 0 };

    if (!conf->ca_helper_argv) {
        return refuse(s, SCEP_CA_BACKEND " helper needs " SCEP_CA_HELPER
                                         " (the certmonger CA helper's path and arguments)");
    }
    if (access(conf->ca_helper_argv[0], X_OK) != 0) {
        return refuse(s, apr_pstrcat(pconf, SCEP_CA_HELPER " ", conf->ca_helper_argv[0],
                                     " is not an executable file", NULL));
    }
    hc.argv = conf->ca_helper_argv;
    hc.time_limit = apr_time_from_sec(conf->ca_helper_timeout);
    hc.ca_chain = ca_chain_of(pconf, conf->pki);
    hc.log = mod_scep_log_server;
    hc.log_baton = s;
    if (!hc.ca_chain) {
        return refuse(s, "out of memory");
    }
    *ca = scep_ca_helper(pconf, &hc);
    return APR_SUCCESS;
}

/* What the records say holds a ticket of this server's external CA: its
 * kind and the server's name and port (ServerName's, else its virtual
 * host address's; none for a main server without one), which stay the
 * same across restarts and configuration edits (the line of a virtual host
 * does not), so that servers sharing the records each ask their own CA
 * about their own tickets. */
static const char *backend_identity(apr_pool_t *pconf, server_rec *s, int kind)
{
    apr_port_t port = s->port ? s->port : s->addrs ? s->addrs->host_port : 0;

    return port ? apr_psprintf(pconf, "%s %s:%u", backend_name(kind), s->server_hostname,
                               (unsigned)port)
                : apr_psprintf(pconf, "%s %s", backend_name(kind), s->server_hostname);
}

apr_status_t mod_scep_backend_setup(apr_pool_t *pconf, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    scep_ca_backend_t *inner = NULL;
    apr_status_t rv;

    switch (conf->ca_backend) {
    case SCEP_BACKEND_CMP:
        rv = cmp_backend(pconf, s, conf, &inner);
        break;
    case SCEP_BACKEND_HELPER:
        rv = helper_backend(pconf, s, conf, &inner);
        break;
    default:
        conf->ca = builtin_backend(pconf, conf);
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        conf->ca = mod_scep_ext_crl_backend(pconf, s, inner);
        conf->ca->name = backend_identity(pconf, s, conf->ca_backend);
    }
    return rv;
}

static apr_status_t backend_process_exit(void *data)
{
    scep_ca_backend_t *ca = data;

    ca->process_exit(ca);
    return APR_SUCCESS;
}

/* The background poll stops in a pre-cleanup of pchild, which runs before
 * these: no thread asks a CA while its transactions are freed. */
void mod_scep_backend_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        scep_ca_backend_t *ca = mod_scep_srv_conf(s)->ca;

        if (ca && ca->process_exit) {
            apr_pool_cleanup_register(pchild, ca, backend_process_exit, apr_pool_cleanup_null);
        }
    }
}
