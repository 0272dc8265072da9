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
 * An external CA's CRL (scep_ext_crl.h): read as PEM or DER and served
 * only once its issuer and signature are the configured CA's, so that a
 * wrong file or a tampered download never reaches a relying party.
 */

#include <apr_strings.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep_ext_crl.h"

/* PEM when the data says so, else DER. */
static X509_CRL *crl_from_bytes(const unsigned char *data, apr_size_t len)
{
    const unsigned char *der = data;
    X509_CRL *crl = NULL;
    BIO *bio;

    if (len > 10 && memcmp(data, "-----BEGIN", 10) == 0) {
        if ((bio = BIO_new_mem_buf(data, (int)len)) != NULL) {
            crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
            BIO_free(bio);
        }
        return crl;
    }
    return d2i_X509_CRL(NULL, &der, (long)len);
}

static apr_status_t crl_refused(apr_pool_t *p, scep_problem_t *prob, const char *why)
{
    return scep_problem(prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_GETCRL_FAILED,
                        apr_pstrcat(p, "the external CA's CRL ", why, NULL));
}

apr_status_t scep_ext_crl_parse(apr_pool_t *p, const unsigned char *data, apr_size_t len,
                                X509 *ca_cert, X509_CRL **crl, scep_problem_t *prob)
{
    X509_CRL *c = NULL;
    EVP_PKEY *ca_key = X509_get0_pubkey(ca_cert);
    apr_status_t rv;

    *crl = NULL;
    if (len > INT_MAX || !(c = crl_from_bytes(data, len))) {
        rv = crl_refused(p, prob, "is neither a PEM nor a DER CRL");
        goto leave;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(c), X509_get_subject_name(ca_cert)) != 0) {
        rv = crl_refused(p, prob, "was issued by another CA than the configured CA certificate");
        goto leave;
    }
    if (!ca_key || X509_CRL_verify(c, ca_key) != 1) {
        rv = crl_refused(p, prob, "has a signature that the CA certificate's key does not verify");
        goto leave;
    }
    SCEP_OWN(p, c, X509_CRL_free);
    *crl = c;
    c = NULL;
    rv = APR_SUCCESS;
leave:
    X509_CRL_free(c);
    return rv;
}

typedef struct with_crl_t {
    scep_ca_backend_t *inner;
    scep_crl_source_fn *source;
    scep_crl_source_exit_fn *source_exit;
    void *baton;
} with_crl_t;

static apr_status_t with_crl_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                   const scep_template_t *tmpl, X509 **cert,
                                   scep_ca_ticket_t *ticket, scep_problem_t *prob)
{
    scep_ca_backend_t *inner = ((with_crl_t *)ca->baton)->inner;

    return inner->issue(inner, p, csr, tmpl, cert, ticket, prob);
}

static apr_status_t with_crl_poll(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                  const scep_template_t *tmpl, scep_ca_ticket_t *ticket,
                                  X509 **cert, scep_problem_t *prob)
{
    scep_ca_backend_t *inner = ((with_crl_t *)ca->baton)->inner;

    return inner->poll(inner, p, csr, tmpl, ticket, cert, prob);
}

static apr_status_t with_crl_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store,
                                 X509_CRL **crl, scep_problem_t *prob)
{
    const with_crl_t *w = ca->baton;

    (void)store; /* the external CA keeps its own revocations */
    *crl = NULL;
    if (!w->source) {
        return scep_problem(prob, APR_ENOTIMPL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                            "no CRL is configured for the external CA (SCEPExternalCRL)");
    }
    return w->source(w->baton, p, crl, prob);
}

static void with_crl_process_exit(scep_ca_backend_t *ca)
{
    const with_crl_t *w = ca->baton;

    if (w->inner->process_exit) {
        w->inner->process_exit(w->inner);
    }
    if (w->source_exit) {
        w->source_exit(w->baton);
    }
}

scep_ca_backend_t *scep_ca_with_crl(apr_pool_t *p, scep_ca_backend_t *inner,
                                    scep_crl_source_fn *source,
                                    scep_crl_source_exit_fn *source_exit, void *baton)
{
    scep_ca_backend_t *ca = apr_pcalloc(p, sizeof(*ca));
    with_crl_t *w = apr_pcalloc(p, sizeof(*w));

    w->inner = inner;
    w->source = source;
    w->source_exit = source_exit;
    w->baton = baton;
    ca->baton = w;
    ca->issue = with_crl_issue;
    ca->crl = with_crl_crl;
    ca->poll = inner->poll ? with_crl_poll : NULL;
    ca->name = inner->name;
    ca->process_exit = (inner->process_exit || source_exit) ? with_crl_process_exit : NULL;
    return ca;
}
