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
 * The enrollment engine (scep_enroll.c and scep_enroll_*.c): what a
 * parsed pkiMessage gets (replays answer what was answered before, held
 * requests, renewals, the password rule, template choice, issuance and its
 * record, GetCert, GetCRL) and a CA manager's decisions, without httpd.
 *
 * It works through three interfaces, each a struct of function pointers
 * with a baton, so that a new CA or a new store of passwords is a new file
 * behind one of them: the records (scep_store_t, scep.h), a CA backend and
 * a password store (below). Its answer is a typed outcome, which the
 * caller turns into a CertRep (or a server error); every refusal is logged
 * by the engine, one line with its NDES event, through the log function.
 */
#ifndef mod_scep_scep_enroll_h
#define mod_scep_scep_enroll_h

#include "scep.h"

/* ----------------------------------------------------------------------
 * A CA backend: who issues certificates and answers GetCRL.
 *
 * One with poll() is an external CA, which gets a held request's CSR again
 * later: the engine keeps the device's CSR sealed for it (scep_csr_seal()
 * to the RA encryption certificate) while the request is held, and gives
 * issue() and poll() that CSR, signature and challengePassword intact.
 *
 * Its functions return APR_SUCCESS with their result on p, or an error
 * with prob filled: a refusal of this request has prob->fail_info set (and
 * its event and text, for the log line and the failInfoText); a fault has
 * SCEP_FAIL_NONE and was logged by the backend (for crl(): by the store
 * whose revocations it read, answered as unreachable records). A backend
 * keeps no state of a request: the engine records what it issued, and the
 * ticket of a request the CA holds.
 */

/* A request an external CA holds (issue() or poll() returned
 * APR_EINCOMPLETE): text is what poll() needs to ask again (a certmonger
 * helper's cookie), opaque to the engine, which records it with the held
 * request; retry_after is the CA's advice, in seconds (0: none). */
typedef struct scep_ca_ticket_t {
    const char *text;
    int retry_after;
} scep_ca_ticket_t;

typedef struct scep_ca_backend_t scep_ca_backend_t;
struct scep_ca_backend_t {
    void *baton;
    /* A certificate for csr (verified, allowed by tmpl's policy) under tmpl,
     * or APR_EINCOMPLETE with *ticket filled: the CA holds the request (the
     * built-in CA never does): the engine records it held with the ticket
     * and answers PENDING. */
    apr_status_t (*issue)(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                          const scep_template_t *tmpl, X509 **cert, scep_ca_ticket_t *ticket,
                          scep_problem_t *prob);
    /* The CA's current CRL; store holds the revocations of the records. A
     * backend without one refuses with NDES event 44: APR_ENOTIMPL when
     * none is configured (the scep-crl handler answers 404). */
    apr_status_t (*crl)(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store, X509_CRL **crl,
                        scep_problem_t *prob);
    /* NULL for a CA that never holds a request (the built-in CA). Asks again
     * about the request of ticket->text (csr is the request's, tmpl its
     * template): as issue(); APR_EINCOMPLETE when still held, with *ticket
     * replaced (the CA may give a new cookie), by CertPoll and the
     * background round (scep_enroll_poll_ca()). APR_EAGAIN: only another
     * process (or thread) can ask about this ticket, and will: the engine
     * leaves the request due for it, unchanged. */
    apr_status_t (*poll)(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                         const scep_template_t *tmpl, scep_ca_ticket_t *ticket, X509 **cert,
                         scep_problem_t *prob);
    /* Who holds the tickets this backend makes, recorded with each
     * (scep_txn_t.ca_backend): where servers share the records, each asks
     * its CA only about its own (the module: the backend's kind and the
     * server's name and port). NULL: unnamed, which asks about the
     * unnamed ones. */
    const char *name;
    /* NULL, or frees what this process made for itself while it ran (the
     * CMP backend's waiting transactions, a cached CRL), at its end: a
     * forked server process ends without destroying the pool the backend
     * was made on. No call follows. */
    void (*process_exit)(scep_ca_backend_t *ca);
};

/* What the built-in CA (scep_ca_builtin.c) issues with: the configuration's
 * SCEPCertificateValidity (a template's Validity replaces it),
 * SCEPHashAlgorithm, SCEPCRLURL and SCEPCRLValidity. */
