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
 * The directives (server and virtual host context), create and merge of the
 * server record. Values are only parsed and range-checked here; files are
 * read when the whole configuration is known (mod_scep_startup.c), because a
 * virtual host may inherit some of them from the main server.
 */

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include <httpd.h>
#include <http_config.h>

#include <openssl/evp.h>

#include "mod_scep_private.h"

mod_scep_srv_conf_t *mod_scep_srv_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &scep_module);
}

void *mod_scep_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    mod_scep_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
#define MOD_SCEP_CONF_UNSET(type, name, unset, dflt) conf->name = (unset);
    MOD_SCEP_SRV_CONF_MEMBERS(MOD_SCEP_CONF_UNSET)
#undef MOD_SCEP_CONF_UNSET
    return conf;
}

void *mod_scep_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    mod_scep_srv_conf_t *base = basev, *add = addv;
    mod_scep_srv_conf_t *merged = apr_pcalloc(p, sizeof(*merged));

#define MOD_SCEP_CONF_MERGE(type, name, unset, dflt) \
    merged->name = (add->name == (unset)) ? base->name : add->name;
    MOD_SCEP_SRV_CONF_MEMBERS(MOD_SCEP_CONF_MERGE)
#undef MOD_SCEP_CONF_MERGE
    return merged;
}

void mod_scep_conf_apply_defaults(apr_pool_t *p, mod_scep_srv_conf_t *conf)
{
    (void)p; /* only some default expressions use it */
#define MOD_SCEP_CONF_DEFAULT(type, name, unset, dflt) \
    if (conf->name == (unset)) { \
        conf->name = (dflt); \
    }
    MOD_SCEP_SRV_CONF_MEMBERS(MOD_SCEP_CONF_DEFAULT)
#undef MOD_SCEP_CONF_DEFAULT
}

/* The record a directive sets: the server or virtual host it appears in. */
static mod_scep_srv_conf_t *cmd_conf(cmd_parms *cmd)
{
    return mod_scep_srv_conf(cmd->server);
}

/* The member whose offset the command table put in cmd->info. */
static void *member_of(cmd_parms *cmd)
{
    return (char *)cmd_conf(cmd) + (apr_size_t)cmd->info;
}

/* A file name relative to ServerRoot; cmd->info is the member's offset. */
static const char *set_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);

    (void)dconf;
    if (!path) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path ", arg, NULL);
    }
    *(const char **)member_of(cmd) = path;
    return NULL;
}

/* On|Off; cmd->info is the member's offset. */
static const char *set_flag(cmd_parms *cmd, void *dconf, int flag)
{
    (void)dconf;
    *(int *)member_of(cmd) = flag;
    return NULL;
}

static const char *set_ra_certificate(cmd_parms *cmd, void *dconf, const char *cert_file,
                                      const char *key_file)
{
    mod_scep_srv_conf_t *conf = cmd_conf(cmd);
    scep_ra_file_t *ra;

    (void)dconf;
    if (!conf->ra_files) {
        conf->ra_files = apr_array_make(cmd->pool, 2, sizeof(scep_ra_file_t));
    }
    ra = apr_array_push(conf->ra_files);
    ra->cert_file = ap_server_root_relative(cmd->pool, cert_file);
    ra->key_file = ap_server_root_relative(cmd->pool, key_file);
    if (!ra->cert_file || !ra->key_file) {
        return apr_pstrcat(cmd->pool, SCEP_RA_CERTIFICATE ": invalid file path ",
                           ra->cert_file ? key_file : cert_file, NULL);
    }
    return NULL;
}

typedef struct hash_name_t {
    const char *name;
    const EVP_MD *(*md)(void);
} hash_name_t;

static const hash_name_t hash_names[] = {
    { "SHA256", EVP_sha256 },
    { "SHA384", EVP_sha384 },
    { "SHA512", EVP_sha512 },
    { "SHA1", EVP_sha1 },
};

/* "SHA-256", "sha256" and "SHA256" name the same digest: compare without
 * dashes and case, as administrators write it both ways. */
