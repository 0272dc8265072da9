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
 * Loading the PKI by the NDES white paper's "Service Startup" rules, and
 * the GetCACert reply built from it once.
 *
 * RA candidates: a candidate whose files cannot be read, or whose key does
 * not match its certificate, is a configuration error and stops the load.
 * A readable candidate that is unfit (keyUsage, EKU, issuer, chain, expiry)
 * is passed over, like NDES passes over unsuitable certificates in its
 * store, and listed in pki->ra_skipped; the load fails only when no fit
 * candidate is left for signing or for encryption.
 */

#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "scep.h"
#include "scep_key_pkcs11.h"
#include "scep_x509.h"

/* What certificates are verified against: the self-signed ones among CA
 * and chain as trust anchors, all of them as intermediates. */
typedef struct trust_t {
    STACK_OF(X509) *anchors;
    STACK_OF(X509) *untrusted;
} trust_t;

typedef struct ra_candidate_t {
    const scep_ra_file_t *files;
    X509 *cert;
    EVP_PKEY *key;
    uint32_t key_usage;
    int serves[2];     /* indexed by scep_ra_role_t */
    const char *unfit; /* "FILE: why", when it serves no role */
    int expired;
} ra_candidate_t;

static apr_status_t pki_problem(scep_problem_t *prob, apr_status_t rv, int event, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_NONE, event, text);
}

/* Tags a problem reported by a helper with the NDES event of the caller. */
static apr_status_t with_event(scep_problem_t *prob, apr_status_t rv, int event)
{
    if (prob && rv != APR_SUCCESS) {
        prob->event = event;
    }
    return rv;
}

static void free_certs(STACK_OF(X509) *certs)
{
    sk_X509_pop_free(certs, X509_free);
}

/* For stacks that only borrow their certificates. */
static void free_cert_list(STACK_OF(X509) *list)
{
    sk_X509_free(list);
}

/* A whole key (private) or certificate file; *data NULL on failure. No
 * limit beyond memory: these are the administrator's own files. */
static apr_status_t read_file(apr_pool_t *p, const char *file, int private, char **data,
                              apr_size_t *len, scep_problem_t *prob)
{
    const char *why = NULL;
    apr_status_t rv = private ? scep_read_private_file(p, file, APR_SIZE_MAX, data, len, &why)
                              : scep_read_file(p, file, APR_SIZE_MAX, data, len, &why);

    return rv == APR_SUCCESS ? rv : pki_problem(prob, rv, SCEP_EVENT_NONE, why);
}

/* Passphrases are not supported: refuse rather than prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)asked = 1;
    return -1;
}

apr_status_t scep_read_private_key(apr_pool_t *p, const char *file, EVP_PKEY **key,
                                   scep_problem_t *prob)
{
    char *data = NULL;
    apr_size_t len = 0;
    BIO *bio = NULL;
    EVP_PKEY *k = NULL;
    int encrypted = 0;
    apr_status_t rv;

    if (scep_key_is_pkcs11(file)) {
        /* An object in a token (HSM): the engine's key, as from a file. */
        return scep_key_pkcs11_load(p, file, key, prob);
    }
    rv = read_file(p, file, 1, &data, &len, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    bio = BIO_new_mem_buf(data, (int)len);
    k = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted) : NULL;
    if (!k) {
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_NONE,
                         encrypted ? apr_psprintf(p,
                                                  "%s: the key is encrypted (passphrases are not "
                                                  "supported)",
                                                  file)
                                   : apr_psprintf(p, "%s: no PEM private key (%s)", file,
                                                  scep_x509_openssl_error()));
        goto leave;
    }
    SCEP_OWN(p, k, EVP_PKEY_free);
leave:
    BIO_free(bio);
    if (data) {
        OPENSSL_cleanse(data, len);
    }
    *key = k;
    return rv;
}

/* After the last certificate PEM reading stops with "no start line"; any
 * other error means a broken certificate. */
static int pem_ended_cleanly(void)
{
    unsigned long err = ERR_peek_last_error();

    return ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
}

