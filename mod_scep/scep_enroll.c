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
 * The enrollment engine: a parsed pkiMessage goes through policy
 * (challenge password or renewal), the records (replays answer what was
 * answered before), the CA backend, and comes back as an outcome.
 *
 * Every refusal is logged here, one line with the NDES event, and becomes
 * a CertRep FAILURE with failInfo and failInfoText. When the records fail
 * (the store logged why, one line with the NDES event), the answer is a
 * FAILURE too, and nothing issued leaves without its record.
 */

#include <apr_strings.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "scep_challenge.h"
#include "scep_enroll_int.h"

/* ----------------------------------------------------------------------
 * A transaction seen before
 */

/* A device asking again about a certificate issued directly gets it for
 * SCEPCacheRequest minutes, as from NDES's cache; a held request's
 * certificate (one that someone approved: its CSR is gone once issued) is
 * answered whenever its polls come, as NDES asks the CA. */
static int beyond_cache(const scep_enroll_op_t *op, const scep_txn_t *txn)
{
    apr_time_t cache = apr_time_from_sec((apr_time_t)op->conf->cache_request_minutes * 60);

    return !txn->decided_by && txn->updated + cache < apr_time_now();
}

static void answer_issued(scep_enroll_op_t *op, const scep_txn_t *txn)
{
    X509 *cert;

    op->outcome->repeated = 1;
    if (beyond_cache(op, txn)) {
        scep_enroll_refuse(op, SCEPLOGNO(216), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NONE,
                           apr_psprintf(op->p,
                                        "the transaction was completed more than %d minutes "
                                        "ago (SCEPCacheRequest); GetCert with serial number %s "
                                        "returns its certificate",
                                        op->conf->cache_request_minutes, txn->serial));
        return;
    }
    if (!(cert = scep_enroll_cert_from_pem(op->p, txn->cert_pem))) {
        scep_enroll_fault(op);
        return;
    }
    scep_enroll_log(op->env, SCEP_LOG_INFO,
                    SCEPLOGNO(204) "transaction %s: answering with certificate %s",
                    txn->transaction_id, txn->serial);
    scep_enroll_succeed(op, cert);
}

/* An approved request (scepctl approve) is issued when its device asks. */
static void answer_approved(scep_enroll_op_t *op, scep_store_t *store, const scep_txn_t *txn)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_txn_t *now;
    X509 *cert;

    switch (scep_enroll_issue_held_request(op->env, store, txn, NULL, &cert, &prob)) {
    case APR_SUCCESS:
        scep_enroll_log(op->env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(217) "transaction %s: issued certificate for \"%s\", approved "
                                       "by %s",
                        txn->transaction_id, scep_enroll_logged(op->p, txn->subject),
                        scep_enroll_logged(op->p, txn->decided_by));
        scep_enroll_succeed(op, cert);
        return;
    case APR_EINVAL:
        store->decide(store, op->p, txn->transaction_id, SCEP_TXN_APPROVED, SCEP_TXN_REJECTED,
                      txn->decided_by, prob.text);
        scep_enroll_refuse(op, SCEPLOGNO(218), prob.fail_info, prob.event, prob.text);
        return;
    case APR_EINCOMPLETE:
        /* submitted now: the CA holds it (scep_enroll_submitted() logged);
         * held since it first came */
        op->outcome->kind = SCEP_OUTCOME_HELD;
        op->outcome->repeated = 1;
        return;
    case APR_EEXIST:
        /* A concurrent poll issued it first. */
        if (store->find_transaction(store, op->p, txn->transaction_id, &now) == APR_SUCCESS) {
            answer_issued(op, now);
            return;
        }
        scep_enroll_refuse_unrecorded(op);
        return;
    default:
        scep_enroll_refuse_unrecorded(op);
        return;
    }
}

/* 1 when recorded is a key id of a row from before schema version 3 (the
 * digest of the key bits alone) and names these bits. */
static int bits_id_is(const char *recorded, const char *bits_id)
{
    apr_size_t prefix = sizeof(SCEP_KEY_ID_BITS_PREFIX) - 1;

    return recorded && strncmp(recorded, SCEP_KEY_ID_BITS_PREFIX, prefix) == 0 &&
           strcmp(recorded + prefix, bits_id) == 0;
}