typedef struct scep_ca_builtin_conf_t {
    const scep_pki_t *pki; /* its ca_key signs; NULL key: no CRL (event 44) */
    int validity_days;
    const EVP_MD *md;
    const char *crl_url; /* NULL: no CRL distribution point */
    int crl_validity_hours;
} scep_ca_builtin_conf_t;

/* The built-in CA (scep_ca_issue(), scep_crl_build()) as a backend, on p
 * (with a copy of conf). */
scep_ca_backend_t *scep_ca_builtin(apr_pool_t *p, const scep_ca_builtin_conf_t *conf);

/* ----------------------------------------------------------------------
 * A password store: where a device's challenge password is checked.
 */
typedef struct scep_password_store_t scep_password_store_t;
struct scep_password_store_t {
    void *baton;
    /* Checks and spends challenge for a request with these keyUsage bits
     * (scep_csr_key_usage(): -1 when absent); spender names the request
     * (transactionID and key id), which may come again and pass while the
     * password lives. APR_SUCCESS: accepted (a one-time password is spent).
     * A refusal spends nothing and has prob->fail_info badRequest with the
     * NDES event: 28 missing, 29 unknown/expired/used, 43 used before for
     * the same key usage. A fault (logged) leaves fail_info SCEP_FAIL_NONE. */
    apr_status_t (*use)(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                        int key_usage, const char *spender, scep_problem_t *prob);
    /* For the admin page (the engine only calls use()); NULL in a store
     * that only checks. A new one-time password (the single password in
     * single-password mode, *expires 0), on p, valid until *expires;
     * *waiting: the passwords waiting for their devices, this one included.
     * APR_ENOSPC when SCEPPasswordMax wait already (nothing issued); any
     * other error is a fault (logged). */
    apr_status_t (*issue)(scep_password_store_t *ps, apr_pool_t *p, const char **password,
                          apr_time_t *expires, int *waiting);
    /* How many one-time passwords wait: neither expired nor used up. */
    apr_status_t (*waiting)(scep_password_store_t *ps, apr_pool_t *p, int *waiting);
};

/* ----------------------------------------------------------------------
 * The engine.
 */

/* The configuration it decides by (the module fills it from its server
 * configuration, the tests by hand). */
typedef struct scep_enroll_conf_t {
    const scep_pki_t *pki;
    /* The methods a PKCSReq's challenge is checked by (scep_challenge.h):
     * SCEPChallengeCheck; without it, password or, with SCEPEnforcePassword
     * Off, none (count 0). A template's ChallengeCheck replaces it. */
    const struct scep_challenge_list_t *challenge_checks;
    int standalone;                       /* SCEPCAType Standalone: every request is held */
    int renewal_subject_match;            /* a renewal repeats its signer's names (NDES's rule,
                                        * off with SCEPDisableRenewalSubjectNameMatch) */
    int cache_request_minutes;            /* SCEPCacheRequest */
    int refresh_period_days;              /* SCEPRefreshPeriod */
    const char *signature_template;       /* SCEPSignatureTemplate: keyUsage 0x80 */
    const char *encryption_template;      /* SCEPEncryptionTemplate: keyUsage 0x20 */
    const char *general_purpose_template; /* SCEPGeneralPurposeTemplate: others, none */
    const apr_array_header_t *templates;  /* of scep_template_t *, found by
                                           * scep_template_find() */
} scep_enroll_conf_t;

/* What one call of the engine works with. */
typedef struct scep_enroll_env_t {
    apr_pool_t *pool; /* of the request: results and log texts */
    const scep_enroll_conf_t *conf;
    /* The records, got when first needed (some refusals come before):
     * NULL when they cannot be reached (logged), which is answered with
     * "the server's records cannot be reached; nothing was issued, try
     * again later". Called again, it gives the same store. */
    scep_store_t *(*records)(void *baton);
    void *records_baton;
    scep_ca_backend_t *ca;
    /* The checks of the methods configured (scep_challenge.h): the password
     * store as "password" (scep_challenge_password()), the server's webhook
     * and program. */
    const struct scep_challenge_checks_t *challenge_checks;
    scep_log_fn *log; /* every line starts with its SCEPLOGNO() tag */
    void *log_baton;
    const char *client_addr; /* recorded with a new request */
} scep_enroll_env_t;

