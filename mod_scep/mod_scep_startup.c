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
 * The module's startup: the NDES "Service Startup" checks run when httpd
 * has read its configuration. They run in the check_config hook, not
 * post_config, because check_config is the last hook that also runs for
 * `apachectl -t`: a configuration test must fail on a CA key that does not
 * load, not only the next restart. Keys and certificates are parsed there
 * once, in the parent, and children inherit them; requests never read them.
 */

#include <apr_dbd.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <mod_dbd.h>

#include <openssl/crypto.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "mod_scep.h"
#include "mod_scep_private.h"
#include "scep_x509.h"

/* RA certificates closer to their end than this are reported (event 35). */
#define RA_EXPIRY_WARNING_DAYS 30

/* Largest challenge password file: it is read whole (its first line is the
 * password). */
#define CHALLENGE_FILE_MAX ((apr_size_t)1024 * 1024)

static apr_status_t require_mod_dbd(server_rec *s)
{
    if (APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire)) {
        return APR_SUCCESS;
    }
    ap_log_error(
        APLOG_MARK, APLOG_EMERG, 0, s,
        SCEPLOGNO(003) "mod_scep records enrollments through mod_dbd, which is not loaded: add "
                       "'LoadModule dbd_module modules/mod_dbd.so', 'DBDriver sqlite3' and "
                       "'DBDParams /var/lib/mod_scep/scep.db'%s",
        scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    return APR_ENOTIMPL;
}

/* SCEPLDAPURL works through mod_ldap's functions (mod_scep_ldap.c):
 * without mod_ldap no administrator could ever get a password. */
static apr_status_t require_mod_ldap(server_rec *main_s)
{
    server_rec *s;

    if (ap_find_linked_module("util_ldap.c")) {
        return APR_SUCCESS;
    }
    for (s = main_s; s; s = s->next) {
        if (mod_scep_srv_conf(s)->ldap_url) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         SCEPLOGNO(530) "%s: " SCEP_LDAP_URL
                                        " checks group memberships through mod_ldap, "
                                        "which is not loaded: add 'LoadModule ldap_module "
                                        "modules/mod_ldap.so' (Debian: a2enmod ldap)%s",
                         mod_scep_server_label(s), scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
            return APR_ENOTIMPL;
        }
    }
    return APR_SUCCESS;
}

/* The directive that names an LDAP group in conf (the first one found),
 * NULL when none does. */
static const char *first_group(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    const apr_array_header_t *groups;

    if (conf->ca_manager_group) {
        return SCEP_CA_MANAGER_GROUP;
    }
    if (conf->ca_admin_group) {
        return SCEP_CA_ADMIN_GROUP;
    }
    if (conf->template_groups && !apr_is_empty_table(conf->template_groups)) {
        groups = apr_table_elts(conf->template_groups);
        return apr_pstrcat(p, SCEP_TEMPLATE_ENROLL_GROUP " (or EnrollGroup) of template ",
                           APR_ARRAY_IDX(groups, 0, apr_table_entry_t).key, NULL);
    }
    return NULL;
}

/* A group is checked only through SCEPLDAPURL: without it, the restriction
 * it stands for would be dropped in silence, and Apache's Require alone
 * would decide who gets passwords or manages the CA. */
