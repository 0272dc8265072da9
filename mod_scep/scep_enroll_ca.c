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
 * Requests an external CA holds in the enrollment engine: the CA backend's
 * ticket is recorded with the held request, and the CA is asked again
 * through the backend's poll() when the ticket's time has come, by a
 * device's CertPoll or by the background round (scep_enroll_poll_ca() in
 * scep_enroll_decide.c), both through scep_enroll_ask_ca(). One process
 * asks at a time: it first claims the poll in the records (compare-and-set
 * of the poll time). Below scep_enroll_decide.c, above scep_enroll_op.c.
 */

#include <apr_strings.h>

#include "scep_enroll_int.h"

/* The wait before the CA is asked again when it gives no advice, and the
 * longest one: a CA's week-long advice would outlast a device's patience,
 * and asking more often than advised costs one question. */
#define CA_RETRY_DEFAULT 60
#define CA_RETRY_MAX 3600

/* How long a claimed poll is left to the process that claimed it: longer
 * than one question to the CA may take (a helper's or a CMP exchange's
 * time limits); a process that dies meanwhile leaves it due again after. */
#define CA_CLAIM_SECONDS 300

/* The next poll time after the CA's advice, in whole seconds (the records
 * keep seconds, and a claim compares the time read). */
static apr_time_t next_poll(int retry_after)
{
    int wait = retry_after <= 0 ? CA_RETRY_DEFAULT : retry_after;

    if (wait > CA_RETRY_MAX) {
        wait = CA_RETRY_MAX;
    }
    return apr_time_from_sec(apr_time_sec(apr_time_now()) + wait);
}

int scep_enroll_ca_wait(apr_time_t when)
{
    return (int)(apr_time_sec(when) - apr_time_sec(apr_time_now()));
}

apr_status_t scep_enroll_ca_ticket(const scep_enroll_env_t *env, const char *transaction_id,
                                   const scep_ca_ticket_t *ticket, scep_txn_t *txn)
{
    if (!ticket->text || !*ticket->text) {
        scep_enroll_log(env, SCEP_LOG_ERR,
                        SCEPLOGNO(247) "transaction %s: the CA holds the request but gave no "
                                       "ticket to ask again with%s",
                        scep_enroll_logged(env->pool, transaction_id),
                        scep_event_text(SCEP_EVENT_FAIL_SUBMIT));
        return APR_EGENERAL;
    }
    txn->ca_ticket = ticket->text;
    txn->ca_backend = env->ca->name;
    txn->ca_poll_at = next_poll(ticket->retry_after);
    return APR_SUCCESS;
}

int scep_enroll_at_ca(const scep_enroll_env_t *env, const scep_txn_t *txn)
{
    return txn->ca_ticket && strcmp(txn->status, SCEP_TXN_PENDING) == 0 && env->ca->poll;
}

apr_status_t scep_enroll_submitted(const scep_enroll_env_t *env, scep_store_t *store,
                                   const scep_txn_t *txn, const scep_ca_ticket_t *ticket)
{
    apr_pool_t *p = env->pool;
    scep_txn_t held = { 0 };
    apr_status_t rv;

    if ((rv = scep_enroll_ca_ticket(env, txn->transaction_id, ticket, &held)) != APR_SUCCESS ||
        (rv = store->hold_at_ca(store, p, txn->transaction_id, held.ca_ticket, held.ca_backend,
                                held.ca_poll_at, txn->decided_by)) != APR_SUCCESS) {
        return rv;
    }
    scep_enroll_log(env, SCEP_LOG_NOTICE,
                    SCEPLOGNO(242) "transaction %s for \"%s\" approved by %s: submitted, the CA "
                                   "holds it (asked again in %d s)",
                    scep_enroll_logged(p, txn->transaction_id), scep_enroll_logged(p, txn->subject),
                    scep_enroll_logged(p, txn->decided_by), scep_enroll_ca_wait(held.ca_poll_at));
    return APR_EINCOMPLETE;
}

/* The CA issued: recorded (by "CA" unless a manager approved it first). */
static apr_status_t record_issued(const scep_enroll_env_t *env, scep_store_t *store,
                                  const scep_txn_t *txn, X509 *cert)
{
    apr_pool_t *p = env->pool;
    const char *serial = scep_serial_hex(p, X509_get0_serialNumber(cert));
    apr_status_t rv = store->record_held_issued(store, p, txn->transaction_id, cert,
                                                txn->decided_by ? NULL : SCEP_DECIDED_BY_CA);

    if (rv == APR_SUCCESS) {
        scep_enroll_log(env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(243) "transaction %s: the CA issued certificate %s for \"%s\"",
                        scep_enroll_logged(p, txn->transaction_id), serial,
                        scep_enroll_logged(p, txn->subject));
    }
    else if (rv == APR_EEXIST) {
        scep_enroll_log(env, SCEP_LOG_WARNING,
                        SCEPLOGNO(248) "transaction %s: the CA issued certificate %s, but the "
                                       "request was decided here meanwhile: not delivered",
                        scep_enroll_logged(p, txn->transaction_id), serial);
    }
    return rv;
}

