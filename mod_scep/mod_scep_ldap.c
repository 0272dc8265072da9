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
 * Who may get passwords from the admin page (white paper, "The Enrollment
 * Process", step 2b), decided from LDAP group memberships:
 *
 *   SCEPCAType Enterprise: enroll permission on all three configured
 *     templates (SCEPSignatureTemplate, SCEPEncryptionTemplate,
 *     SCEPGeneralPurposeTemplate; a name used twice is checked once). A
 *     template's enroll permission is membership of the group that
 *     SCEPTemplateEnrollGroup names for it; a template without one grants
 *     it to nobody. Refusals are NDES event 6.
 *   SCEPCAType Standalone: membership of SCEPCAAdminGroup (unset: nobody).
 *     Refusals are NDES event 41.
 *
 * And who may use the CA manager page (mod_scep_manager.c): membership of
 * SCEPCAManagerGroup (unset: nobody). NDES has no such page (a Windows CA
 * has its console and the "Issue and Manage Certificates" permission), so
 * no event number.
 *
 * Without SCEPLDAPURL nothing is checked here: Apache's `Require` for the
 * admin location alone decides who gets passwords, and for the manager
 * location who manages.
 *
 * All LDAP traffic goes through mod_ldap's util_ldap optional functions, as
 * mod_authnz_ldap's does: its connection pool, its shared search and
 * compare caches (LDAPSharedCacheSize, LDAPCacheTTL, LDAPOpCacheTTL: a
 * membership change shows after at most LDAPOpCacheTTL seconds) and its TLS
 * settings (LDAPTrustedGlobalCert, LDAPVerifyServerCert). Nothing here links
 * libldap; its headers only give the result codes.
 *
 * The user's entry is found the way mod_authnz_ldap finds it from
 * AuthLDAPURL ldap[s]://host[:port]/basedn?attr?scope?filter: a search
 * below basedn (scope "one" or else subtree) for (&filter(attr=user)),
 * attr defaulting to uid, filter to (objectClass=*). The user is r->user,
 * whatever authenticated it. A Kerberos login (mod_auth_gssapi) sets it to
 * the principal, alice@EXAMPLE.TEST: either set `GssapiLocalName On` so
 * that it becomes alice, or name in the URL an attribute that holds the
 * principal (e.g. krbPrincipalName, or userPrincipalName in Active
 * Directory).
 *
 * Membership is direct (the group's member or uniqueMember holds the
 * user's DN) or nested through groupOfNames / groupOfUniqueNames groups up
 * to the depth of mod_authnz_ldap's AuthLDAPMaxSubGroupDepth default.
 */

#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <util_ldap.h>

#include "mod_scep_private.h"

#if !APR_HAS_LDAP
#error "mod_scep needs APR-util with LDAP support (mod_ldap)"
#endif

/* mod_authnz_ldap's defaults for an AuthLDAPURL that leaves them out. */
#define DEFAULT_HOST "localhost"
#define DEFAULT_USER_ATTRIBUTE "uid"
#define DEFAULT_USER_FILTER "(objectClass=*)"
#define MAX_SUBGROUP_DEPTH 10

/* util_ldap wants modifiable strings for the attribute lists. */
static char member_attr[] = "member";
static char unique_member_attr[] = "uniqueMember";
static char group_of_names_class[] = "groupOfNames";
static char group_of_unique_names_class[] = "groupOfUniqueNames";

/* Attributes listing a group's members, in the order they are tried; also
 * the attributes that list subgroups. */
static char *member_attrs[] = { member_attr, unique_member_attr, NULL };

/* mod_ldap's functions, looked up per request: mod_ldap may be loaded
 * after mod_scep, and a lookup is a hash probe. */
typedef struct uldap_fns_t {
    APR_OPTIONAL_FN_TYPE(uldap_connection_find) *connection_find;
    APR_OPTIONAL_FN_TYPE(uldap_connection_close) *connection_close;
    APR_OPTIONAL_FN_TYPE(uldap_cache_getuserdn) *getuserdn;
    APR_OPTIONAL_FN_TYPE(uldap_cache_compare) *compare;
    APR_OPTIONAL_FN_TYPE(uldap_cache_check_subgroups) *check_subgroups;
} uldap_fns_t;

/* One authorization check: the connection, locked to this request until
 * the request pool's cleanup hands it back. */
typedef struct ldap_check_t {
    request_rec *r;
    const mod_scep_srv_conf_t *conf;
    uldap_fns_t fns;
    util_ldap_connection_t *ldc;
    const char *cache_url; /* names util_ldap's caches for SCEPLDAPURL */
    const char *user_dn;
    apr_array_header_t *group_classes;
    const char *refused; /* what a refused user may not do, for the log */
    const char *event;   /* " (NDES event N)" of a refusal, or "" */
} ldap_check_t;

static int find_uldap_functions(uldap_fns_t *fns)
{
    fns->connection_find = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_find);
    fns->connection_close = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_close);
    fns->getuserdn = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_getuserdn);
    fns->compare = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_compare);
    fns->check_subgroups = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_check_subgroups);
    return fns->connection_find && fns->connection_close && fns->getuserdn && fns->compare &&
           fns->check_subgroups;
}

