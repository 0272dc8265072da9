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
 * Challenge checks (httpd-free core): who decides whether a PKCSReq's
 * challengePassword lets it go on. A check is one method behind a struct of
 * a function pointer and a baton, so that a new way to ask (an MDM's
 * webhook, a site's program) is a new file: the password store of the
 * admin page (scep_challenge_password(), here), a webhook
 * (scep_challenge_webhook.c), a program (scep_challenge_program.c).
 *
 * A server (SCEPChallengeCheck) or a template (ChallengeCheck) lists the
 * methods it tries, in order: the first that allows, allows; a refusal
 * passes the request on to the next method, and the answer is the last
 * method's refusal; a fault anywhere fails closed at once: a method that
 * could not decide never lets the next one allow (scep_challenge_run()).
 * RenewalReq is not checked: the old certificate's signature is the proof.
 */
#ifndef mod_scep_scep_challenge_h
#define mod_scep_scep_challenge_h

#include "scep_enroll.h"

/* What a check is asked about one request. */
typedef struct scep_challenge_facts_t {
    X509_REQ *csr;
    const char *challenge; /* NULL: the CSR has none */
    const char *transaction_id;
    const char *message_type; /* "PKCSReq" */
    const char *template_name;
    const char *client_addr;
    int key_usage;       /* scep_csr_key_usage(): -1 none */
    const char *spender; /* for the password store's key-usage rule */
} scep_challenge_facts_t;

typedef struct scep_challenge_check_t scep_challenge_check_t;
struct scep_challenge_check_t {
    const char *name; /* "password", "webhook", "program": log lines, failInfoText */
    void *baton;
    /* APR_SUCCESS: allowed. A refusal: prob->fail_info badRequest, event
     * (29 unless the check knows better), text (failInfoText). A fault
     * (logged by the check: timeout, unreachable, non-2xx, malformed answer,
     * program killed) leaves fail_info SCEP_FAIL_NONE: the engine fails
     * closed (FAILURE, nothing issued). */
    apr_status_t (*check)(scep_challenge_check_t *cc, apr_pool_t *p,
                          const scep_challenge_facts_t *facts, scep_problem_t *prob);
};

/* The methods, as SCEPChallengeCheck and ChallengeCheck name them. */
typedef enum {
    SCEP_CHALLENGE_METHOD_PASSWORD, /* "password": the password store (NDES's passwords) */
    SCEP_CHALLENGE_METHOD_WEBHOOK,  /* "webhook": SCEPChallengeWebhook */
    SCEP_CHALLENGE_METHOD_PROGRAM,  /* "program": SCEPChallengeProgram */
    SCEP_CHALLENGE_METHOD_COUNT     /* how many there are */
} scep_challenge_method_t;

/* The methods a server or a template tries, in order, each at most once.
 * count 0: no check (SCEPEnforcePassword Off). */
typedef struct scep_challenge_list_t {
    int count;
    scep_challenge_method_t method[SCEP_CHALLENGE_METHOD_COUNT];
} scep_challenge_list_t;

/* The checks a request may use, by method: NULL where that method is not
 * configured (the startup check makes sure every listed method is). */
typedef struct scep_challenge_checks_t {
    scep_challenge_check_t *by_method[SCEP_CHALLENGE_METHOD_COUNT];
} scep_challenge_checks_t;

/* "password", "webhook", "program". */
const char *scep_challenge_method_name(scep_challenge_method_t method);

/* Appends the method called name (any case) to list: APR_SUCCESS;
 * APR_EINVAL for a name that is none, APR_EEXIST for a method listed
 * already (list unchanged). */
apr_status_t scep_challenge_list_add(scep_challenge_list_t *list, const char *name);

/* Tries the methods of list in order with checks (as above). APR_SUCCESS:
 * allowed, *decider names the method that allowed. Otherwise prob is the
 * last method's refusal (fail_info set; *decider is that method) or a
 * fault (SCEP_FAIL_NONE; *decider is the method that failed; a listed
 * method without a check is a fault too, text says so). */
apr_status_t scep_challenge_run(const scep_challenge_list_t *list,
                                const scep_challenge_checks_t *checks, apr_pool_t *p,
                                const scep_challenge_facts_t *facts, scep_problem_t *prob,
                                const char **decider);

/* The password store (NDES's one-time passwords, or the single password)
 * as the "password" method, on p: its use() with the facts' challenge,
 * key_usage and spender; a missing challenge is refused with event 28. */
scep_challenge_check_t *scep_challenge_password(apr_pool_t *p, scep_password_store_t *ps);

#endif /* mod_scep_scep_challenge_h */
