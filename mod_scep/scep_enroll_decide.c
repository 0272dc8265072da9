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
 * Held requests in the enrollment engine: their expiry after
 * SCEPRefreshPeriod, their issuance once approved (at the device's next
 * message after scepctl approve, or at once on the CA manager page), a CA
 * manager's decisions, and the background round over those an external
 * CA holds (its poll step is scep_enroll_ca.c's).
 */

#include <apr_strings.h>

#include "scep_enroll_int.h"

/* Requests the CA holds asked about in one background round, at most. */
#define CA_ROUND_MAX 32

static apr_time_t refresh_period(const scep_enroll_conf_t *conf)
{
    return apr_time_from_sec((apr_time_t)conf->refresh_period_days * 24 * 60 * 60);
}

static const char *expiry_reason(apr_pool_t *p, const scep_enroll_conf_t *conf)
{
    return apr_psprintf(p,
                        "the request waited %d days without a CA manager's decision "
                        "(SCEPRefreshPeriod)",
                        conf->refresh_period_days);
}

int scep_enroll_held_too_long(const scep_enroll_env_t *env, scep_store_t *store, scep_txn_t *txn)
{
    if (strcmp(txn->status, SCEP_TXN_PENDING) != 0 ||
        txn->created + refresh_period(env->conf) >= apr_time_now()) {
        return 0;
    }
    txn->reason = expiry_reason(env->pool, env->conf);
    store->decide(store, env->pool, txn->transaction_id, SCEP_TXN_PENDING, SCEP_TXN_EXPIRED, NULL,
                  txn->reason);
    txn->status = SCEP_TXN_EXPIRED;
    return 1;
}

apr_status_t scep_enroll_issue_held_request(const scep_enroll_env_t *env, scep_store_t *store,
                                            const scep_txn_t *txn, const char *who, X509 **cert,
                                            scep_problem_t *prob)
{
    apr_pool_t *p = env->pool;
    X509_REQ *csr = scep_enroll_held_csr(env, txn);
    const scep_template_t *tmpl = scep_template_find(env->conf->templates, txn->template_name);
    scep_ca_ticket_t ticket = { NULL, 0 };

    *cert = NULL;
    if (!csr) {
        return APR_EGENERAL;
    }
    if (!tmpl) {
        return scep_problem(
            prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
            apr_psprintf(p, "template %s is no longer configured", txn->template_name));
    }
    if (scep_policy_check(p, tmpl, csr, prob) != APR_SUCCESS) {
        scep_enroll_log_openssl(env, SCEP_LOG_WARNING);
        return APR_EINVAL;
    }
    switch (env->ca->issue(env->ca, p, csr, tmpl, cert, &ticket, prob)) {
    case APR_SUCCESS:
        break;
    case APR_EINCOMPLETE:
        return scep_enroll_submitted(env, store, txn, &ticket);
    default:
        /* a refusal is the request's; a fault was logged by the backend */
        return prob->fail_info == SCEP_FAIL_NONE ? APR_EGENERAL : APR_EINVAL;
    }
    return store->record_held_issued(store, p, txn->transaction_id, *cert, who);
}

/* The records for a manager's decision; NULL when they cannot be reached
 * (logged). */
static scep_store_t *records(const scep_enroll_env_t *env)
{
    return env->records(env->records_baton);
}

/* The held request a manager decides on; APR_EEXIST when it is not held
 * any more. */
static apr_status_t find_held(const scep_enroll_env_t *env, scep_store_t *store,
                              const char *transaction_id, scep_txn_t **txn)
{
    apr_status_t rv = store->find_transaction(store, env->pool, transaction_id, txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (scep_enroll_held_too_long(env, store, *txn) ||
        (strcmp((*txn)->status, SCEP_TXN_PENDING) != 0 &&
         strcmp((*txn)->status, SCEP_TXN_APPROVED) != 0)) {
        return APR_EEXIST;
    }
    return APR_SUCCESS;
}

/* The manager's approval that the configuration refuses now: rejected
 * with the reason. */
static void reject_unissuable(const scep_enroll_env_t *env, scep_store_t *store,
                              const scep_txn_t *txn, const char *who, const scep_problem_t *prob)
{
    apr_pool_t *p = env->pool;

    store->decide(store, p, txn->transaction_id, txn->status, SCEP_TXN_REJECTED, who, prob->text);
    scep_enroll_log(env, SCEP_LOG_WARNING,
                    SCEPLOGNO(220) "transaction %s approved by %s cannot be issued, rejected: %s%s",
                    scep_enroll_logged(p, txn->transaction_id), scep_enroll_logged(p, who),
                    prob->text, scep_event_text(prob->event));
    scep_enroll_log_openssl(env, SCEP_LOG_WARNING);
}

apr_status_t scep_enroll_approve(const scep_enroll_env_t *env, const char *transaction_id,
                                 const char *who, scep_problem_t *prob)
{
    apr_pool_t *p = env->pool;
    scep_store_t *store = records(env);
    scep_txn_t *txn;
    X509 *cert;
    apr_status_t rv;

    if (!store) {
        return APR_EGENERAL;
    }
    if ((rv = find_held(env, store, transaction_id, &txn)) != APR_SUCCESS) {
        return rv;
    }
    if (scep_enroll_at_ca(env, txn)) {
        scep_enroll_log(env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(249) "transaction %s: approval by %s refused: the CA holds the "
                                       "request and decides it",
                        scep_enroll_logged(p, transaction_id), scep_enroll_logged(p, who));
        return APR_EBUSY;
    }
    /* who approved, for the log line if the CA holds it (submitted) */
    txn->decided_by = who;
    rv = scep_enroll_issue_held_request(env, store, txn, who, &cert, prob);
    if (rv == APR_EINVAL) {
        reject_unissuable(env, store, txn, who, prob);
    }
    else if (rv == APR_SUCCESS) {
        scep_enroll_log(env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(221) "transaction %s approved by %s: certificate %s issued "
                                       "for \"%s\"",
                        scep_enroll_logged(p, transaction_id), scep_enroll_logged(p, who),
                        scep_serial_hex(p, X509_get0_serialNumber(cert)),
                        scep_enroll_logged(p, txn->subject));
    }
    return rv;
}

apr_status_t scep_enroll_deny(const scep_enroll_env_t *env, const char *transaction_id,
                              const char *who, const char *reason)
{
    apr_pool_t *p = env->pool;
    scep_store_t *store = records(env);
    scep_txn_t *txn;
    apr_status_t rv;

    if (!store) {
        return APR_EGENERAL;
    }
    if ((rv = find_held(env, store, transaction_id, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = store->decide(store, p, transaction_id, txn->status, SCEP_TXN_REJECTED, who, reason);
    if (rv == APR_SUCCESS) {
        scep_enroll_log(env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(222) "transaction %s for \"%s\" denied by %s: %s",
                        scep_enroll_logged(p, transaction_id), scep_enroll_logged(p, txn->subject),
                        scep_enroll_logged(p, who), scep_enroll_logged(p, reason));
    }
    return rv;
}

apr_status_t scep_enroll_expire_pending(const scep_enroll_env_t *env)
{
    scep_store_t *store = records(env);

    if (!store) {
        return APR_EGENERAL;
    }
    return store->expire_pending(store, env->pool, apr_time_now() - refresh_period(env->conf),
                                 expiry_reason(env->pool, env->conf));
}

apr_status_t scep_enroll_poll_ca(const scep_enroll_env_t *env, int *asked)
{
    scep_store_t *store = records(env);
    scep_problem_t prob;
    apr_array_header_t *due;
    scep_txn_t *txn;
    X509 *cert;
    int i, one;

    *asked = 0;
    if (!store) {
        return APR_EGENERAL;
    }
    if (!env->ca->poll) {
        return APR_SUCCESS;
    }
    /* the tickets of this backend: servers sharing the records ask their own */
    if (store->list_ca_due(store, env->pool, env->ca->name, apr_time_now(), CA_ROUND_MAX, &due) !=
        APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < due->nelts; i++) {
        txn = APR_ARRAY_IDX(due, i, scep_txn_t *);
        prob = (scep_problem_t){ SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
        if (!scep_enroll_held_too_long(env, store, txn)) {
            scep_enroll_ask_ca(env, store, txn, &cert, &prob, &one);
            *asked += one;
        }
    }
    return APR_SUCCESS;
}
