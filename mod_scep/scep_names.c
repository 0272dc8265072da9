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
 * The names and usages a CSR asks for, checked and decoded. The CA never
 * copies a requested name byte for byte: a relying party that compares
 * names, or a log that prints them, would otherwise meet whatever a device
 * chose to encode (a NUL that cuts a commonName short in C, a T61String
 * nobody decodes alike, an escape sequence). Each value is decoded to
 * UTF-8, checked, and encoded again in the ASN.1 type we choose.
 */

#include <string.h>

#include <apr_strings.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "scep_names.h"

/* RFC 5280 Appendix A upper bounds, in characters. */
#define UB_NAME 32768
#define UB_COMMON_NAME 64
#define UB_LOCALITY_NAME 128
#define UB_STATE_NAME 128
#define UB_ORGANIZATION_NAME 64
#define UB_ORGANIZATIONAL_UNIT_NAME 64
#define UB_TITLE 64
#define UB_SERIAL_NUMBER 64
#define UB_PSEUDONYM 128
#define UB_EMAILADDRESS_LENGTH 255
/* Ours, where RFC 5280 sets no bound: other subject attributes (the
 * longest bound it does set, but for ub-name) and URIs. */
#define UB_OTHER 128
#define UB_URI 2048
/* A host name in text (RFC 1035: 255 octets on the wire) and its labels. */
#define UB_DNS_NAME 253
#define UB_DNS_LABEL 63
/* Active Directory's rangeUpper of userPrincipalName. */
#define UB_UPN 1024
/* Values longer than this are not repeated in a refusal. */
#define SHOWN_MAX 80

typedef enum {
    AS_DIRECTORY_STRING, /* PrintableString where the value fits, else UTF8String */
    AS_PRINTABLE,        /* PrintableString, else refused */
    AS_IA5,              /* IA5String, else refused */
    AS_COUNTRY           /* PrintableString of two letters */
} encoding_t;

typedef struct attribute_rule_t {
    int nid;
    int max; /* characters */
    encoding_t encoding;
} attribute_rule_t;

static const attribute_rule_t attribute_rules[] = {
    { NID_commonName, UB_COMMON_NAME, AS_DIRECTORY_STRING },
    { NID_surname, UB_NAME, AS_DIRECTORY_STRING },
    { NID_givenName, UB_NAME, AS_DIRECTORY_STRING },
    { NID_initials, UB_NAME, AS_DIRECTORY_STRING },
    { NID_generationQualifier, UB_NAME, AS_DIRECTORY_STRING },
    { NID_name, UB_NAME, AS_DIRECTORY_STRING },
    { NID_localityName, UB_LOCALITY_NAME, AS_DIRECTORY_STRING },
    { NID_stateOrProvinceName, UB_STATE_NAME, AS_DIRECTORY_STRING },
    { NID_organizationName, UB_ORGANIZATION_NAME, AS_DIRECTORY_STRING },
    { NID_organizationalUnitName, UB_ORGANIZATIONAL_UNIT_NAME, AS_DIRECTORY_STRING },
    { NID_title, UB_TITLE, AS_DIRECTORY_STRING },
    { NID_pseudonym, UB_PSEUDONYM, AS_DIRECTORY_STRING },
    { NID_serialNumber, UB_SERIAL_NUMBER, AS_PRINTABLE },
    { NID_dnQualifier, UB_OTHER, AS_PRINTABLE },
    { NID_countryName, 2, AS_COUNTRY },
    { NID_pkcs9_emailAddress, UB_EMAILADDRESS_LENGTH, AS_IA5 },
    { NID_domainComponent, UB_DNS_LABEL, AS_IA5 },
};

static attribute_rule_t rule_of(int nid)
{
    attribute_rule_t other = { nid, UB_OTHER, AS_DIRECTORY_STRING };
    apr_size_t i;

    for (i = 0; i < sizeof(attribute_rules) / sizeof(attribute_rules[0]); i++) {
        if (attribute_rules[i].nid == nid) {
            return attribute_rules[i];
        }
    }
    return other;
}

/* The CSR is malformed: event 42. */
static apr_status_t malformed(scep_problem_t *prob, const char *text)
{
    return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST,
                        SCEP_EVENT_FAIL_DECODE_X509_REQUEST, text);
}

