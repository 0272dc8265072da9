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
 * Certificate templates in the configuration: the <SCEPTemplate NAME>
 * section, the lookup of a template by name, and the startup check that
 * every template the three key-usage directives name exists.
 *
 * The section's directives (Validity, KeyUsage, ...) are parsed here by
 * walking the section's children, not through httpd's command table: they
 * mean something only inside a template, and as global commands their
 * short names could clash with other modules' directives.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <util_cfgtree.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "mod_scep_private.h"

#define MIN_KEY_SIZE_MIN 512
#define MIN_KEY_SIZE_MAX SCEP_MAX_RSA_BITS
/* The smallest and the largest curves OpenSSL knows (secp160r1, sect571r1). */
#define MIN_EC_KEY_SIZE_MIN 160
#define MIN_EC_KEY_SIZE_MAX 571
#define FROM_REQUEST "FromRequest"

/* A section directive's parser: NULL or an error message. */
typedef const char *(*template_setter_t)(cmd_parms *cmd, scep_template_t *tmpl, const char *args);

typedef struct word_flag_t {
    const char *word;
    unsigned int flag;
} word_flag_t;

/* keyUsage bits a template may set: an end entity never signs certificates
 * or CRLs, so keyCertSign and cRLSign are not offered (RFC 5280 wants
 * basicConstraints CA:TRUE with keyCertSign, and the CA always sets
 * CA:FALSE). */
static const word_flag_t key_usage_words[] = {
    { "digitalSignature", X509v3_KU_DIGITAL_SIGNATURE },
    { "nonRepudiation", X509v3_KU_NON_REPUDIATION },
    { "contentCommitment", X509v3_KU_NON_REPUDIATION },
    { "keyEncipherment", X509v3_KU_KEY_ENCIPHERMENT },
    { "dataEncipherment", X509v3_KU_DATA_ENCIPHERMENT },
    { "keyAgreement", X509v3_KU_KEY_AGREEMENT },
    { NULL, 0 },
};

static const word_flag_t san_words[] = {
    { "DNS", SCEP_SAN_DNS }, { "IP", SCEP_SAN_IP },   { "EMAIL", SCEP_SAN_EMAIL },
    { "URI", SCEP_SAN_URI }, { "UPN", SCEP_SAN_UPN }, { NULL, 0 },
};

static const word_flag_t key_type_words[] = {
    { "rsa", SCEP_KEYTYPE_RSA },
    { "ec", SCEP_KEYTYPE_EC },
    { NULL, 0 },
};

static int flag_of(const word_flag_t *words, const char *word, unsigned int *flag)
{
    for (; words->word; words++) {
        if (!strcasecmp(words->word, word)) {
            *flag = words->flag;
            return 1;
        }
    }
    return 0;
}

/* The word of single (FromRequest, None, Any) that word is, or NULL. */
static const char *single_word(const char *const *single, const char *word)
{
    for (; single && *single; single++) {
        if (!strcasecmp(*single, word)) {
            return *single;
        }
    }
    return NULL;
}

/* The words of args ORed into *flags; *alone is set instead when args is
 * one of the words of single, which cannot be combined with others. */
static const char *parse_flags(cmd_parms *cmd, const word_flag_t *words, const char *args,
                               const char *const *single, const char **alone, unsigned int *flags)
{
    const char *word, *stands_alone;
    unsigned int flag;
    int n;

    *flags = 0;
    *alone = NULL;
    for (n = 0; *(word = ap_getword_conf(cmd->temp_pool, &args)); n++) {
        stands_alone = single_word(single, word);
        if (stands_alone ? n > 0 : *alone != NULL) {
            return apr_psprintf(cmd->pool,
                                "'%s' stands alone, it cannot be combined with "
                                "other values",
                                stands_alone ? stands_alone : *alone);
        }
        if (stands_alone) {
            *alone = stands_alone;
        }
        else if (flag_of(words, word, &flag)) {
            *flags |= flag;
        }
        else {
            return apr_psprintf(cmd->pool, "unknown value '%s'", word);
        }
    }
    return n ? NULL : "needs at least one value";
}

