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
 * PKIOperation: a parsed pkiMessage goes through policy (challenge
 * password), the records (replays answer what was answered before), the
 * built-in CA, and comes back as a CertRep.
 *
 * Once a message is parsed far enough to know its transactionID, every
 * refusal is a signed CertRep FAILURE with failInfo and failInfoText, and an
 * error-log line with the NDES event. HTTP errors are left for messages that
 * cannot be read at all and for server faults. When the records fail (the
 * store logged why, one line with the NDES event), the answer is a FAILURE
 * too, and nothing issued leaves without its record.
 */

#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "mod_scep_private.h"
#include "scep_x509.h"

typedef struct pkiop_t {
    request_rec *r;
    const mod_scep_srv_conf_t *conf;
    scep_request_t *req;
    scep_reply_t reply;
    const scep_template_t *tmpl; /* the certificate template of an enrollment */
} pkiop_t;

static const char *message_type_name(int type)
{
    switch (type) {
    case SCEP_MSG_PKCSREQ:
        return "PKCSReq";
    case SCEP_MSG_RENEWALREQ:
        return "RenewalReq";
    case SCEP_MSG_CERTPOLL:
        return "CertPoll";
    case SCEP_MSG_GETCERT:
        return "GetCert";
    case SCEP_MSG_GETCRL:
        return "GetCRL";
    default:
        return "unknown message type";
    }
}

/* A name or other text of a device's for a log line: httpd escapes the
 * line again, but not every error log does (a build with
 * AP_UNSAFE_ERROR_LOG_UNESCAPED, a provider of its own), and the text
 * reads the same as in scepctl's lists and on the manager page. */
static const char *logged(apr_pool_t *p, const char *text)
{
    return text ? scep_escape_text(p, text, 0) : "-";
}

/* Answers FAILURE and says why in the log, under the caller's tag. */
static void refuse(pkiop_t *op, int logno, scep_fail_info_t fail_info, int event, const char *text)
{
    scep_problem_t logged = { fail_info, event,
                              apr_psprintf(op->r->pool, "%s for transaction %s refused: %s",
                                           message_type_name(op->req->message_type),
                                           op->req->transaction_id, text) };

    /* Bare numbers until the engine (issue 12) writes literal tags here. */
    mod_scep_log_problem(op->r, APLOG_WARNING, apr_psprintf(op->r->pool, "SCEP%03d: ", logno),
                         &logged);
    op->reply.status = SCEP_STATUS_FAILURE;
    op->reply.fail_info = fail_info;
    op->reply.fail_text = text;
}

/* The records failed: the store (or mod_scep_store_dbd()) logged it with
 * the NDES event. A device can try again once they are back. */
static int refuse_unrecorded(pkiop_t *op)
{
    op->reply.status = SCEP_STATUS_FAILURE;
    op->reply.fail_info = SCEP_FAIL_BAD_REQUEST;
    op->reply.fail_text = "the server's records cannot be reached; nothing was issued, "
                          "try again later";
    return OK;
}

static void succeed(pkiop_t *op, X509 *cert)
{
    const scep_pki_t *pki = op->conf->pki;
    STACK_OF(X509) *certs = sk_X509_new_null();
    int i;

    SCEP_OWN(op->r->pool, certs, OPENSSL_sk_free);
    sk_X509_push(certs, cert);
    if (op->conf->certrep_include_chain) {
        sk_X509_push(certs, pki->ca_cert);
        for (i = 0; i < sk_X509_num(pki->chain); i++) {
            sk_X509_push(certs, sk_X509_value(pki->chain, i));
        }
    }
    op->reply.status = SCEP_STATUS_SUCCESS;
    op->reply.certs = certs;
}

/* Who spends a one-time password: this transaction with this key. The
 * same message again passes the password check, so a device whose worker
 * died before the certificate was recorded gets it on its retry. */
static const char *spender_of(const pkiop_t *op)
{
    return apr_pstrcat(op->r->pool, op->req->transaction_id, "|",
                       scep_key_id(op->r->pool, X509_REQ_get_X509_PUBKEY(op->req->csr)), NULL);
}

/* OK when the request may go on, DONE when it is refused (op->reply holds
 * the FAILURE), or an HTTP status on a server fault (logged). A refusal
 * spends nothing; an accepted one-time password is spent here. */
