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
 * What one message's way through the engine is made of, for the engine's
 * files (scep_enroll_int.h): its log lines, its refusals and outcomes, its
 * records, and the PEM the records keep. The bottom layer of the engine:
 * it uses none of the engine's other files.
 */

#include <stdarg.h>

#include <apr_strings.h>

#include <openssl/pem.h>

#include "scep_enroll_int.h"

const char *scep_enroll_message_type_name(int type)
{
    const char *name = scep_message_type_name(type);

    return name ? name : "unknown message type";
}

void scep_enroll_log_at(const scep_enroll_env_t *env, const char *file, int line, int level,
                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    env->log(env->log_baton, file, line, level, apr_pvsprintf(env->pool, fmt, ap));
    va_end(ap);
}

const char *scep_enroll_logged(apr_pool_t *p, const char *text)
{
    return text ? scep_escape_text(p, text, 0) : "-";
}

void scep_enroll_refuse_at(scep_enroll_op_t *op, const char *file, int line, const char *tag,
                           scep_fail_info_t fail_info, int event, const char *text)
{
    scep_enroll_log_at(op->env, file, line, SCEP_LOG_WARNING,
                       "%s%s for transaction %s refused: %s%s", tag,
                       scep_enroll_message_type_name(op->req->message_type),
                       op->req->transaction_id, text, scep_event_text(event));
    scep_enroll_log_openssl(op->env, SCEP_LOG_WARNING);
    op->outcome->kind = SCEP_OUTCOME_REFUSED;
    op->outcome->problem = (scep_problem_t){ fail_info, event, text };
}

void scep_enroll_refuse_unrecorded(scep_enroll_op_t *op)
{
    op->outcome->kind = SCEP_OUTCOME_REFUSED;
    op->outcome->problem =
        (scep_problem_t){ SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NONE,
                          "the server's records cannot be reached; nothing was issued, "
                          "try again later" };
}

void scep_enroll_succeed(scep_enroll_op_t *op, X509 *cert)
{
    op->outcome->kind = SCEP_OUTCOME_ISSUED;
    op->outcome->cert = cert;
}

void scep_enroll_fault(scep_enroll_op_t *op)
{
    op->outcome->kind = SCEP_OUTCOME_FAULT;
}

X509 *scep_enroll_cert_from_pem(apr_pool_t *p, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    SCEP_OWN(p, cert, X509_free);
    return cert;
}

X509_REQ *scep_enroll_csr_from_pem(apr_pool_t *p, const char *pem)
{
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509_REQ *csr = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    SCEP_OWN(p, csr, X509_REQ_free);
    return csr;
}

X509_REQ *scep_enroll_held_csr(const scep_enroll_env_t *env, const scep_txn_t *txn)
{
    apr_pool_t *p = env->pool;
    const char *digest;
    X509_REQ *csr;

    if (!txn->csr_sealed) {
        csr = scep_enroll_csr_from_pem(p, txn->csr_pem);
        if (!csr) {
            scep_enroll_log_openssl(env, SCEP_LOG_ERR);
        }
        return csr;
    }
    csr = scep_csr_unseal(p, txn->csr_sealed, env->conf->pki->ra_enc_key);
    if (!csr) {
        scep_enroll_log(env, SCEP_LOG_ERR,
                        SCEPLOGNO(253) "transaction %s: the device's sealed CSR does not open "
                                       "with the RA encryption key (replaced since the request "
                                       "came?): not given to the CA; the request stays held "
                                       "until a CA manager denies it or it expires",
                        scep_enroll_logged(p, txn->transaction_id));
        scep_enroll_log_openssl(env, SCEP_LOG_ERR);
        return NULL;
    }
    /* a sealed copy moved from another row would be another request */
    digest = scep_csr_digest(p, csr);
    if (!digest || !txn->csr_digest || strcmp(digest, txn->csr_digest) != 0) {
        scep_enroll_log(env, SCEP_LOG_ERR,
                        SCEPLOGNO(254) "transaction %s: the device's sealed CSR is not the "
                                       "recorded request's: not given to the CA",
                        scep_enroll_logged(p, txn->transaction_id));
        return NULL;
    }
    return csr;
}

scep_store_t *scep_enroll_records(const scep_enroll_op_t *op)
{
    return op->env->records(op->env->records_baton);
}

/* The issued certificate, then the CA and its chain. */
static STACK_OF(X509) *issued_certs(apr_pool_t *p, const scep_pki_t *pki, int include_chain,
                                    X509 *cert)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    int i;

    SCEP_OWN(p, certs, OPENSSL_sk_free);
    sk_X509_push(certs, cert);
    if (include_chain) {
        sk_X509_push(certs, pki->ca_cert);
        for (i = 0; i < sk_X509_num(pki->chain); i++) {
            sk_X509_push(certs, sk_X509_value(pki->chain, i));
        }
    }
    return certs;
}

void scep_enroll_reply(apr_pool_t *p, const scep_pki_t *pki, int include_chain,
                       const scep_outcome_t *outcome, scep_reply_t *reply)
{
    *reply = (scep_reply_t){ SCEP_STATUS_FAILURE, SCEP_FAIL_BAD_REQUEST, NULL, NULL, NULL };
    switch (outcome->kind) {
    case SCEP_OUTCOME_ISSUED:
        reply->status = SCEP_STATUS_SUCCESS;
        reply->certs = outcome->cert ? issued_certs(p, pki, include_chain, outcome->cert) : NULL;
        reply->crl = outcome->crl;
        break;
    case SCEP_OUTCOME_HELD:
        reply->status = SCEP_STATUS_PENDING;
        break;
    case SCEP_OUTCOME_REFUSED:
        reply->fail_info = outcome->problem.fail_info;
        reply->fail_text = outcome->problem.text;
        break;
    case SCEP_OUTCOME_FAULT:
        reply->fail_text = outcome->problem.text
                               ? outcome->problem.text
                               : "the server could not complete this request (its log says why); "
                                 "nothing was issued, try again later";
        break;
    }
}
