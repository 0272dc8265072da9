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

/* Keys, certificates and CSRs: what scepctl creates and the built-in CA
 * builds on. */

#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "scep_algs.h"
#include "scep_x509.h"

/* 16 random octets with the top bit cleared: positive, at most 20 octets
 * encoded (RFC 5280 4.1.2.2) and unguessable. */
#define SERIAL_BYTES 16

#define CERT_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_WREAD)
#define KEY_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE)

static const scep_x509_exts_t ca_exts = { "critical,CA:TRUE",
                                          "critical,keyCertSign,cRLSign,digitalSignature", NULL,
                                          NULL };

/* Like the NDES templates: one key for signing, one for key transport. */
static const scep_x509_exts_t ra_sign_exts = { "CA:FALSE", "critical,digitalSignature",
                                               SCEP_OID_CERT_REQUEST_AGENT, NULL };
static const scep_x509_exts_t ra_encrypt_exts = { "CA:FALSE",
                                                  "critical,keyEncipherment,dataEncipherment",
                                                  SCEP_OID_CERT_REQUEST_AGENT, NULL };

/* The extensions a scep_x509_exts_t can carry, in the order they are added. */
static const int exts_nids[] = { NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
                                 NID_subject_alt_name };

static apr_status_t x509_problem(scep_problem_t *prob, apr_status_t rv, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, text);
}

const char *scep_x509_openssl_error(void)
{
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());

    return reason ? reason : "unknown OpenSSL error";
}

apr_status_t scep_x509_key_generate(apr_pool_t *p, scep_key_type_t type, int bits, EVP_PKEY **key,
                                    scep_problem_t *prob)
{
    EVP_PKEY *k = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (type == SCEP_KEY_RSA) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    }
    else if (bits == 256 || bits == 384) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", bits == 256 ? "P-256" : "P-384");
    }
    else {
        rv = x509_problem(prob, APR_EINVAL,
                          apr_psprintf(p, "no EC curve of %d bits (256 or 384)", bits));
        goto leave;
    }
    if (!k) {
        rv = x509_problem(prob, APR_EGENERAL,
                          apr_psprintf(p, "cannot generate a key of %d bits: %s", bits,
                                       scep_x509_openssl_error()));
        goto leave;
    }
    SCEP_OWN(p, k, EVP_PKEY_free);
leave:
    *key = k;
    return rv;
}

/* Cuts the next subject component (up to an unescaped '/') off *text,
 * unescaped. */
static char *next_component(apr_pool_t *p, const char **text)
{
    const char *s = *text;
    char *out = apr_palloc(p, strlen(s) + 1);
    char *o = out;

    while (*s && *s != '/') {
        if (*s == '\\' && s[1]) {
            s++;
        }
        *o++ = *s++;
    }
    *o = '\0';
    *text = s;
    return out;
}

apr_status_t scep_x509_name_parse(apr_pool_t *p, const char *text, X509_NAME **name,
                                  scep_problem_t *prob)
{
    X509_NAME *n = X509_NAME_new();
    const char *s = text;
    char *type, *value;
    apr_status_t rv = APR_SUCCESS;

    if (!n) {
        rv = x509_problem(prob, APR_ENOMEM, "out of memory");
        goto leave;
    }
    SCEP_OWN(p, n, X509_NAME_free);
    if (*s != '/') {
        rv = x509_problem(prob, APR_EINVAL,
                          apr_psprintf(p, "subject \"%s\" does not start with '/'", text));
        goto leave;
    }
    while (*s == '/') {
        s++;
        type = next_component(p, &s);
        value = strchr(type, '=');
        if (!value || value == type || !value[1]) {
            rv = x509_problem(
                prob, APR_EINVAL,
                apr_psprintf(p, "\"%s\" in subject \"%s\" is not TYPE=VALUE", type, text));
            goto leave;
        }
        *value++ = '\0';
        if (!X509_NAME_add_entry_by_txt(n, type, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                        -1, 0)) {
            rv = x509_problem(prob, APR_EINVAL,
                              apr_psprintf(p, "cannot add %s=%s to subject \"%s\": %s", type, value,
                                           text, scep_x509_openssl_error()));
            goto leave;
        }
    }
leave:
    *name = rv == APR_SUCCESS ? n : NULL;
    return rv;
}