static int hash_name_matches(const char *wanted, const char *arg)
{
    for (;; arg++) {
        if (*arg == '-') {
            continue;
        }
        if (apr_toupper(*arg) != *wanted) {
            return 0;
        }
        if (!*wanted) {
            return 1;
        }
        wanted++;
    }
}

static const char *set_hash_algorithm(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_size_t i;

    (void)dconf;
    for (i = 0; i < sizeof(hash_names) / sizeof(hash_names[0]); i++) {
        if (hash_name_matches(hash_names[i].name, arg)) {
            cmd_conf(cmd)->hash_md = hash_names[i].md();
            return NULL;
        }
    }
    return apr_pstrcat(cmd->pool, SCEP_HASH_ALGORITHM ": unsupported hash algorithm '", arg,
                       "': use SHA256, SHA384, SHA512 or SHA1",
                       scep_event_text(SCEP_EVENT_FAILED_HASH_ALGORITHM), NULL);
}

/* A whole number of `unit` in [min, max] into *member. */
static const char *set_bounded_int(cmd_parms *cmd, int *member, const char *arg, int min, int max,
                                   const char *unit)
{
    if (!scep_parse_int(arg, min, max, member)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of %s between %d and %d",
                            cmd->cmd->name, arg, unit, min, max);
    }
    return NULL;
}

static const char *set_validity(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_bounded_int(cmd, &cmd_conf(cmd)->validity_days, arg, 1, SCEP_VALIDITY_DAYS_MAX,
                           "days");
}

/* Below the minimum no pkiMessage fits; above the maximum a request would
 * hold too much memory, as bodies are kept whole. */
static const char *set_max_request_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    int bytes;

    (void)dconf;
    if (!scep_parse_int(arg, SCEP_MAX_REQUEST_SIZE_MIN, SCEP_MAX_REQUEST_SIZE_MAX, &bytes)) {
        return apr_psprintf(cmd->pool,
                            SCEP_MAX_REQUEST_SIZE ": '%s' is not a number of "
                                                  "bytes between %d and %d",
                            arg, SCEP_MAX_REQUEST_SIZE_MIN, SCEP_MAX_REQUEST_SIZE_MAX);
    }
    cmd_conf(cmd)->max_request_size = (apr_size_t)bytes;
    return NULL;
}

/* Text as written; cmd->info is the member's offset. */
static const char *set_string(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    *(const char **)member_of(cmd) = arg;
    return NULL;
}

/* The password cache is one for the whole server, as NDES's is: a password
 * handed out on the HTTPS virtual host is used on the device one. */
static const char *global_only(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

static const char *set_global_flag(cmd_parms *cmd, void *dconf, int flag)
{
    const char *err = global_only(cmd);

    return err ? err : set_flag(cmd, dconf, flag);
}

static const char *set_global_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = global_only(cmd);

    return err ? err : set_file(cmd, dconf, arg);
}

static const char *set_global_int(cmd_parms *cmd, int *member, const char *arg, int min, int max,
                                  const char *unit)
{
    const char *err = global_only(cmd);

    return err ? err : set_bounded_int(cmd, member, arg, min, max, unit);
}

static const char *set_password_max(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_global_int(cmd, &cmd_conf(cmd)->password_max, arg, 1, SCEP_PASSWORD_MAX_MAX,
                          "passwords");
}

static const char *set_password_validity(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_global_int(cmd, &cmd_conf(cmd)->password_validity, arg, 1,
                          SCEP_PASSWORD_VALIDITY_MAX, "minutes");
}

static const char *set_password_length(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_global_int(cmd, &cmd_conf(cmd)->password_length, arg, SCEP_PASSWORD_LENGTH_MIN,
                          SCEP_PASSWORD_LENGTH_MAX, "bytes");
}

static const char *set_ca_type(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    if (!strcasecmp(arg, "Enterprise")) {
        cmd_conf(cmd)->ca_type = SCEP_CA_ENTERPRISE;
    }
    else if (!strcasecmp(arg, "Standalone") || !strcasecmp(arg, "Stand-alone")) {
        cmd_conf(cmd)->ca_type = SCEP_CA_STANDALONE;
    }
    else {
        return apr_pstrcat(cmd->pool, SCEP_CA_TYPE ": '", arg,
                           "' is neither Enterprise nor Standalone", NULL);
    }
    return NULL;
}