static int check_challenge(pkiop_t *op)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    if (!op->conf->enforce_password) {
        return OK;
    }
    if (mod_scep_password_use(op->r, op->req->challenge, scep_csr_key_usage(op->req->csr),
                              spender_of(op), &prob) == APR_SUCCESS) {
        return OK;
    }
    if (prob.fail_info == SCEP_FAIL_NONE) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    refuse(op, 201, prob.fail_info, prob.event, prob.text);
    return DONE;
}

static X509 *cert_from_pem(apr_pool_t *p, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    SCEP_OWN(p, cert, X509_free);
    return cert;
}

static X509_REQ *csr_from_pem(apr_pool_t *p, const char *pem)
{
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509_REQ *csr = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    SCEP_OWN(p, csr, X509_REQ_free);
    return csr;
}

static apr_time_t refresh_period(const mod_scep_srv_conf_t *conf)
{
    return apr_time_from_sec((apr_time_t)conf->refresh_period_days * 24 * 60 * 60);
}

static const char *expiry_reason(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    return apr_psprintf(p,
                        "the request waited %d days without a CA manager's decision "
                        "(SCEPRefreshPeriod)",
                        conf->refresh_period_days);
}

/* 1 when a held request outlived SCEPRefreshPeriod; it is then marked
 * expired, so that a manager no longer sees it. */
static int held_too_long(request_rec *r, const mod_scep_srv_conf_t *conf, scep_store_t *store,
                         scep_txn_t *txn)
{
    if (strcmp(txn->status, SCEP_TXN_PENDING) != 0 ||
        txn->created + refresh_period(conf) >= apr_time_now()) {
        return 0;
    }
    txn->reason = expiry_reason(r->pool, conf);
    store->decide(store, r->pool, txn->transaction_id, SCEP_TXN_PENDING, SCEP_TXN_EXPIRED, NULL,
                  txn->reason);
    txn->status = SCEP_TXN_EXPIRED;
    return 1;
}

/* Issues the certificate of a held request under the configuration as it
 * is now (the template may have changed since it was held) and records it.
 * APR_EINVAL with prob when it cannot be issued; APR_EEXIST when it was
 * decided meanwhile; APR_EGENERAL on a server fault (logged). */
static apr_status_t issue_held(request_rec *r, const mod_scep_srv_conf_t *conf, scep_store_t *store,
                               const scep_txn_t *txn, const char *who, X509 **cert,
                               scep_problem_t *prob)
{
    X509_REQ *csr = csr_from_pem(r->pool, txn->csr_pem);
    const scep_template_t *tmpl = mod_scep_template_find(conf, txn->template_name);
    scep_issue_opts_t opts = { conf->validity_days, conf->hash_md, tmpl, conf->crl_url };

    *cert = NULL;
    if (!csr) {
        mod_scep_rlog_openssl(r, APLOG_ERR);
        return APR_EGENERAL;
    }
    if (!tmpl) {
        *prob = (scep_problem_t){ SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
                                  apr_psprintf(r->pool, "template %s is no longer configured",
                                               txn->template_name) };
        return APR_EINVAL;
    }
    if (tmpl->validity_days) {
        opts.validity_days = tmpl->validity_days;
    }
    if (scep_policy_check(r->pool, tmpl, csr, prob) != APR_SUCCESS ||
        scep_ca_issue(r->pool, conf->pki, csr, &opts, cert, prob) != APR_SUCCESS) {
        mod_scep_rlog_openssl(r, APLOG_WARNING);
        return APR_EINVAL;
    }
    return store->issue_held(store, r->pool, txn->transaction_id, *cert, who);
}

/* A device asking again about a certificate issued directly gets it for
 * SCEPCacheRequest minutes, as from NDES's cache; a held request's
 * certificate (one that someone approved: its CSR is gone once issued) is
 * answered whenever its polls come, as NDES asks the CA. */
static int beyond_cache(const pkiop_t *op, const scep_txn_t *txn)
{
    apr_time_t cache = apr_time_from_sec((apr_time_t)op->conf->cache_request_minutes * 60);

    return !txn->decided_by && txn->updated + cache < apr_time_now();
}

