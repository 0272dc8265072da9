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
 * Certificate templates and the policy check of a CSR against one: what
 * NDES leaves to the enterprise CA's template, done here before the
 * built-in CA issues anything. A refusal names what was refused and the
 * template, because the device administrator reads it in failInfoText and
 * nothing else tells them which setting of the server stopped the device.
 */

#include <strings.h>

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_names.h"

/* NDES's "IPSec (Offline request)" EKU: IP security IKE intermediate. */
#define OID_IPSEC_IKE_INTERMEDIATE "1.3.6.1.5.5.8.2.2"
#define DEFAULT_MIN_RSA_BITS 2048
#define DEFAULT_MAX_RSA_BITS 8192
#define DEFAULT_MIN_EC_BITS 256
/* CA/Browser Forum Baseline Requirements 6.1.6: an odd exponent from
 * 2^16+1 to 2^256-1 (the upper bound is SCEP_MAX_RSA_EXPONENT_BITS). */
#define MIN_RSA_EXPONENT 65537
/* What a template that names no ExtendedKeyUsage grants: TLS client
 * authentication, what devices enroll for (802.1X, VPN, MDM). */
#define DEFAULT_EKU "clientAuth"

scep_template_t *scep_template_new(apr_pool_t *p, const char *name)
{
    scep_template_t *tmpl = apr_pcalloc(p, sizeof(*tmpl));

    tmpl->name = apr_pstrdup(p, name);
    tmpl->key_usage = SCEP_KU_BY_KEY_TYPE;
    /* A constant name OpenSSL knows: it always parses. */
    scep_template_add_eku(p, tmpl, DEFAULT_EKU);
    tmpl->san_types = SCEP_SAN_ALL;
    tmpl->min_rsa_bits = DEFAULT_MIN_RSA_BITS;
    tmpl->max_rsa_bits = DEFAULT_MAX_RSA_BITS;
    tmpl->min_ec_bits = DEFAULT_MIN_EC_BITS;
    tmpl->curves = apr_array_make(p, 3, sizeof(int));
    APR_ARRAY_PUSH(tmpl->curves, int) = NID_X9_62_prime256v1;
    APR_ARRAY_PUSH(tmpl->curves, int) = NID_secp384r1;
    APR_ARRAY_PUSH(tmpl->curves, int) = NID_secp521r1;
    tmpl->key_types = SCEP_KEYTYPE_RSA | SCEP_KEYTYPE_EC;
    tmpl->issuance = SCEP_ISSUANCE_AUTO;
    return tmpl;
}

apr_status_t scep_template_add_eku(apr_pool_t *p, scep_template_t *tmpl, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 0);

    if (!obj) {
        return APR_EINVAL;
    }
    SCEP_OWN(p, obj, ASN1_OBJECT_free);
    if (!tmpl->ext_key_usage) {
        tmpl->ext_key_usage = apr_array_make(p, 2, sizeof(ASN1_OBJECT *));
    }
    APR_ARRAY_PUSH(tmpl->ext_key_usage, ASN1_OBJECT *) = obj;
    return APR_SUCCESS;
}

scep_template_t *scep_template_builtin(apr_pool_t *p)
{
    scep_template_t *tmpl = scep_template_new(p, SCEP_BUILTIN_TEMPLATE);

    /* NDES's digitalSignature keyEncipherment for RSA keys; an EC key gets
     * keyAgreement in the place of keyEncipherment (RFC 5480). */
    tmpl->key_usage = SCEP_KU_BY_KEY_TYPE;
    tmpl->ext_key_usage = NULL;
    /* A constant dotted OID: it always parses. */
    scep_template_add_eku(p, tmpl, OID_IPSEC_IKE_INTERMEDIATE);
    return tmpl;
}

scep_template_t *scep_template_find(const apr_array_header_t *templates, const char *name)
{
    int i;

    for (i = 0; templates && name && i < templates->nelts; i++) {
        if (!strcasecmp(APR_ARRAY_IDX(templates, i, scep_template_t *)->name, name)) {
            return APR_ARRAY_IDX(templates, i, scep_template_t *);
        }
    }
    return NULL;
}

static apr_status_t refused(apr_pool_t *p, scep_problem_t *prob, const scep_template_t *tmpl,
                            const char *what)
{
    return scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                        apr_psprintf(p, "%s by template %s", what, tmpl->name));
}

static int nid_allowed(const apr_array_header_t *nids, int nid)
{
    int i;

    for (i = 0; i < nids->nelts; i++) {
        if (APR_ARRAY_IDX(nids, i, int) == nid) {
            return 1;
        }
    }
    return 0;
}