static const char *set_template_group(cmd_parms *cmd, void *dconf, const char *template_name,
                                      const char *group_dn)
{
    mod_scep_srv_conf_t *conf = cmd_conf(cmd);

    (void)dconf;
    if (!conf->template_groups) {
        conf->template_groups = apr_table_make(cmd->pool, 3);
    }
    apr_table_set(conf->template_groups, template_name, group_dn);
    return NULL;
}

static const char *set_ldap_url(cmd_parms *cmd, void *dconf, const char *url, const char *mode)
{
    mod_scep_srv_conf_t *conf = cmd_conf(cmd);
    apr_ldap_err_t *err = NULL;

    (void)dconf;
    if (apr_ldap_url_parse(cmd->pool, url, &conf->ldap_url, &err) != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, SCEP_LDAP_URL ": cannot parse '", url,
                           "': ", err && err->reason ? err->reason : "invalid LDAP URL", NULL);
    }
    conf->ldap_security = strncasecmp(url, "ldaps:", 6) == 0 ? SCEP_LDAP_SSL : SCEP_LDAP_PLAIN;
    if (!mode || !strcasecmp(mode, "NONE")) {
        return NULL;
    }
    if (!strcasecmp(mode, "SSL")) {
        conf->ldap_security = SCEP_LDAP_SSL;
    }
    else if (!strcasecmp(mode, "TLS") || !strcasecmp(mode, "STARTTLS")) {
        conf->ldap_security = SCEP_LDAP_STARTTLS;
    }
    else {
        return apr_pstrcat(cmd->pool, SCEP_LDAP_URL ": '", mode,
                           "' is not one of NONE, SSL, TLS, STARTTLS", NULL);
    }
    return NULL;
}

/* A full http:// URL: relying parties fetch CRLs over plain HTTP (an
 * https:// distribution point would need this CRL to check its own server). */
static const char *set_crl_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_uri_t uri;

    (void)dconf;
    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || !uri.scheme ||
        strcasecmp(uri.scheme, "http") != 0 || !uri.hostname || !*uri.hostname ||
        strchr(arg, ',')) {
        return apr_pstrcat(cmd->pool, SCEP_CRL_URL ": '", arg,
                           "' is not a full http:// URL without commas", NULL);
    }
    cmd_conf(cmd)->crl_url = arg;
    return NULL;
}

static const char *set_crl_validity(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_bounded_int(cmd, &cmd_conf(cmd)->crl_validity_hours, arg, 1,
                           SCEP_CRL_VALIDITY_HOURS_MAX, "hours");
}

static const char *set_refresh_period(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_bounded_int(cmd, &cmd_conf(cmd)->refresh_period_days, arg, 1,
                           SCEP_REFRESH_PERIOD_MAX, "days");
}

static const char *set_cache_request(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return set_bounded_int(cmd, &cmd_conf(cmd)->cache_request_minutes, arg, 1,
                           SCEP_CACHE_REQUEST_MAX, "minutes");
}

#define SCEP_OFFSET(member) (void *)APR_OFFSETOF(mod_scep_srv_conf_t, member)

