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
 * The built-in CA's certificate revocation list (RFC 5280 section 5).
 *
 * The list is built from the records' revocations (scep_crl_shared.c
 * decides when, and keeps it for every server of the service). The
 * cRLNumber must increase from one CRL to the next (RFC 5280 section
 * 5.2.3): the time of issue in microseconds does, and the previous
 * number plus one when a server's clock is behind the one that signed it.
 */

#include <limits.h>
#include <strings.h>

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_x509.h"

static apr_status_t crl_problem(scep_problem_t *prob, apr_status_t rv, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_GETCRL_FAILED, text);
}

const char *scep_serial_hex(apr_pool_t *p, const ASN1_INTEGER *serial)
{
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    const char *text = hex ? apr_pstrdup(p, hex) : NULL;

    OPENSSL_free(hex);
    BN_free(bn);
    return text;
}

int scep_crl_reason_valid(int reason)
{
    return reason >= CRL_REASON_UNSPECIFIED && reason <= CRL_REASON_AA_COMPROMISE &&
           reason != 7; /* 7 is not assigned */
}

/* RFC 5280's names of the CRLReason codes, by code. */
static const char *const reason_names[] = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", NULL,
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise"
};

int scep_crl_reason_final(int reason)
{
    return scep_crl_reason_valid(reason) && reason != CRL_REASON_CERTIFICATE_HOLD &&
           reason != CRL_REASON_REMOVE_FROM_CRL && reason != CRL_REASON_AA_COMPROMISE;
}

const char *scep_crl_reason_name(int reason)
{
    return scep_crl_reason_valid(reason) ? reason_names[reason] : NULL;
}

int scep_crl_reason_of(const char *text)
{
    int code, i;

    if (scep_parse_int(text, INT_MIN, INT_MAX, &code)) {
        return scep_crl_reason_valid(code) ? code : SCEP_CRL_REASON_NONE;
    }
    for (i = 0; i <= SCEP_CRL_REASON_MAX; i++) {
        if (reason_names[i] && strcasecmp(reason_names[i], text) == 0) {
            return i;
        }
    }
    return SCEP_CRL_REASON_NONE;
}

/* An ASN1_TIME owned by p. */
static ASN1_TIME *asn1_time(apr_pool_t *p, apr_time_t when)
{
    ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)apr_time_sec(when));

    SCEP_OWN(p, t, ASN1_TIME_free);
    return t;
}

/* RFC 5280 section 5.3.1: "unspecified" SHOULD be left out. */
static int add_reason(X509_REVOKED *entry, int reason)
{
    ASN1_ENUMERATED *code;
    int ok;

    if (reason == SCEP_CRL_REASON_NONE || reason == CRL_REASON_UNSPECIFIED) {
        return 1;
    }
    code = ASN1_ENUMERATED_new();
    ok = code && ASN1_ENUMERATED_set(code, reason) &&
         X509_REVOKED_add1_ext_i2d(entry, NID_crl_reason, code, 0, 0) == 1;
    ASN1_ENUMERATED_free(code);
    return ok;
}

static apr_status_t add_entry(apr_pool_t *p, X509_CRL *crl, const scep_revoked_t *rev,
                              scep_problem_t *prob)
{
    X509_REVOKED *entry = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (!rev->serial || !BN_hex2bn(&bn, rev->serial) || !(serial = BN_to_ASN1_INTEGER(bn, NULL))) {
        rv = crl_problem(prob, APR_EINVAL,
                         apr_psprintf(p, "revoked serial '%s' in the records is not hex",
                                      rev->serial ? rev->serial : ""));
        goto leave;
    }
    if (!entry || !X509_REVOKED_set_serialNumber(entry, serial) ||
        !X509_REVOKED_set_revocationDate(entry, asn1_time(p, rev->revoked_at)) ||
        !add_reason(entry, rev->reason) || !X509_CRL_add0_revoked(crl, entry)) {
        rv = crl_problem(prob, APR_ENOMEM, "cannot add an entry to the CRL");
        goto leave;
    }
    entry = NULL; /* the CRL owns it now */
leave:
    X509_REVOKED_free(entry);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return rv;
}

