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
 * server record, all expanded from mod_scep_config.h's SCEP_DIRECTIVES
 * table. Values are only parsed and range-checked here; files are
 * read when the whole configuration is known (mod_scep_startup.c), because a
 * virtual host may inherit some of them from the main server.
 */

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include <httpd.h>
#include <http_config.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mod_scep_private.h"
#include "scep_algs.h"
#include "scep_key_pkcs11.h"

/* What a setter needs of its row of the table: the command table's
 * cmd->info points to it. */
typedef struct directive_t {
    apr_size_t offset; /* of the member in mod_scep_srv_conf_t */
    int global_only;   /* scope GLOBAL: main server only */
    int min, max;      /* INT and SIZE */
    const char *unit;  /* INT and SIZE: what the number counts, for errors */
} directive_t;

#define SCEP_SCOPE_SERVER 0
#define SCEP_SCOPE_GLOBAL 1

enum {
#define DIRECTIVE_INDEX(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    DIRECTIVE_##member,
    SCEP_DIRECTIVES(DIRECTIVE_INDEX)
#undef DIRECTIVE_INDEX
        DIRECTIVE_COUNT
};

/* Not const: command_rec's cmd_data is a plain void *. */
static directive_t directives[DIRECTIVE_COUNT] = {
#define DIRECTIVE_ROW(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    { APR_OFFSETOF(mod_scep_srv_conf_t, member), SCEP_SCOPE_##scope, min, max, unit },
    SCEP_DIRECTIVES(DIRECTIVE_ROW)
#undef DIRECTIVE_ROW
};

void *mod_scep_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    mod_scep_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
#define CONF_UNSET(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    conf->member = SCEP_KIND_UNSET(kind);
    SCEP_DIRECTIVES(CONF_UNSET)
#undef CONF_UNSET
#define CONF_UNSET_ALSO(type, member, unset, dflt) conf->member = (unset);
    MOD_SCEP_CONF_ALSO_SET(CONF_UNSET_ALSO)
#undef CONF_UNSET_ALSO
    return conf;
}

/* REPLACE: the virtual host's value when it set one, else the main
 * server's. */
#define MERGE_REPLACE(p, base, add, unset) ((add) == (unset) ? (base) : (add))

/* UNION (SCEPTemplateEnrollGroup): the main server's entries, then the
 * virtual host's, so a virtual host never drops a line of the main server
 * by adding its own. */
#define MERGE_UNION(p, base, add, unset) merge_union(p, base, add)

static apr_table_t *merge_union(apr_pool_t *p, apr_table_t *base, apr_table_t *add)
{
    if (!base || !add) {
        return add ? add : base;
    }
    return apr_table_overlay(p, base, add);
}

#define MERGE_BY(merge) MERGE_##merge
#define MERGE_WITH(merge) MERGE_BY(merge)

void *mod_scep_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    mod_scep_srv_conf_t *base = basev, *add = addv;
    mod_scep_srv_conf_t *merged = apr_pcalloc(p, sizeof(*merged));

#define CONF_MERGE(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    merged->member = \
        MERGE_WITH(SCEP_KIND_MERGE(kind))(p, base->member, add->member, SCEP_KIND_UNSET(kind));
    SCEP_DIRECTIVES(CONF_MERGE)
#undef CONF_MERGE
#define CONF_MERGE_ALSO(type, member, unset, dflt) \
    merged->member = MERGE_REPLACE(p, base->member, add->member, unset);
    MOD_SCEP_CONF_ALSO_SET(CONF_MERGE_ALSO)
#undef CONF_MERGE_ALSO
    return merged;
}

void mod_scep_conf_apply_defaults(apr_pool_t *p, mod_scep_srv_conf_t *conf)
{
    (void)p; /* only some default expressions use it */
#define CONF_DEFAULT(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    if (conf->member == SCEP_KIND_UNSET(kind)) { \
        conf->member = (dflt); \
    }
    SCEP_DIRECTIVES(CONF_DEFAULT)
#undef CONF_DEFAULT
#define CONF_DEFAULT_ALSO(type, member, unset, dflt) \
    if (conf->member == (unset)) { \
        conf->member = (dflt); \
    }
    MOD_SCEP_CONF_ALSO_SET(CONF_DEFAULT_ALSO)
