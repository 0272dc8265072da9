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
 * The "webhook" challenge method (SCEPChallengeWebhook): each PKCSReq's
 * facts POSTed as step-ca posts a SCEPCHALLENGE webhook's request, so that
 * a validator written for step-ca (an MDM's, a site's) decides here too:
 *
 *   {"timestamp": "2026-12-06T14:55:00Z",        RFC 3339, UTC
 *    "provisionerName": "scep.example.com",      the server's name
 *    "x509CertificateRequest": {
 *        "raw": "<base64 DER of the CSR>",
 *        "publicKey": "<base64 DER SubjectPublicKeyInfo>",
 *        "publicKeyAlgorithm": "RSA" | "ECDSA" | "Ed25519" | ...,
 *        "signatureAlgorithm": "SHA256-RSA" | "ECDSA-SHA256" | ...,
 *        "subject": {"commonName": "...", "serialNumber": "...",
 *                    "country": [...], "organization": [...],
 *                    "organizationalUnit": [...], "locality": [...],
 *                    "province": [...], "streetAddress": [...],
 *                    "postalCode": [...]},
 *        "dnsNames": [...], "emailAddresses": [...],
 *        "ipAddresses": [...], "uris": [...]},
 *    "scepChallenge": "<the challengePassword>",  "" when the CSR has none
 *    "scepTransactionID": "<transactionID>",
 *    "scepMessageType": "PKCSReq",
 *    "template": "<the template chosen>",
 *    "clientAddress": "<the device's address>"}
 *
 * signed by the webhook (scep_webhook.h). A 2xx answer whose body is a
 * JSON object with a boolean "allow" decides (false: refused, event 29);
 * anything else (another status, another body, no answer in time) is a
 * fault, logged, and the engine fails closed.
 */
#ifndef mod_scep_scep_challenge_webhook_h
#define mod_scep_scep_challenge_webhook_h

#include "scep_challenge.h"
#include "scep_webhook.h"

/* The method on p: asks wh, naming the server provisioner_name; faults
 * logged through log (SCEP030-039). */
scep_challenge_check_t *scep_challenge_webhook(apr_pool_t *p, scep_webhook_t *wh,
                                               const char *provisioner_name, scep_log_fn *log,
                                               void *log_baton);

/* The request's JSON for facts (above), compact, on p; NULL when the CSR
 * cannot be encoded. */
char *scep_challenge_webhook_body(apr_pool_t *p, const char *provisioner_name,
                                  const scep_challenge_facts_t *facts);

/* An answer's verdict: 1 allowed, 0 refused, -1 not a verdict (not 2xx,
 * not a JSON object with a boolean "allow"), with *why on p. */
int scep_challenge_webhook_verdict(apr_pool_t *p, const scep_webhook_answer_t *answer,
                                   const char **why);

#endif /* mod_scep_scep_challenge_webhook_h */