typedef enum {
    SCEP_OUTCOME_ISSUED,  /* SUCCESS: cert, or crl for GetCRL */
    SCEP_OUTCOME_HELD,    /* PENDING: waiting for a CA manager or the external CA */
    SCEP_OUTCOME_REFUSED, /* FAILURE: problem's failInfo and text (logged) */
    SCEP_OUTCOME_FAULT    /* a server fault (logged): FAILURE, try again later (problem.text,
                           * when set, tells the device what failed) */
} scep_outcome_kind_t;

typedef struct scep_outcome_t {
    scep_outcome_kind_t kind;
    X509 *cert;             /* ISSUED, but GetCRL: the certificate for the CertRep */
    X509_CRL *crl;          /* ISSUED by GetCRL */
    scep_problem_t problem; /* REFUSED: failInfo, event, failInfoText */
    /* PKCSReq, RenewalReq, CertPoll: the template chosen for the request,
     * or recorded with its transaction; NULL before one is (notifications) */
    const char *template_name;
    /* 1 when the answer repeats a decision recorded before (a resent
     * request or a poll answered from the records: issued, still held,
     * rejected or expired), 0 when this message was decided now (counted
     * once by mod_status's figures, scep_stats.c) */
    int repeated;
} scep_outcome_t;

/* What a parsed pkiMessage (scep_request_parse() succeeded) gets:
 * PKCSReq, RenewalReq, CertPoll, GetCert, GetCRL; other types are refused
 * (event 38). Everything is on env->pool. */
void scep_enroll_message(const scep_enroll_env_t *env, const scep_request_t *req,
                         scep_outcome_t *outcome);

/* A message scep_request_parse() read far enough to answer (req is set)
 * but refused with prob: REFUSED, logged. */
void scep_enroll_refuse_unparsed(const scep_enroll_env_t *env, const scep_request_t *req,
                                 const scep_problem_t *prob, scep_outcome_t *outcome);

/* The CertRep of an outcome: SUCCESS with the certificate (then the CA and
 * its chain when include_chain, SCEPCertRepIncludeChain) or the CRL;
 * PENDING; FAILURE with the problem's failInfo and text. A FAULT is a
 * FAILURE too, badRequest "try again later": once a message is parsed, a
 * device gets a signed answer, never an HTTP error (RFC 8894 has no
 * failInfo for a server's own trouble). On p. */
void scep_enroll_reply(apr_pool_t *p, const scep_pki_t *pki, int include_chain,
                       const scep_outcome_t *outcome, scep_reply_t *reply);

/* A CA manager's decisions on a held request, logged with who made them.
 * approve issues and records the certificate now. APR_NOTFOUND: unknown
 * transaction; APR_EEXIST: not held any more (decided before, or
 * expired); APR_EINVAL (approve): the request cannot be issued under the
 * current configuration, prob->text says why and the request is rejected
 * with that reason; APR_EINCOMPLETE (approve): submitted, the external CA
 * holds it (recorded with its ticket, scep_enroll_at_ca()); APR_EBUSY
 * (approve): refused, the CA holds the request and decides it (deny
 * rejects it here); APR_EGENERAL: server fault (logged). */
apr_status_t scep_enroll_approve(const scep_enroll_env_t *env, const char *transaction_id,
                                 const char *who, scep_problem_t *prob);
apr_status_t scep_enroll_deny(const scep_enroll_env_t *env, const char *transaction_id,
                              const char *who, const char *reason);

/* 1 when a held request waits for the external CA (pending with a ticket)
 * and the backend can ask it (poll()): the CA decides, a manager can only
 * deny it. Without poll() (the built-in CA configured since), a manager
 * may approve it, which issues with the backend of the moment. */
int scep_enroll_at_ca(const scep_enroll_env_t *env, const scep_txn_t *txn);

/* Requests held longer than SCEPRefreshPeriod become expired: before
 * pending requests are listed. APR_EGENERAL when the records cannot be
 * reached (logged). */
apr_status_t scep_enroll_expire_pending(const scep_enroll_env_t *env);

/* Requests an external CA holds (recorded with a ticket) whose next poll
 * is due, the earliest 32 at most: each is claimed and asked about again
 * through env->ca->poll() and recorded as the CA answers (issued, rejected,
 * or held with a new ticket), by the same step as a device's CertPoll
 * (scep_enroll_ca.c). For a background task (no device waits on it);
 * *asked counts the polls made (none without poll()). APR_EGENERAL when
 * the records cannot be reached (logged). */
apr_status_t scep_enroll_poll_ca(const scep_enroll_env_t *env, int *asked);

#endif /* mod_scep_scep_enroll_h */