#undef CONF_DEFAULT_ALSO
}

/* The record a directive sets: the server or virtual host it appears in. */
static mod_scep_srv_conf_t *cmd_conf(cmd_parms *cmd)
{
    return mod_scep_srv_conf(cmd->server);
}

/* The row of the table the command table put in cmd->info. */
static const directive_t *directive_of(cmd_parms *cmd)
{
    return cmd->info;
}

/* The member the directive sets. */
static void *directive_member(cmd_parms *cmd)
{
    return (char *)cmd_conf(cmd) + directive_of(cmd)->offset;
}

/* NULL when the directive may appear where it is (scope GLOBAL: in the
 * main server only), else httpd's error text. */
static const char *scope_error(cmd_parms *cmd)
{
    return directive_of(cmd)->global_only ? ap_check_cmd_context(cmd, GLOBAL_ONLY) : NULL;
}

/* A file name relative to ServerRoot. */
static const char *set_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = scope_error(cmd);
    const char *path;

    (void)dconf;
    if (err) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path ", arg, NULL);
    }
    *(const char **)directive_member(cmd) = path;
    return NULL;
}

/* A key's location: a pkcs11: URI (a key in a token) as written, refused
 * when it carries a PIN (the URI, unlike the PIN file, is logged); else a
 * file name relative to ServerRoot. */
static const char *key_location(cmd_parms *cmd, const char *arg, const char **location)
{
    const char *unfit;

    if (scep_key_is_pkcs11(arg)) {
        unfit = scep_key_pkcs11_unfit(cmd->pool, arg);
        *location = unfit ? NULL : arg;
        return unfit ? apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", unfit, NULL) : NULL;
    }
    *location = ap_server_root_relative(cmd->pool, arg);
    return *location ? NULL
                     : apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid file path ", arg, NULL);
}

/* SCEPCAKeyFile: a file or a pkcs11: URI. */
static const char *set_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = scope_error(cmd);

    (void)dconf;
    return err ? err : key_location(cmd, arg, (const char **)directive_member(cmd));
}

/* Text as written. */
static const char *set_string(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = scope_error(cmd);

    (void)dconf;
    if (!err) {
        *(const char **)directive_member(cmd) = arg;
    }
    return err;
}

/* On|Off. */
static const char *set_flag(cmd_parms *cmd, void *dconf, int flag)
{
    const char *err = scope_error(cmd);

    (void)dconf;
    if (!err) {
        *(int *)directive_member(cmd) = flag;
    }
    return err;
}

/* A whole number of the row's unit within its bounds, into *number. */
static const char *parse_bounded(cmd_parms *cmd, const char *arg, int *number)
{
    const directive_t *d = directive_of(cmd);
    const char *err = scope_error(cmd);

    if (err) {
        return err;
    }
    if (!scep_parse_int(arg, d->min, d->max, number)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of %s between %d and %d",
                            cmd->cmd->name, arg, d->unit, d->min, d->max);
    }
    return NULL;
}

static const char *set_int(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return parse_bounded(cmd, arg, (int *)directive_member(cmd));
}

static const char *set_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    int number;
    const char *err = parse_bounded(cmd, arg, &number);

    (void)dconf;
    if (!err) {
        *(apr_size_t *)directive_member(cmd) = (apr_size_t)number;
    }
    return err;
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
    if (!ra->cert_file) {
        return apr_pstrcat(cmd->pool, SCEP_RA_CERTIFICATE ": invalid file path ", cert_file, NULL);
    }
    return key_location(cmd, key_file, &ra->key_file);
}

typedef struct hash_name_t {
    const char *name;
    int nid;
} hash_name_t;

static const hash_name_t hash_names[] = {
    { "SHA256", NID_sha256 },
    { "SHA384", NID_sha384 },
    { "SHA512", NID_sha512 },
    { "SHA1", NID_sha1 },
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
            cmd_conf(cmd)->hash_md = scep_md(hash_names[i].nid);
            return NULL;
        }
    }
    return apr_pstrcat(cmd->pool, SCEP_HASH_ALGORITHM ": unsupported hash algorithm '", arg,
                       "': use SHA256, SHA384, SHA512 or SHA1",
                       scep_event_text(SCEP_EVENT_FAILED_HASH_ALGORITHM), NULL);
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