static int answer_issued(pkiop_t *op, const scep_txn_t *txn)
{
    X509 *cert;

    if (beyond_cache(op, txn)) {
        refuse(op, 216, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NONE,
               apr_psprintf(op->r->pool,
                            "the transaction was completed more than %d minutes "
                            "ago (SCEPCacheRequest); GetCert with serial number %s returns "
                            "its certificate",
                            op->conf->cache_request_minutes, txn->serial));
        return OK;
    }
    cert = cert_from_pem(op->r->pool, txn->cert_pem);
    if (!cert) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, op->r,
                  SCEPLOGNO(204) "transaction %s: answering with certificate %s",
                  txn->transaction_id, txn->serial);
    succeed(op, cert);
    return OK;
}

/* An approved request (scepctl approve) is issued when its device asks. */
static int answer_approved(pkiop_t *op, scep_store_t *store, const scep_txn_t *txn)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_txn_t *now;
    X509 *cert;
    apr_status_t rv = issue_held(op->r, op->conf, store, txn, NULL, &cert, &prob);

    switch (rv) {
    case APR_SUCCESS:
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, op->r,
                      SCEPLOGNO(217) "transaction %s: issued certificate for \"%s\", approved "
                                     "by %s",
                      txn->transaction_id, logged(op->r->pool, txn->subject),
                      ap_escape_logitem(op->r->pool, txn->decided_by));
        succeed(op, cert);
        return OK;
    case APR_EINVAL:
        store->decide(store, op->r->pool, txn->transaction_id, SCEP_TXN_APPROVED, SCEP_TXN_REJECTED,
                      txn->decided_by, prob.text);
        refuse(op, 218, prob.fail_info, prob.event, prob.text);
        return OK;
    case APR_EEXIST:
        /* A concurrent poll issued it first. */
        rv = store->find_transaction(store, op->r->pool, txn->transaction_id, &now);
        return rv == APR_SUCCESS ? answer_issued(op, now) : refuse_unrecorded(op);
    default:
        return refuse_unrecorded(op);
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
        csr = csr_from_pem(p, txn->csr_pem);
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
static int same_request(pkiop_t *op, const scep_txn_t *txn)
{
    const char *digest;

    if (!op->req->csr || !txn->csr_digest) {
        return 1;
    }
    digest = scep_csr_digest(op->r->pool, op->req->csr);
    return digest && strcmp(digest, txn->csr_digest) == 0;
}

/* A transaction seen before answers its current state. */
static int answer_recorded(pkiop_t *op, scep_store_t *store, scep_txn_t *txn,
                           const X509_PUBKEY *key)
{
    if (!key_of_transaction(op->r->pool, txn, key)) {
        refuse(op, 203, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
               "the transactionID is already in use with another key");
        return OK;
    }
    if (!same_request(op, txn)) {
        refuse(op, 250, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
               "the transactionID is already in use with another certificate request "
               "(subject, names, extensions or key): a new request needs a new transactionID");
        return OK;
    }
    if (held_too_long(op->r, op->conf, store, txn)) {
        refuse(op, 219, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ, txn->reason);
        return OK;
    }
    if (strcmp(txn->status, SCEP_TXN_ISSUED) == 0) {
        return answer_issued(op, txn);
    }
    if (strcmp(txn->status, SCEP_TXN_PENDING) == 0) {
        op->reply.status = SCEP_STATUS_PENDING;
        return OK;
    }
    if (strcmp(txn->status, SCEP_TXN_APPROVED) == 0) {
        return answer_approved(op, store, txn);
    }
    refuse(op, 205, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
           txn->reason ? txn->reason : "the request was rejected");
    return OK;
}

/* After a concurrent copy of this request recorded the transaction first:
 * answer what it recorded. */
static int answer_concurrent(pkiop_t *op, scep_store_t *store)
{
    scep_txn_t *recorded;
    apr_status_t rv =
        store->find_transaction(store, op->r->pool, op->req->transaction_id, &recorded);

    return rv == APR_SUCCESS
               ? answer_recorded(op, store, recorded, X509_REQ_get_X509_PUBKEY(op->req->csr))
               : refuse_unrecorded(op);
}

