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
 * cannot be read at all and for server faults (the records cannot be
 * written: no certificate leaves without its record).
 */

#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "mod_scep_private.h"

typedef struct pkiop_t {
    request_rec *r;
    const mod_scep_srv_conf_t *conf;
    scep_request_t *req;
    scep_reply_t reply;
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

/* Answers FAILURE and says why in the log, under the caller's tag. */
static void refuse(pkiop_t *op, int logno, scep_fail_info_t fail_info, int event, const char *text)
{
    scep_problem_t logged = {fail_info, event,
                             apr_psprintf(op->r->pool, "%s for transaction %s refused: %s",
                                          message_type_name(op->req->message_type),
                                          op->req->transaction_id, text)};

    mod_scep_log_problem(op->r, APLOG_WARNING, logno, &logged);
    op->reply.status = SCEP_STATUS_FAILURE;
    op->reply.fail_info = fail_info;
    op->reply.fail_text = text;
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

/* OK when the request may go on, DONE when it is refused (op->reply holds
 * the FAILURE), or an HTTP status on a server fault (logged). A refusal
 * spends nothing; an accepted one-time password is spent here. */
static int check_challenge(pkiop_t *op)
{
    scep_problem_t prob = {SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL};

    if (!op->conf->enforce_password) {
        return OK;
    }
    if (mod_scep_password_use(op->r, op->req->challenge, scep_csr_key_usage(op->req->csr),
                              &prob) == APR_SUCCESS) {
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

/* A transaction seen before answers what it answered then. The key check
 * keeps another device from picking up a certificate by guessing a
 * transactionID: the message is signed with that key. */
static int answer_recorded(pkiop_t *op, const scep_txn_t *txn, EVP_PKEY *key)
{
    X509 *cert;

    if (strcmp(txn->key_id, scep_key_id(op->r->pool, key)) != 0) {
        refuse(op, 203, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
               "the transactionID is already in use with another key");
    }
    else if (strcmp(txn->status, "issued") == 0) {
        cert = cert_from_pem(op->r->pool, txn->cert_pem);
        if (!cert) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, op->r,
                      SCEPLOGNO(204) "transaction %s: answering again with certificate %s",
                      txn->transaction_id, txn->serial);
        succeed(op, cert);
    }
    else if (strcmp(txn->status, "pending") == 0) {
        op->reply.status = SCEP_STATUS_PENDING;
    }
    else {
        refuse(op, 205, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ,
               txn->reason ? txn->reason : "the request was rejected");
    }
    return OK;
}

static int issue_and_record(pkiop_t *op, scep_store_t *store)
{
    request_rec *r = op->r;
    X509_REQ *csr = op->req->csr;
    scep_issue_opts_t opts = {op->conf->validity_days, op->conf->hash_md};
    scep_problem_t prob;
    scep_txn_t txn = {0}, *recorded;
    X509 *cert;
    apr_status_t rv;

    rv = scep_ca_issue(r->pool, op->conf->pki, csr, &opts, &cert, &prob);
    if (rv != APR_SUCCESS) {
        mod_scep_rlog_openssl(r, APLOG_WARNING);
        refuse(op, 206, prob.fail_info, prob.event, prob.text);
        return OK;
    }
    txn.transaction_id = op->req->transaction_id;
    txn.key_id = scep_key_id(r->pool, X509_REQ_get0_pubkey(csr));
    txn.status = "issued";
    txn.message_type = op->req->message_type;
    txn.subject = scep_name_text(r->pool, X509_get_subject_name(cert));
    rv = store->record_issued(store, r->pool, &txn, cert, r->useragent_ip);
    if (rv == APR_EEXIST) {
        /* The same transaction was recorded by a concurrent copy of this
         * request: the certificate just made is dropped unseen. */
        rv = store->find_transaction(store, r->pool, txn.transaction_id, &recorded);
        return rv == APR_SUCCESS ? answer_recorded(op, recorded, X509_REQ_get0_pubkey(csr))
                                 : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(207) "transaction %s: issued certificate for \"%s\"",
                  txn.transaction_id, txn.subject);
    succeed(op, cert);
    return OK;
}

static scep_store_t *open_store(request_rec *r)
{
    scep_store_t *store = mod_scep_store_dbd(r);

    if (!store) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(208) "no database connection: the request cannot be recorded, "
                                     "refusing to answer it (NDES event 31)");
    }
    return store;
}

static int enroll(pkiop_t *op)
{
    EVP_PKEY *key = X509_REQ_get0_pubkey(op->req->csr);
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;
    int status;

    if (!op->req->signer_is_csr_key) {
        refuse(op, 209, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "the message is not signed with the key of the certificate request");
        return OK;
    }
    if (!(store = open_store(op->r))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Replays are answered before the challenge is checked: a one-time
     * password is spent by the first copy of a request. */
    rv = store->find_transaction(store, op->r->pool, op->req->transaction_id, &txn);
    if (rv == APR_SUCCESS) {
        return answer_recorded(op, txn, key);
    }
    if (rv != APR_NOTFOUND) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    status = check_challenge(op);
    if (status != OK) {
        return status == DONE ? OK : status;
    }
    return issue_and_record(op, store);
}

/* CertPoll: the state of a transaction this server knows. */
static int poll(pkiop_t *op)
{
    scep_store_t *store;
    scep_txn_t *txn;
    apr_status_t rv;

    if (!(store = open_store(op->r))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = store->find_transaction(store, op->r->pool, op->req->transaction_id, &txn);
    if (rv == APR_NOTFOUND) {
        refuse(op, 210, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_ID,
               "no request with this transactionID is known");
        return OK;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return answer_recorded(op, txn, X509_get0_pubkey(op->req->signer_cert));
}

static int dispatch(pkiop_t *op)
{
    switch (op->req->message_type) {
    case SCEP_MSG_PKCSREQ:
        return enroll(op);
    case SCEP_MSG_CERTPOLL:
        return poll(op);
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
        mod_scep_log_problem(r, APLOG_ERR, 212, &prob);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, "application/x-pki-message");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(der, (int)len, r);
    }
    return OK;
}

int mod_scep_pkioperation(request_rec *r, const unsigned char *msg, apr_size_t len)
{
    pkiop_t op = {r, mod_scep_srv_conf(r->server), NULL, {0}};
    scep_parse_opts_t opts = {op.conf->allow_legacy, 0};
    scep_problem_t prob;
    int status;

    if (scep_request_parse(r->pool, op.conf->pki, msg, len, &opts, &op.req, &prob) !=
        APR_SUCCESS) {
        if (!op.req) {
            mod_scep_log_problem(r, APLOG_WARNING, 213, &prob);
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
    return status == OK ? send_certrep(&op) : status;
}