/* The time of issue in microseconds, which increases from one CRL to the
 * next, or min_number when that is more (the service's previous CRL's plus
 * one: another server's clock may be ahead). */
static int add_crl_number(X509_CRL *crl, apr_time_t now, apr_int64_t min_number)
{
    ASN1_INTEGER *number = ASN1_INTEGER_new();
    int64_t value = (int64_t)(min_number > now ? min_number : now);
    int ok = number && ASN1_INTEGER_set_int64(number, value) &&
             X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) == 1;

    ASN1_INTEGER_free(number);
    return ok;
}

/* authorityKeyIdentifier: the CA's subjectKeyIdentifier, which relying
 * parties use to pick the CA certificate after a rollover. */
static int add_authority_key_id(X509_CRL *crl, X509 *ca_cert)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    ok = ext && X509_CRL_add_ext(crl, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static apr_status_t set_header(apr_pool_t *p, X509_CRL *crl, const scep_pki_t *pki, apr_time_t now,
                               const scep_crl_opts_t *opts, scep_problem_t *prob)
{
    apr_time_t next = now + scep_crl_validity(opts);

    if (!X509_CRL_set_version(crl, 1) /* v2 */
        || !X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca_cert)) ||
        !X509_CRL_set1_lastUpdate(crl, asn1_time(p, now - SCEP_X509_CLOCK_SKEW)) ||
        !X509_CRL_set1_nextUpdate(crl, asn1_time(p, next))) {
        return crl_problem(prob, APR_ENOMEM, "cannot set the CRL's issuer and dates");
    }
    if (!add_crl_number(crl, now, opts ? opts->min_number : 0) ||
        !add_authority_key_id(crl, pki->ca_cert)) {
        return crl_problem(prob, APR_EGENERAL,
                           "cannot add the cRLNumber and authorityKeyIdentifier extensions");
    }
    return APR_SUCCESS;
}

apr_status_t scep_crl_build(apr_pool_t *p, const scep_pki_t *pki, const apr_array_header_t *revoked,
                            const scep_crl_opts_t *opts, X509_CRL **crl, scep_problem_t *prob)
{
    const EVP_MD *md = opts && opts->md ? opts->md : scep_md(NID_sha256);
    X509_CRL *x = NULL;
    apr_status_t rv;
    int i;

    *crl = NULL;
    if (!pki->ca_key) {
        /* APR_ENOTIMPL: nothing to serve here (the scep-crl handler's 404) */
        rv = crl_problem(prob, APR_ENOTIMPL, "no CA key is configured: this server signs no CRL");
        goto leave;
    }
    x = X509_CRL_new();
    SCEP_OWN(p, x, X509_CRL_free);
    if (!x) {
        rv = crl_problem(prob, APR_ENOMEM, "out of memory");
        goto leave;
    }
    rv = set_header(p, x, pki, apr_time_now(), opts, prob);
    for (i = 0; rv == APR_SUCCESS && revoked && i < revoked->nelts; i++) {
        rv = add_entry(p, x, &APR_ARRAY_IDX(revoked, i, scep_revoked_t), prob);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    /* In serial order, as `openssl ca` writes them: the records list them
     * by revocation time. */
    X509_CRL_sort(x);
    if (X509_CRL_sign(x, pki->ca_key, md) <= 0) {
        rv = crl_problem(prob, APR_EGENERAL, "cannot sign the CRL with the CA key");
        goto leave;
    }
    *crl = x;
leave:
    return rv;
}

apr_time_t scep_crl_validity(const scep_crl_opts_t *opts)
{
    int hours = opts && opts->validity_hours > 0 ? opts->validity_hours : 7 * 24;

    return apr_time_from_sec((apr_time_t)hours * 3600);
}

const char *scep_crl_issuer(apr_pool_t *p, const scep_pki_t *pki)
{
    return scep_cert_sha256(p, pki->ca_cert);
}