/* The one argument of a directive, unquoted. */
static const char *single_arg(cmd_parms *cmd, const char *args, const char **arg)
{
    *arg = ap_getword_conf(cmd->pool, &args);
    if (!**arg) {
        return "needs one argument";
    }
    if (*ap_getword_conf(cmd->temp_pool, &args)) {
        return "takes one argument only";
    }
    return NULL;
}

static const char *set_validity(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *arg, *err = single_arg(cmd, args, &arg);

    if (err) {
        return err;
    }
    if (!scep_parse_int(arg, 1, SCEP_VALIDITY_DAYS_MAX, &tmpl->validity_days)) {
        return apr_psprintf(cmd->pool, "'%s' is not a number of days between 1 and %d", arg,
                            SCEP_VALIDITY_DAYS_MAX);
    }
    return NULL;
}

static const char *set_key_usage(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    static const char *const single[] = { FROM_REQUEST, NULL };
    const char *alone, *err;
    unsigned int bits;

    err = parse_flags(cmd, key_usage_words, args, single, &alone, &bits);
    if (!err) {
        tmpl->key_usage = alone ? SCEP_KU_FROM_REQUEST : (int)bits;
    }
    return err;
}

static const char *set_ext_key_usage(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *word;
    int n;

    tmpl->ext_key_usage = NULL;
    for (n = 0; *(word = ap_getword_conf(cmd->temp_pool, &args)); n++) {
        if (!strcasecmp(word, FROM_REQUEST)) {
            if (n > 0 || *ap_getword_conf(cmd->temp_pool, &args)) {
                return "'" FROM_REQUEST "' stands alone, it cannot be combined with OIDs";
            }
            return NULL;
        }
        if (scep_template_add_eku(cmd->pool, tmpl, word) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool,
                                "'%s' is neither a dotted OID nor a name OpenSSL "
                                "knows (such as clientAuth)",
                                word);
        }
    }
    return n ? NULL : "needs " FROM_REQUEST " or at least one OID";
}

static const char *set_allow_san(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    static const char *const single[] = { "None", "Any", NULL };
    const char *alone, *err;
    unsigned int types;

    err = parse_flags(cmd, san_words, args, single, &alone, &types);
    if (!err) {
        tmpl->san_types = !alone ? types : !strcmp(alone, "Any") ? SCEP_SAN_ALL : 0;
    }
    return err;
}

static const char *set_allow_subject(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *word;
    int nid, n;

    tmpl->subject_nids = apr_array_make(cmd->pool, 4, sizeof(int));
    for (n = 0; *(word = ap_getword_conf(cmd->temp_pool, &args)); n++) {
        if (!strcasecmp(word, "Any")) {
            if (n > 0 || *ap_getword_conf(cmd->temp_pool, &args)) {
                return "'Any' stands alone, it cannot be combined with attribute names";
            }
            tmpl->subject_nids = NULL;
            return NULL;
        }
        nid = OBJ_txt2nid(word);
        if (nid == NID_undef) {
            return apr_psprintf(cmd->pool,
                                "'%s' is not a subject attribute OpenSSL knows "
                                "(such as CN, O, OU, C, serialNumber)",
                                word);
        }
        APR_ARRAY_PUSH(tmpl->subject_nids, int) = nid;
    }
    return n ? NULL : "needs Any or at least one attribute name";
}

static const char *set_wildcard_dns(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *arg, *err = single_arg(cmd, args, &arg);

    if (err) {
        return err;
    }
    if (strcasecmp(arg, "On") != 0 && strcasecmp(arg, "Off") != 0) {
        return apr_psprintf(cmd->pool, "'%s' is neither On nor Off", arg);
    }
    tmpl->wildcard_dns = strcasecmp(arg, "On") == 0;
    return NULL;
}

/* A number of bits from min to max into *bits. */
static const char *bits_arg(cmd_parms *cmd, const char *args, int min, int max, int *bits)
{
    const char *arg, *err = single_arg(cmd, args, &arg);

    if (err) {
        return err;
    }
    if (!scep_parse_int(arg, min, max, bits)) {
        return apr_psprintf(cmd->pool, "'%s' is not a number of bits between %d and %d", arg, min,
                            max);
    }
    return NULL;
}

