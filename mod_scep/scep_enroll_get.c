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
 * GetCert and GetCRL in the enrollment engine: what the records and the CA
 * backend know of this CA's certificates, named by IssuerAndSerialNumber.
 */

#include <apr_strings.h>

#include "scep_enroll_int.h"

/* GetCert and GetCRL name a certificate by IssuerAndSerialNumber: only
 * this CA's are known here. 1 when the issuer is this CA; else 0, refused
 * under tag. */
static int names_this_ca(scep_enroll_op_t *op, const char *tag)
{
    if (X509_NAME_cmp(op->req->issuer, X509_get_subject_name(op->conf->pki->ca_cert)) == 0) {
        return 1;
    }
    scep_enroll_refuse(
        op, tag, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_NOMATCH_ISSUERNAME_SERIALNUMBER,
        apr_psprintf(op->p, "the issuer \"%s\" is not this CA",
                     scep_enroll_logged(op->p, scep_name_text(op->p, op->req->issuer))));
    return 0;
}

/* A certificate this CA issued, revoked or not (its state is the CRL's
 * business), to anyone who asks: certificates are public. */
void scep_enroll_get_cert(scep_enroll_op_t *op)
{
    const char *serial = scep_serial_hex(op->p, op->req->serial);
    scep_cert_record_t *rec;
    scep_store_t *store;
    X509 *cert;
    apr_status_t rv;

    if (!names_this_ca(op, SCEPLOGNO(230))) {
        return;
    }
    if (!serial) {
        scep_enroll_fault(op);
        return;
    }
    if (!(store = scep_enroll_records(op))) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    rv = store->find_cert(store, op->p, serial, &rec);
    if (rv == APR_NOTFOUND) {
        scep_enroll_refuse(
            op, SCEPLOGNO(231), SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_CERT_FROM_NUMBER,
            apr_psprintf(op->p, "this CA issued no certificate with serial number %s", serial));
        return;
    }
    if (rv != APR_SUCCESS) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    if (!(cert = scep_enroll_cert_from_pem(op->p, rec->cert_pem))) {
        scep_enroll_fault(op);
        return;
    }
    scep_enroll_log(op->env, SCEP_LOG_INFO,
                    SCEPLOGNO(232) "transaction %s: GetCert answered with certificate %s",
                    op->req->transaction_id, serial);
    scep_enroll_succeed(op, cert);
}

static int revoked_count(X509_CRL *crl)
{
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);

    return revoked ? sk_X509_REVOKED_num(revoked) : 0; /* none: no list at all */
}

/* The CRL of this CA, whichever of its certificates is named. */
void scep_enroll_get_crl(scep_enroll_op_t *op)
{
    scep_ca_backend_t *ca = op->env->ca;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_store_t *store;
    X509_CRL *crl;

    if (!names_this_ca(op, SCEPLOGNO(233))) {
        return;
    }
    if (!(store = scep_enroll_records(op))) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    if (ca->crl(ca, op->p, store, &crl, &prob) != APR_SUCCESS) {
        if (prob.fail_info == SCEP_FAIL_NONE) {
            /* the records, logged by the store */
            scep_enroll_refuse_unrecorded(op);
            return;
        }
        scep_enroll_refuse(op, SCEPLOGNO(234), prob.fail_info, prob.event, prob.text);
        return;
    }
    scep_enroll_log(op->env, SCEP_LOG_INFO,
                    SCEPLOGNO(235) "transaction %s: GetCRL answered with %d revoked certificates",
                    op->req->transaction_id, revoked_count(crl));
    op->outcome->kind = SCEP_OUTCOME_ISSUED;
    op->outcome->crl = crl;
}