/* Well formed, but not what a certificate of ours may say: event 23. */
static apr_status_t refused(scep_problem_t *prob, const char *text)
{
    return scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ, text);
}

static apr_status_t out_of_memory(scep_problem_t *prob)
{
    return scep_problem(prob, APR_ENOMEM, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                        "out of memory");
}

/* ASCII classes, whatever the locale. */
static int is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_printable(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr(" '()+,-./:=?", c) != NULL);
}

static int is_ascii(unsigned char c)
{
    return c < 0x80;
}

static int is_visible(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

static int is_numeric(unsigned char c)
{
    return is_digit(c) || c == ' ';
}

/* What a URI or a mail address may hold: visible ASCII, no space. */
static int is_graphic(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static int all_of(const unsigned char *s, apr_size_t len, int (*is)(unsigned char))
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (!is(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Whether the len bytes at s, followed by a NUL (as OpenSSL ends every
 * ASN1_STRING), are UTF-8 (scep_utf8_char(): no overlong forms, surrogates
 * or code points beyond U+10FFFF; a NUL passes, as the character it is). */
static int valid_utf8(const unsigned char *s, apr_size_t len)
{
    apr_size_t i, n;
    unsigned long cp;

    for (i = 0; i < len; i += n) {
        if (!(n = scep_utf8_char((const char *)s + i, &cp))) {
            return 0;
        }
    }
    return 1;
}

/* The value of a string as UTF-8 (on p): NULL, or why it is not a valid
 * string of its ASN.1 type. T61String is read as Latin-1, as OpenSSL and
 * most software read it. */
static const char *to_utf8(apr_pool_t *p, const ASN1_STRING *s, const unsigned char **utf8,
                           apr_size_t *len)
{
    int type = ASN1_STRING_type(s), n, ok;
    unsigned char *converted = NULL;

    *utf8 = ASN1_STRING_get0_data(s);
    *len = (apr_size_t)ASN1_STRING_length(s);
    switch (type) {
    case V_ASN1_PRINTABLESTRING:
        ok = all_of(*utf8, *len, is_printable);
        break;
    case V_ASN1_IA5STRING:
        ok = all_of(*utf8, *len, is_ascii);
        break;
    case V_ASN1_VISIBLESTRING:
        ok = all_of(*utf8, *len, is_visible);
        break;
    case V_ASN1_NUMERICSTRING:
        ok = all_of(*utf8, *len, is_numeric);
        break;
    case V_ASN1_UTF8STRING:
        ok = valid_utf8(*utf8, *len);
        break;
    case V_ASN1_T61STRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UNIVERSALSTRING:
        n = ASN1_STRING_to_UTF8(&converted, s);
        ok = n >= 0 && valid_utf8(converted, (apr_size_t)n);
        *utf8 =
            ok ? (const unsigned char *)apr_pstrmemdup(p, (const char *)converted, (apr_size_t)n)
               : NULL;
        *len = ok ? (apr_size_t)n : 0;
        OPENSSL_free(converted);
        break;
    default:
        return apr_psprintf(p, "is a %s, not a character string", ASN1_tag2str(type));
    }
    return ok ? NULL : apr_psprintf(p, "is not a valid %s", ASN1_tag2str(type));
}

/* Why a UTF-8 value (NUL-terminated after len) cannot be part of a name,
 * or NULL. */
static const char *text_problem(apr_pool_t *p, const unsigned char *s, apr_size_t len,
                                apr_size_t max)
{
    apr_size_t i, n, chars = 0;
    unsigned long cp = 0;

    if (!len) {
        return "is empty";
    }
    for (i = 0; i < len; i += n, chars++) {
        if (!(n = scep_utf8_char((const char *)s + i, &cp))) {
            return "is not valid UTF-8";
        }
        if (scep_char_is_control(cp)) {
            return "holds a NUL or control character";
        }
    }
    return chars > max ? apr_psprintf(p,
                                      "is %" APR_SIZE_T_FMT " characters long, more than the "
                                      "%" APR_SIZE_T_FMT " allowed",
                                      chars, max)
                       : NULL;
}

/* The ASN.1 type we encode an attribute's value in, or 0 with *why. */
static int encoding_of(const attribute_rule_t *rule, const unsigned char *s, apr_size_t len,
                       const char **why)
{
    int printable = all_of(s, len, is_printable);

    switch (rule->encoding) {
    case AS_PRINTABLE:
        *why = "must be a PrintableString (letters, digits, space and '()+,-./:=?)";
        return printable ? V_ASN1_PRINTABLESTRING : 0;
    case AS_IA5:
        *why = "must be 7-bit ASCII (IA5String)";
        return all_of(s, len, is_ascii) ? V_ASN1_IA5STRING : 0;
    case AS_COUNTRY:
        *why = "must be two letters (ISO 3166)";
        return len == 2 && is_alpha(s[0]) && is_alpha(s[1]) ? V_ASN1_PRINTABLESTRING : 0;
    default:
        return printable ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
    }
}

static const char *object_text(apr_pool_t *p, const ASN1_OBJECT *obj)
{
    char buf[128];

    OBJ_obj2txt(buf, sizeof(buf), obj, 0);
    return apr_pstrdup(p, buf);
}

/* Appends one attribute to name, to the RDN before it when same_rdn. */
static apr_status_t add_attribute(apr_pool_t *p, X509_NAME *name, const X509_NAME_ENTRY *entry,
                                  int same_rdn, scep_problem_t *prob)
{
    const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(entry);
    attribute_rule_t rule = rule_of(OBJ_obj2nid(obj));
    const unsigned char *utf8;
    const char *why;
    apr_size_t len;
    int type = 0;

    if ((why = to_utf8(p, X509_NAME_ENTRY_get_data(entry), &utf8, &len))) {
        return malformed(prob, apr_psprintf(p, "the subject's %s %s", object_text(p, obj), why));
    }
    if ((why = text_problem(p, utf8, len, (apr_size_t)rule.max)) ||
        !(type = encoding_of(&rule, utf8, len, &why))) {
        return refused(prob, apr_psprintf(p, "the subject's %s %s", object_text(p, obj), why));
    }
    if (!X509_NAME_add_entry_by_OBJ(name, obj, type, utf8, (int)len, -1, same_rdn ? -1 : 0)) {
        return out_of_memory(prob);
    }
    return APR_SUCCESS;
}

static apr_status_t subject_copy(apr_pool_t *p, const X509_NAME *in, X509_NAME **out,
                                 scep_problem_t *prob)
{
    X509_NAME *name = X509_NAME_new();
    apr_status_t rv = name ? APR_SUCCESS : out_of_memory(prob);
    int i, same_rdn;

    SCEP_OWN(p, name, X509_NAME_free);
    for (i = 0; rv == APR_SUCCESS && i < X509_NAME_entry_count(in); i++) {
        same_rdn = i > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(in, i)) ==
                                X509_NAME_ENTRY_set(X509_NAME_get_entry(in, i - 1));
        rv = add_attribute(p, name, X509_NAME_get_entry(in, i), same_rdn, prob);
    }
    *out = rv == APR_SUCCESS ? name : NULL;
    return rv;
}

/* ` "value"` for a refusal when the value is short visible ASCII, else "":
 * failInfoText and the log never repeat control characters. */
static const char *shown(apr_pool_t *p, const unsigned char *s, apr_size_t len)
{
    return len <= SHOWN_MAX && all_of(s, len, is_visible) && !memchr(s, '"', len)
               ? apr_psprintf(p, " \"%.*s\"", (int)len, (const char *)s)
               : "";
}

static int is_ldh(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-';
}

/* Why a dNSName is not a host name in the preferred name syntax (RFC 5280
 * 4.2.1.6, RFC 1034 3.5), or NULL. A wildcard is one leftmost "*." before
 * at least two labels, never "*.com". */
static const char *dns_problem(apr_pool_t *p, const unsigned char *s, apr_size_t len,
                               unsigned int flags)
{
    apr_size_t i, label = 0, labels = 0;
    int wildcard = len >= 2 && s[0] == '*' && s[1] == '.';

    (void)p;
    if (len > UB_DNS_NAME) {
        return "is longer than 253 octets";
    }
    if (wildcard && !(flags & SCEP_NAMES_WILDCARD)) {
        return "is a wildcard, which the template does not allow (AllowWildcardDNS)";
    }
    if (wildcard) {
        s += 2, len -= 2;
    }
    for (i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_ldh(s[i])) {
                return "is not a host name (letters, digits, hyphens, dots)";
            }
            label++;
            continue;
        }
        if (!label || label > UB_DNS_LABEL) {
            return "has an empty label or one longer than 63 octets";
        }
        if (s[i - label] == '-' || s[i - 1] == '-') {
            return "has a label that starts or ends with a hyphen";
        }
        labels++, label = 0;
    }
    return wildcard && labels < 2 ? "is a wildcard over a top-level domain" : NULL;
}

static const char *email_problem(apr_pool_t *p, const unsigned char *s, apr_size_t len,
                                 unsigned int flags)
{
    const unsigned char *at = memchr(s, '@', len);

    (void)p, (void)flags;
    if (len > UB_EMAILADDRESS_LENGTH) {
        return "is longer than 255 characters";
    }
    if (!all_of(s, len, is_graphic)) {
        return "holds a space or a control character";
    }
    return !at || at == s || at == s + len - 1 ? "is not an address (local@domain)" : NULL;
}

/* RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":";
 * RFC 5280 forbids relative references. */
static const char *uri_problem(apr_pool_t *p, const unsigned char *s, apr_size_t len,
                               unsigned int flags)
{
    apr_size_t i;

    (void)flags;
    if (len > UB_URI) {
        return apr_psprintf(p, "is longer than %d characters", UB_URI);
    }
    if (!all_of(s, len, is_graphic)) {
        return "holds a space or a control character";
    }
    for (i = 0; i < len && (is_alpha(s[i]) || (i && (is_digit(s[i]) || strchr("+-.", s[i]))));
         i++) {
    }
    return !i || i == len || s[i] != ':' ? "is not an absolute URI (scheme:...)" : NULL;
}

typedef const char *(*ia5_check_t)(apr_pool_t *p, const unsigned char *s, apr_size_t len,
                                   unsigned int flags);

static void free_general_names(void *names)
{
    GENERAL_NAMES_free(names);
}

/* Appends a new GENERAL_NAME of type holding the string (an otherName:
 * the UPN). */
static apr_status_t push_name(GENERAL_NAMES *names, int type, int string_type,
                              const unsigned char *value, apr_size_t len, scep_problem_t *prob)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = ASN1_STRING_type_new(string_type);
    ASN1_TYPE *any = NULL;
    int ok = gn && s && ASN1_STRING_set(s, value, (int)len);

    if (ok && type == GEN_OTHERNAME) {
        ok = (any = ASN1_TYPE_new()) != NULL;
        if (ok) {
            ASN1_TYPE_set(any, string_type, s);
            s = NULL;
            ok = GENERAL_NAME_set0_othername(gn, OBJ_nid2obj(NID_ms_upn), any);
            any = ok ? NULL : any;
        }
    }
    else if (ok) {
        GENERAL_NAME_set0_value(gn, type, s);
        s = NULL;
    }
    if (ok && sk_GENERAL_NAME_push(names, gn) > 0) {
        gn = NULL;
    }
    else {
        ok = 0;
    }
    ASN1_STRING_free(s);
    ASN1_TYPE_free(any);
    GENERAL_NAME_free(gn);
    return ok ? APR_SUCCESS : out_of_memory(prob);
}