apr_status_t scep_x509_random_serial(apr_pool_t *p, ASN1_INTEGER **serial, scep_problem_t *prob)
{
    unsigned char buf[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (RAND_bytes(buf, sizeof(buf)) != 1) {
        rv = x509_problem(prob, APR_EGENERAL, "no random bytes for a serial number");
        goto leave;
    }
    buf[0] &= 0x7f;
    bn = BN_bin2bn(buf, sizeof(buf), NULL);
    /* RFC 5280 forbids serial 0; the odds are 2^-127 but the rule is absolute. */
    if (bn && BN_is_zero(bn) && !BN_one(bn)) {
        BN_free(bn);
        bn = NULL;
    }
    ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    if (!ai) {
        rv = x509_problem(prob, APR_ENOMEM, "cannot make a serial number");
        goto leave;
    }
    SCEP_OWN(p, ai, ASN1_INTEGER_free);
leave:
    BN_free(bn);
    *serial = ai;
    return rv;
}

apr_status_t scep_x509_cert_new(apr_pool_t *p, const X509_NAME *subject, const X509_NAME *issuer,
                                EVP_PKEY *pubkey, apr_time_t not_before, apr_time_t not_after,
                                X509 **cert, scep_problem_t *prob)
{
    X509 *x = X509_new();
    ASN1_INTEGER *serial = NULL;
    apr_status_t rv;

    if (!x) {
        rv = x509_problem(prob, APR_ENOMEM, "out of memory");
        goto leave;
    }
    SCEP_OWN(p, x, X509_free);
    rv = scep_x509_random_serial(p, &serial, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial) ||
        !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, issuer) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), apr_time_sec(not_before)) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), apr_time_sec(not_after)) ||
        !X509_set_pubkey(x, pubkey)) {
        rv = x509_problem(
            prob, APR_EGENERAL,
            apr_psprintf(p, "cannot fill in a certificate: %s", scep_x509_openssl_error()));
    }
leave:
    *cert = rv == APR_SUCCESS ? x : NULL;
    return rv;
}

/* The public key of csr in a form X509_set_pubkey() copies cheaply. OpenSSL 3
 * decodes a CSR's key into a provider key; X509_set_pubkey() runs the
 * encoder chain on it and the decoder chain on the result, together a
 * third of the instructions of an RSA-2048 signature. An RSA key read again from the CSR's
 * subjectPublicKey bits with d2i_PublicKey() is an EVP_PKEY of the
 * built-in RSA method, which X509_set_pubkey() encodes directly, into the
 * same SubjectPublicKeyInfo. Other keys (EC, RSA-PSS): the CSR's key. */
static EVP_PKEY *cheap_public_key(apr_pool_t *p, X509_REQ *csr)
{
    X509_PUBKEY *spki = X509_REQ_get_X509_PUBKEY(csr);
    ASN1_OBJECT *alg = NULL;
    const unsigned char *bits = NULL;
    EVP_PKEY *key = NULL;
    int len = 0;

    if (X509_PUBKEY_get0_param(&alg, &bits, &len, NULL, spki) &&
        OBJ_obj2nid(alg) == NID_rsaEncryption &&
        (key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &bits, len))) {
        SCEP_OWN(p, key, EVP_PKEY_free);
        return key;
    }
    return X509_REQ_get0_pubkey(csr);
}

apr_status_t scep_x509_cert_new_for_csr(apr_pool_t *p, X509_REQ *csr, const X509_NAME *subject,
                                        const X509_NAME *issuer, apr_time_t not_before,
                                        apr_time_t not_after, X509 **cert, scep_problem_t *prob)
{
    return scep_x509_cert_new(p, subject, issuer, cheap_public_key(p, csr), not_before, not_after,
                              cert, prob);
}

