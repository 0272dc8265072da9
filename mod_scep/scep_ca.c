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
 * The built-in CA: a certificate from a CSR whose signature the message
 * layer has already verified.
 *
 * Worker threads call this concurrently with the same pki: it only reads
 * the pki (OpenSSL 3 signs with a shared EVP_PKEY safely) and keeps every
 * object it makes on the caller's pool.
 */

#include <apr_strings.h>

#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_names.h"
#include "scep_x509.h"

#define DEFAULT_VALIDITY_DAYS 365

static apr_status_t issue_problem(scep_problem_t *prob, apr_status_t rv, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT, text);
}

/* The end of the validity: validity_days from now, but never after the CA's
 * own end, since a certificate cannot outlive its issuer. */
static apr_status_t validity_end(apr_pool_t *p, X509 *ca_cert, apr_time_t now, int days,
                                 apr_time_t *end, scep_problem_t *prob)
{
    char date[APR_RFC822_DATE_LEN];
    apr_time_t ca_end;
    apr_time_t wanted = now + apr_time_from_sec((apr_time_t)days * 86400);

    if (scep_x509_time_get(X509_get0_notAfter(ca_cert), &ca_end) != APR_SUCCESS) {
        return issue_problem(prob, APR_EINVAL, "the CA certificate has an unreadable notAfter");
    }
    if (ca_end <= now) {
        apr_rfc822_date(date, ca_end);
        return issue_problem(prob, APR_EINVAL,
                             apr_psprintf(p, "the CA certificate expired on %s", date));
    }
    *end = wanted < ca_end ? wanted : ca_end;
    return APR_SUCCESS;
}

/* X509v3_KU_* bits in the order of the KeyUsage BIT STRING (RFC 5280
 * 4.2.1.3): bit n of the first byte is 0x80 >> n, decipherOnly is bit 8. */
static const int ku_bit_order[] = {
    X509v3_KU_DIGITAL_SIGNATURE, X509v3_KU_NON_REPUDIATION, X509v3_KU_KEY_ENCIPHERMENT,
    X509v3_KU_DATA_ENCIPHERMENT, X509v3_KU_KEY_AGREEMENT,   X509v3_KU_KEY_CERT_SIGN,
    X509v3_KU_CRL_SIGN,          X509v3_KU_ENCIPHER_ONLY,   X509v3_KU_DECIPHER_ONLY,
};

/* keyUsage, critical as RFC 5280 recommends. */
static apr_status_t add_ku(int key_usage, X509 *cert, scep_problem_t *prob)
{
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    apr_status_t rv = APR_SUCCESS;
    int n, ok = bits != NULL;

    for (n = 0; ok && n < (int)(sizeof(ku_bit_order) / sizeof(ku_bit_order[0])); n++) {
        if (key_usage & ku_bit_order[n]) {
            ok = ASN1_BIT_STRING_set_bit(bits, n, 1);
        }
    }
    if (!ok || X509_add1_ext_i2d(cert, NID_key_usage, bits, 1, X509V3_ADD_DEFAULT) != 1) {
        rv = issue_problem(prob, APR_ENOMEM, "cannot add the keyUsage");
    }
    ASN1_BIT_STRING_free(bits);
    return rv;
}

static apr_status_t add_eku(const apr_array_header_t *oids, X509 *cert, scep_problem_t *prob)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    apr_status_t rv = APR_SUCCESS;
    int i, ok = eku != NULL;

    /* The stack only borrows the objects: freed without them. */
    for (i = 0; ok && i < oids->nelts; i++) {
        ok = sk_ASN1_OBJECT_push(eku, APR_ARRAY_IDX(oids, i, ASN1_OBJECT *)) > 0;
    }
    if (!ok || X509_add1_ext_i2d(cert, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) != 1) {
        rv = issue_problem(prob, APR_ENOMEM, "cannot add the extendedKeyUsage");
    }
    sk_ASN1_OBJECT_free(eku);
    return rv;
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

/* The keyUsage of a template that names none: what the key can do for
 * TLS, IPsec and S/MIME. keyEncipherment is RSA's way to receive a secret;
 * an EC key agrees on one instead (RFC 5480 section 3). */
static int ku_by_key_type(X509_REQ *csr)
{
    switch (EVP_PKEY_get_base_id(X509_REQ_get0_pubkey(csr))) {
    case EVP_PKEY_RSA:
        return X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_KEY_ENCIPHERMENT;
    case EVP_PKEY_EC:
        return X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_KEY_AGREEMENT;
    default:
        return X509v3_KU_DIGITAL_SIGNATURE;
    }
}

/* keyUsage and extendedKeyUsage: the template's, or with FromRequest (or no
 * template) the CSR's, decoded and encoded again. */