/* The CA rejected: so is the request, by "CA", with the CA's reason. */
static void record_rejected(const scep_enroll_env_t *env, scep_store_t *store,
                            const scep_txn_t *txn, const scep_problem_t *prob)
{
    apr_pool_t *p = env->pool;

    store->decide(store, p, txn->transaction_id, SCEP_TXN_PENDING, SCEP_TXN_REJECTED,
                  SCEP_DECIDED_BY_CA, prob->text);
    scep_enroll_log(env, SCEP_LOG_WARNING,
                    SCEPLOGNO(244) "transaction %s for \"%s\" rejected by the CA: %s%s",
                    scep_enroll_logged(p, txn->transaction_id), scep_enroll_logged(p, txn->subject),
                    scep_enroll_logged(p, prob->text), scep_event_text(prob->event));
}

/* Still held (a new ticket), or a fault (the same ticket, asked again
 * later): the next poll recorded. */
static void record_waiting(const scep_enroll_env_t *env, scep_store_t *store, const scep_txn_t *txn,
                           const scep_ca_ticket_t *ticket, int fault)
{
    apr_pool_t *p = env->pool;
    apr_time_t at = next_poll(fault ? 0 : ticket->retry_after);
    const char *text = fault || !ticket->text || !*ticket->text ? txn->ca_ticket : ticket->text;

    if (store->hold_at_ca(store, p, txn->transaction_id, text, env->ca->name, at, NULL) !=
        APR_SUCCESS) {
        return; /* decided meanwhile, or logged by the store */
    }
    if (fault) {
        scep_enroll_log(env, SCEP_LOG_WARNING,
                        SCEPLOGNO(246) "transaction %s: the CA could not be asked (see above); "
                                       "asked again in %d s",
                        scep_enroll_logged(p, txn->transaction_id), scep_enroll_ca_wait(at));
        return;
    }
    scep_enroll_log(env, SCEP_LOG_INFO,
                    SCEPLOGNO(245) "transaction %s: the CA still holds the request (asked again "
                                   "in %d s)",
                    scep_enroll_logged(p, txn->transaction_id), scep_enroll_ca_wait(at));
}

/* Asks the CA about txn (claimed) and records its answer. */
static apr_status_t ask_claimed(const scep_enroll_env_t *env, scep_store_t *store,
                                const scep_txn_t *txn, X509 **cert, scep_problem_t *prob)
{
    scep_ca_backend_t *ca = env->ca;
    X509_REQ *csr = scep_enroll_held_csr(env, txn);
    /* the template as it is now; NULL when gone (the CA decides by its own) */
    const scep_template_t *tmpl = scep_template_find(env->conf->templates, txn->template_name);
    scep_ca_ticket_t ticket = { txn->ca_ticket, 0 };
    apr_status_t rv;

    if (!csr) {
        record_waiting(env, store, txn, &ticket, 1);
        return APR_EINCOMPLETE;
    }
    rv = ca->poll(ca, env->pool, csr, tmpl, &ticket, cert, prob);
    if (rv == APR_EAGAIN) {
        /* only another process can ask: the claim goes back, due for it */
        store->hold_at_ca(store, env->pool, txn->transaction_id, txn->ca_ticket, txn->ca_backend,
                          txn->ca_poll_at, NULL);
        return APR_EINCOMPLETE;
    }
    if (rv == APR_SUCCESS) {
        return record_issued(env, store, txn, *cert) == APR_SUCCESS ? APR_SUCCESS : APR_EINCOMPLETE;
    }
    if (rv != APR_EINCOMPLETE && prob->fail_info != SCEP_FAIL_NONE) {
        record_rejected(env, store, txn, prob);
        return APR_EINVAL;
    }
    record_waiting(env, store, txn, &ticket, rv != APR_EINCOMPLETE);
    return APR_EINCOMPLETE;
}

/* 1 when txn's ticket is this backend's: where servers share the records,
 * a ticket means something only to the CA of the backend that made it. */
static int ticket_is_ours(const scep_enroll_env_t *env, const scep_txn_t *txn)
{
    const char *ours = env->ca->name ? env->ca->name : "";

    if (strcmp(txn->ca_backend ? txn->ca_backend : "", ours) == 0) {
        return 1;
    }
    scep_enroll_log(env, SCEP_LOG_DEBUG,
                    SCEPLOGNO(255) "transaction %s: the ticket is held by %s, not by this "
                                   "server's %s: not asked from here",
                    scep_enroll_logged(env->pool, txn->transaction_id),
                    scep_enroll_logged(env->pool, txn->ca_backend),
                    scep_enroll_logged(env->pool, env->ca->name));
    return 0;
}

apr_status_t scep_enroll_ask_ca(const scep_enroll_env_t *env, scep_store_t *store,
                                const scep_txn_t *txn, X509 **cert, scep_problem_t *prob,
                                int *asked)
{
    apr_time_t now = apr_time_now();

    *asked = 0;
    *cert = NULL;
    if (!scep_enroll_at_ca(env, txn) || !ticket_is_ours(env, txn) || txn->ca_poll_at > now ||
        store->claim_ca_poll(store, env->pool, txn->transaction_id, txn->ca_poll_at,
                             apr_time_from_sec(apr_time_sec(now) + CA_CLAIM_SECONDS)) !=
            APR_SUCCESS) {
        return APR_EINCOMPLETE;
    }
    *asked = 1;
    return ask_claimed(env, store, txn, cert, prob);
}