apr_status_t scep_read_certs(apr_pool_t *p, const char *file, STACK_OF(X509) **certs,
                             scep_problem_t *prob)
{
    char *data = NULL;
    apr_size_t len = 0;
    BIO *bio = NULL;
    STACK_OF(X509) *list = NULL;
    X509 *cert;
    apr_status_t rv;

    rv = read_file(p, file, 0, &data, &len, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    bio = BIO_new_mem_buf(data, (int)len);
    list = sk_X509_new_null();
    if (!bio || !list) {
        sk_X509_free(list);
        list = NULL;
        rv = pki_problem(prob, APR_ENOMEM, SCEP_EVENT_NONE, "out of memory");
        goto leave;
    }
    SCEP_OWN(p, list, free_certs);
    ERR_set_mark();
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(list, cert)) {
            X509_free(cert);
            break;
        }
    }
    if (sk_X509_num(list) > 0 && pem_ended_cleanly()) {
        ERR_pop_to_mark();
    }
    else {
        ERR_clear_last_mark();
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_NONE,
                         apr_psprintf(p, "%s: no readable PEM certificate after %d (%s)", file,
                                      sk_X509_num(list), scep_x509_openssl_error()));
    }
leave:
    BIO_free(bio);
    *certs = rv == APR_SUCCESS ? list : NULL;
    return rv;
}

apr_status_t scep_read_cert(apr_pool_t *p, const char *file, X509 **cert, scep_problem_t *prob)
{
    STACK_OF(X509) *certs = NULL;
    apr_status_t rv;

    rv = scep_read_certs(p, file, &certs, prob);
    if (rv == APR_SUCCESS && sk_X509_num(certs) != 1) {
        rv = pki_problem(
            prob, APR_EINVAL, SCEP_EVENT_NONE,
            apr_psprintf(p, "%s holds %d certificates, expected one", file, sk_X509_num(certs)));
    }
    *cert = rv == APR_SUCCESS ? sk_X509_value(certs, 0) : NULL;
    return rv;
}

static apr_status_t load_ca(apr_pool_t *p, const scep_pki_config_t *conf, scep_pki_t *pki,
                            scep_problem_t *prob)
{
    apr_status_t rv;

    rv = scep_read_cert(p, conf->ca_cert_file, &pki->ca_cert, prob);
    if (rv == APR_SUCCESS && !X509_check_ca(pki->ca_cert)) {
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_NONE,
                         apr_psprintf(p,
                                      "%s is not a CA certificate (no basicConstraints "
                                      "CA:TRUE or no keyUsage keyCertSign)",
                                      conf->ca_cert_file));
    }
    if (rv == APR_SUCCESS && conf->ca_key_file) {
        rv = scep_read_private_key(p, conf->ca_key_file, &pki->ca_key, prob);
        if (rv == APR_SUCCESS && !X509_check_private_key(pki->ca_cert, pki->ca_key)) {
            rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_NONE,
                             apr_psprintf(p,
                                          "the CA key %s does not match the CA certificate "
                                          "%s",
                                          conf->ca_key_file, conf->ca_cert_file));
        }
    }
    if (rv == APR_SUCCESS && conf->ca_chain_file) {
        rv = scep_read_certs(p, conf->ca_chain_file, &pki->chain, prob);
    }
    else if (rv == APR_SUCCESS) {
        pki->chain = sk_X509_new_null();
        SCEP_OWN(p, pki->chain, free_certs);
    }
    return with_event(prob, rv, SCEP_EVENT_FAILED_CA_CERT);
}

static int trust_add(trust_t *trust, X509 *cert)
{
    return sk_X509_push(trust->untrusted, cert) &&
           (!X509_self_signed(cert, 1) || sk_X509_push(trust->anchors, cert));
}

static apr_status_t trust_build(apr_pool_t *p, const scep_pki_t *pki, trust_t *trust,
                                scep_problem_t *prob)
{
    int ok;
    int i;

    trust->anchors = sk_X509_new_null();
    trust->untrusted = sk_X509_new_null();
    SCEP_OWN(p, trust->anchors, free_cert_list);
    SCEP_OWN(p, trust->untrusted, free_cert_list);
    ok = trust->anchors && trust->untrusted && trust_add(trust, pki->ca_cert);
    for (i = 0; ok && i < sk_X509_num(pki->chain); i++) {
        ok = trust_add(trust, sk_X509_value(pki->chain, i));
    }
    return ok ? APR_SUCCESS : pki_problem(prob, APR_ENOMEM, SCEP_EVENT_NONE, "out of memory");
}