/* What the records keep of a new request. */
static void describe_request(const pkiop_t *op, const char *status, scep_txn_t *txn)
{
    apr_pool_t *p = op->r->pool;

    txn->transaction_id = op->req->transaction_id;
    txn->key_id = scep_key_id(p, X509_REQ_get_X509_PUBKEY(op->req->csr));
    txn->signer_key_id = scep_key_id(p, X509_get_X509_PUBKEY(op->req->signer_cert));
    txn->csr_digest = scep_csr_digest(p, op->req->csr);
    txn->status = status;
    txn->message_type = op->req->message_type;
    txn->subject = scep_utf8_text(p, scep_name_text(p, X509_REQ_get_subject_name(op->req->csr)));
    txn->template_name = op->tmpl ? op->tmpl->name : NULL;
    txn->san = scep_utf8_text(p, scep_csr_san_text(p, op->req->csr));
    txn->key_desc = scep_key_desc(p, X509_REQ_get0_pubkey(op->req->csr));
    txn->client_addr = op->r->useragent_ip;
}

static int issue_and_record(pkiop_t *op, scep_store_t *store)
{
    request_rec *r = op->r;
    scep_issue_opts_t opts = { op->conf->validity_days, op->conf->hash_md, op->tmpl,
                               op->conf->crl_url };
    scep_problem_t prob;
    scep_txn_t txn = { 0 };
    X509 *cert;
    apr_status_t rv;

    if (op->tmpl && op->tmpl->validity_days) {
        opts.validity_days = op->tmpl->validity_days;
    }
    rv = scep_ca_issue(r->pool, op->conf->pki, op->req->csr, &opts, &cert, &prob);
    if (rv != APR_SUCCESS) {
        mod_scep_rlog_openssl(r, APLOG_WARNING);
        refuse(op, 206, prob.fail_info, prob.event, prob.text);
        return OK;
    }
    describe_request(op, SCEP_TXN_ISSUED, &txn);
    rv = store->record(store, r->pool, &txn, cert);
    if (rv == APR_EEXIST) {
        /* The certificate just made is dropped unseen. */
        return answer_concurrent(op, store);
    }
    if (rv != APR_SUCCESS) {
        return refuse_unrecorded(op);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(207) "transaction %s: issued certificate for \"%s\"",
                  txn.transaction_id, logged(r->pool, txn.subject));
    succeed(op, cert);
    return OK;
}

/* A stand-alone CA holds every request, as the white paper says of one;
 * under an enterprise CA the template decides. */
static int must_hold(const pkiop_t *op)
{
    return op->conf->ca_type == SCEP_CA_STANDALONE || op->tmpl->issuance == SCEP_ISSUANCE_MANUAL;
}

/* Records the request for a CA manager and answers PENDING. */
static int hold(pkiop_t *op, scep_store_t *store)
{
    request_rec *r = op->r;
    scep_txn_t txn = { 0 };
    apr_status_t rv;

    describe_request(op, SCEP_TXN_PENDING, &txn);
    /* what approval needs, without the challenge password */
    txn.csr_pem = scep_csr_pem_at_rest(r->pool, op->req->csr);
    if (!txn.csr_pem) {
        mod_scep_rlog_openssl(r, APLOG_ERR);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = store->record(store, r->pool, &txn, NULL);
    if (rv == APR_EEXIST) {
        return answer_concurrent(op, store);
    }
    if (rv != APR_SUCCESS) {
        return refuse_unrecorded(op);
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  SCEPLOGNO(265) "transaction %s: request for \"%s\" (template %s) from %s "
                                 "held for a CA manager's approval",
                  txn.transaction_id, logged(r->pool, txn.subject), txn.template_name,
                  txn.client_addr);
    op->reply.status = SCEP_STATUS_PENDING;
    return OK;
}

/* NDES's choice of template by the CSR's keyUsage (white paper, "The
 * Enrollment Process", step 5): 0x80 signature, 0x20 encryption, 0xa0
 * general purpose; no keyUsage is read as both (event 39). Other values
 * are read by those two bits alone, so a keyUsage with neither (such as
 * keyAgreement only) gets the general-purpose template too. */
static const char *template_name_for(pkiop_t *op, int key_usage)
{
    int sign = key_usage >= 0 && (key_usage & X509v3_KU_DIGITAL_SIGNATURE);
    int encrypt = key_usage >= 0 && (key_usage & X509v3_KU_KEY_ENCIPHERMENT);

    /* At notice, which httpd logs at any LogLevel: the operator's hint that
     * devices ask for no key usage, as NDES's warning event. */
    if (key_usage < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, op->r,
                      SCEPLOGNO(260) "transaction %s: the request has no keyUsage, so both the "
                                     "signature and encryption key usages are used: template "
                                     "%s (NDES event 39)",
                      op->req->transaction_id, op->conf->general_purpose_template);
    }
    if (sign && !encrypt) {
        return op->conf->signature_template;
    }
    if (encrypt && !sign) {
        return op->conf->encryption_template;
    }
    return op->conf->general_purpose_template;
}