static const char *set_min_key_size(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    return bits_arg(cmd, args, MIN_KEY_SIZE_MIN, MIN_KEY_SIZE_MAX, &tmpl->min_rsa_bits);
}

static const char *set_max_key_size(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    return bits_arg(cmd, args, MIN_KEY_SIZE_MIN, MIN_KEY_SIZE_MAX, &tmpl->max_rsa_bits);
}

static const char *set_min_ec_key_size(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    return bits_arg(cmd, args, MIN_EC_KEY_SIZE_MIN, MIN_EC_KEY_SIZE_MAX, &tmpl->min_ec_bits);
}

static const char *set_curves(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *word;
    int nid;

    tmpl->curves = apr_array_make(cmd->pool, 3, sizeof(int));
    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        nid = scep_curve_nid(word);
        if (nid == NID_undef) {
            return apr_psprintf(cmd->pool,
                                "'%s' is not a named curve OpenSSL knows (such as P-256, "
                                "P-384, P-521, secp256k1, brainpoolP256r1)",
                                word);
        }
        APR_ARRAY_PUSH(tmpl->curves, int) = nid;
    }
    return tmpl->curves->nelts ? NULL : "needs at least one curve name";
}

static const char *set_key_types(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *alone;

    return parse_flags(cmd, key_type_words, args, NULL, &alone, &tmpl->key_types);
}

static const char *set_issuance(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    const char *arg, *err = single_arg(cmd, args, &arg);

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "auto")) {
        tmpl->issuance = SCEP_ISSUANCE_AUTO;
    }
    else if (!strcasecmp(arg, "manual")) {
        tmpl->issuance = SCEP_ISSUANCE_MANUAL;
    }
    else {
        return apr_psprintf(cmd->pool, "'%s' is neither auto nor manual", arg);
    }
    return NULL;
}

static const char *set_enroll_group(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    return single_arg(cmd, args, &tmpl->enroll_group);
}

static const char *set_challenge_check(cmd_parms *cmd, scep_template_t *tmpl, const char *args)
{
    return mod_scep_challenge_list_parse(cmd->pool, args, &tmpl->challenge_checks);
}

typedef struct template_directive_t {
    const char *name;
    template_setter_t set;
} template_directive_t;

/* Documented in HACKING.md and conf.d/scep.conf. */
static const template_directive_t template_directives[] = {
    { "Validity", set_validity },
    { "KeyUsage", set_key_usage },
    { "ExtendedKeyUsage", set_ext_key_usage },
    { "AllowSubject", set_allow_subject },
    { "AllowSubjectAltName", set_allow_san },
    { "AllowWildcardDNS", set_wildcard_dns },
    { "MinimumKeySize", set_min_key_size },
    { "MaximumKeySize", set_max_key_size },
    { "MinimumECKeySize", set_min_ec_key_size },
    { "Curves", set_curves },
    { "KeyTypes", set_key_types },
    { "Issuance", set_issuance },
    { "EnrollGroup", set_enroll_group },
    { "ChallengeCheck", set_challenge_check },
    { NULL, NULL }
};

/* "Validity, KeyUsage, ..." from the table, for the refusal of others. */
static const char *directive_names(apr_pool_t *p)
{
    const template_directive_t *td = template_directives;
    const char *names = td->name;

    for (td++; td->name; td++) {
        names = apr_pstrcat(p, names, ", ", td->name, NULL);
    }
    return names;
}

static const char *apply_directive(cmd_parms *cmd, scep_template_t *tmpl, const ap_directive_t *d)
{
    const template_directive_t *td;
    const char *err = NULL;

    for (td = template_directives; td->name; td++) {
        if (!strcasecmp(td->name, d->directive)) {
            err = td->set(cmd, tmpl, d->args);
            break;
        }
    }
    if (!td->name) {
        err =
            apr_psprintf(cmd->pool, "is not a template directive (%s)", directive_names(cmd->pool));
    }
    return err ? apr_psprintf(cmd->pool, "%s:%d: " SCEP_TEMPLATE_SECTION " %s> %s: %s", d->filename,
                              d->line_num, tmpl->name, d->directive, err)
               : NULL;
}