/* The CA must chain to a self-signed root: itself, or one in the chain. */
static apr_status_t verify_ca(apr_pool_t *p, const scep_pki_config_t *conf, const scep_pki_t *pki,
                              const trust_t *trust, scep_problem_t *prob)
{
    const char *reason = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (sk_X509_num(trust->anchors) == 0) {
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_FAILED_CA_CERT,
                         apr_psprintf(p,
                                      "the CA certificate %s is not self-signed and no "
                                      "self-signed root is in the chain file (%s)",
                                      conf->ca_cert_file,
                                      conf->ca_chain_file ? conf->ca_chain_file : "none"));
    }
    else if (scep_x509_verify(pki->ca_cert, trust->anchors, trust->untrusted, 0, NULL, &reason) !=
             APR_SUCCESS) {
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_FAILED_CA_CERT,
                         apr_psprintf(p, "the CA certificate %s does not verify: %s",
                                      conf->ca_cert_file, reason));
    }
    return rv;
}

static apr_status_t ra_candidate_load(apr_pool_t *p, const scep_ra_file_t *files,
                                      ra_candidate_t *cand, scep_problem_t *prob)
{
    apr_status_t rv;

    cand->files = files;
    rv = scep_read_cert(p, files->cert_file, &cand->cert, prob);
    if (rv == APR_SUCCESS) {
        rv = scep_read_private_key(p, files->key_file, &cand->key, prob);
    }
    if (rv == APR_SUCCESS && !X509_check_private_key(cand->cert, cand->key)) {
        rv = pki_problem(prob, APR_EINVAL, SCEP_EVENT_NONE,
                         apr_psprintf(p, "the RA key %s does not match the RA certificate %s",
                                      files->key_file, files->cert_file));
    }
    return with_event(prob, rv, SCEP_EVENT_FAILED_RA_CERT);
}

/* Decides which roles a loaded candidate serves, or why it serves none. */
static void ra_candidate_judge(apr_pool_t *p, const scep_pki_t *pki, const trust_t *trust,
                               ra_candidate_t *cand)
{
    const char *unfit = NULL;
    const char *reason = NULL;
    int err = X509_V_OK;

    cand->key_usage = scep_x509_key_usage(cand->cert);
    if (!(cand->key_usage & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT))) {
        unfit = "its keyUsage has neither digitalSignature nor keyEncipherment";
    }
    else if (!scep_x509_has_eku(cand->cert, SCEP_OID_CERT_REQUEST_AGENT)) {
        unfit = "its extendedKeyUsage lacks Certificate Request Agent (" SCEP_OID_CERT_REQUEST_AGENT
                ")";
    }
    else if (X509_check_issued(pki->ca_cert, cand->cert) != X509_V_OK) {
        unfit = apr_psprintf(p, "it is not issued by the CA %s",
                             scep_name_text(p, X509_get_subject_name(pki->ca_cert)));
    }
    else if (scep_x509_verify(cand->cert, trust->anchors, trust->untrusted, 0, &err, &reason) !=
             APR_SUCCESS) {
        unfit = apr_psprintf(p, "it does not verify: %s", reason);
        cand->expired = err == X509_V_ERR_CERT_HAS_EXPIRED;
    }
    if (unfit) {
        cand->unfit = apr_psprintf(p, "%s: %s", cand->files->cert_file, unfit);
    }
    else {
        cand->serves[SCEP_RA_SIGN] = (cand->key_usage & KU_DIGITAL_SIGNATURE) != 0;
        cand->serves[SCEP_RA_ENCRYPT] = (cand->key_usage & KU_KEY_ENCIPHERMENT) != 0;
    }
}

/* The candidate serving role with the latest notBefore (the most recently
 * issued, as NDES picks), NULL if none does. */
static ra_candidate_t *ra_newest(apr_array_header_t *cands, scep_ra_role_t role)
{
    ra_candidate_t *best = NULL;
    ra_candidate_t *cand;
    int i;

    for (i = 0; i < cands->nelts; i++) {
        cand = &APR_ARRAY_IDX(cands, i, ra_candidate_t);
        if (cand->serves[role] &&
            (!best || ASN1_TIME_compare(X509_get0_notBefore(cand->cert),
                                        X509_get0_notBefore(best->cert)) > 0)) {
            best = cand;
        }
    }
    return best;
}