/* The user name as the logs show it: it comes from the client. */
static const char *logged_user(request_rec *r)
{
    return ap_escape_logitem(r->pool, r->user);
}

/* The NDES event of a refusal under this CA type. */
static int refusal_event(const mod_scep_srv_conf_t *conf)
{
    return conf->ca_type == SCEP_CA_STANDALONE ? SCEP_EVENT_NO_PASSWORD_STANDALONE
                                               : SCEP_EVENT_NO_PASSWORD_TEMPLATE;
}

static const char *ldap_host(const apr_ldap_url_desc_t *url)
{
    return url->lud_host && *url->lud_host ? url->lud_host : DEFAULT_HOST;
}

static int ldap_port(const mod_scep_srv_conf_t *conf)
{
    if (conf->ldap_url->lud_port) {
        return conf->ldap_url->lud_port;
    }
    return conf->ldap_security == SCEP_LDAP_SSL ? LDAPS_PORT : LDAP_PORT;
}

static int ldap_scope(const apr_ldap_url_desc_t *url)
{
    return url->lud_scope == LDAP_SCOPE_ONELEVEL ? LDAP_SCOPE_ONELEVEL : LDAP_SCOPE_SUBTREE;
}

static const char *user_attribute(const apr_ldap_url_desc_t *url)
{
    return url->lud_attrs && url->lud_attrs[0] ? url->lud_attrs[0] : DEFAULT_USER_ATTRIBUTE;
}

static int uldap_security(const mod_scep_srv_conf_t *conf)
{
    switch (conf->ldap_security) {
    case SCEP_LDAP_SSL:
        return APR_LDAP_SSL;
    case SCEP_LDAP_STARTTLS:
        return APR_LDAP_STARTTLS;
    default:
        return APR_LDAP_NONE;
    }
}

/* util_ldap keys its caches by a URL string; SCEPLDAPURL is kept parsed
 * only, so the string is rebuilt from the parts that change the answers. */
static const char *cache_url_of(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    const apr_ldap_url_desc_t *url = conf->ldap_url;

    return apr_psprintf(p, "%s://%s:%d/%s?%s?%s?%s",
                        conf->ldap_security == SCEP_LDAP_SSL ? "ldaps" : "ldap", ldap_host(url),
                        ldap_port(conf), url->lud_dn ? url->lud_dn : "", user_attribute(url),
                        ldap_scope(url) == LDAP_SCOPE_ONELEVEL ? "one" : "sub",
                        url->lud_filter ? url->lud_filter : DEFAULT_USER_FILTER);
}

/* RFC 4515 section 3: a user name is a value in a filter, so the
 * characters that would change the filter are escaped. */
static const char *escape_filter_value(apr_pool_t *p, const char *value)
{
    apr_size_t len = strlen(value);
    char *escaped = apr_palloc(p, 3 * len + 1), *out = escaped;

    for (; *value; value++) {
        if (*value == '*' || *value == '(' || *value == ')' || *value == '\\') {
            out += apr_snprintf(out, 4, "\\%02x", (unsigned char)*value);
        }
        else {
            *out++ = *value;
        }
    }
    *out = '\0';
    return escaped;
}

