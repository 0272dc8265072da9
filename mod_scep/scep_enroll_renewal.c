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
 * Renewals in the enrollment engine: a request signed by a certificate of
 * this CA needs no challenge password, but the signer must verify, be in
 * the records, unrevoked, and (NDES's rule) name what the request names.
 */

#include <apr_strings.h>

#include <openssl/x509v3.h>

#include "scep_enroll_int.h"
#include "scep_x509.h"

/* A RenewalReq, or a PKCSReq signed by a certificate that names this CA as
 * its issuer and is not self-signed: macOS, Cisco and CertNanny renew that
 * way. Whether the signer really is one of ours is
 * scep_enroll_renewal_passes()'s job. */
int scep_enroll_is_renewal(const scep_enroll_op_t *op)
{
    X509 *signer = op->req->signer_cert;

    if (op->req->message_type == SCEP_MSG_RENEWALREQ) {
        return 1;
    }
    return X509_check_issued(signer, signer) != X509_V_OK &&
           X509_NAME_cmp(X509_get_issuer_name(signer),
                         X509_get_subject_name(op->conf->pki->ca_cert)) == 0;
}

/* Refuses a renewal with the white paper's reasons for event 28 (Windows
 * Server 2008 R2 text): the signer must chain to the CA and match the
 * request's names. 0, for scep_enroll_renewal_passes()'s caller. */
static int refuse_renewal_at(scep_enroll_op_t *op, const char *file, int line, const char *tag,
                             scep_fail_info_t fail_info, const char *why)
{
    scep_enroll_refuse_at(op, file, line, tag, fail_info, SCEP_EVENT_NO_PASSWORD,
                          apr_psprintf(op->p,
                                       "renewal without a password: %s; the request must be "
                                       "signed by an unexpired, unrevoked certificate of this CA "
                                       "with the same subject and subjectAltName",
                                       why));
    return 0;
}
#define refuse_renewal(op, ...) refuse_renewal_at(op, SCEP_LOG_MARK, __VA_ARGS__)

/* The DER of a subjectAltName extension's value, "" when there is none. */
static const char *san_der(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts)
{
    int pos = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
    ASN1_OCTET_STRING *value;

    if (pos < 0) {
        return "";
    }
    value = X509_EXTENSION_get_data(X509v3_get_ext(exts, pos));
    return scep_hex(p, ASN1_STRING_get0_data(value), (apr_size_t)ASN1_STRING_length(value));
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

/* NDES's rule: the new certificate names what the old one named, unless
 * SCEPDisableRenewalSubjectNameMatch is On. NULL when they agree. */
static const char *names_differ(const scep_enroll_op_t *op)
{
    apr_pool_t *p = op->p;
    X509 *signer = op->req->signer_cert;
    X509_REQ *csr = op->req->csr;
    STACK_OF(X509_EXTENSION) *requested = X509_REQ_get_extensions(csr);

    SCEP_OWN(p, requested, free_ext_list);
    if (X509_NAME_cmp(X509_REQ_get_subject_name(csr), X509_get_subject_name(signer))) {
        return apr_psprintf(
            p, "the requested subject \"%s\" differs from the signer's \"%s\"",
            scep_enroll_logged(p, scep_name_text(p, X509_REQ_get_subject_name(csr))),
            scep_enroll_logged(p, scep_name_text(p, X509_get_subject_name(signer))));
    }
    if (strcmp(san_der(p, requested), san_der(p, X509_get0_extensions(signer))) != 0) {
        return "the requested subjectAltName differs from the signer's";
    }
    return NULL;
}

/* 1 when the signer verifies with the CA as trust anchor (even when it is
 * an intermediate); else 0, refused. */
static int signer_verifies(scep_enroll_op_t *op, const char *serial)
{
    STACK_OF(X509) *anchors = sk_X509_new_null();
    const char *reason;
    int err;

    SCEP_OWN(op->p, anchors, OPENSSL_sk_free);
    if (!anchors || !sk_X509_push(anchors, op->conf->pki->ca_cert)) {
        scep_enroll_fault(op);
        return 0;
    }
    if (scep_x509_verify(op->req->signer_cert, anchors, NULL, 1, &err, &reason) == APR_SUCCESS) {
        return 1;
    }
    /* reason says it; OpenSSL's queue only repeats it in detail */
    scep_enroll_log_openssl(op->env, SCEP_LOG_DEBUG);
    return refuse_renewal(
        op, SCEPLOGNO(236),
        err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID
            ? SCEP_FAIL_BAD_REQUEST
            : SCEP_FAIL_BAD_MESSAGE_CHECK,
        apr_psprintf(op->p, "the signer certificate %s does not verify against this CA: %s", serial,
                     reason));
}

int scep_enroll_renewal_passes(scep_enroll_op_t *op, scep_store_t *store)
{
    apr_pool_t *p = op->p;
    X509 *signer = op->req->signer_cert;
    const char *serial = scep_serial_hex(p, X509_get0_serialNumber(signer));
    const char *differ;
    scep_cert_record_t *rec;
    apr_status_t rv;

    if (!serial) {
        scep_enroll_fault(op);
        return 0;
    }
    if (!signer_verifies(op, serial)) {
        return 0;
    }
    rv = store->find_cert(store, p, serial, &rec);
    if (rv == APR_NOTFOUND) {
        return refuse_renewal(
            op, SCEPLOGNO(237), SCEP_FAIL_BAD_REQUEST,
            apr_psprintf(p, "the signer certificate %s was not issued through this service",
                         serial));
    }
    if (rv != APR_SUCCESS) {
        scep_enroll_refuse_unrecorded(op);
        return 0;
    }
    if (rec->revoked_at) {
        return refuse_renewal(op, SCEPLOGNO(238), SCEP_FAIL_BAD_REQUEST,
                              apr_psprintf(p, "the signer certificate %s is revoked", serial));
    }
    if (op->conf->renewal_subject_match && (differ = names_differ(op))) {
        return refuse_renewal(op, SCEPLOGNO(239), SCEP_FAIL_BAD_REQUEST, differ);
    }
    scep_enroll_log(op->env, SCEP_LOG_INFO,
                    SCEPLOGNO(240) "transaction %s: renewal of certificate %s (\"%s\")",
                    op->req->transaction_id, serial,
                    scep_enroll_logged(p, scep_name_text(p, X509_get_subject_name(signer))));
    return 1;
}
