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
 * Notifications (SCEPNotifyWebhook): after each decision on a PKCSReq,
 * RenewalReq or CertPoll, a JSON document POSTed to the MDM's webhook
 * (scep_webhook.c, signed as step-ca signs its NOTIFYING webhooks), so
 * that it can mark the device enrolled, failed or waiting. The body is
 * made from the message, the engine's outcome and the CertRep the device
 * got; the caller sends it once the device's answer is out (the module:
 * httpd's log_transaction hook), never again.
 */
#ifndef mod_scep_scep_notify_h
#define mod_scep_scep_notify_h

#include "scep.h"
#include "scep_enroll.h"
#include "scep_webhook.h"

/* What a notification tells of one decision. */
typedef struct scep_notify_facts_t {
    const char *provisioner;       /* provisionerName: the server's name */
    const scep_request_t *req;     /* the message (its CSR when it has one) */
    const scep_outcome_t *outcome; /* ISSUED (cert), HELD, REFUSED, FAULT; its template */
    const scep_reply_t *reply;     /* the CertRep's status, failInfo and failInfoText */
    const char *client_addr;       /* NULL: unknown */
    apr_time_t time;               /* of the decision */
} scep_notify_facts_t;

/* 1 when decisions on req's message type are notified: PKCSReq,
 * RenewalReq, CertPoll (GetCert and GetCRL decide nothing). */
int scep_notify_wanted(const scep_request_t *req);

/* The notification's JSON body (UTF-8, one line), on p:
 *   provisionerName, timestamp (RFC 3339 UTC), outcome ("issued", "held",
 *   "refused", "fault"), scepMessageType, scepTransactionID, template
 *   (null before one was chosen), clientAddress;
 *   x509CertificateRequest {raw, subject} when the message carried a CSR:
 *   raw is the base64 DER of the CSR as the records keep it, without its
 *   challengePassword and with an empty signature (the webhook's owner
 *   need not learn a password);
 *   issued: x509Certificate {raw, serialNumber (upper-case hex, as the
 *   records), subject, issuer, notBefore, notAfter, sha1Thumbprint,
 *   sha256Thumbprint (upper-case hex of the DER)};
 *   refused and fault: scepFailInfo (RFC 8894's name), scepErrorCode (its
 *   number, step-ca's field) and scepErrorDescription (the failInfoText).
 * APR_EGENERAL when it cannot be made (a certificate that does not
 * encode). */
apr_status_t scep_notify_body(apr_pool_t *p, const scep_notify_facts_t *facts, const char **body,
                              apr_size_t *len);

/* POSTs body to wh for the transaction (for the log lines): APR_SUCCESS
 * when the webhook answered 2xx (logged at info); otherwise logged at
 * warning through log (its answer's status, or the webhook's fault, which
 * scep_webhook_post() logged too) and never sent again. */
apr_status_t scep_notify_send(scep_webhook_t *wh, apr_pool_t *p, const char *transaction_id,
                              const char *body, apr_size_t len, scep_log_fn *log, void *log_baton);

#endif /* mod_scep_scep_notify_h */