/* Event 34 when a candidate that would have served the role expired,
 * event 10 otherwise; the text lists every candidate passed over. */
static apr_status_t ra_missing(apr_pool_t *p, apr_array_header_t *cands, scep_ra_role_t role,
                               scep_problem_t *prob)
{
    uint32_t bit = role == SCEP_RA_SIGN ? KU_DIGITAL_SIGNATURE : KU_KEY_ENCIPHERMENT;
    const char *why = "";
    int expired = 0;
    ra_candidate_t *cand;
    int i;

    for (i = 0; i < cands->nelts; i++) {
        cand = &APR_ARRAY_IDX(cands, i, ra_candidate_t);
        if (cand->unfit) {
            why = apr_pstrcat(p, why, "; ", cand->unfit, NULL);
            expired |= cand->expired && (cand->key_usage & bit);
        }
    }
    return pki_problem(prob, APR_EINVAL, expired ? SCEP_EVENT_RA_EXPIRE : SCEP_EVENT_FAILED_RA_CERT,
                       apr_psprintf(p,
                                    "no valid RA %s certificate (keyUsage %s, EKU Certificate "
                                    "Request Agent, issued by the CA, valid chain)%s",
                                    role == SCEP_RA_SIGN ? "signing" : "encryption",
                                    role == SCEP_RA_SIGN ? "digitalSignature" : "keyEncipherment",
                                    why));
}

static apr_array_header_t *ra_unfit_texts(apr_pool_t *p, apr_array_header_t *cands)
{
    apr_array_header_t *texts = apr_array_make(p, 0, sizeof(const char *));
    ra_candidate_t *cand;
    int i;

    for (i = 0; i < cands->nelts; i++) {
        cand = &APR_ARRAY_IDX(cands, i, ra_candidate_t);
        if (cand->unfit) {
            APR_ARRAY_PUSH(texts, const char *) = cand->unfit;
        }
    }
    return texts;
}

static apr_status_t load_ra(apr_pool_t *p, const scep_pki_config_t *conf, scep_pki_t *pki,
                            const trust_t *trust, scep_problem_t *prob)
{
    apr_array_header_t *cands = apr_array_make(p, conf->ra_files->nelts, sizeof(ra_candidate_t));
    ra_candidate_t *cand, *sign, *enc;
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < conf->ra_files->nelts; i++) {
        cand = apr_array_push(cands); /* zeroed by APR */
        rv = ra_candidate_load(p, &APR_ARRAY_IDX(conf->ra_files, i, scep_ra_file_t), cand, prob);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        ra_candidate_judge(p, pki, trust, cand);
    }
    sign = ra_newest(cands, SCEP_RA_SIGN);
    enc = ra_newest(cands, SCEP_RA_ENCRYPT);
    if (!sign || !enc) {
        rv = ra_missing(p, cands, sign ? SCEP_RA_ENCRYPT : SCEP_RA_SIGN, prob);
        goto leave;
    }
    pki->ra_sign_cert = sign->cert;
    pki->ra_sign_key = sign->key;
    pki->ra_enc_cert = enc->cert;
    pki->ra_enc_key = enc->key;
    pki->separate_ra = 1;
    pki->ra_skipped = ra_unfit_texts(p, cands);
leave:
    return rv;
}

/* Simple mode: the CA signs and decrypts itself. */
static apr_status_t use_ca_as_ra(apr_pool_t *p, scep_pki_t *pki, scep_problem_t *prob)
{
    if (!pki->ca_key) {
        return pki_problem(prob, APR_EINVAL, SCEP_EVENT_FAILED_RA_CERT,
                           "no RA certificate is configured and there is no CA key to act "
                           "as RA");
    }
    pki->ra_sign_cert = pki->ca_cert;
    pki->ra_sign_key = pki->ca_key;
    pki->ra_enc_cert = pki->ca_cert;
    pki->ra_enc_key = pki->ca_key;
    pki->separate_ra = 0;
    pki->ra_skipped = apr_array_make(p, 0, sizeof(const char *));
    return APR_SUCCESS;
}