const command_rec mod_scep_cmds[] = {
    AP_INIT_TAKE1(SCEP_CA_CERTIFICATE_FILE, set_file, SCEP_OFFSET(ca_cert_file), RSRC_CONF,
                  "PEM certificate of the issuing CA; enables SCEP in this server"),
    AP_INIT_TAKE1(SCEP_CA_KEY_FILE, set_file, SCEP_OFFSET(ca_key_file), RSRC_CONF,
                  "PEM private key of the built-in CA (mode 0600)"),
    AP_INIT_TAKE1(SCEP_CA_CHAIN_FILE, set_file, SCEP_OFFSET(ca_chain_file), RSRC_CONF,
                  "PEM certificates above the CA (intermediates, root)"),
    AP_INIT_TAKE2(SCEP_RA_CERTIFICATE, set_ra_certificate, NULL, RSRC_CONF,
                  "CERTFILE KEYFILE: an RA certificate candidate and its key (repeatable); "
                  "without any, the CA key acts as RA"),
    AP_INIT_FLAG(SCEP_GETCACERT_INCLUDE_ROOT, set_flag, SCEP_OFFSET(include_root), RSRC_CONF,
                 "On|Off: GetCACert lists the root certificate (default On)"),
    AP_INIT_FLAG(SCEP_ENFORCE_PASSWORD, set_flag, SCEP_OFFSET(enforce_password), RSRC_CONF,
                 "On|Off: requests need a challenge password (default On)"),
    AP_INIT_TAKE1(SCEP_CHALLENGE_PASSWORD_FILE, set_file, SCEP_OFFSET(challenge_file), RSRC_CONF,
                  "file whose first line is the static challenge password"),
    AP_INIT_FLAG(SCEP_ALLOW_LEGACY_ALGORITHMS, set_flag, SCEP_OFFSET(allow_legacy), RSRC_CONF,
                 "On|Off: accept single DES and MD5, forbidden by RFC 8894 (default Off)"),
    AP_INIT_TAKE1(SCEP_HASH_ALGORITHM, set_hash_algorithm, NULL, RSRC_CONF,
                  "SHA256|SHA384|SHA512|SHA1: signature hash of issued certificates "
                  "(default SHA256)"),
    AP_INIT_TAKE1(SCEP_CERTIFICATE_VALIDITY, set_validity, NULL, RSRC_CONF,
                  "days of validity of issued certificates (default 365)"),
    AP_INIT_FLAG(SCEP_CERTREP_INCLUDE_CHAIN, set_flag, SCEP_OFFSET(certrep_include_chain),
                 RSRC_CONF, "On|Off: SUCCESS replies carry the CA chain (default Off)"),
    AP_INIT_TAKE1(SCEP_MAX_REQUEST_SIZE, set_max_request_size, NULL, RSRC_CONF,
                  "largest PKIOperation message in bytes (default 65536)"),
    AP_INIT_TAKE1(SCEP_PASSWORD_MAX, set_password_max, NULL, RSRC_CONF,
                  "most one-time passwords waiting to be used, server-wide (default 5)"),
    AP_INIT_TAKE1(SCEP_PASSWORD_VALIDITY, set_password_validity, NULL, RSRC_CONF,
                  "minutes a one-time password stays valid (default 60)"),
    AP_INIT_TAKE1(SCEP_PASSWORD_LENGTH, set_password_length, NULL, RSRC_CONF,
                  "bytes of randomness in a password, shown as twice as many hex digits "
                  "(default 8)"),
    AP_INIT_FLAG(SCEP_USE_SINGLE_PASSWORD, set_global_flag, SCEP_OFFSET(use_single_password),
                 RSRC_CONF,
                 "On|Off: one password for all devices, NDES's single-password "
                 "mode (default Off)"),
    AP_INIT_TAKE1(SCEP_SINGLE_PASSWORD_FILE, set_global_file, SCEP_OFFSET(single_password_file),
                  RSRC_CONF,
                  "where the single password is kept, encrypted with " SCEP_SECRET_KEY_FILE),
    AP_INIT_TAKE1(SCEP_SECRET_KEY_FILE, set_global_file, SCEP_OFFSET(secret_key_file), RSRC_CONF,
                  "key file (mode 0600, created when missing) protecting secrets "
                  "kept at rest"),
    AP_INIT_TAKE1(SCEP_PASSWORD_VDIR, set_string, SCEP_OFFSET(password_vdir), RSRC_CONF,
                  "URL path at or below which passwords are handed out; /: anywhere "
                  "(default /certsrv/mscep_admin)"),
    AP_INIT_FLAG(SCEP_ADMIN_ALLOW_HTTP, set_flag, SCEP_OFFSET(admin_allow_http), RSRC_CONF,
                 "On|Off: hand out passwords over plain HTTP too (default Off)"),
    AP_INIT_TAKE1(SCEP_CA_TYPE, set_ca_type, NULL, RSRC_CONF,
                  "Enterprise|Standalone: who may get passwords (default Enterprise)"),
    AP_INIT_TAKE1(SCEP_SIGNATURE_TEMPLATE, set_string, SCEP_OFFSET(signature_template), RSRC_CONF,
                  "template for keyUsage digitalSignature (default " SCEP_DEFAULT_TEMPLATE ")"),
    AP_INIT_TAKE1(SCEP_ENCRYPTION_TEMPLATE, set_string, SCEP_OFFSET(encryption_template), RSRC_CONF,
                  "template for keyUsage keyEncipherment (default " SCEP_DEFAULT_TEMPLATE ")"),
    AP_INIT_TAKE1(SCEP_GENERAL_PURPOSE_TEMPLATE, set_string, SCEP_OFFSET(general_purpose_template),
                  RSRC_CONF,
                  "template for both key usages or none (default " SCEP_DEFAULT_TEMPLATE ")"),
    AP_INIT_TAKE2(SCEP_TEMPLATE_ENROLL_GROUP, set_template_group, NULL, RSRC_CONF,
                  "TEMPLATE GROUP-DN: members of the LDAP group may enroll with the template "
                  "(repeatable)"),
    AP_INIT_TAKE1(SCEP_CA_ADMIN_GROUP, set_string, SCEP_OFFSET(ca_admin_group), RSRC_CONF,
                  "GROUP-DN: the CA administrators (SCEPCAType Standalone)"),
    AP_INIT_TAKE12(SCEP_LDAP_URL, set_ldap_url, NULL, RSRC_CONF,
                   "ldap[s]://host[:port]/basedn?attr?scope?filter [NONE|SSL|STARTTLS]: where "
                   "administrators' group memberships are checked; unset: no check"),
    AP_INIT_TAKE1(SCEP_LDAP_BIND_DN, set_string, SCEP_OFFSET(ldap_bind_dn), RSRC_CONF,
                  "DN to bind as for the LDAP checks (default anonymous)"),
    AP_INIT_TAKE1(SCEP_LDAP_BIND_PASSWORD, set_string, SCEP_OFFSET(ldap_bind_password), RSRC_CONF,
                  "password for " SCEP_LDAP_BIND_DN),
    AP_INIT_TAKE1(SCEP_NEXT_CA_CERTIFICATE_FILE, set_file, SCEP_OFFSET(next_ca_cert_file),
                  RSRC_CONF,
                  "PEM certificate of the next CA (rollover), served by "
                  "GetNextCACert"),
    AP_INIT_FLAG(SCEP_DISABLE_RENEWAL_SUBJECT_NAME_MATCH, set_flag,
                 SCEP_OFFSET(disable_renewal_subject_match), RSRC_CONF,
                 "On|Off: a renewal may ask for another subject and subjectAltName than its "
                 "signer certificate's (default Off)"),
    AP_INIT_TAKE1(SCEP_CRL_URL, set_crl_url, NULL, RSRC_CONF,
                  "http:// URL of the CRL, put into issued certificates' CRL distribution "
                  "points (default none)"),
    AP_INIT_TAKE1(SCEP_CRL_VALIDITY, set_crl_validity, NULL, RSRC_CONF,
                  "hours from a CRL's thisUpdate to its nextUpdate (default 168)"),
    AP_INIT_TAKE1(SCEP_REFRESH_PERIOD, set_refresh_period, NULL, RSRC_CONF,
                  "days a request waits for a CA manager's decision before it expires "
                  "(default 7)"),
    AP_INIT_TAKE1(SCEP_CACHE_REQUEST, set_cache_request, NULL, RSRC_CONF,
                  "minutes an issued certificate answers retries of its transaction "
                  "(default 20)"),
    /* The CA manager page. */
    AP_INIT_TAKE1(SCEP_CA_MANAGER_GROUP, set_string, SCEP_OFFSET(ca_manager_group), RSRC_CONF,
                  "GROUP-DN: the CA managers, who may use the manager page (approve, deny, "
                  "revoke)"),
    AP_INIT_RAW_ARGS(SCEP_TEMPLATE_SECTION, mod_scep_template_section, NULL, RSRC_CONF,
                     "<SCEPTemplate NAME> ... </SCEPTemplate>: a certificate template "
                     "(Validity, KeyUsage, ExtendedKeyUsage, AllowSubject, AllowSubjectAltName, "
                     "MinimumKeySize, KeyTypes, Issuance, EnrollGroup)"),
    { NULL }
};
