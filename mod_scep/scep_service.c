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
 * A service, not a crowd: several Apache servers on one database are one
 * enrollment service only when they present the same CA and RA
 * certificates. A server with others would hand devices another RA
 * certificate to encrypt to (a CertPoll or a replay reaching it could not
 * be opened), sign with another CA key under the same name (two CAs whose
 * serial numbers and CRLs collide in one set of records), or be an old
 * copy left behind after a rollover. So the records keep, per CA name,
 * the digests of the certificates of the service (the first server to
 * start records them), and a server that presents others is refused. A
 * rollover records the new ones on purpose (scepctl service --record).
 */

#include <string.h>

#include <apr_strings.h>

#include "scep.h"

scep_service_t *scep_service_of(apr_pool_t *p, X509 *ca, X509 *ra_sign, X509 *ra_enc)
{
    scep_service_t *svc = apr_pcalloc(p, sizeof(*svc));
    const char *sign = scep_cert_sha256(p, ra_sign), *enc = scep_cert_sha256(p, ra_enc);

    svc->issuer = scep_utf8_text(p, scep_name_text(p, X509_get_subject_name(ca)));
    svc->ca_sha256 = scep_cert_sha256(p, ca);
    if (!svc->issuer || !svc->ca_sha256 || !sign || !enc) {
        return NULL;
    }
    svc->ra_sha256 = apr_pstrcat(p, sign, " ", enc, NULL);
    return svc;
}

/* Digests are public: a plain comparison. A missing value never matches. */
static int same_text(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

int scep_service_same(const scep_service_t *a, const scep_service_t *b)
{
    return same_text(a->ca_sha256, b->ca_sha256) && same_text(a->ra_sha256, b->ra_sha256);
}

apr_status_t scep_service_check(apr_pool_t *p, scep_store_t *store, const scep_service_t *ours,
                                scep_service_t **recorded, int *first)
{
    apr_status_t rv = store->find_service(store, p, ours->issuer, recorded);

    *first = 0;
    if (rv == APR_NOTFOUND) {
        rv = store->record_service(store, p, ours, 0);
        if (rv == APR_SUCCESS) {
            *first = 1;
            *recorded = NULL;
            return APR_SUCCESS;
        }
        /* APR_EEXIST: another server was first meanwhile */
        rv = rv == APR_EEXIST ? store->find_service(store, p, ours->issuer, recorded) : rv;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return scep_service_same(ours, *recorded) ? APR_SUCCESS : APR_EMISMATCH;
}

/* "WHAT SHA-256 OURS where the records have THEIRS", or "" when alike. */
static const char *one_difference(apr_pool_t *p, const char *what, const char *ours,
                                  const char *theirs)
{
    if (same_text(ours, theirs)) {
        return "";
    }
    return apr_psprintf(p, "%s SHA-256 %s where the records have %s", what, ours,
                        theirs ? theirs : "none");
}

const char *scep_service_difference(apr_pool_t *p, const scep_service_t *ours,
                                    const scep_service_t *recorded)
{
    const char *ca = one_difference(p, "CA certificate", ours->ca_sha256, recorded->ca_sha256);
    const char *ra = one_difference(p, "RA certificates (signing encryption)", ours->ra_sha256,
                                    recorded->ra_sha256);

    return apr_pstrcat(p, ca, *ca && *ra ? "; " : "", ra, NULL);
}