/* (&(filter)(attr=user)); the URL's filter may come with or without its
 * parentheses. */
static const char *user_filter(apr_pool_t *p, const apr_ldap_url_desc_t *url, const char *user)
{
    const char *filter =
        url->lud_filter && *url->lud_filter ? url->lud_filter : DEFAULT_USER_FILTER;

    return apr_pstrcat(p, "(&", *filter == '(' ? "" : "(", filter, *filter == '(' ? "" : ")", "(",
                       user_attribute(url), "=", escape_filter_value(p, user), "))", NULL);
}

static apr_status_t release_connection(void *data)
{
    ldap_check_t *check = data;

    check->fns.connection_close(check->ldc);
    return APR_SUCCESS;
}

/* Aliases are dereferenced always, mod_authnz_ldap's default. */
static int open_connection(ldap_check_t *check)
{
    request_rec *r = check->r;
    const mod_scep_srv_conf_t *conf = check->conf;

    check->ldc = check->fns.connection_find(r, ldap_host(conf->ldap_url), ldap_port(conf),
                                            conf->ldap_bind_dn, conf->ldap_bind_password, always,
                                            uldap_security(conf));
    if (!check->ldc) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(510) "mod_ldap has no connection to %s:%d for " SCEP_LDAP_URL,
                      ldap_host(conf->ldap_url), ldap_port(conf));
        return 0;
    }
    apr_pool_cleanup_register(r->pool, check, release_connection, apr_pool_cleanup_null);
    return 1;
}

static const char *reason(const ldap_check_t *check)
{
    return check->ldc->reason ? check->ldc->reason : "no reason given";
}

/* 1 found (check->user_dn set), 0 not in the directory, -1 LDAP error. */
static int find_user_dn(ldap_check_t *check)
{
    request_rec *r = check->r;
    const apr_ldap_url_desc_t *url = check->conf->ldap_url;
    char *attrs[2];
    const char **vals = NULL;
    int rc;

    attrs[0] = apr_pstrdup(r->pool, user_attribute(url));
    attrs[1] = NULL;
    rc = check->fns.getuserdn(r, check->ldc, check->cache_url, url->lud_dn, ldap_scope(url), attrs,
                              user_filter(r->pool, url, r->user), &check->user_dn, &vals);
    if (rc == LDAP_SUCCESS) {
        return 1;
    }
    if (rc == LDAP_NO_SUCH_OBJECT) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(500) "%s %s: no single entry for them below '%s' of " SCEP_LDAP_URL
                                     ": %s%s",
                      logged_user(r), check->refused, url->lud_dn ? url->lud_dn : "", reason(check),
                      check->event);
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  SCEPLOGNO(501) "LDAP search for %s failed: %s (LDAP result %d)", logged_user(r),
                  reason(check), rc);
    return -1;
}

/* Answers of a compare that mean "no" rather than "cannot tell". */
static int is_negative(int rc)
{
    return rc == LDAP_COMPARE_FALSE || rc == LDAP_NO_SUCH_ATTRIBUTE;
}

static int direct_member(ldap_check_t *check, const char *group_dn)
{
    int i, rc;

    for (i = 0; member_attrs[i]; i++) {
        rc = check->fns.compare(check->r, check->ldc, check->cache_url, group_dn, member_attrs[i],
                                check->user_dn);
        if (rc == LDAP_COMPARE_TRUE) {
            return 1;
        }
        if (rc == LDAP_NO_SUCH_OBJECT) {
            ap_log_rerror(
                APLOG_MARK, APLOG_ERR, 0, check->r,
                SCEPLOGNO(502) "the LDAP group '%s' does not exist: correct the group DN in the "
                               "configuration",
                group_dn);
            return -1;
        }
        if (!is_negative(rc)) {
            ap_log_rerror(
                APLOG_MARK, APLOG_ERR, 0, check->r,
                SCEPLOGNO(503) "LDAP compare of %s in group '%s' failed: %s (LDAP result %d)",
                member_attrs[i], group_dn, reason(check), rc);
            return -1;
        }
    }
    return 0;
}