/* dNSName, rfc822Name, URI: IA5Strings checked by check. */
static apr_status_t push_ia5_name(apr_pool_t *p, GENERAL_NAMES *names, int type, const char *what,
                                  const ASN1_IA5STRING *in, ia5_check_t check, unsigned int flags,
                                  scep_problem_t *prob)
{
    const unsigned char *s = ASN1_STRING_get0_data(in);
    apr_size_t len = (apr_size_t)ASN1_STRING_length(in);
    const char *why = "is empty";

    if (!all_of(s, len, is_ascii)) {
        return malformed(prob,
                         apr_psprintf(p, "the subjectAltName's %s is not a valid IA5String", what));
    }
    if (!len || (why = check(p, s, len, flags))) {
        return refused(
            prob, apr_psprintf(p, "the subjectAltName's %s%s %s", what, shown(p, s, len), why));
    }
    return push_name(names, type, V_ASN1_IA5STRING, s, len, prob);
}

static apr_status_t push_ip(apr_pool_t *p, GENERAL_NAMES *names, const ASN1_OCTET_STRING *ip,
                            scep_problem_t *prob)
{
    int len = ASN1_STRING_length(ip);

    if (len != 4 && len != 16) {
        return malformed(prob, apr_psprintf(p,
                                            "the subjectAltName's iPAddress has %d octets, "
                                            "not 4 (IPv4) or 16 (IPv6)",
                                            len));
    }
    return push_name(names, GEN_IPADD, V_ASN1_OCTET_STRING, ASN1_STRING_get0_data(ip),
                     (apr_size_t)len, prob);
}

