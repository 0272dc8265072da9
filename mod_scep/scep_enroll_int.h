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
 * What the enrollment engine's files share (scep_enroll.c: messages;
 * scep_enroll_decide.c: held requests and a CA manager's decisions;
 * scep_enroll_renewal.c: renewals; scep_enroll_get.c: GetCert, GetCRL;
 * scep_enroll_op.c, below them all: log lines, refusals, outcomes). Not
 * for other callers: scep_enroll.h is the engine's interface.
 */
#ifndef mod_scep_scep_enroll_int_h
#define mod_scep_scep_enroll_int_h

#include "scep_enroll.h"

/* One message on its way through the engine. */
typedef struct scep_enroll_op_t {
    const scep_enroll_env_t *env;
    apr_pool_t *p;
    const scep_enroll_conf_t *conf;
    const scep_request_t *req;
    scep_outcome_t *outcome;
    const scep_template_t *tmpl; /* the certificate template of an enrollment */
} scep_enroll_op_t;

/* "PKCSReq", "CertPoll", ... for a log line or a failInfoText. */
const char *scep_enroll_message_type_name(int type);

/* A log line through env's function; fmt starts with its SCEPLOGNO() tag. */
void scep_enroll_log_at(const scep_enroll_env_t *env, const char *file, int line, int level,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define scep_enroll_log(env, ...) scep_enroll_log_at(env, SCEP_LOG_MARK, __VA_ARGS__)

/* OpenSSL's queue into the log at level. */
#define scep_enroll_log_openssl(env, level) \
    scep_log_openssl((env)->log, (env)->log_baton, SCEP_LOG_MARK, (level))

/* A device's text (a name, a transactionID) or a manager's for a log line:
 * scep_escape_text(), "-" for NULL. The line reads the same as scepctl's
 * lists and the manager page, whatever the error log escapes. */
const char *scep_enroll_logged(apr_pool_t *p, const char *text);

/* The outcome REFUSED with this problem, logged at warning under tag
 * (SCEPLOGNO(nnn)): "<type> for transaction <id> refused: <text>". */
void scep_enroll_refuse_at(scep_enroll_op_t *op, const char *file, int line, const char *tag,
                           scep_fail_info_t fail_info, int event, const char *text);
#define scep_enroll_refuse(op, ...) scep_enroll_refuse_at(op, SCEP_LOG_MARK, __VA_ARGS__)

/* The records failed (logged where they did, with the NDES event): REFUSED
 * badRequest, "try again later", no line of its own. */
void scep_enroll_refuse_unrecorded(scep_enroll_op_t *op);

/* The outcome ISSUED with cert; FAULT (a server fault, logged). */
void scep_enroll_succeed(scep_enroll_op_t *op, X509 *cert);
void scep_enroll_fault(scep_enroll_op_t *op);

/* The records, NULL when they cannot be reached (logged). */
scep_store_t *scep_enroll_records(const scep_enroll_op_t *op);

/* A PEM CSR or certificate the records keep, on p; NULL when it does not
 * read. */
X509_REQ *scep_enroll_csr_from_pem(apr_pool_t *p, const char *pem);
X509 *scep_enroll_cert_from_pem(apr_pool_t *p, const char *pem);

/* The CSR of a held request for the CA backend, on env->pool: the
 * device's, opened from txn->csr_sealed with the RA encryption key (an
 * external CA verifies its signature), else the one at rest (csr_pem).
 * NULL (logged) when it does not read, or the sealed one does not open or
 * is not the request's: the request stays held, a manager can deny it. */
X509_REQ *scep_enroll_held_csr(const scep_enroll_env_t *env, const scep_txn_t *txn);

/* 1 when a held request outlived SCEPRefreshPeriod; it is then marked
 * expired (txn->status and txn->reason say so), so that a manager no
 * longer sees it (scep_enroll_decide.c). */
int scep_enroll_held_too_long(const scep_enroll_env_t *env, scep_store_t *store, scep_txn_t *txn);

/* Issues the certificate of a held request under the configuration as it
 * is now (the template may have changed since it was held) and records it.
 * APR_EINVAL with prob when it cannot be issued; APR_EINCOMPLETE when the
 * external CA holds it (recorded, scep_enroll_submitted()); APR_EEXIST when
 * it was decided meanwhile; APR_EGENERAL on a server fault (logged)
 * (scep_enroll_decide.c). */
apr_status_t scep_enroll_issue_held_request(const scep_enroll_env_t *env, scep_store_t *store,
                                            const scep_txn_t *txn, const char *who, X509 **cert,
                                            scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Requests an external CA holds (scep_enroll_ca.c)
 */

/* Fills txn's ticket and next poll time from what the CA's issue() gave
 * with APR_EINCOMPLETE; APR_EGENERAL (logged) when it gave no ticket. */
apr_status_t scep_enroll_ca_ticket(const scep_enroll_env_t *env, const char *transaction_id,
                                   const scep_ca_ticket_t *ticket, scep_txn_t *txn);

/* Seconds from now to a poll time, for log lines. */
int scep_enroll_ca_wait(apr_time_t when);

/* A manager's approved request that the CA holds after its issue():
 * recorded pending with the ticket, logged. APR_EINCOMPLETE when so;
 * APR_EEXIST when decided meanwhile; APR_EGENERAL (logged) on a fault. */
apr_status_t scep_enroll_submitted(const scep_enroll_env_t *env, scep_store_t *store,
                                   const scep_txn_t *txn, const scep_ca_ticket_t *ticket);

/* The poll step of a request the CA holds, for CertPoll and the
 * background round alike: when txn is scep_enroll_at_ca(), its poll is due
 * and this process claims it (*asked 1), the CA is asked and its answer
 * recorded and logged: APR_SUCCESS issued (*cert); APR_EINVAL rejected
 * (prob, as the CA said: the request is rejected by "CA"); APR_EINCOMPLETE
 * otherwise: still held, with a new ticket or poll time (a fault of the
 * CA's, logged, is asked again later), or not asked. */
apr_status_t scep_enroll_ask_ca(const scep_enroll_env_t *env, scep_store_t *store,
                                const scep_txn_t *txn, X509 **cert, scep_problem_t *prob,
                                int *asked);

/* A RenewalReq, or a PKCSReq signed by a certificate that names this CA as
 * its issuer and is not self-signed (scep_enroll_renewal.c). */
int scep_enroll_is_renewal(const scep_enroll_op_t *op);

/* Stands in for the challenge of a renewal: 1 when the signer certificate
 * is a valid, unrevoked one of this CA whose names the request repeats;
 * 0 when the outcome is decided (refused, or a fault) (scep_enroll_renewal.c). */
int scep_enroll_renewal_passes(scep_enroll_op_t *op, scep_store_t *store);

/* GetCert and GetCRL (scep_enroll_get.c). */
void scep_enroll_get_cert(scep_enroll_op_t *op);
void scep_enroll_get_crl(scep_enroll_op_t *op);

#endif /* mod_scep_scep_enroll_int_h */