/* Subgroup members that are not groups, and groups without subgroups,
 * answer "no" too. */
static int nested_member(ldap_check_t *check, const char *group_dn)
{
    int i, rc;

    for (i = 0; member_attrs[i]; i++) {
        rc = check->fns.check_subgroups(check->r, check->ldc, check->cache_url, group_dn,
                                        member_attrs[i], check->user_dn, member_attrs,
                                        check->group_classes, 0, MAX_SUBGROUP_DEPTH);
        if (rc == LDAP_COMPARE_TRUE) {
            return 1;
        }
        if (!is_negative(rc) && rc != LDAP_NO_SUCH_OBJECT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, check->r,
                          SCEPLOGNO(504) "LDAP check of the groups nested in '%s' failed: "
                                         "%s (LDAP result %d)",
                          group_dn, reason(check), rc);
            return -1;
        }
    }
    return 0;
}

/* 1 when the user is a member of group_dn, directly or nested; 0 when
 * not; -1 on an LDAP error (logged). */
static int user_in_group(ldap_check_t *check, const char *group_dn)
{
    int rc = direct_member(check, group_dn);

    return rc != 0 ? rc : nested_member(check, group_dn);
}

static int push_group(void *groups, const char *template_name, const char *group_dn)
{
    (void)template_name;
    APR_ARRAY_PUSH((apr_array_header_t *)groups, const char *) = group_dn;
    return 1;
}

/* The groups holding enroll permission on the template: every
 * SCEPTemplateEnrollGroup and EnrollGroup line naming it, the main
 * server's and the virtual host's (HACKING.md, "Templates"). */
static apr_array_header_t *enroll_groups(ldap_check_t *check, const char *template_name)
{
    apr_array_header_t *groups = apr_array_make(check->r->pool, 2, sizeof(const char *));

    apr_table_do(push_group, groups, check->conf->template_groups, template_name, NULL);
    return groups;
}

/* 'G1' or 'G2' ... for the log (the quotes around the first and last
 * are the caller's). */
static const char *group_list(apr_pool_t *p, const apr_array_header_t *groups)
{
    const char *list = APR_ARRAY_IDX(groups, 0, const char *);
    int i;

    for (i = 1; i < groups->nelts; i++) {
        list = apr_pstrcat(p, list, "' or '", APR_ARRAY_IDX(groups, i, const char *), NULL);
    }
    return list;
}

/* 1 when the user is a member of one of the template's groups, 0 when of
 * none (logged), -1 on an LDAP error (logged). */
static int may_enroll_with(ldap_check_t *check, const char *template_name)
{
    request_rec *r = check->r;
    const apr_array_header_t *groups = enroll_groups(check, template_name);
    int i, rc = 0;

    if (groups->nelts == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(505) "%s may not get passwords: template %s "
                           "has no " SCEP_TEMPLATE_ENROLL_GROUP ", so nobody holds enroll "
                           "permission on it%s",
            logged_user(r), template_name, scep_event_text(SCEP_EVENT_NO_PASSWORD_TEMPLATE));
        return 0;
    }
    for (i = 0; i < groups->nelts && rc == 0; i++) {
        rc = user_in_group(check, APR_ARRAY_IDX(groups, i, const char *));
    }
    if (rc == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(506) "%s may not get passwords: no enroll permission on template %s (not a "
                           "member of '%s')%s",
            logged_user(r), template_name, group_list(r->pool, groups),
            scep_event_text(SCEP_EVENT_NO_PASSWORD_TEMPLATE));
    }
    return rc;
}

static int named_before(const char *const *names, int i)
{
    int j;

    for (j = 0; j < i; j++) {
        if (!strcmp(names[j], names[i])) {
            return 1;
        }
    }
    return 0;
}

/* Enterprise CA: all three templates, each distinct name once (all three
 * are the built-in template by default). */
static int may_enroll_with_all(ldap_check_t *check)
{
    const mod_scep_srv_conf_t *conf = check->conf;
    const char *templates[3];
    int i, rc;

    templates[0] = conf->signature_template;
    templates[1] = conf->encryption_template;
    templates[2] = conf->general_purpose_template;
    for (i = 0; i < 3; i++) {
        if (!named_before(templates, i) && (rc = may_enroll_with(check, templates[i])) != 1) {
            return rc;
        }
    }
    return 1;
}