static apr_status_t set_ra_not_after(scep_pki_t *pki, scep_problem_t *prob)
{
    const ASN1_TIME *sign_end = X509_get0_notAfter(pki->ra_sign_cert);
    const ASN1_TIME *enc_end = X509_get0_notAfter(pki->ra_enc_cert);
    const ASN1_TIME *first = ASN1_TIME_compare(sign_end, enc_end) <= 0 ? sign_end : enc_end;

    if (scep_x509_time_get(first, &pki->ra_not_after) != APR_SUCCESS) {
        return pki_problem(prob, APR_EINVAL, SCEP_EVENT_FAILED_RA_CERT,
                           "an RA certificate has an unreadable notAfter");
    }
    return APR_SUCCESS;
}

/* The certificates of the x-x509-ca-ra-cert reply, in this order: RA
 * encryption (clients that take the first certificate encrypt to it), RA
 * signing (when it is another certificate), CA, chain (the root left out
 * when include_root is off). */
static int bundle_fill(STACK_OF(X509) *certs, const scep_pki_config_t *conf, const scep_pki_t *pki)
{
    X509 *cert;
    int ok;
    int i;

    ok = sk_X509_push(certs, pki->ra_enc_cert) &&
         (pki->ra_sign_cert == pki->ra_enc_cert || sk_X509_push(certs, pki->ra_sign_cert)) &&
         sk_X509_push(certs, pki->ca_cert);
    for (i = 0; ok && i < sk_X509_num(pki->chain); i++) {
        cert = sk_X509_value(pki->chain, i);
        if (conf->include_root || !X509_self_signed(cert, 0)) {
            ok = sk_X509_push(certs, cert);
        }
    }
    return ok;
}

/* A degenerate certs-only SignedData, the certificates in bundle_fill's
 * order (scep_certs_only keeps it). */
static apr_status_t getcacert_ra(apr_pool_t *p, const scep_pki_config_t *conf, scep_pki_t *pki,
                                 scep_problem_t *prob)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    unsigned char *der = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (!certs || !bundle_fill(certs, conf, pki) ||
        scep_certs_only(p, certs, NULL, &der, &pki->getcacert_len) != APR_SUCCESS) {
        rv = pki_problem(
            prob, APR_EGENERAL, SCEP_EVENT_GET_CA_CERT_FAILED,
            apr_psprintf(p, "cannot build the GetCACert reply: %s", scep_x509_openssl_error()));
        goto leave;
    }
    pki->getcacert_type = "application/x-x509-ca-ra-cert";
    pki->getcacert_body = der;
leave:
    sk_X509_free(certs);
    return rv;
}

static apr_status_t getcacert_ca(apr_pool_t *p, scep_pki_t *pki, scep_problem_t *prob)
{
    unsigned char *der = NULL;
    int len = i2d_X509(pki->ca_cert, &der);

    if (len <= 0) {
        return pki_problem(prob, APR_EGENERAL, SCEP_EVENT_GET_CA_CERT_FAILED,
                           "cannot encode the CA certificate");
    }
    pki->getcacert_type = "application/x-x509-ca-cert";
    pki->getcacert_body = apr_pmemdup(p, der, (apr_size_t)len);
    pki->getcacert_len = (apr_size_t)len;
    OPENSSL_free(der);
    return APR_SUCCESS;
}

apr_status_t scep_pki_load(apr_pool_t *p, const scep_pki_config_t *conf, scep_pki_t **pki,
                           scep_problem_t *prob)
{
    scep_pki_t *loaded = apr_pcalloc(p, sizeof(*loaded));
    trust_t trust;
    apr_status_t rv;

    rv = load_ca(p, conf, loaded, prob);
    if (rv == APR_SUCCESS) {
        rv = trust_build(p, loaded, &trust, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = verify_ca(p, conf, loaded, &trust, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = conf->ra_files && conf->ra_files->nelts > 0 ? load_ra(p, conf, loaded, &trust, prob)
                                                         : use_ca_as_ra(p, loaded, prob);
    }
    if (rv == APR_SUCCESS) {
        rv = set_ra_not_after(loaded, prob);
    }
    if (rv == APR_SUCCESS) {
        loaded->ca_thumbprint = scep_cert_thumbprint(p, loaded->ca_cert);
        rv = loaded->separate_ra ? getcacert_ra(p, conf, loaded, prob)
                                 : getcacert_ca(p, loaded, prob);
    }
    *pki = rv == APR_SUCCESS ? loaded : NULL;
    return rv;
}