/* Chooses the template and checks the CSR against it: OK when the request
 * may be issued, DONE when it is refused (op->reply holds the FAILURE), or
 * an HTTP status on a server fault (logged). */
static int apply_template(pkiop_t *op)
{
    int key_usage = scep_csr_key_usage(op->req->csr);
    const char *name = template_name_for(op, key_usage);
    scep_problem_t prob;

    op->tmpl = mod_scep_template_find(op->conf, name);
    if (!op->tmpl) {
        /* The startup check makes sure the three templates exist. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, op->r,
                      SCEPLOGNO(261) "transaction %s: template %s is not configured",
                      op->req->transaction_id, name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_INFO, 0, op->r, SCEPLOGNO(262) "transaction %s: keyUsage %s, template %s",
        op->req->transaction_id,
        key_usage < 0 ? "none" : apr_psprintf(op->r->pool, "0x%02x", key_usage), op->tmpl->name);
    if (scep_policy_check(op->r->pool, op->tmpl, op->req->csr, &prob) != APR_SUCCESS) {
        refuse(op, 263, prob.fail_info, prob.event, prob.text);
        return DONE;
    }
    return OK;
}

/* A RenewalReq, or a PKCSReq signed by a certificate that names this CA as
 * its issuer and is not self-signed: macOS, Cisco and CertNanny renew that
 * way. Whether the signer really is one of ours is check_renewal()'s job. */
static int is_renewal(const pkiop_t *op)
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
 * request's names. DONE, for check_renewal()'s caller. */
static int refuse_renewal(pkiop_t *op, int logno, scep_fail_info_t fail_info, const char *why)
{
    refuse(op, logno, fail_info, SCEP_EVENT_NO_PASSWORD,
           apr_psprintf(op->r->pool,
                        "renewal without a password: %s; the request must be "
                        "signed by an unexpired, unrevoked certificate of this CA with the "
                        "same subject and subjectAltName",
                        why));
    return DONE;
}

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
 * SCEPDisableRenewalSubjectNameMatch is On. */
static const char *names_differ(pkiop_t *op)
{
    apr_pool_t *p = op->r->pool;
    X509 *signer = op->req->signer_cert;
    STACK_OF(X509_EXTENSION) *requested = X509_REQ_get_extensions(op->req->csr);

    SCEP_OWN(p, requested, free_ext_list);
    if (X509_NAME_cmp(X509_REQ_get_subject_name(op->req->csr), X509_get_subject_name(signer))) {
        return apr_psprintf(p, "the requested subject \"%s\" differs from the signer's \"%s\"",
                            logged(p, scep_name_text(p, X509_REQ_get_subject_name(op->req->csr))),
                            logged(p, scep_name_text(p, X509_get_subject_name(signer))));
    }
    if (strcmp(san_der(p, requested), san_der(p, X509_get0_extensions(signer))) != 0) {
        return "the requested subjectAltName differs from the signer's";
    }
    return NULL;
}

/* Stands in for the challenge of a renewal: OK when the signer certificate
 * is a valid, unrevoked one of this CA whose names the request repeats,
 * DONE when refused, or an HTTP status on a server fault. */
static int check_renewal(pkiop_t *op, scep_store_t *store)
{
    apr_pool_t *p = op->r->pool;
    X509 *signer = op->req->signer_cert;
    STACK_OF(X509) *anchors = sk_X509_new_null();
    const char *serial = scep_serial_hex(p, X509_get0_serialNumber(signer));
    const char *reason, *differ;
    scep_cert_record_t *rec;
    apr_status_t rv;
    int err;

    SCEP_OWN(p, anchors, OPENSSL_sk_free);
    if (!anchors || !serial || !sk_X509_push(anchors, op->conf->pki->ca_cert)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* The CA is the trust anchor even when it is an intermediate. */
    if (scep_x509_verify(signer, anchors, NULL, 1, &err, &reason) != APR_SUCCESS) {
        /* reason says it; OpenSSL's queue only repeats it in detail */
        mod_scep_rlog_openssl(op->r, APLOG_DEBUG);
        return refuse_renewal(op, 236,
                              err == X509_V_ERR_CERT_HAS_EXPIRED ||
                                      err == X509_V_ERR_CERT_NOT_YET_VALID
                                  ? SCEP_FAIL_BAD_REQUEST
                                  : SCEP_FAIL_BAD_MESSAGE_CHECK,
                              apr_psprintf(p,
                                           "the signer certificate %s does not verify "
                                           "against this CA: %s",
                                           serial, reason));
    }
    rv = store->find_cert(store, p, serial, &rec);
    if (rv == APR_NOTFOUND) {
        return refuse_renewal(op, 237, SCEP_FAIL_BAD_REQUEST,
                              apr_psprintf(p,
                                           "the signer certificate %s was not issued "
                                           "through this service",
                                           serial));
    }
    if (rv != APR_SUCCESS) {
        refuse_unrecorded(op);
        return DONE;
    }
    if (rec->revoked_at) {
        return refuse_renewal(op, 238, SCEP_FAIL_BAD_REQUEST,
                              apr_psprintf(p, "the signer certificate %s is revoked", serial));
    }
    if (!op->conf->disable_renewal_subject_match && (differ = names_differ(op))) {
        return refuse_renewal(op, 239, SCEP_FAIL_BAD_REQUEST, differ);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, op->r,
                  SCEPLOGNO(240) "transaction %s: renewal of certificate %s (\"%s\")",
                  op->req->transaction_id, serial,
                  logged(p, scep_name_text(p, X509_get_subject_name(signer))));
    return OK;
}

static int enroll(pkiop_t *op)
{
    const X509_PUBKEY *key = X509_REQ_get_X509_PUBKEY(op->req->csr);
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;
    int renewal = is_renewal(op);
    int status;

    /* A renewal is signed with the old key and may ask for a new one. */
    if (!renewal && !op->req->signer_is_csr_key) {
        refuse(op, 209, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "the message is not signed with the key of the certificate request");
        return OK;
    }
    if (!(store = mod_scep_store_dbd(op->r))) {
        return refuse_unrecorded(op);
    }
    /* Replays are answered before the challenge is checked: a one-time
     * password is spent by the first copy of a request. */
    rv = store->find_transaction(store, op->r->pool, op->req->transaction_id, &txn);
    if (rv == APR_SUCCESS) {
        return answer_recorded(op, store, txn, key);
    }
    if (rv != APR_NOTFOUND) {
        return refuse_unrecorded(op);
    }
    /* The challenge (a renewal's signer) first, as NDES does: a device
     * without a valid password learns nothing about the templates. */
    status = renewal ? check_renewal(op, store) : check_challenge(op);
    if (status == OK) {
        status = apply_template(op);
    }
    if (status != OK) {
        return status == DONE ? OK : status;
    }
    return must_hold(op) ? hold(op, store) : issue_and_record(op, store);
}

/* CertPoll: the state of a transaction this server knows. */
static int poll(pkiop_t *op)
{
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;

    if (!(store = mod_scep_store_dbd(op->r))) {
        return refuse_unrecorded(op);
    }
    rv = store->find_transaction(store, op->r->pool, op->req->transaction_id, &txn);
    if (rv == APR_NOTFOUND) {
        refuse(op, 210, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_ID,
               "no request with this transactionID is known");
        return OK;
    }
    if (rv != APR_SUCCESS) {
        return refuse_unrecorded(op);
    }
    return answer_recorded(op, store, txn, X509_get_X509_PUBKEY(op->req->signer_cert));
}

/* GetCert and GetCRL name a certificate by IssuerAndSerialNumber: only
 * this CA's are known here. 1 when the issuer is this CA. */
static int names_this_ca(pkiop_t *op, int logno)
{
    request_rec *r = op->r;

    if (X509_NAME_cmp(op->req->issuer, X509_get_subject_name(op->conf->pki->ca_cert)) == 0) {
        return 1;
    }
    refuse(op, logno, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_NOMATCH_ISSUERNAME_SERIALNUMBER,
           apr_psprintf(r->pool, "the issuer \"%s\" is not this CA",
                        logged(r->pool, scep_name_text(r->pool, op->req->issuer))));
    return 0;
}

/* GetCert: a certificate this CA issued, revoked or not (its state is the
 * CRL's business), to anyone who asks: certificates are public. */
static int get_cert(pkiop_t *op)
{
    request_rec *r = op->r;
    const char *serial = scep_serial_hex(r->pool, op->req->serial);
    scep_cert_record_t *rec;
    scep_store_t *store;
    X509 *cert;
    apr_status_t rv;

    if (!names_this_ca(op, 230)) {
        return OK;
    }
    if (!serial) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!(store = mod_scep_store_dbd(r))) {
        return refuse_unrecorded(op);
    }
    rv = store->find_cert(store, r->pool, serial, &rec);
    if (rv == APR_NOTFOUND) {
        refuse(
            op, 231, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_CERT_FROM_NUMBER,
            apr_psprintf(r->pool, "this CA issued no certificate with serial number %s", serial));
        return OK;
    }
    if (rv != APR_SUCCESS) {
        return refuse_unrecorded(op);
    }
    if (!(cert = cert_from_pem(r->pool, rec->cert_pem))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(232) "transaction %s: GetCert answered with certificate %s",
                  op->req->transaction_id, serial);
    succeed(op, cert);
    return OK;
}

static int revoked_count(X509_CRL *crl)
{
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);

    return revoked ? sk_X509_REVOKED_num(revoked) : 0; /* none: no list at all */
}

/* GetCRL: the CRL of this CA, whichever of its certificates is named. */
static int get_crl(pkiop_t *op)
{
    request_rec *r = op->r;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_store_t *store;
    X509_CRL *crl;

    if (!names_this_ca(op, 233)) {
        return OK;
    }
    if (!(store = mod_scep_store_dbd(r))) {
        return refuse_unrecorded(op);
    }
    if (mod_scep_crl_current(r, store, &crl, &prob) != APR_SUCCESS) {
        if (!prob.text) {
            /* the records, logged by the store */
            return refuse_unrecorded(op);
        }
        refuse(op, 234, SCEP_FAIL_BAD_REQUEST, prob.event, prob.text);
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(235) "transaction %s: GetCRL answered with %d revoked certificates",
                  op->req->transaction_id, revoked_count(crl));
    op->reply.status = SCEP_STATUS_SUCCESS;
    op->reply.crl = crl;
    return OK;
}

static int dispatch(pkiop_t *op)
{
    switch (op->req->message_type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ:
        return enroll(op);
    case SCEP_MSG_CERTPOLL:
        return poll(op);
    case SCEP_MSG_GETCERT:
        return get_cert(op);
    case SCEP_MSG_GETCRL:
        return get_crl(op);
    default:
        refuse(op, 211, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_BAD_MESSAGE_TYPE,
               apr_psprintf(op->r->pool, "%s is not supported by this server",
                            message_type_name(op->req->message_type)));
        return OK;
    }
}

static int send_certrep(pkiop_t *op)
{
    request_rec *r = op->r;
    unsigned char *der;
    apr_size_t len;
    scep_problem_t prob;

    if (scep_certrep_build(r->pool, op->conf->pki, op->req, &op->reply, &der, &len, &prob) !=
        APR_SUCCESS) {
        mod_scep_log_problem(r, APLOG_ERR, SCEPLOGNO(212), &prob);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return mod_scep_send_body(r, HTTP_OK, "application/x-pki-message", der, len);
}

int mod_scep_pkioperation(request_rec *r, const unsigned char *msg, apr_size_t len)
{
    pkiop_t op = { r, mod_scep_srv_conf(r->server), NULL, { 0 } };
    scep_parse_opts_t opts = { op.conf->allow_legacy, 0 };
    scep_problem_t prob;
    int status;

    if (scep_request_parse(r->pool, op.conf->pki, msg, len, &opts, &op.req, &prob) != APR_SUCCESS) {
        if (!op.req) {
            mod_scep_log_problem(r, APLOG_WARNING, SCEPLOGNO(213), &prob);
            return HTTP_BAD_REQUEST;
        }
        mod_scep_rlog_openssl(r, APLOG_DEBUG);
        refuse(&op, 214, prob.fail_info, prob.event, prob.text);
        return send_certrep(&op);
    }
    if (op.req->legacy_alg) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SCEPLOGNO(215) "transaction %s uses single DES or MD5, which RFC 8894 "
                                     "forbids; accepted because SCEPAllowLegacyAlgorithms is On",
                      op.req->transaction_id);
    }
    status = dispatch(&op);
    /* the reply holds copies: the connection is not needed to send it */
    mod_scep_store_release(r);
    return status == OK ? send_certrep(&op) : status;
}