static apr_status_t push_upn(apr_pool_t *p, GENERAL_NAMES *names, const OTHERNAME *other,
                             scep_problem_t *prob)
{
    const ASN1_TYPE *value = other->value;
    const unsigned char *s;
    apr_size_t len;
    const char *why;

    if (!value || value->type != V_ASN1_UTF8STRING ||
        !valid_utf8(s = ASN1_STRING_get0_data(value->value.utf8string),
                    len = (apr_size_t)ASN1_STRING_length(value->value.utf8string))) {
        return malformed(prob, "the subjectAltName's UPN is not a valid UTF8String");
    }
    if ((why = text_problem(p, s, len, UB_UPN))) {
        return refused(prob,
                       apr_psprintf(p, "the subjectAltName's UPN%s %s", shown(p, s, len), why));
    }
    return push_name(names, GEN_OTHERNAME, V_ASN1_UTF8STRING, s, len, prob);
}

static apr_status_t push_general_name(apr_pool_t *p, GENERAL_NAMES *names, const GENERAL_NAME *gn,
                                      unsigned int flags, scep_problem_t *prob)
{
    switch (gn->type) {
    case GEN_DNS:
        return push_ia5_name(p, names, GEN_DNS, "dNSName", gn->d.dNSName, dns_problem, flags, prob);
    case GEN_EMAIL:
        return push_ia5_name(p, names, GEN_EMAIL, "rfc822Name", gn->d.rfc822Name, email_problem,
                             flags, prob);
    case GEN_URI:
        return push_ia5_name(p, names, GEN_URI, "URI", gn->d.uniformResourceIdentifier, uri_problem,
                             flags, prob);
    case GEN_IPADD:
        return push_ip(p, names, gn->d.iPAddress, prob);
    case GEN_OTHERNAME:
        if (OBJ_obj2nid(gn->d.otherName->type_id) == NID_ms_upn) {
            return push_upn(p, names, gn->d.otherName, prob);
        }
        /* fall through */
    default:
        return refused(prob, "the subjectAltName holds a type the CA does not issue (only DNS, "
                             "IP, email, URI and UPN)");
    }
}