apr_status_t scep_x509_cert_add_ext(apr_pool_t *p, X509 *cert, X509 *issuer_cert, int nid,
                                    const char *value, scep_problem_t *prob)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    apr_status_t rv = APR_SUCCESS;

    X509V3_set_ctx(&ctx, issuer_cert ? issuer_cert : cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1)) {
        rv = x509_problem(prob, APR_EINVAL,
                          apr_psprintf(p, "cannot add %s \"%s\": %s", OBJ_nid2sn(nid), value,
                                       scep_x509_openssl_error()));
    }
    X509_EXTENSION_free(ext);
    return rv;
}

apr_status_t scep_x509_cert_add_key_ids(apr_pool_t *p, X509 *cert, X509 *issuer_cert,
                                        scep_problem_t *prob)
{
    /* A self-signed certificate names its own SKI (added first) as AKI; a
     * CA without SKI is named by issuer and serial instead. */
    const char *aki = issuer_cert ? "keyid,issuer" : "keyid:always";
    apr_status_t rv;

    rv = scep_x509_cert_add_ext(p, cert, issuer_cert, NID_subject_key_identifier, "hash", prob);
    if (rv == APR_SUCCESS) {
        rv = scep_x509_cert_add_ext(p, cert, issuer_cert, NID_authority_key_identifier, aki, prob);
    }
    return rv;
}

apr_status_t scep_x509_cert_sign(apr_pool_t *p, X509 *cert, EVP_PKEY *key, const EVP_MD *md,
                                 scep_problem_t *prob)
{
    if (X509_sign(cert, key, md ? md : scep_md(NID_sha256)) <= 0) {
        return x509_problem(
            prob, APR_EGENERAL,
            apr_psprintf(p, "cannot sign the certificate: %s", scep_x509_openssl_error()));
    }
    return APR_SUCCESS;
}

static const char *exts_value(const scep_x509_exts_t *exts, int nid)
{
    switch (nid) {
    case NID_basic_constraints:
        return exts->basic_constraints;
    case NID_key_usage:
        return exts->key_usage;
    case NID_ext_key_usage:
        return exts->ext_key_usage;
    default:
        return exts->subject_alt_name;
    }
}

static apr_status_t cert_add_exts(apr_pool_t *p, X509 *cert, X509 *issuer_cert,
                                  const scep_x509_exts_t *exts, scep_problem_t *prob)
{
    apr_status_t rv = APR_SUCCESS;
    const char *value;
    apr_size_t i;

    for (i = 0; rv == APR_SUCCESS && i < sizeof(exts_nids) / sizeof(exts_nids[0]); i++) {
        value = exts_value(exts, exts_nids[i]);
        if (value) {
            rv = scep_x509_cert_add_ext(p, cert, issuer_cert, exts_nids[i], value, prob);
        }
    }
    return rv;
}