/* ----------------------------------------------------------------------
 * A CA manager's decisions
 */

/* The held request a manager decides on; APR_EEXIST when it is not held
 * any more. */
static apr_status_t find_held(request_rec *r, scep_store_t *store, const char *transaction_id,
                              scep_txn_t **txn)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    apr_status_t rv = store->find_transaction(store, r->pool, transaction_id, txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (held_too_long(r, conf, store, *txn) || (strcmp((*txn)->status, SCEP_TXN_PENDING) != 0 &&
                                                strcmp((*txn)->status, SCEP_TXN_APPROVED) != 0)) {
        return APR_EEXIST;
    }
    return APR_SUCCESS;
}

apr_status_t mod_scep_approve(request_rec *r, const char *transaction_id, const char *who,
                              scep_problem_t *prob)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    scep_store_t *store = mod_scep_store_dbd(r);
    scep_txn_t *txn;
    X509 *cert;
    apr_status_t rv;

    if (!store) {
        return APR_EGENERAL;
    }
    if ((rv = find_held(r, store, transaction_id, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = issue_held(r, conf, store, txn, who, &cert, prob);
    if (rv == APR_EINVAL) {
        store->decide(store, r->pool, transaction_id, txn->status, SCEP_TXN_REJECTED, who,
                      prob->text);
        mod_scep_log_problem(
            r, APLOG_WARNING, SCEPLOGNO(220),
            &(scep_problem_t){ prob->fail_info, prob->event,
                               apr_psprintf(r->pool,
                                            "transaction %s approved "
                                            "by %s cannot be issued, rejected: "
                                            "%s",
                                            logged(r->pool, transaction_id),
                                            ap_escape_logitem(r->pool, who), prob->text) });
    }
    else if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      SCEPLOGNO(221) "transaction %s approved by %s: certificate %s issued "
                                     "for \"%s\"",
                      logged(r->pool, transaction_id), ap_escape_logitem(r->pool, who),
                      scep_serial_hex(r->pool, X509_get0_serialNumber(cert)),
                      logged(r->pool, txn->subject));
    }
    return rv;
}

apr_status_t mod_scep_deny(request_rec *r, const char *transaction_id, const char *who,
                           const char *reason)
{
    scep_store_t *store = mod_scep_store_dbd(r);
    scep_txn_t *txn;
    apr_status_t rv;

    if (!store) {
        return APR_EGENERAL;
    }
    if ((rv = find_held(r, store, transaction_id, &txn)) != APR_SUCCESS) {
        return rv;
    }
    rv = store->decide(store, r->pool, transaction_id, txn->status, SCEP_TXN_REJECTED, who, reason);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      SCEPLOGNO(222) "transaction %s for \"%s\" denied by %s: %s",
                      logged(r->pool, transaction_id), logged(r->pool, txn->subject),
                      ap_escape_logitem(r->pool, who), ap_escape_logitem(r->pool, reason));
    }
    return rv;
}

apr_status_t mod_scep_expire_pending(request_rec *r, scep_store_t *store)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);

    return store->expire_pending(store, r->pool, apr_time_now() - refresh_period(conf),
                                 expiry_reason(r->pool, conf));
}