static apr_status_t require_ldap_url(server_rec *main_s)
{
    server_rec *s;
    mod_scep_srv_conf_t *conf;
    const char *group;

    for (s = main_s; s; s = s->next) {
        conf = mod_scep_srv_conf(s);
        if (!conf->ldap_url && (group = first_group(s->process->pconf, conf))) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         SCEPLOGNO(045) "%s: %s is set but " SCEP_LDAP_URL
                                        " is not: groups are checked only through " SCEP_LDAP_URL
                                        ", so without it the restriction would "
                                        "not apply: set " SCEP_LDAP_URL " or remove the group%s",
                         mod_scep_server_label(s), group,
                         scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

/*
 * OpenSSL 3 keeps single DES and MD5-based algorithms in its "legacy"
 * provider. Loading any provider explicitly stops OpenSSL from loading the
 * "default" one implicitly, so both are loaded. They stay loaded for the
 * life of the process and are never unloaded: providers are process-wide,
 * objects fetched from them (ciphers in use by children, keys) must not
 * outlive them, and OpenSSL counts loads, so a restart that loads them again
 * only takes another reference. Which servers may use the algorithms is
 * decided per request by SCEPAllowLegacyAlgorithms, not by the provider.
 */
static OSSL_PROVIDER *default_provider;
static OSSL_PROVIDER *legacy_provider;

static apr_status_t load_legacy_providers(server_rec *s)
{
    if (!default_provider) {
        default_provider = OSSL_PROVIDER_load(NULL, "default");
    }
    if (!legacy_provider) {
        legacy_provider = OSSL_PROVIDER_load(NULL, "legacy");
    }
    if (!default_provider || !legacy_provider) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, 0, s,
            SCEPLOGNO(004) SCEP_ALLOW_LEGACY_ALGORITHMS " On: cannot load OpenSSL's %s provider%s",
            default_provider ? "legacy" : "default", scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        mod_scep_log_openssl(s, APLOG_EMERG);
        return APR_EGENERAL;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 SCEPLOGNO(005) SCEP_ALLOW_LEGACY_ALGORITHMS
                 " On: single DES and MD5, forbidden by RFC 8894, "
                 "are accepted from devices by the servers that allow them");
    return APR_SUCCESS;
}

static scep_pki_config_t pki_config_of(const mod_scep_srv_conf_t *conf)
{
    scep_pki_config_t pc;

    pc.ca_cert_file = conf->ca_cert_file;
    pc.ca_key_file = conf->ca_key_file;
    pc.ca_chain_file = conf->ca_chain_file;
    pc.ra_files = conf->ra_files;
    pc.include_root = conf->include_root;
    return pc;
}

/* A virtual host that inherits all PKI directives from the main server
 * shares its loaded PKI: merging copies the same pointers. */
static int same_pki_files(const mod_scep_srv_conf_t *a, const mod_scep_srv_conf_t *b)
{
    return a->ca_cert_file == b->ca_cert_file && a->ca_key_file == b->ca_key_file &&
           a->ca_chain_file == b->ca_chain_file && a->ra_files == b->ra_files &&
           a->include_root == b->include_root;
}

static void warn_ra_expiry(server_rec *s, const scep_pki_t *pki)
{
    apr_time_t left = pki->ra_not_after - apr_time_now();
    char date[APR_RFC822_DATE_LEN];

    if (!pki->ra_not_after || left > apr_time_from_sec(RA_EXPIRY_WARNING_DAYS * 86400)) {
        return;
    }
    apr_rfc822_date(date, pki->ra_not_after);
    ap_log_error(
        APLOG_MARK, APLOG_WARNING, 0, s,
        SCEPLOGNO(006) "%s: the RA certificates in use expire on %s, in %d days: renew them%s",
        mod_scep_server_label(s), date, (int)(apr_time_sec(left > 0 ? left : 0) / 86400),
        scep_event_text(SCEP_EVENT_RA_CLOSE_TO_EXPIRE));
}

/* Unfit RA candidates are passed over, as NDES does, but not silently. */
static void warn_ra_skipped(server_rec *s, const scep_pki_t *pki)
{
    int i;

    for (i = 0; pki->ra_skipped && i < pki->ra_skipped->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     SCEPLOGNO(011) "%s: RA certificate candidate not used: %s%s",
                     mod_scep_server_label(s), APR_ARRAY_IDX(pki->ra_skipped, i, const char *),
                     scep_event_text(SCEP_EVENT_FAILED_RA_CERT));
    }
}