/* A row from before schema version 3 knows its keys by their bits alone,
 * which a key with other domain parameters around the same bits shares.
 * A held request keeps its CSR, whose whole SPKI then decides; otherwise
 * (a renewal's old key, a directly issued request within SCEPCacheRequest)
 * the bits decide, as they did when the request was recorded. */
static int key_of_older_transaction(apr_pool_t *p, const scep_txn_t *txn, const X509_PUBKEY *key,
                                    const char *id)
{
    const char *bits = scep_key_bits_id(p, key);
    X509_REQ *csr;
    const char *csr_key;

    if (!bits) {
        return 0;
    }
    if (bits_id_is(txn->key_id, bits) && txn->csr_pem) {
        csr = scep_enroll_csr_from_pem(p, txn->csr_pem);
        csr_key = csr ? scep_key_id(p, X509_REQ_get_X509_PUBKEY(csr)) : NULL;
        return csr_key && strcmp(csr_key, id) == 0;
    }
    return bits_id_is(txn->key_id, bits) || bits_id_is(txn->signer_key_id, bits);
}

/* 1 when key is the request's key or its signer's (a renewal's old key):
 * a device polls with either. Keeps another device from picking up a
 * certificate by guessing a transactionID, as messages are signed. The
 * whole SubjectPublicKeyInfo is compared (scep_key_id()). */
static int key_of_transaction(apr_pool_t *p, const scep_txn_t *txn, const X509_PUBKEY *key)
{
    const char *id = scep_key_id(p, key);

    if (!id) {
        return 0;
    }
    return strcmp(txn->key_id, id) == 0 ||
           (txn->signer_key_id && strcmp(txn->signer_key_id, id) == 0) ||
           key_of_older_transaction(p, txn, key, id);
}

/* 1 when a PKCSReq or RenewalReq resends the request recorded under its
 * transactionID (the same CertificationRequestInfo, whatever the signature
 * and nonces around it): only that copy gets the recorded answer. CertPoll
 * carries no CSR; a row from before schema version 3 knows no digest. */
static int same_request(const scep_enroll_op_t *op, const scep_txn_t *txn)
{
    const char *digest;

    if (!op->req->csr || !txn->csr_digest) {
        return 1;
    }
    digest = scep_csr_digest(op->p, op->req->csr);
    return digest && strcmp(digest, txn->csr_digest) == 0;
}

/* A request the CA holds: a CertPoll asks the CA when its poll is due
 * (scep_enroll_ask_ca()), a resent request is answered as held, as one
 * held for a manager. */
static void answer_at_ca(scep_enroll_op_t *op, scep_store_t *store, const scep_txn_t *txn)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert;
    int asked;

    op->outcome->kind = SCEP_OUTCOME_HELD;
    op->outcome->repeated = 1;
    if (op->req->message_type != SCEP_MSG_CERTPOLL) {
        return;
    }
    switch (scep_enroll_ask_ca(op->env, store, txn, &cert, &prob, &asked)) {
    case APR_SUCCESS:
        op->outcome->repeated = 0; /* the CA issued it now */
        scep_enroll_succeed(op, cert);
        return;
    case APR_EINVAL:
        op->outcome->repeated = 0; /* the CA refused it now */
        scep_enroll_refuse(op, SCEPLOGNO(252), prob.fail_info, prob.event, prob.text);
        return;
    default:
        return;
    }
}

/* A transaction seen before answers its current state. */
static void answer_recorded(scep_enroll_op_t *op, scep_store_t *store, scep_txn_t *txn,
                            const X509_PUBKEY *key)
{
    op->outcome->template_name = txn->template_name;
    if (!key_of_transaction(op->p, txn, key)) {
        scep_enroll_refuse(op, SCEPLOGNO(203), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                           "the transactionID is already in use with another key");
    }
    else if (!same_request(op, txn)) {
        scep_enroll_refuse(op, SCEPLOGNO(250), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                           "the transactionID is already in use with another certificate "
                           "request (subject, names, extensions or key): a new request needs a "
                           "new transactionID");
    }
    else if (scep_enroll_held_too_long(op->env, store, txn)) {
        op->outcome->repeated = 1; /* expired: no new refusal of a request */
        scep_enroll_refuse(op, SCEPLOGNO(219), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                           txn->reason);
    }
    else if (strcmp(txn->status, SCEP_TXN_ISSUED) == 0) {
        answer_issued(op, txn);
    }
    else if (scep_enroll_at_ca(op->env, txn)) {
        answer_at_ca(op, store, txn);
    }
    else if (strcmp(txn->status, SCEP_TXN_PENDING) == 0) {
        op->outcome->kind = SCEP_OUTCOME_HELD;
        op->outcome->repeated = 1;
    }
    else if (strcmp(txn->status, SCEP_TXN_APPROVED) == 0) {
        answer_approved(op, store, txn);
    }
    else {
        op->outcome->repeated = 1; /* rejected or expired before */
        scep_enroll_refuse(op, SCEPLOGNO(205), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                           txn->reason ? txn->reason : "the request was rejected");
    }
}