static apr_status_t san_copy(apr_pool_t *p, const GENERAL_NAMES *in, unsigned int flags,
                             GENERAL_NAMES **out, scep_problem_t *prob)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    apr_status_t rv = names ? APR_SUCCESS : out_of_memory(prob);
    int i;

    scep_pool_own(p, names, free_general_names);
    if (rv == APR_SUCCESS && sk_GENERAL_NAME_num(in) == 0) {
        rv = malformed(prob, "the CSR's subjectAltName names nothing");
    }
    for (i = 0; rv == APR_SUCCESS && i < sk_GENERAL_NAME_num(in); i++) {
        rv = push_general_name(p, names, sk_GENERAL_NAME_value(in, i), flags, prob);
    }
    *out = rv == APR_SUCCESS ? names : NULL;
    return rv;
}

/* The decoded value of the extension nid of exts (owned by p, freed with
 * free_fn), NULL when absent; refused when present twice or undecodable. */
static apr_status_t requested_ext(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts, int nid,
                                  void (*free_fn)(void *), void **value, scep_problem_t *prob)
{
    int crit = -1;

    *value = exts ? X509V3_get_d2i(exts, nid, &crit, NULL) : NULL;
    scep_pool_own(p, *value, free_fn);
    if (!*value && crit == -2) {
        return malformed(prob, apr_psprintf(p, "the CSR requests %s twice", OBJ_nid2sn(nid)));
    }
    if (!*value && crit >= 0) {
        return malformed(prob, apr_psprintf(p, "the CSR's %s cannot be decoded", OBJ_nid2sn(nid)));
    }
    return APR_SUCCESS;
}

