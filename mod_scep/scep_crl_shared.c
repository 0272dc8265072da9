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
 * The built-in CA's CRL as one service of several servers serves it: the
 * newest CRL is kept in the records (scep_crl) and every server serves it
 * while it is fresh, so that relying parties see one CRL, with one
 * cRLNumber, whichever server they ask. It is not fresh any more when the
 * records hold more revoked certificates than it lists (a revocation at
 * any server: the next GetCRL lists it), when the middle of its validity
 * has passed (relying parties get the next one well before its
 * nextUpdate), or when SCEPCRLValidity changed since (all servers of a
 * service have the same). Then one server signs the next, under a lock of the
 * database (scep_store_t.renew_crl()); a server that waited for the lock
 * finds the winner's CRL fresh and serves it. cRLNumbers go on from the
 * previous one, so they increase across the service whatever the servers'
 * clocks.
 *
 * A kept CRL is served only when it parses and verifies with the CA's key
 * (scep_ext_crl_parse()); one that does not is replaced by the next.
 */

#include <string.h>

#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_ext_crl.h"
#include "scep_x509.h"

/* What sign_next() and is_servable() work with. */
typedef struct crl_signing_t {
    const scep_pki_t *pki;
    const scep_crl_opts_t *opts;
    scep_problem_t *prob;
    apr_pool_t *p;
} crl_signing_t;

/* No revocation since it was signed, not past the middle of its
 * validity, and signed with this validity (a changed SCEPCRLValidity takes
 * effect at once; thisUpdate is SCEP_X509_CLOCK_SKEW before the
 * signature). */
static int is_fresh(const scep_crl_record_t *rec, const scep_crl_opts_t *opts, apr_time_t now)
{
    apr_time_t span = rec->next_update - rec->this_update;

    return rec->revoked_now == rec->revoked_count && now < rec->this_update + span / 2 &&
           span == scep_crl_validity(opts) + SCEP_X509_CLOCK_SKEW;
}

/* The kept CRL, verified with the CA's key; NULL when it is not this CA's
 * (its problem text is not the device's business: the next one replaces it). */
static X509_CRL *crl_of_record(apr_pool_t *p, const scep_pki_t *pki, const scep_crl_record_t *rec)
{
    scep_problem_t ignored = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;

    if (!rec->pem || scep_ext_crl_parse(p, (const unsigned char *)rec->pem, strlen(rec->pem),
                                        pki->ca_cert, &crl, &ignored) != APR_SUCCESS) {
        return NULL;
    }
    return crl;
}

static int is_servable(void *baton, const scep_crl_record_t *latest)
{
    const crl_signing_t *s = baton;

    return is_fresh(latest, s->opts, apr_time_now()) && crl_of_record(s->p, s->pki, latest) != NULL;
}

/* What the records keep of a CRL just signed. */
static apr_status_t describe(apr_pool_t *p, X509_CRL *crl, scep_crl_record_t *made,
                             scep_problem_t *prob)
{
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    int64_t value = 0;
    int ok = number && ASN1_INTEGER_get_int64(&value, number) &&
             scep_x509_time_get(X509_CRL_get0_lastUpdate(crl), &made->this_update) == APR_SUCCESS &&
             scep_x509_time_get(X509_CRL_get0_nextUpdate(crl), &made->next_update) == APR_SUCCESS &&
             (made->pem = scep_crl_pem(p, crl)) != NULL;

    ASN1_INTEGER_free(number);
    made->number = value;
    return ok ? APR_SUCCESS
              : scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_GETCRL_FAILED,
                             "cannot describe the signed CRL for the records");
}

/* The CRL after latest, numbered after it. */
static apr_status_t sign_next(void *baton, apr_pool_t *p, const scep_crl_record_t *latest,
                              const apr_array_header_t *revoked, scep_crl_record_t *made)
{
    const crl_signing_t *s = baton;
    scep_crl_opts_t opts = { NULL, 0, 0 };
    X509_CRL *crl = NULL;
    apr_status_t rv;

    if (s->opts) {
        opts = *s->opts;
    }
    opts.min_number = latest ? latest->number + 1 : 0;
    rv = scep_crl_build(p, s->pki, revoked, &opts, &crl, s->prob);
    return rv == APR_SUCCESS ? describe(p, crl, made, s->prob) : rv;
}

apr_status_t scep_crl_current(apr_pool_t *p, const scep_pki_t *pki, const scep_crl_opts_t *opts,
                              scep_store_t *store, X509_CRL **crl, scep_problem_t *prob)
{
    crl_signing_t signing = { pki, opts, prob, p };
    scep_crl_signer_t signer = { &signing, is_servable, sign_next };
    const char *issuer;
    scep_crl_record_t *rec = NULL;
    apr_status_t rv;

    *crl = NULL;
    if (!pki->ca_key) {
        /* as scep_crl_build(): APR_ENOTIMPL, nothing to serve here */
        return scep_crl_build(p, pki, NULL, opts, crl, prob);
    }
    if (!(issuer = scep_crl_issuer(p, pki))) {
        return scep_problem(prob, APR_ENOMEM, SCEP_FAIL_NONE, SCEP_EVENT_GETCRL_FAILED,
                            "cannot digest the CA certificate");
    }
    rv = store->latest_crl(store, p, issuer, &rec);
    if (rv == APR_SUCCESS && is_fresh(rec, opts, apr_time_now()) &&
        (*crl = crl_of_record(p, pki, rec))) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        /* logged by the store */
        return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    rv = store->renew_crl(store, p, issuer, &signer, &rec);
    if (rv != APR_SUCCESS) {
        /* sign_next() filled prob, or the store logged its fault */
        return prob->text ? rv : scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    if (!(*crl = crl_of_record(p, pki, rec))) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_GETCRL_FAILED,
                            "the CRL just kept does not verify with the CA's key");
    }
    return APR_SUCCESS;
}