/* After a concurrent copy of this request recorded the transaction first:
 * answer what it recorded. */
static void answer_concurrent(scep_enroll_op_t *op, scep_store_t *store)
{
    scep_txn_t *recorded;

    if (store->find_transaction(store, op->p, op->req->transaction_id, &recorded) != APR_SUCCESS) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    answer_recorded(op, store, recorded, X509_REQ_get_X509_PUBKEY(op->req->csr));
}

/* ----------------------------------------------------------------------
 * A new request
 */

/* Who spends a one-time password: this transaction with this key. The
 * same message again passes the password check, so a device whose worker
 * died before the certificate was recorded gets it on its retry. */
static const char *spender_of(const scep_enroll_op_t *op)
{
    return apr_pstrcat(op->p, op->req->transaction_id, "|",
                       scep_key_id(op->p, X509_REQ_get_X509_PUBKEY(op->req->csr)), NULL);
}

/* NDES's choice of template by the CSR's keyUsage (white paper, "The
 * Enrollment Process", step 5): 0x80 signature, 0x20 encryption, 0xa0
 * general purpose; no keyUsage is read as both (event 39). Other values
 * are read by those two bits alone, so a keyUsage with neither (such as
 * keyAgreement only) gets the general-purpose template too. */
static const char *template_name_for(const scep_enroll_op_t *op, int key_usage)
{
    int sign = key_usage >= 0 && (key_usage & X509v3_KU_DIGITAL_SIGNATURE);
    int encrypt = key_usage >= 0 && (key_usage & X509v3_KU_KEY_ENCIPHERMENT);

    if (sign && !encrypt) {
        return op->conf->signature_template;
    }
    if (encrypt && !sign) {
        return op->conf->encryption_template;
    }
    return op->conf->general_purpose_template;
}

/* Chooses the template by the CSR's keyUsage (op->tmpl), without a word
 * in the log yet (template_passes() says it once the challenge passed, so
 * that a refusal keeps its one line): 1 when chosen, 0 when the outcome is
 * decided (a fault). */
static int template_chosen(scep_enroll_op_t *op)
{
    const char *name = template_name_for(op, scep_csr_key_usage(op->req->csr));

    op->tmpl = scep_template_find(op->conf->templates, name);
    if (!op->tmpl) {
        /* The startup check makes sure the three templates exist. */
        scep_enroll_log(op->env, SCEP_LOG_ERR,
                        SCEPLOGNO(261) "transaction %s: template %s is not configured",
                        op->req->transaction_id, name);
        scep_enroll_fault(op);
        return 0;
    }
    return 1;
}

/* What the challenge checks are asked about this request. */
static scep_challenge_facts_t challenge_facts(const scep_enroll_op_t *op)
{
    return (scep_challenge_facts_t){
        .csr = op->req->csr,
        .challenge = op->req->challenge,
        .transaction_id = op->req->transaction_id,
        .message_type = scep_enroll_message_type_name(op->req->message_type),
        .template_name = op->tmpl->name,
        .client_addr = op->env->client_addr,
        .key_usage = scep_csr_key_usage(op->req->csr),
        .spender = spender_of(op),
    };
}

/* The challenge checked by the template's methods (ChallengeCheck), else
 * the server's: 1 when the request may go on, 0 when the outcome is
 * decided. A refusal is the last method's; a method that could not decide
 * (it logged why) is a fault at once: nothing is issued on a check that was
 * not made. An accepted one-time password is spent here. */