scep_template_t *mod_scep_template_find(const mod_scep_srv_conf_t *conf, const char *name)
{
    return scep_template_find(conf->templates, name);
}

/* The template's enroll group joins SCEPTemplateEnrollGroup's table, which
 * the admin page's authorization reads (mod_scep_ldap.c). */
static void register_template(cmd_parms *cmd, mod_scep_srv_conf_t *conf, scep_template_t *tmpl)
{
    if (!conf->templates) {
        conf->templates = apr_array_make(cmd->pool, 2, sizeof(scep_template_t *));
    }
    APR_ARRAY_PUSH(conf->templates, scep_template_t *) = tmpl;
    if (tmpl->enroll_group) {
        if (!conf->template_groups) {
            conf->template_groups = apr_table_make(cmd->pool, 3);
        }
        apr_table_add(conf->template_groups, tmpl->name, tmpl->enroll_group);
    }
}

const char *mod_scep_template_section(cmd_parms *cmd, void *dconf, const char *arg)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(cmd->server);
    const char *end = ap_strrchr_c(arg, '>');
    const char *args, *name, *err = NULL;
    const ap_directive_t *d;
    scep_template_t *tmpl;

    (void)dconf;
    if (!end || end[1]) {
        return SCEP_TEMPLATE_SECTION "> directive missing closing '>'";
    }
    args = apr_pstrmemdup(cmd->temp_pool, arg, (apr_size_t)(end - arg));
    name = ap_getword_conf(cmd->pool, &args);
    if (!*name || *ap_getword_conf(cmd->temp_pool, &args)) {
        return SCEP_TEMPLATE_SECTION " NAME>: needs exactly one template name";
    }
    if (mod_scep_template_find(conf, name)) {
        return apr_pstrcat(cmd->pool, SCEP_TEMPLATE_SECTION " ", name,
                           ">: this template is already defined in this server", NULL);
    }
    tmpl = scep_template_new(cmd->pool, name);
    for (d = cmd->directive->first_child; d && !err; d = d->next) {
        err = d->first_child || *d->directive == '<'
                  ? apr_psprintf(cmd->pool,
                                 "%s:%d: %s is not allowed inside " SCEP_TEMPLATE_SECTION ">",
                                 d->filename, d->line_num, d->directive)
                  : apply_directive(cmd, tmpl, d);
    }
    if (!err && tmpl->min_rsa_bits > tmpl->max_rsa_bits) {
        err = apr_psprintf(
            cmd->pool, SCEP_TEMPLATE_SECTION " %s>: MinimumKeySize %d is above MaximumKeySize %d",
            name, tmpl->min_rsa_bits, tmpl->max_rsa_bits);
    }
    if (!err) {
        register_template(cmd, conf, tmpl);
    }
    return err;
}

/* The key-usage directives that name a template, for the startup check. */
static const char *unknown_template(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    const char *const names[] = { conf->signature_template, conf->encryption_template,
                                  conf->general_purpose_template };
    const char *const directives[] = { SCEP_SIGNATURE_TEMPLATE, SCEP_ENCRYPTION_TEMPLATE,
                                       SCEP_GENERAL_PURPOSE_TEMPLATE };
    int i;

    for (i = 0; i < 3; i++) {
        if (!mod_scep_template_find(conf, names[i])) {
            return apr_psprintf(p,
                                "%s %s: no " SCEP_TEMPLATE_SECTION " %s> is configured and "
                                "it is not the built-in " SCEP_BUILTIN_TEMPLATE,
                                directives[i], names[i], names[i]);
        }
    }
    return NULL;
}

const char *mod_scep_templates_finish(apr_pool_t *pconf, mod_scep_srv_conf_t *conf)
{
    if (!mod_scep_template_find(conf, SCEP_BUILTIN_TEMPLATE)) {
        /* A copy per server: a virtual host may share the main server's
         * array, which must not get the template twice. */
        conf->templates = apr_array_copy(pconf, conf->templates);
        APR_ARRAY_PUSH(conf->templates, scep_template_t *) = scep_template_builtin(pconf);
    }
    return unknown_template(pconf, conf);
}