apr_status_t scep_x509_cert_create(apr_pool_t *p, const scep_x509_profile_t *profile,
                                   const X509_NAME *subject, EVP_PKEY *key, X509 *issuer_cert,
                                   EVP_PKEY *issuer_key, X509 **cert, scep_problem_t *prob)
{
    apr_time_t not_before =
        profile->not_before ? profile->not_before : apr_time_now() - SCEP_X509_CLOCK_SKEW;
    apr_time_t not_after = profile->not_after
                               ? profile->not_after
                               : not_before + apr_time_from_sec((apr_time_t)profile->days * 86400);
    const X509_NAME *issuer = issuer_cert ? X509_get_subject_name(issuer_cert) : subject;
    X509 *x = NULL;
    apr_status_t rv;

    rv = scep_x509_cert_new(p, subject, issuer, key, not_before, not_after, &x, prob);
    if (rv == APR_SUCCESS) {
        rv = cert_add_exts(p, x, issuer_cert, &profile->exts, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_cert_add_key_ids(p, x, issuer_cert, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_cert_sign(p, x, issuer_key, profile->md, prob);
    }
    *cert = rv == APR_SUCCESS ? x : NULL;
    return rv;
}

const scep_x509_exts_t *scep_x509_ca_exts(void)
{
    return &ca_exts;
}

apr_status_t scep_x509_ca_create(apr_pool_t *p, EVP_PKEY *key, const X509_NAME *subject, int days,
                                 X509 **cert, scep_problem_t *prob)
{
    scep_x509_profile_t profile = { ca_exts, 0, 0, days, NULL };

    return scep_x509_cert_create(p, &profile, subject, key, NULL, key, cert, prob);
}

const scep_x509_exts_t *scep_x509_ra_exts(scep_ra_role_t role)
{
    return role == SCEP_RA_SIGN ? &ra_sign_exts : &ra_encrypt_exts;
}

apr_status_t scep_x509_ra_create(apr_pool_t *p, X509 *ca_cert, EVP_PKEY *ca_key, EVP_PKEY *ra_key,
                                 const X509_NAME *subject, scep_ra_role_t role, int days,
                                 X509 **cert, scep_problem_t *prob)
{
    apr_time_t now = apr_time_now();
    apr_time_t ca_end = 0;
    scep_x509_profile_t profile = { *scep_x509_ra_exts(role), 0,
                                    now + apr_time_from_sec((apr_time_t)days * 86400), days, NULL };

    /* An RA certificate that outlived its CA would not verify anyway. */
    if (scep_x509_time_get(X509_get0_notAfter(ca_cert), &ca_end) == APR_SUCCESS &&
        ca_end < profile.not_after) {
        profile.not_after = ca_end;
    }
    return scep_x509_cert_create(p, &profile, subject, ra_key, ca_cert, ca_key, cert, prob);
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

static apr_status_t csr_add_exts(apr_pool_t *p, X509_REQ *req, const scep_x509_exts_t *exts,
                                 scep_problem_t *prob)
{
    STACK_OF(X509_EXTENSION) *list = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext;
    X509V3_CTX ctx;
    const char *value;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;

    if (!list) {
        rv = x509_problem(prob, APR_ENOMEM, "out of memory");
        goto leave;
    }
    SCEP_OWN(p, list, free_ext_list);
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    for (i = 0; i < sizeof(exts_nids) / sizeof(exts_nids[0]); i++) {
        value = exts_value(exts, exts_nids[i]);
        ext = value ? X509V3_EXT_conf_nid(NULL, &ctx, exts_nids[i], value) : NULL;
        if (value && (!ext || !sk_X509_EXTENSION_push(list, ext))) {
            X509_EXTENSION_free(ext);
            rv = x509_problem(prob, APR_EINVAL,
                              apr_psprintf(p, "cannot request %s \"%s\": %s",
                                           OBJ_nid2sn(exts_nids[i]), value,
                                           scep_x509_openssl_error()));
            goto leave;
        }
    }
    if (sk_X509_EXTENSION_num(list) > 0 && !X509_REQ_add_extensions(req, list)) {
        rv = x509_problem(prob, APR_EGENERAL, "cannot add the extensionRequest");
    }
leave:
    return rv;
}

apr_status_t scep_x509_csr_create(apr_pool_t *p, EVP_PKEY *key, const X509_NAME *subject,
                                  const scep_x509_exts_t *exts, const char *challenge,
                                  X509_REQ **csr, scep_problem_t *prob)
{
    X509_REQ *req = X509_REQ_new();
    apr_status_t rv = APR_SUCCESS;

    if (!req) {
        rv = x509_problem(prob, APR_ENOMEM, "out of memory");
        goto leave;
    }
    SCEP_OWN(p, req, X509_REQ_free);
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
        !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, key)) {
        rv = x509_problem(prob, APR_EGENERAL, "cannot fill in the CSR");
        goto leave;
    }
    if (exts) {
        rv = csr_add_exts(p, req, exts, prob);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    if (challenge && !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                                (const unsigned char *)challenge, -1)) {
        rv = x509_problem(prob, APR_EINVAL, "cannot add the challengePassword");
        goto leave;
    }
    if (X509_REQ_sign(req, key, scep_md(NID_sha256)) <= 0) {
        rv = x509_problem(prob, APR_EGENERAL,
                          apr_psprintf(p, "cannot sign the CSR: %s", scep_x509_openssl_error()));
    }
leave:
    *csr = rv == APR_SUCCESS ? req : NULL;
    return rv;
}

uint32_t scep_x509_key_usage(X509 *cert)
{
    /* X509_get_key_usage() says "everything" when the extension is absent. */
    return (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) ? X509_get_key_usage(cert) : 0;
}

int scep_x509_has_eku(X509 *cert, const char *oid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    ASN1_OBJECT *wanted = OBJ_txt2obj(oid, 1);
    int found = 0;
    int i;

    for (i = 0; eku && wanted && !found && i < sk_ASN1_OBJECT_num(eku); i++) {
        found = OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), wanted) == 0;
    }
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_OBJECT_free(wanted);
    return found;
}