static const char *set_password_store(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = scope_error(cmd);

    (void)dconf;
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "shm")) {
        cmd_conf(cmd)->password_store = SCEP_PASSWORD_STORE_SHM;
    }
    else if (!strcasecmp(arg, "sql")) {
        cmd_conf(cmd)->password_store = SCEP_PASSWORD_STORE_SQL;
    }
    else {
        return apr_pstrcat(cmd->pool, SCEP_PASSWORD_STORE ": '", arg, "' is neither shm nor sql",
                           NULL);
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
    apr_table_add(conf->template_groups, template_name, group_dn);
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

static const char *set_ca_backend(cmd_parms *cmd, void *dconf, const char *arg)
{
    mod_scep_srv_conf_t *conf = cmd_conf(cmd);

    (void)dconf;
    if (!strcasecmp(arg, "builtin")) {
        conf->ca_backend = SCEP_BACKEND_BUILTIN;
    }
    else if (!strcasecmp(arg, "cmp")) {
        conf->ca_backend = SCEP_BACKEND_CMP;
    }
    else if (!strcasecmp(arg, "helper")) {
        conf->ca_backend = SCEP_BACKEND_HELPER;
    }
    else {
        return apr_pstrcat(cmd->pool, SCEP_CA_BACKEND ": '", arg,
                           "' is not one of builtin, cmp, helper", NULL);
    }
    return NULL;
}

/* A full URL of one of the schemes (NULL-terminated) with a host. */
static int is_full_url(apr_pool_t *p, const char *arg, const char *const *schemes)
{
    apr_uri_t uri;

    if (apr_uri_parse(p, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname ||
        !*uri.hostname) {
        return 0;
    }
    for (; *schemes; schemes++) {
        if (!strcasecmp(uri.scheme, *schemes)) {
            return 1;
        }
    }
    return 0;
}

static const char *set_cmp_server(cmd_parms *cmd, void *dconf, const char *arg)
{
    static const char *const schemes[] = { "http", "https", NULL };

    (void)dconf;
    if (!is_full_url(cmd->pool, arg, schemes)) {
        return apr_pstrcat(cmd->pool, SCEP_CMP_SERVER ": '", arg,
                           "' is not a full http:// or https:// URL", NULL);
    }
    cmd_conf(cmd)->cmp_server = arg;
    return NULL;
}

/* A webhook's URL: https://, or http:// to a loopback address, where
 * nothing but this host sees the secret's signature and the challenge. */
static const char *set_webhook_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = scope_error(cmd);
    const char *why = err ? NULL : scep_webhook_check_url(cmd->pool, arg);

    (void)dconf;
    if (err || why) {
        return err ? err : apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", why, NULL);
    }
    *(const char **)directive_member(cmd) = arg;
    return NULL;
}

/* A program's words as httpd splits a directive's arguments (quotes
 * group, no shell ever sees them), the program's absolute path first: a
 * program found through PATH would depend on the environment Apache
 * started in. NULL-terminated into *argv, or the error naming directive. */
static const char *program_argv(cmd_parms *cmd, const char *directive, const char *noun,
                                const char *example, const char *args, const char *const **argv)
{
    apr_array_header_t *words = apr_array_make(cmd->pool, 4, sizeof(const char *));
    const char *word;

    while (*(word = ap_getword_conf(cmd->pool, &args))) {
        APR_ARRAY_PUSH(words, const char *) = word;
    }
    if (words->nelts == 0 || APR_ARRAY_IDX(words, 0, const char *)[0] != '/') {
        return apr_pstrcat(cmd->pool, directive, ": the first word must be the ", noun,
                           "'s absolute path (e.g. ", example, ")", NULL);
    }
    APR_ARRAY_PUSH(words, const char *) = NULL;
    *argv = (const char *const *)words->elts;
    return NULL;
}

static const char *set_ca_helper(cmd_parms *cmd, void *dconf, const char *args)
{
    (void)dconf;
    return program_argv(cmd, SCEP_CA_HELPER, "helper", "/usr/libexec/certmonger/ipa-submit", args,
                        &cmd_conf(cmd)->ca_helper_argv);
}

static const char *set_challenge_program(cmd_parms *cmd, void *dconf, const char *args)
{
    (void)dconf;
    return program_argv(cmd, SCEP_CHALLENGE_PROGRAM, "program", "/usr/local/libexec/scep-verify",
                        args, &cmd_conf(cmd)->challenge_program_argv);
}

static const char *set_challenge_check(cmd_parms *cmd, void *dconf, const char *args)
{
    const char *err =
        mod_scep_challenge_list_parse(cmd->pool, args, &cmd_conf(cmd)->challenge_checks);

    (void)dconf;
    return err ? apr_pstrcat(cmd->pool, SCEP_CHALLENGE_CHECK ": ", err, NULL) : NULL;
}

/* An http:// URL, or a file relative to ServerRoot. https:// is refused:
 * the module has no TLS client of its own, and a CRL is signed, so plain
 * HTTP carries it as safely (it is verified against the CA). */
static const char *set_external_crl(cmd_parms *cmd, void *dconf, const char *arg)
{
    static const char *const schemes[] = { "http", NULL };
    const char *path;

    (void)dconf;
    if (ap_strstr_c(arg, "://")) {
        if (!is_full_url(cmd->pool, arg, schemes)) {
            return apr_pstrcat(cmd->pool, SCEP_EXTERNAL_CRL ": '", arg,
                               "' is neither a file nor a full http:// URL", NULL);
        }
        cmd_conf(cmd)->external_crl = arg;
        return NULL;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_pstrcat(cmd->pool, SCEP_EXTERNAL_CRL ": invalid file path ", arg, NULL);
    }
    cmd_conf(cmd)->external_crl = path;
    return NULL;
}

/* AP_INIT_TAKE1 and its kin by the kind's argument form. */
#define AP_INIT_BY(args) AP_INIT_##args
#define AP_INIT_WITH(args) AP_INIT_BY(args)

const command_rec mod_scep_cmds[] = {
#define COMMAND(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    AP_INIT_WITH(SCEP_KIND_ARGS(kind)) \
    (name, setter, &directives[DIRECTIVE_##member], RSRC_CONF, help),
    SCEP_DIRECTIVES(COMMAND)
#undef COMMAND
        { NULL }
};

/* Longest accepted first line of a secret's file, newline included. */
#define SECRET_LINE_MAX 1024

/* The first line's length, its line end (CR, LF) left out. */
static apr_size_t first_line_length(const char *text)
{
    apr_size_t len = strcspn(text, "\n");

    while (len > 0 && text[len - 1] == '\r') {
        len--;
    }
    return len;
}

/* The parent reads the file as root before it drops privileges, so the
 * owner's alone (scep_read_private_file()'s rule) is enough; anything more
 * hands the secret (the password that lets any device enroll, a CMP MAC
 * secret) to every local user, as a readable key would: refused like one. */
apr_status_t mod_scep_read_first_line(apr_pool_t *pconf, server_rec *s, const char *directive,
                                      const char *file, apr_size_t max, const char **line)
{
    char *data = NULL;
    apr_size_t len = 0, line_len;
    const char *why = NULL;
    apr_status_t rv;

    rv = scep_read_private_file(pconf, file, max, &data, &len, &why);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = APR_EINVAL;
    if (strcspn(data, "\n") > SECRET_LINE_MAX - 2) {
        why = apr_psprintf(pconf, "%s has a first line longer than %d characters", file,
                           SECRET_LINE_MAX - 2);
        goto leave;
    }
    line_len = first_line_length(data);
    if (line_len == 0) {
        why = apr_psprintf(pconf, "%s has an empty first line", file);
        goto leave;
    }
    *line = apr_pstrmemdup(pconf, data, line_len);
    rv = APR_SUCCESS;
leave:
    if (data) {
        OPENSSL_cleanse(data, len);
    }
    if (why) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEPLOGNO(009) "%s: %s %s%s",
                     mod_scep_server_label(s), directive, why,
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    }
    return rv;
}