static apr_status_t load_pki(apr_pool_t *pconf, server_rec *s, mod_scep_srv_conf_t *conf)
{
    scep_pki_config_t pc = pki_config_of(conf);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_FAILED_TO_LOAD, NULL };
    apr_status_t rv;

    rv = scep_pki_load(pconf, &pc, &conf->pki, &prob);
    if (rv != APR_SUCCESS) {
        /* Problems without an event of their own (unreadable files) still
         * keep the service from starting: event 2. */
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(007) "%s: cannot load the SCEP CA and RA certificates: %s%s",
                     mod_scep_server_label(s), prob.text ? prob.text : "unspecified failure",
                     scep_event_text(prob.event != SCEP_EVENT_NONE ? prob.event
                                                                   : SCEP_EVENT_FAILED_TO_LOAD));
        mod_scep_log_openssl(s, APLOG_EMERG);
        goto leave;
    }
    warn_ra_skipped(s, conf->pki);
    warn_ra_expiry(s, conf->pki);
leave:
    return rv;
}

static apr_status_t setup_pki(apr_pool_t *pconf, server_rec *main_s, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s), *main_conf = mod_scep_srv_conf(main_s);

    if (s != main_s && main_conf->pki && same_pki_files(conf, main_conf)) {
        conf->pki = main_conf->pki;
        return APR_SUCCESS;
    }
    return load_pki(pconf, s, conf);
}

/* The static password is optional: without it, devices present one-time
 * or single passwords (mod_scep_passwords.c). */
static apr_status_t setup_challenge(apr_pool_t *pconf, server_rec *main_s, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s), *main_conf = mod_scep_srv_conf(main_s);

    if (!conf->challenge_file) {
        return APR_SUCCESS;
    }
    if (s != main_s && main_conf->challenge && conf->challenge_file == main_conf->challenge_file) {
        conf->challenge = main_conf->challenge;
        return APR_SUCCESS;
    }
    return mod_scep_read_first_line(pconf, s, SCEP_CHALLENGE_PASSWORD_FILE, conf->challenge_file,
                                    CHALLENGE_FILE_MAX, &conf->challenge);
}

/* A key-usage directive naming a template that does not exist would make
 * every such request fail: the server does not start instead. */
static apr_status_t setup_templates(apr_pool_t *pconf, server_rec *s)
{
    const char *why = mod_scep_templates_finish(pconf, mod_scep_srv_conf(s));

    if (!why) {
        return APR_SUCCESS;
    }
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEPLOGNO(050) "%s: %s%s", mod_scep_server_label(s),
                 why, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    return APR_EINVAL;
}

/* SCEPNextCACertificateFile: the certificate that will replace the CA,
 * offered by GetNextCACert (RFC 8894 section 4.7) in a reply built once
 * here and signed by the current CA key (the RA key without one). It must
 * be a CA certificate: clients install it as their next trust anchor. */
static apr_status_t setup_next_ca(apr_pool_t *pconf, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *next_ca = NULL;
    apr_status_t rv = APR_SUCCESS;

    conf->next_ca_body = NULL;
    if (!conf->next_ca_cert_file) {
        goto leave;
    }
    rv = scep_read_cert(pconf, conf->next_ca_cert_file, &next_ca, &prob);
    if (rv == APR_SUCCESS && X509_check_ca(next_ca) < 1) {
        rv = scep_problem(
            &prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
            apr_pstrcat(pconf, conf->next_ca_cert_file, " is not a CA certificate", NULL));
    }
    if (rv == APR_SUCCESS) {
        rv = scep_next_ca_body(pconf, conf->pki, next_ca, conf->hash_md,
                               (unsigned char **)&conf->next_ca_body, &conf->next_ca_len, &prob);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(040) "%s: " SCEP_NEXT_CA_CERTIFICATE_FILE ": %s%s",
                     mod_scep_server_label(s), prob.text ? prob.text : "unspecified failure",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        mod_scep_log_openssl(s, APLOG_EMERG);
    }
leave:
    return rv;
}

/* Before the defaults hide what was set: a server's directives fit its
 * CA backend, and its challenge checks. */