static int challenge_passes(scep_enroll_op_t *op)
{
    const scep_challenge_list_t *list =
        op->tmpl->challenge_checks ? op->tmpl->challenge_checks : op->conf->challenge_checks;
    scep_challenge_facts_t facts = challenge_facts(op);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *decider;

    if (scep_challenge_run(list, op->env->challenge_checks, op->p, &facts, &prob, &decider) ==
        APR_SUCCESS) {
        if (decider) {
            scep_enroll_log(op->env, SCEP_LOG_INFO,
                            SCEPLOGNO(287) "transaction %s: the challenge check %s allowed it",
                            op->req->transaction_id, decider);
        }
        return 1;
    }
    if (prob.fail_info == SCEP_FAIL_NONE) {
        /* a server fault (FAILURE, try again later), named here with the
         * method and the event: the method's own line says why */
        scep_enroll_log(op->env, SCEP_LOG_WARNING,
                        SCEPLOGNO(288) "%s for transaction %s: the challenge check %s could not "
                                       "decide (%s): nothing was issued%s",
                        facts.message_type, op->req->transaction_id, decider,
                        prob.text ? prob.text : "a fault",
                        scep_event_text(SCEP_EVENT_INVALID_PASSWORD));
        scep_enroll_fault(op);
        /* the device learns which check failed it, not why (the log says) */
        op->outcome->problem.text =
            apr_pstrcat(op->p, prob.text ? prob.text : "the challenge could not be checked",
                        "; nothing was issued, try again later", NULL);
        return 0;
    }
    scep_enroll_refuse(op, SCEPLOGNO(201), prob.fail_info, prob.event, prob.text);
    return 0;
}

/* The template chosen, logged; the CSR checked against its policy: 1 when
 * it may be issued, 0 when the outcome is decided (refused). */
static int template_passes(scep_enroll_op_t *op)
{
    int key_usage = scep_csr_key_usage(op->req->csr);
    scep_problem_t prob;

    /* At notice, which httpd logs at any LogLevel: the operator's hint that
     * devices ask for no key usage, as NDES's warning event. */
    if (key_usage < 0) {
        scep_enroll_log(op->env, SCEP_LOG_NOTICE,
                        SCEPLOGNO(260) "transaction %s: the request has no keyUsage, so both the "
                                       "signature and encryption key usages are used: template "
                                       "%s%s",
                        op->req->transaction_id, op->conf->general_purpose_template,
                        scep_event_text(SCEP_EVENT_NO_KEY_USAGE));
    }
    scep_enroll_log(
        op->env, SCEP_LOG_INFO, SCEPLOGNO(262) "transaction %s: keyUsage %s, template %s",
        op->req->transaction_id, key_usage < 0 ? "none" : apr_psprintf(op->p, "0x%02x", key_usage),
        op->tmpl->name);
    if (scep_policy_check(op->p, op->tmpl, op->req->csr, &prob) != APR_SUCCESS) {
        scep_enroll_refuse(op, SCEPLOGNO(263), prob.fail_info, prob.event, prob.text);
        return 0;
    }
    return 1;
}

/* What the records keep of a new request. */
static void describe_request(const scep_enroll_op_t *op, const char *status, scep_txn_t *txn)
{
    apr_pool_t *p = op->p;
    X509_REQ *csr = op->req->csr;

    txn->transaction_id = op->req->transaction_id;
    txn->key_id = scep_key_id(p, X509_REQ_get_X509_PUBKEY(csr));
    txn->signer_key_id = scep_key_id(p, X509_get_X509_PUBKEY(op->req->signer_cert));
    txn->csr_digest = scep_csr_digest(p, csr);
    txn->status = status;
    txn->message_type = op->req->message_type;
    txn->subject = scep_utf8_text(p, scep_name_text(p, X509_REQ_get_subject_name(csr)));
    txn->template_name = op->tmpl ? op->tmpl->name : NULL;
    txn->san = scep_utf8_text(p, scep_csr_san_text(p, csr));
    txn->key_desc = scep_key_desc(p, X509_REQ_get0_pubkey(csr));
    txn->client_addr = op->env->client_addr;
}

/* Records a new request (with its certificate when issued): 1 when
 * recorded; else the outcome is decided: what a concurrent copy of the
 * request recorded first, or the records' refusal. */
static int record_new(scep_enroll_op_t *op, scep_store_t *store, const scep_txn_t *txn, X509 *cert)
{
    apr_status_t rv = store->record(store, op->p, txn, cert);

    if (rv == APR_EEXIST) {
        answer_concurrent(op, store);
    }
    else if (rv != APR_SUCCESS) {
        scep_enroll_refuse_unrecorded(op);
    }
    return rv == APR_SUCCESS;
}