/* An RSASSA-PSS key is not RSA here: RFC 4055 allows it PSS signatures
 * only, so a certificate with keyEncipherment (the built-in template's)
 * would promise what the key cannot do; no template accepts it. */
static unsigned int key_type_of(EVP_PKEY *key)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        return SCEP_KEYTYPE_RSA;
    case EVP_PKEY_EC:
        return SCEP_KEYTYPE_EC;
    default:
        return 0;
    }
}

/* A key below the template's minimum or above its maximum (limit). */
static apr_status_t size_refused(apr_pool_t *p, scep_problem_t *prob, const scep_template_t *tmpl,
                                 const char *type, int bits, int limit)
{
    return scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                        apr_psprintf(p, "%s key of %d bits is %s the %d the template %s %s", type,
                                     bits, bits < limit ? "below" : "above", limit, tmpl->name,
                                     bits < limit ? "requires" : "allows"));
}

/* 1 for an odd exponent from 65537 up; the upper bound is the message
 * layer's (scep_key_unusable()). */
static int rsa_exponent_ok(EVP_PKEY *key)
{
    BIGNUM *e = NULL;
    int ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) && BN_is_odd(e) &&
             BN_num_bits(e) <= SCEP_MAX_RSA_EXPONENT_BITS &&
             (BN_num_bits(e) > 17 || BN_get_word(e) >= MIN_RSA_EXPONENT);

    BN_free(e);
    return ok;
}

static apr_status_t check_rsa(apr_pool_t *p, const scep_template_t *tmpl, EVP_PKEY *key,
                              scep_problem_t *prob)
{
    int bits = EVP_PKEY_get_bits(key);

    if (bits < tmpl->min_rsa_bits) {
        return size_refused(p, prob, tmpl, "RSA", bits, tmpl->min_rsa_bits);
    }
    if (bits > tmpl->max_rsa_bits) {
        return size_refused(p, prob, tmpl, "RSA", bits, tmpl->max_rsa_bits);
    }
    if (!rsa_exponent_ok(key)) {
        return refused(p, prob, tmpl,
                       "RSA public exponent that is not an odd number from 65537 to 2^256-1 "
                       "is not allowed");
    }
    return APR_SUCCESS;
}

static apr_status_t check_ec(apr_pool_t *p, const scep_template_t *tmpl, const X509_PUBKEY *spki,
                             EVP_PKEY *key, scep_problem_t *prob)
{
    int curve = scep_key_curve(spki);

    if (curve == NID_undef) {
        return refused(p, prob, tmpl,
                       "EC key with explicit curve parameters is not allowed (RFC 5480: named "
                       "curves only)");
    }
    if (!nid_allowed(tmpl->curves, curve)) {
        return refused(p, prob, tmpl,
                       apr_psprintf(p, "EC curve %s is not allowed", scep_curve_name(curve)));
    }
    if (EVP_PKEY_get_bits(key) < tmpl->min_ec_bits) {
        return size_refused(p, prob, tmpl, "EC", EVP_PKEY_get_bits(key), tmpl->min_ec_bits);
    }
    return APR_SUCCESS;
}

static apr_status_t check_key(apr_pool_t *p, const scep_template_t *tmpl, const X509_PUBKEY *spki,
                              scep_problem_t *prob)
{
    EVP_PKEY *key = X509_PUBKEY_get0(spki);
    unsigned int type = key_type_of(key);
    const char *name = EVP_PKEY_get0_type_name(key);

    if (!(type & tmpl->key_types)) {
        return refused(p, prob, tmpl,
                       apr_psprintf(p, "key type %s is not allowed", name ? name : "unknown"));
    }
    return type == SCEP_KEYTYPE_RSA ? check_rsa(p, tmpl, key, prob)
                                    : check_ec(p, tmpl, spki, key, prob);
}

static const char *object_text(apr_pool_t *p, const ASN1_OBJECT *obj)
{
    char buf[128];

    OBJ_obj2txt(buf, sizeof(buf), obj, 0);
    return apr_pstrdup(p, buf);
}