const char *scep_x509_ra_unfit(X509 *cert, scep_ra_role_t role)
{
    if (role == SCEP_RA_SIGN && !(scep_x509_key_usage(cert) & KU_DIGITAL_SIGNATURE)) {
        return "its keyUsage lacks digitalSignature";
    }
    if (role == SCEP_RA_ENCRYPT && !(scep_x509_key_usage(cert) & KU_KEY_ENCIPHERMENT)) {
        return "its keyUsage lacks keyEncipherment";
    }
    if (!scep_x509_has_eku(cert, SCEP_OID_CERT_REQUEST_AGENT)) {
        return "its extendedKeyUsage lacks Certificate Request Agent (" SCEP_OID_CERT_REQUEST_AGENT
               ")";
    }
    return NULL;
}

apr_status_t scep_x509_verify(X509 *cert, STACK_OF(X509) *anchors, STACK_OF(X509) *untrusted,
                              int partial, int *error, const char **reason)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int err = X509_V_ERR_UNSPECIFIED;
    int i;

    if (!store || !ctx) {
        goto leave;
    }
    for (i = 0; i < sk_X509_num(anchors); i++) {
        if (!X509_STORE_add_cert(store, sk_X509_value(anchors, i))) {
            goto leave;
        }
    }
    if (partial) {
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    }
    if (!X509_STORE_CTX_init(ctx, store, cert, untrusted) ||
        !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY)) {
        goto leave;
    }
    err = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
leave:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    if (error) {
        *error = err;
    }
    if (reason) {
        *reason = X509_verify_cert_error_string(err);
    }
    return err == X509_V_OK ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t scep_x509_time_get(const ASN1_TIME *t, apr_time_t *when)
{
    struct tm tm;
    apr_time_exp_t exp;

    if (!ASN1_TIME_to_tm(t, &tm)) {
        return APR_EINVAL;
    }
    memset(&exp, 0, sizeof(exp));
    exp.tm_sec = tm.tm_sec;
    exp.tm_min = tm.tm_min;
    exp.tm_hour = tm.tm_hour;
    exp.tm_mday = tm.tm_mday;
    exp.tm_mon = tm.tm_mon;
    exp.tm_year = tm.tm_year;
    return apr_time_exp_gmt_get(when, &exp);
}

static apr_status_t write_all(apr_pool_t *p, apr_file_t *f, const char *file, BIO *pem,
                              scep_problem_t *prob)
{
    char *data;
    long len = BIO_get_mem_data(pem, &data);
    apr_status_t rv;

    rv = apr_file_write_full(f, data, (apr_size_t)len, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_file_close(f);
    }
    else {
        apr_file_close(f);
    }
    return rv == APR_SUCCESS ? rv : x509_problem(prob, rv, scep_file_error(p, file, rv));
}

