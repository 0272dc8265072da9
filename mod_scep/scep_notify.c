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
 * The notification of a decision (scep_notify.h): its JSON, close to
 * step-ca's NOTIFYING webhook (x509CertificateRequest, x509Certificate with
 * raw DER, scepTransactionID, scepErrorCode, scepErrorDescription) with
 * what an MDM needs to match a device's certificate without parsing it
 * (serial, thumbprints, subject, expiry, template), and its sending.
 */

#include <limits.h>

#include <apr_strings.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep_json.h"
#include "scep_notify.h"
#include "scep_x509.h"

int scep_notify_wanted(const scep_request_t *req)
{
    return req->message_type == SCEP_MSG_PKCSREQ || req->message_type == SCEP_MSG_RENEWALREQ ||
           req->message_type == SCEP_MSG_CERTPOLL;
}

static const char *outcome_name(scep_outcome_kind_t kind)
{
    switch (kind) {
    case SCEP_OUTCOME_ISSUED:
        return "issued";
    case SCEP_OUTCOME_HELD:
        return "held";
    case SCEP_OUTCOME_REFUSED:
        return "refused";
    default:
        return "fault";
    }
}

static json_t *time_value(apr_pool_t *p, const ASN1_TIME *t)
{
    apr_time_t when;

    return scep_x509_time_get(t, &when) == APR_SUCCESS ? scep_json_text(p, scep_time_text(p, when))
                                                       : json_null();
}

/* The CSR as the records keep it (scep_csr_pem_at_rest(): without its
 * challengePassword, signature emptied): whoever runs the notification
 * webhook need not learn the password. NULL when it does not encode. */
static json_t *csr_value(apr_pool_t *p, X509_REQ *csr)
{
    const char *pem = scep_csr_pem_at_rest(p, csr);
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long len = 0;
    json_t *doc = NULL;

    if (!bio || PEM_read_bio(bio, &name, &header, &der, &len) != 1 || len <= 0 || len > INT_MAX) {
        goto leave;
    }
    doc = json_pack("{s:o, s:o}", "raw", scep_json_base64(p, der, (int)len), "subject",
                    scep_json_text(p, scep_name_text(p, X509_REQ_get_subject_name(csr))));
leave:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return doc;
}

static json_t *cert_value(apr_pool_t *p, X509 *cert)
{
    unsigned char *der = NULL;
    int len = i2d_X509(cert, &der);
    json_t *raw;

    if (len <= 0) {
        return NULL;
    }
    raw = scep_json_base64(p, der, len);
    OPENSSL_free(der);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "raw", raw, "serialNumber",
                     scep_json_text(p, scep_serial_hex(p, X509_get0_serialNumber(cert))), "subject",
                     scep_json_text(p, scep_name_text(p, X509_get_subject_name(cert))), "issuer",
                     scep_json_text(p, scep_name_text(p, X509_get_issuer_name(cert))), "notBefore",
                     time_value(p, X509_get0_notBefore(cert)), "notAfter",
                     time_value(p, X509_get0_notAfter(cert)), "sha1Thumbprint",
                     scep_json_text(p, scep_cert_thumbprint(p, cert)), "sha256Thumbprint",
                     scep_json_text(p, scep_cert_sha256(p, cert)));
}

/* What the device got besides the certificate: the CSR it sent, the
 * certificate or the failure. 0 when a part cannot be made. */
static int add_details(apr_pool_t *p, const scep_notify_facts_t *facts, json_t *doc)
{
    const scep_outcome_t *outcome = facts->outcome;
    json_t *part;

    if (facts->req->csr) {
        if (!(part = csr_value(p, facts->req->csr)) ||
            json_object_set_new(doc, "x509CertificateRequest", part) != 0) {
            return 0;
        }
    }
    if (outcome->kind == SCEP_OUTCOME_ISSUED && outcome->cert) {
        return (part = cert_value(p, outcome->cert)) &&
               json_object_set_new(doc, "x509Certificate", part) == 0;
    }
    if (facts->reply->status != SCEP_STATUS_FAILURE) {
        return 1;
    }
    return json_object_set_new(doc, "scepFailInfo",
                               json_string(scep_fail_info_name(facts->reply->fail_info))) == 0 &&
           json_object_set_new(doc, "scepErrorCode", json_integer(facts->reply->fail_info)) == 0 &&
           json_object_set_new(doc, "scepErrorDescription",
                               scep_json_text(p, facts->reply->fail_text)) == 0;
}

apr_status_t scep_notify_body(apr_pool_t *p, const scep_notify_facts_t *facts, const char **body,
                              apr_size_t *len)
{
    json_t *doc = json_pack("{s:o, s:o, s:s, s:s, s:o, s:o, s:o}", "provisionerName",
                            scep_json_text(p, facts->provisioner), "timestamp",
                            scep_json_text(p, scep_time_text(p, facts->time)), "outcome",
                            outcome_name(facts->outcome->kind), "scepMessageType",
                            scep_message_type_name(facts->req->message_type), "scepTransactionID",
                            scep_json_text(p, facts->req->transaction_id), "template",
                            scep_json_text(p, facts->outcome->template_name), "clientAddress",
                            scep_json_text(p, facts->client_addr));
    apr_status_t rv = APR_EGENERAL;

    *body = NULL;
    if (doc && add_details(p, facts, doc) && (*body = scep_json_dump(p, doc, len)) != NULL) {
        rv = APR_SUCCESS;
    }
    json_decref(doc);
    return rv;
}

apr_status_t scep_notify_send(scep_webhook_t *wh, apr_pool_t *p, const char *transaction_id,
                              const char *body, apr_size_t len, scep_log_fn *log, void *log_baton)
{
    const char *txn = scep_escape_text(p, transaction_id, 0);
    scep_webhook_answer_t answer;
    apr_status_t rv = scep_webhook_post(wh, p, body, len, &answer);

    if (rv != APR_SUCCESS) {
        log(log_baton, SCEP_LOG_MARK, SCEP_LOG_WARNING,
            apr_psprintf(p,
                         SCEPLOGNO(680) "transaction %s: the notification webhook was not "
                                        "reached (above); the notification is dropped",
                         txn));
        return rv;
    }
    if (answer.status < 200 || answer.status > 299) {
        log(log_baton, SCEP_LOG_MARK, SCEP_LOG_WARNING,
            apr_psprintf(p,
                         SCEPLOGNO(681) "transaction %s: the notification webhook answered "
                                        "HTTP %d; the notification is dropped",
                         txn, answer.status));
        return APR_EGENERAL;
    }
    log(log_baton, SCEP_LOG_MARK, SCEP_LOG_INFO,
        apr_psprintf(p, SCEPLOGNO(682) "transaction %s: notification delivered (HTTP %d)", txn,
                     answer.status));
    return APR_SUCCESS;
}