static apr_status_t add_usages(apr_pool_t *p, const scep_template_t *tmpl, X509_REQ *csr,
                               X509 *cert, scep_problem_t *prob)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    int bits = tmpl ? tmpl->key_usage : SCEP_KU_FROM_REQUEST;
    const apr_array_header_t *oids = tmpl ? tmpl->ext_key_usage : NULL;
    apr_array_header_t *requested = NULL;
    apr_status_t rv = APR_SUCCESS;

    SCEP_OWN(p, exts, free_ext_list);
    if (bits == SCEP_KU_FROM_REQUEST) {
        rv = scep_requested_key_usage(p, exts, &bits, prob);
    }
    else if (bits == SCEP_KU_BY_KEY_TYPE) {
        bits = ku_by_key_type(csr);
    }
    if (rv == APR_SUCCESS && !oids) {
        rv = scep_requested_eku(p, exts, &requested, prob);
        oids = requested;
    }
    /* A keyUsage without bits is not allowed (RFC 5280 4.2.1.3): none. */
    if (rv == APR_SUCCESS && bits > 0) {
        rv = add_ku(bits, cert, prob);
    }
    if (rv == APR_SUCCESS && oids) {
        rv = add_eku(oids, cert, prob);
    }
    return rv;
}

/* The subjectAltName as scep_names_from_csr() encoded it; critical when the
 * subject is empty (RFC 5280 4.2.1.6). */
static apr_status_t add_san(const scep_names_t *names, X509 *cert, scep_problem_t *prob)
{
    int critical = X509_NAME_entry_count(names->subject) == 0;

    if (names->san && X509_add1_ext_i2d(cert, NID_subject_alt_name, names->san, critical,
                                        X509V3_ADD_DEFAULT) != 1) {
        return issue_problem(prob, APR_ENOMEM, "cannot add the subjectAltName");
    }
    return APR_SUCCESS;
}

/* Runs a scep_x509 step and reports its failure as a failed submission. */
static apr_status_t step(apr_status_t rv, const scep_problem_t *why, scep_problem_t *prob)
{
    return rv == APR_SUCCESS ? rv : issue_problem(prob, rv, why->text);
}

/* Where relying parties fetch this CA's CRL (SCEPCRLURL): one distribution
 * point with the full name as a URI, the form RFC 5280 section 4.2.1.13
 * asks for. */
static apr_status_t add_crl_dist_point(apr_pool_t *p, const char *url, X509 *cert, X509 *ca_cert,
                                       scep_problem_t *prob)
{
    scep_problem_t why = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    return step(scep_x509_cert_add_ext(p, cert, ca_cert, NID_crl_distribution_points,
                                       apr_pstrcat(p, "URI:", url, NULL), &why),
                &why, prob);
}

apr_status_t scep_ca_issue(apr_pool_t *p, const scep_pki_t *pki, X509_REQ *csr,
                           const scep_issue_opts_t *opts, X509 **cert, scep_problem_t *prob)
{
    int days = opts && opts->validity_days > 0 ? opts->validity_days : DEFAULT_VALIDITY_DAYS;
    const EVP_MD *md = opts && opts->md ? opts->md : scep_md(NID_sha256);
    EVP_PKEY *pubkey = X509_REQ_get0_pubkey(csr);
    apr_time_t now = apr_time_now();
    apr_time_t not_after = 0;
    const scep_template_t *tmpl = opts ? opts->tmpl : NULL;
    scep_problem_t why = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_names_t names;
    X509 *x = NULL;
    apr_status_t rv;

    if (!pki->ca_key) {
        rv = issue_problem(prob, APR_EINVAL, "no CA key is configured: cannot issue");
        goto leave;
    }
    if (!pubkey) {
        rv = issue_problem(prob, APR_EINVAL, "the CSR's public key cannot be decoded");
        goto leave;
    }
    if ((rv = validity_end(p, pki->ca_cert, now, days, &not_after, prob)) != APR_SUCCESS ||
        (rv = scep_names_from_csr(p, csr, tmpl && tmpl->wildcard_dns ? SCEP_NAMES_WILDCARD : 0,
                                  &names, prob)) != APR_SUCCESS) {
        goto leave;
    }
    rv = step(scep_x509_cert_new_for_csr(p, csr, names.subject, X509_get_subject_name(pki->ca_cert),
                                         now - SCEP_X509_CLOCK_SKEW, not_after, &x, &why),
              &why, prob);
    if (rv == APR_SUCCESS) {
        rv = add_san(&names, x, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = add_usages(p, tmpl, csr, x, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = step(
            scep_x509_cert_add_ext(p, x, pki->ca_cert, NID_basic_constraints, "CA:FALSE", &why),
            &why, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = step(scep_x509_cert_add_key_ids(p, x, pki->ca_cert, &why), &why, prob);
    }
    if (rv == APR_SUCCESS && opts && opts->crl_url) {
        rv = add_crl_dist_point(p, opts->crl_url, x, pki->ca_cert, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = step(scep_x509_cert_sign(p, x, pki->ca_key, md, &why), &why, prob);
    }
leave:
    *cert = rv == APR_SUCCESS ? x : NULL;
    return rv;
}