/* A stand-alone CA holds every request, as the white paper says of one;
 * under an enterprise CA the template decides. */
static int must_hold(const scep_enroll_op_t *op)
{
    return op->conf->standalone || op->tmpl->issuance == SCEP_ISSUANCE_MANUAL;
}

/* The CSRs a held request keeps: at rest (without the challenge password,
 * for the manager and the checks, and for the built-in CA to issue from),
 * and for an external CA, which verifies the device's signature when it
 * gets the request again, the device's sealed to the RA encryption
 * certificate. 1 when made; 0 when not (logged). */
static int keep_held_csrs(const scep_enroll_op_t *op, scep_txn_t *txn)
{
    X509_REQ *csr = op->req->csr;

    txn->csr_pem = scep_csr_pem_at_rest(op->p, csr);
    if (!txn->csr_pem) {
        scep_enroll_log_openssl(op->env, SCEP_LOG_ERR);
        return 0;
    }
    if (!op->env->ca->poll) {
        return 1;
    }
    txn->csr_sealed = scep_csr_seal(op->p, csr, op->conf->pki->ra_enc_cert);
    if (!txn->csr_sealed) {
        scep_enroll_log(op->env, SCEP_LOG_ERR,
                        SCEPLOGNO(256) "transaction %s: the device's CSR cannot be sealed to the "
                                       "RA encryption certificate",
                        op->req->transaction_id);
        scep_enroll_log_openssl(op->env, SCEP_LOG_ERR);
        return 0;
    }
    return 1;
}

/* Records the request held: HELD. For a CA manager, or with the ticket
 * of the external CA that holds it (ticket not NULL). */
static void hold(scep_enroll_op_t *op, scep_store_t *store, const scep_ca_ticket_t *ticket)
{
    scep_txn_t txn = { 0 };

    describe_request(op, SCEP_TXN_PENDING, &txn);
    if (!keep_held_csrs(op, &txn)) {
        scep_enroll_fault(op);
        return;
    }
    if (ticket && scep_enroll_ca_ticket(op->env, txn.transaction_id, ticket, &txn) != APR_SUCCESS) {
        scep_enroll_fault(op);
        return;
    }
    if (!record_new(op, store, &txn, NULL)) {
        return;
    }
    op->outcome->kind = SCEP_OUTCOME_HELD;
    if (ticket) {
        scep_enroll_log(op->env, SCEP_LOG_INFO,
                        SCEPLOGNO(241) "transaction %s: request for \"%s\" (template %s) from %s "
                                       "submitted, the CA holds it (asked again in %d s)",
                        txn.transaction_id, scep_enroll_logged(op->p, txn.subject),
                        txn.template_name, txn.client_addr, scep_enroll_ca_wait(txn.ca_poll_at));
        return;
    }
    scep_enroll_log(op->env, SCEP_LOG_NOTICE,
                    SCEPLOGNO(265) "transaction %s: request for \"%s\" (template %s) from %s "
                                   "held for a CA manager's approval",
                    txn.transaction_id, scep_enroll_logged(op->p, txn.subject), txn.template_name,
                    txn.client_addr);
}

static void issue_and_record(scep_enroll_op_t *op, scep_store_t *store)
{
    scep_ca_backend_t *ca = op->env->ca;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_txn_t txn = { 0 };
    scep_ca_ticket_t ticket = { NULL, 0 };
    X509 *cert;
    apr_status_t rv = ca->issue(ca, op->p, op->req->csr, op->tmpl, &cert, &ticket, &prob);

    if (rv == APR_EINCOMPLETE) {
        hold(op, store, &ticket);
        return;
    }
    if (rv != APR_SUCCESS) {
        if (prob.fail_info == SCEP_FAIL_NONE) {
            scep_enroll_fault(op);
            return;
        }
        scep_enroll_refuse(op, SCEPLOGNO(206), prob.fail_info, prob.event, prob.text);
        return;
    }
    describe_request(op, SCEP_TXN_ISSUED, &txn);
    if (!record_new(op, store, &txn, cert)) {
        return; /* a certificate just made is dropped unseen */
    }
    scep_enroll_log(op->env, SCEP_LOG_INFO,
                    SCEPLOGNO(207) "transaction %s: issued certificate for \"%s\"",
                    txn.transaction_id, scep_enroll_logged(op->p, txn.subject));
    scep_enroll_succeed(op, cert);
}