static apr_status_t check_subject(apr_pool_t *p, const scep_template_t *tmpl,
                                  const X509_NAME *subject, scep_problem_t *prob)
{
    const ASN1_OBJECT *obj;
    int i;

    if (!tmpl->subject_nids) {
        return APR_SUCCESS;
    }
    for (i = 0; i < X509_NAME_entry_count(subject); i++) {
        obj = X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subject, i));
        if (!nid_allowed(tmpl->subject_nids, OBJ_obj2nid(obj))) {
            return refused(
                p, prob, tmpl,
                apr_psprintf(p, "subject attribute %s is not allowed", object_text(p, obj)));
        }
    }
    return APR_SUCCESS;
}

/* The template flag of a subjectAltName entry, 0 for types no template
 * lets pass; *name says the type in a refusal. */
static unsigned int san_type_of(const GENERAL_NAME *gn, const char **name)
{
    switch (gn->type) {
    case GEN_DNS:
        *name = "DNS";
        return SCEP_SAN_DNS;
    case GEN_IPADD:
        *name = "IP";
        return SCEP_SAN_IP;
    case GEN_EMAIL:
        *name = "EMAIL";
        return SCEP_SAN_EMAIL;
    case GEN_URI:
        *name = "URI";
        return SCEP_SAN_URI;
    case GEN_OTHERNAME:
        if (OBJ_obj2nid(gn->d.otherName->type_id) == NID_ms_upn) {
            *name = "UPN";
            return SCEP_SAN_UPN;
        }
        *name = "otherName";
        return 0;
    case GEN_DIRNAME:
        *name = "dirName";
        return 0;
    case GEN_RID:
        *name = "registeredID";
        return 0;
    default:
        *name = "x400Address/ediPartyName";
        return 0;
    }
}

static apr_status_t check_san(apr_pool_t *p, const scep_template_t *tmpl,
                              const STACK_OF(X509_EXTENSION) *exts, scep_problem_t *prob)
{
    GENERAL_NAMES *names = NULL;
    apr_status_t rv = scep_names_requested_san(p, exts, &names, prob);
    const char *type;
    int i;

    for (i = 0; rv == APR_SUCCESS && i < sk_GENERAL_NAME_num(names); i++) {
        if (!(san_type_of(sk_GENERAL_NAME_value(names, i), &type) & tmpl->san_types)) {
            rv = refused(p, prob, tmpl,
                         apr_psprintf(p, "subjectAltName type %s is not allowed", type));
        }
    }
    return rv;
}

/* The names the CA would encode: refused here already, so that a held
 * request is refused before it waits for a manager. */
static apr_status_t check_names(apr_pool_t *p, const scep_template_t *tmpl, X509_REQ *csr,
                                scep_problem_t *prob)
{
    scep_names_t names;

    return scep_names_from_csr(p, csr, tmpl->wildcard_dns ? SCEP_NAMES_WILDCARD : 0, &names, prob);
}

#define KU_SIGNING \
    (X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_NON_REPUDIATION | X509v3_KU_KEY_CERT_SIGN | \
     X509v3_KU_CRL_SIGN)

/* The keyUsage bits a key can honour: RSA signs and enciphers (RFC 3279
 * section 2.3.1), EC signs and agrees on keys (RFC 5480 section 3). */
static int usages_of_key(EVP_PKEY *key)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        return KU_SIGNING | X509v3_KU_KEY_ENCIPHERMENT | X509v3_KU_DATA_ENCIPHERMENT;
    case EVP_PKEY_EC:
        return KU_SIGNING | X509v3_KU_KEY_AGREEMENT | X509v3_KU_ENCIPHER_ONLY |
               X509v3_KU_DECIPHER_ONLY;
    default:
        return KU_SIGNING;
    }
}

/* The name of the first bit of bits that is not a signing usage. */
static const char *exchange_usage_name(int bits)
{
    static const struct {
        int bit;
        const char *name;
    } names[] = { { X509v3_KU_KEY_ENCIPHERMENT, "keyEncipherment" },
                  { X509v3_KU_DATA_ENCIPHERMENT, "dataEncipherment" },
                  { X509v3_KU_KEY_AGREEMENT, "keyAgreement" },
                  { X509v3_KU_ENCIPHER_ONLY, "encipherOnly" },
                  { X509v3_KU_DECIPHER_ONLY, "decipherOnly" } };
    apr_size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (bits & names[i].bit) {
            return names[i].name;
        }
    }
    return "an unknown usage";
}

/* A certificate whose keyUsage its key cannot honour (keyEncipherment on an
 * EC key, keyAgreement on an RSA key) is one relying parties must reject:
 * refused, naming the usage, whether the template sets it or copies it. */