static apr_status_t check_backend_directives(server_rec *main_s)
{
    server_rec *s;
    apr_status_t rv;

    for (s = main_s; s; s = s->next) {
        if (mod_scep_srv_conf(s)->ca_cert_file &&
            ((rv = mod_scep_backend_check_directives(s)) != APR_SUCCESS ||
             (rv = mod_scep_challenge_check_directives(s)) != APR_SUCCESS)) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* Applies the defaults and notes which servers run SCEP. */
static void finish_server_configs(apr_pool_t *pconf, server_rec *main_s, int *any_enabled,
                                  int *any_legacy)
{
    server_rec *s;
    mod_scep_srv_conf_t *conf;

    *any_enabled = *any_legacy = 0;
    for (s = main_s; s; s = s->next) {
        conf = mod_scep_srv_conf(s);
        mod_scep_conf_apply_defaults(pconf, conf);
        conf->enabled = conf->ca_cert_file != NULL;
        conf->pki = NULL;
        conf->challenge = NULL;
        *any_enabled |= conf->enabled;
        *any_legacy |= conf->enabled && conf->allow_legacy;
    }
}

int mod_scep_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *main_s)
{
    server_rec *s;
    int any_enabled, any_legacy;
    apr_status_t rv = APR_SUCCESS;

    (void)plog;
    if ((rv = check_backend_directives(main_s)) != APR_SUCCESS) {
        goto leave;
    }
    finish_server_configs(pconf, main_s, &any_enabled, &any_legacy);
    /* Here rather than in post_config, so that `apachectl -t` says it. */
    if ((rv = require_mod_ldap(main_s)) != APR_SUCCESS ||
        (rv = require_ldap_url(main_s)) != APR_SUCCESS) {
        goto leave;
    }
    if (!any_enabled) {
        goto leave;
    }
    if ((rv = require_mod_dbd(main_s)) != APR_SUCCESS) {
        goto leave;
    }
    /* Before the PKI: a key file may use an algorithm of the legacy provider. */
    if (any_legacy && (rv = load_legacy_providers(main_s)) != APR_SUCCESS) {
        goto leave;
    }
    /* Before the PKI: a key may be in a token. */
    if ((rv = mod_scep_pkcs11_setup(pconf, main_s)) != APR_SUCCESS) {
        goto leave;
    }
    for (s = main_s; s; s = s->next) {
        if (!mod_scep_srv_conf(s)->enabled) {
            continue;
        }
        if ((rv = setup_pki(pconf, main_s, s)) != APR_SUCCESS ||
            (rv = mod_scep_backend_setup(pconf, s)) != APR_SUCCESS ||
            (rv = mod_scep_challenge_webhook_setup(pconf, s)) != APR_SUCCESS ||
            (rv = setup_challenge(pconf, main_s, s)) != APR_SUCCESS ||
            (rv = setup_next_ca(pconf, s)) != APR_SUCCESS ||
            (rv = setup_templates(pconf, s)) != APR_SUCCESS ||
            (rv = mod_scep_challenge_setup(pconf, s)) != APR_SUCCESS ||
            (rv = mod_scep_notify_setup(pconf, s)) != APR_SUCCESS) {
            goto leave;
        }
    }
    rv = mod_scep_passwords_check_config(pconf, ptemp, main_s);
leave:
    return rv == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* Every generation registers the mutex type: the registry lives in pconf. */
int mod_scep_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    mod_scep_passwords_pre_config(pconf);
    mod_scep_store_pre_config(pconf);
    return OK;
}

int mod_scep_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    (void)ptemp;
    ap_add_version_component(pconf, MOD_SCEP_NAME "/" MOD_SCEP_VERSION);
    return mod_scep_passwords_post_config(s) == APR_SUCCESS &&
                   mod_scep_store_post_config(s) == APR_SUCCESS &&
                   mod_scep_manager_post_config(s) == APR_SUCCESS &&
                   mod_scep_stats_post_config(pconf, s) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

void mod_scep_child_init(apr_pool_t *pchild, server_rec *s)
{
    mod_scep_passwords_child_init(pchild, s);
    mod_scep_store_child_init(pchild, s);
    mod_scep_poll_child_init(pchild, s);
    mod_scep_backend_child_init(pchild, s);
    mod_scep_webhook_child_init(pchild);
}