/* PKCSReq and RenewalReq. */
static void enroll(scep_enroll_op_t *op)
{
    const X509_PUBKEY *key = X509_REQ_get_X509_PUBKEY(op->req->csr);
    int renewal = scep_enroll_is_renewal(op);
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;

    /* A renewal is signed with the old key and may ask for a new one. */
    if (!renewal && !op->req->signer_is_csr_key) {
        scep_enroll_refuse(op, SCEPLOGNO(209), SCEP_FAIL_BAD_MESSAGE_CHECK,
                           SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                           "the message is not signed with the key of the certificate request");
        return;
    }
    if (!(store = scep_enroll_records(op))) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    /* Replays are answered before the challenge is checked: a one-time
     * password is spent by the first copy of a request. */
    rv = store->find_transaction(store, op->p, op->req->transaction_id, &txn);
    if (rv == APR_SUCCESS) {
        answer_recorded(op, store, txn, key);
        return;
    }
    if (rv != APR_NOTFOUND) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    /* The template is chosen first, by keyUsage alone, so that the
     * challenge checks know it; the challenge (a renewal's signer) is
     * checked before the template's policy, as NDES does: a device without
     * a valid challenge learns nothing about the templates. */
    if (!template_chosen(op) ||
        !(renewal ? scep_enroll_renewal_passes(op, store) : challenge_passes(op)) ||
        !template_passes(op)) {
        return;
    }
    if (must_hold(op)) {
        hold(op, store, NULL);
    }
    else {
        issue_and_record(op, store);
    }
}

/* ----------------------------------------------------------------------
 * CertPoll
 */

/* CertPoll: the state of a transaction this server knows. */
static void poll(scep_enroll_op_t *op)
{
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;

    if (!(store = scep_enroll_records(op))) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    rv = store->find_transaction(store, op->p, op->req->transaction_id, &txn);
    if (rv == APR_NOTFOUND) {
        scep_enroll_refuse(op, SCEPLOGNO(210), SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_ID,
                           "no request with this transactionID is known");
        return;
    }
    if (rv != APR_SUCCESS) {
        scep_enroll_refuse_unrecorded(op);
        return;
    }
    answer_recorded(op, store, txn, X509_get_X509_PUBKEY(op->req->signer_cert));
}

static scep_enroll_op_t begin(const scep_enroll_env_t *env, const scep_request_t *req,
                              scep_outcome_t *outcome)
{
    scep_enroll_op_t op = { env, env->pool, env->conf, req, outcome, NULL };

    *outcome = (scep_outcome_t){
        SCEP_OUTCOME_FAULT, NULL, NULL, { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL }, NULL, 0
    };
    return op;
}

void scep_enroll_refuse_unparsed(const scep_enroll_env_t *env, const scep_request_t *req,
                                 const scep_problem_t *prob, scep_outcome_t *outcome)
{
    scep_enroll_op_t op = begin(env, req, outcome);

    /* the problem's text says it; OpenSSL's queue only repeats it in detail */
    scep_enroll_log_openssl(env, SCEP_LOG_DEBUG);
    scep_enroll_refuse(&op, SCEPLOGNO(214), prob->fail_info, prob->event, prob->text);
}

void scep_enroll_message(const scep_enroll_env_t *env, const scep_request_t *req,
                         scep_outcome_t *outcome)
{
    scep_enroll_op_t op = begin(env, req, outcome);

    switch (req->message_type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ:
        enroll(&op);
        if (op.tmpl) {
            outcome->template_name = op.tmpl->name;
        }
        return;
    case SCEP_MSG_CERTPOLL:
        poll(&op);
        return;
    case SCEP_MSG_GETCERT:
        scep_enroll_get_cert(&op);
        return;
    case SCEP_MSG_GETCRL:
        scep_enroll_get_crl(&op);
        return;
    default:
        scep_enroll_refuse(&op, SCEPLOGNO(211), SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_BAD_MESSAGE_TYPE,
                           apr_psprintf(env->pool, "%s is not supported by this server",
                                        scep_enroll_message_type_name(req->message_type)));
        return;
    }
}