/* Stand-alone CA: the CA administrators. */
static int is_ca_administrator(ldap_check_t *check)
{
    request_rec *r = check->r;
    const char *group_dn = check->conf->ca_admin_group;
    int rc;

    if (!group_dn) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(507) "%s may not get passwords: " SCEP_CA_TYPE
                                     " Standalone without " SCEP_CA_ADMIN_GROUP
                                     ", so nobody is a CA administrator%s",
                      logged_user(r), scep_event_text(SCEP_EVENT_NO_PASSWORD_STANDALONE));
        return 0;
    }
    rc = user_in_group(check, group_dn);
    if (rc == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(508) "%s may not get passwords: not a CA administrator (not a member of "
                           "'%s')%s",
            logged_user(r), group_dn, scep_event_text(SCEP_EVENT_NO_PASSWORD_STANDALONE));
    }
    return rc;
}

/* util_ldap's entry of an objectClass list. */
typedef struct mod_auth_ldap_groupattr_entry_t group_class_t;

/* The object classes of groups that may hold subgroups, as
 * mod_authnz_ldap's AuthLDAPSubGroupClass default. */
static apr_array_header_t *group_classes(apr_pool_t *p)
{
    apr_array_header_t *classes = apr_array_make(p, 2, sizeof(group_class_t));

    ((group_class_t *)apr_array_push(classes))->name = group_of_names_class;
    ((group_class_t *)apr_array_push(classes))->name = group_of_unique_names_class;
    return classes;
}

/* The CA managers (SCEPCAManagerGroup), for the manager page. */
static int is_ca_manager(ldap_check_t *check)
{
    request_rec *r = check->r;
    const char *group_dn = check->conf->ca_manager_group;
    int rc;

    if (!group_dn) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(620) "%s may not use the CA manager page: " SCEP_LDAP_URL
                                     " is set but " SCEP_CA_MANAGER_GROUP
                                     " is not, so nobody is a CA manager",
                      logged_user(r));
        return 0;
    }
    rc = user_in_group(check, group_dn);
    if (rc == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(621) "%s may not use the CA manager page: not a CA manager (not a member of "
                           "'%s', " SCEP_CA_MANAGER_GROUP ")",
            logged_user(r), group_dn);
    }
    return rc;
}

/* A check of r->user: 1 with the user's entry found, 0 when the user is
 * not in the directory (logged), -1 on an LDAP error (logged). refused
 * and event word the refusals in the log. */
static int start_check(request_rec *r, const mod_scep_srv_conf_t *conf, const char *refused,
                       const char *event, ldap_check_t **started)
{
    /* On the request pool: its cleanup releases the connection. */
    ldap_check_t *check = apr_pcalloc(r->pool, sizeof(*check));

    check->r = r;
    check->conf = conf;
    check->refused = refused;
    check->event = event;
    if (!find_uldap_functions(&check->fns)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(509) SCEP_LDAP_URL " needs mod_ldap: add 'LoadModule ldap_module "
                                                   "modules/mod_ldap.so'");
        return -1;
    }
    check->cache_url = cache_url_of(r->pool, conf);
    check->group_classes = group_classes(r->pool);
    if (!open_connection(check)) {
        return -1;
    }
    *started = check;
    return find_user_dn(check);
}

int mod_scep_ldap_authorized(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    ldap_check_t *check = NULL;
    int rc;

    if (!conf->ldap_url) {
        return 1;
    }
    rc =
        start_check(r, conf, "may not get passwords", scep_event_text(refusal_event(conf)), &check);
    if (rc != 1) {
        return rc;
    }
    return conf->ca_type == SCEP_CA_STANDALONE ? is_ca_administrator(check)
                                               : may_enroll_with_all(check);
}

int mod_scep_ldap_is_ca_manager(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    ldap_check_t *check = NULL;
    int rc;

    if (!conf->ldap_url) {
        return 1;
    }
    rc = start_check(r, conf, "may not use the CA manager page", "", &check);
    return rc == 1 ? is_ca_manager(check) : rc;
}