static apr_status_t check_usages_fit_key(apr_pool_t *p, const scep_template_t *tmpl, EVP_PKEY *key,
                                         int bits, scep_problem_t *prob)
{
    int misfit = bits > 0 ? bits & ~usages_of_key(key) : 0;
    const char *type = EVP_PKEY_get0_type_name(key);

    if (!misfit) {
        return APR_SUCCESS;
    }
    return refused(p, prob, tmpl,
                   apr_psprintf(p,
                                "keyUsage %s cannot be given to a key of type %s, so it is "
                                "not allowed",
                                exchange_usage_name(misfit), type ? type : "unknown"));
}

/* With FromRequest the CSR's usages are copied: those only a template may
 * grant are refused rather than dropped, so that the device administrator
 * learns why the certificate cannot do what was asked. Either way the
 * usages must fit the key. */
static apr_status_t check_usages(apr_pool_t *p, const scep_template_t *tmpl, EVP_PKEY *key,
                                 const STACK_OF(X509_EXTENSION) *exts, scep_problem_t *prob)
{
    apr_array_header_t *oids;
    apr_status_t rv = APR_SUCCESS;
    int bits = tmpl->key_usage;

    if (tmpl->key_usage == SCEP_KU_FROM_REQUEST) {
        rv = scep_requested_key_usage(p, exts, &bits, prob);
    }
    if (rv == APR_SUCCESS && !tmpl->ext_key_usage) {
        rv = scep_requested_eku(p, exts, &oids, prob);
    }
    if (rv == APR_EACCES && prob) {
        prob->text =
            apr_psprintf(p, "%s (template %s copies the request's usages)", prob->text, tmpl->name);
    }
    return rv == APR_SUCCESS ? check_usages_fit_key(p, tmpl, key, bits, prob) : rv;
}

static void free_basic_constraints(BASIC_CONSTRAINTS *bc)
{
    BASIC_CONSTRAINTS_free(bc);
}

/* A device may not become a CA. basicConstraints CA:FALSE is what the CA
 * sets anyway, so asking for it is harmless. */
static int asks_for_ca(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts)
{
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509V3_get_d2i(exts, NID_basic_constraints, &crit, NULL);

    SCEP_OWN(p, bc, free_basic_constraints);
    /* Undecodable or present twice: treated as asking. */
    return crit != -1 && (!bc || bc->ca);
}

/* A critical extension says the certificate must not be used by anyone who
 * does not understand it; the CA copies only keyUsage, extendedKeyUsage and
 * subjectAltName, so any other critical one the device asks for would be
 * silently lost: refused instead. */
static apr_status_t check_critical(apr_pool_t *p, const scep_template_t *tmpl,
                                   const STACK_OF(X509_EXTENSION) *exts, scep_problem_t *prob)
{
    X509_EXTENSION *ext;
    int i, nid;

    if (asks_for_ca(p, exts)) {
        return refused(p, prob, tmpl, "extension basicConstraints with CA:TRUE is not allowed");
    }
    for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        ext = sk_X509_EXTENSION_value(exts, i);
        nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
        if (X509_EXTENSION_get_critical(ext) && nid != NID_key_usage && nid != NID_ext_key_usage &&
            nid != NID_subject_alt_name && nid != NID_basic_constraints) {
            return refused(p, prob, tmpl,
                           apr_psprintf(p, "critical extension %s is not allowed",
                                        object_text(p, X509_EXTENSION_get_object(ext))));
        }
    }
    return APR_SUCCESS;
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

apr_status_t scep_policy_check(apr_pool_t *p, const scep_template_t *tmpl, X509_REQ *csr,
                               scep_problem_t *prob)
{
    EVP_PKEY *key = X509_REQ_get0_pubkey(csr);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    apr_status_t rv;

    SCEP_OWN(p, exts, free_ext_list);
    if (!key) {
        rv = scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST,
                          SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                          "the CSR's public key cannot be decoded");
        goto leave;
    }
    if ((rv = check_key(p, tmpl, X509_REQ_get_X509_PUBKEY(csr), prob)) != APR_SUCCESS ||
        (rv = check_subject(p, tmpl, X509_REQ_get_subject_name(csr), prob)) != APR_SUCCESS ||
        (rv = check_san(p, tmpl, exts, prob)) != APR_SUCCESS ||
        (rv = check_names(p, tmpl, csr, prob)) != APR_SUCCESS ||
        (rv = check_usages(p, tmpl, key, exts, prob)) != APR_SUCCESS) {
        goto leave;
    }
    rv = check_critical(p, tmpl, exts, prob);
leave:
    return rv;
}