/* Public files are written aside and renamed so that a running server
 * never reads half a certificate. */
static apr_status_t replace_file(apr_pool_t *p, const char *file, BIO *pem, scep_problem_t *prob)
{
    char *temp = apr_pstrcat(p, file, ".XXXXXX", NULL);
    apr_file_t *f = NULL;
    apr_status_t rv;

    rv = apr_file_mktemp(&f, temp, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, p);
    if (rv != APR_SUCCESS) {
        rv = x509_problem(prob, rv, scep_file_error(p, temp, rv));
        goto leave;
    }
    rv = write_all(p, f, temp, pem, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = apr_file_perms_set(temp, CERT_PERMS);
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(temp, file, p);
    }
    if (rv != APR_SUCCESS) {
        rv = x509_problem(prob, rv, scep_file_error(p, file, rv));
    }
leave:
    if (rv != APR_SUCCESS && f) {
        apr_file_remove(temp, p);
    }
    return rv;
}

apr_status_t scep_x509_write_certs(apr_pool_t *p, const char *file, STACK_OF(X509) *certs,
                                   scep_problem_t *prob)
{
    BIO *pem = BIO_new(BIO_s_mem());
    apr_status_t rv = pem ? APR_SUCCESS : APR_ENOMEM;
    int i;

    for (i = 0; rv == APR_SUCCESS && i < sk_X509_num(certs); i++) {
        if (!PEM_write_bio_X509(pem, sk_X509_value(certs, i))) {
            rv = APR_ENOMEM;
        }
    }
    rv = rv == APR_SUCCESS ? replace_file(p, file, pem, prob)
                           : x509_problem(prob, rv, "cannot encode the certificate");
    BIO_free(pem);
    return rv;
}

apr_status_t scep_x509_write_cert(apr_pool_t *p, const char *file, X509 *cert, scep_problem_t *prob)
{
    STACK_OF(X509) *one = sk_X509_new_null();
    apr_status_t rv;

    if (!one || !sk_X509_push(one, cert)) {
        rv = x509_problem(prob, APR_ENOMEM, "cannot encode the certificate");
    }
    else {
        rv = scep_x509_write_certs(p, file, one, prob);
    }
    sk_X509_free(one);
    return rv;
}

apr_status_t scep_x509_write_csr(apr_pool_t *p, const char *file, X509_REQ *csr,
                                 scep_problem_t *prob)
{
    BIO *pem = BIO_new(BIO_s_mem());
    apr_status_t rv;

    if (!pem || !PEM_write_bio_X509_REQ(pem, csr)) {
        rv = x509_problem(prob, APR_ENOMEM, "cannot encode the CSR");
    }
    else {
        rv = replace_file(p, file, pem, prob);
    }
    BIO_free(pem);
    return rv;
}

apr_status_t scep_x509_write_key(apr_pool_t *p, const char *file, EVP_PKEY *key,
                                 scep_problem_t *prob)
{
    /* secmem: the PEM text is wiped when the BIO is freed. */
    BIO *pem = BIO_new(BIO_s_secmem());
    apr_file_t *f = NULL;
    apr_status_t rv;

    if (!pem || !PEM_write_bio_PrivateKey(pem, key, NULL, NULL, 0, NULL, NULL)) {
        rv = x509_problem(prob, APR_ENOMEM, "cannot encode the private key");
        goto leave;
    }
    /* EXCL: never replace a key; 0600 from the start, never readable by others. */
    rv = apr_file_open(&f, file, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, KEY_PERMS, p);
    if (rv != APR_SUCCESS) {
        rv = x509_problem(prob, rv, scep_file_error(p, file, rv));
        goto leave;
    }
    rv = write_all(p, f, file, pem, prob);
    if (rv != APR_SUCCESS) {
        apr_file_remove(file, p);
    }
leave:
    BIO_free(pem);
    return rv;
}