apr_status_t scep_names_requested_san(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                      GENERAL_NAMES **san, scep_problem_t *prob)
{
    void *value = NULL;
    apr_status_t rv =
        requested_ext(p, exts, NID_subject_alt_name, free_general_names, &value, prob);

    *san = value;
    return rv;
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

apr_status_t scep_names_from_csr(apr_pool_t *p, X509_REQ *csr, unsigned int flags,
                                 scep_names_t *names, scep_problem_t *prob)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *requested = NULL;
    apr_status_t rv;

    SCEP_OWN(p, exts, free_ext_list);
    names->subject = NULL;
    names->san = NULL;
    if ((rv = subject_copy(p, X509_REQ_get_subject_name(csr), &names->subject, prob)) !=
            APR_SUCCESS ||
        (rv = scep_names_requested_san(p, exts, &requested, prob)) != APR_SUCCESS ||
        (requested && (rv = san_copy(p, requested, flags, &names->san, prob)) != APR_SUCCESS)) {
        goto leave;
    }
    if (!X509_NAME_entry_count(names->subject) && !names->san) {
        rv = refused(prob, "the subject is empty and there is no subjectAltName: the "
                           "certificate would name nobody (RFC 5280 4.1.2.6)");
    }
leave:
    return rv;
}

static void free_bit_string(void *bits)
{
    ASN1_BIT_STRING_free(bits);
}

/* X509v3_KU_* bits: the BIT STRING's first byte, decipherOnly from the second. */
#define KU_KNOWN_BITS 0x80ff

apr_status_t scep_requested_key_usage(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                      int *bits, scep_problem_t *prob)
{
    void *value = NULL;
    const unsigned char *data;
    apr_status_t rv = requested_ext(p, exts, NID_key_usage, free_bit_string, &value, prob);
    int len;

    *bits = -1;
    if (rv != APR_SUCCESS || !value) {
        return rv;
    }
    data = ASN1_STRING_get0_data(value);
    len = ASN1_STRING_length(value);
    *bits = ((len > 0 ? data[0] : 0) | (len > 1 ? data[1] << 8 : 0)) & KU_KNOWN_BITS;
    if (*bits & (X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN)) {
        return refused(prob, "the CSR asks for keyUsage keyCertSign or cRLSign, which a "
                             "certificate with basicConstraints CA:FALSE never gets");
    }
    return APR_SUCCESS;
}

static void free_eku(void *eku)
{
    EXTENDED_KEY_USAGE_free(eku);
}

apr_status_t scep_requested_eku(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                apr_array_header_t **oids, scep_problem_t *prob)
{
    void *value = NULL;
    apr_status_t rv = requested_ext(p, exts, NID_ext_key_usage, free_eku, &value, prob);
    EXTENDED_KEY_USAGE *eku = value;
    ASN1_OBJECT *obj;
    int i, nid;

    *oids = NULL;
    if (rv != APR_SUCCESS || !eku) {
        return rv;
    }
    if (!sk_ASN1_OBJECT_num(eku)) {
        return malformed(prob, "the CSR's extendedKeyUsage is empty");
    }
    *oids = apr_array_make(p, sk_ASN1_OBJECT_num(eku), sizeof(ASN1_OBJECT *));
    for (i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
        obj = sk_ASN1_OBJECT_value(eku, i);
        nid = OBJ_obj2nid(obj);
        if (nid == NID_anyExtendedKeyUsage || nid == NID_OCSP_sign) {
            *oids = NULL;
            return refused(prob, apr_psprintf(p,
                                              "the CSR asks for extendedKeyUsage %s, which only "
                                              "a template that names it grants",
                                              OBJ_nid2sn(nid)));
        }
        APR_ARRAY_PUSH(*oids, ASN1_OBJECT *) = obj;
    }
    return APR_SUCCESS;
}
