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
 * The CMP CA backend (scep_ca_cmp.h). Each request is one CMP transaction
 * of OpenSSL's client, run with OSSL_CMP_try_certreq() so that a "waiting"
 * answer returns at once: its context is kept in this process under the
 * transactionID until poll() asks again (OpenSSL 3.0 cannot resume a
 * transaction in a new context: the pollReq needs the last nonces, which
 * only the context holds). What the CA issues is checked before it is
 * confirmed (certConf), so that a wrong certificate is refused to the CA
 * too: its key must be the CSR's and it must chain to the configured CA.
 */

#include <stdlib.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include "scep_ca_cmp.h"

/* id-it-certProfile (RFC 9483 section 4.1.1): a SEQUENCE OF UTF8String. */
#define CMP_OID_CERT_PROFILE "1.3.6.1.5.5.7.4.21"
#define CMP_TRANSACTION_ID_LEN 16

typedef struct cmp_ca_t {
    scep_ca_cmp_conf_t conf;
    const char *host;
    int port;
    const char *path;
    X509_STORE *trusted; /* the CMP signer's anchors; NULL with MAC only */
    X509_STORE *issuers; /* conf.ca_cert, for the check of what comes back */
    apr_thread_mutex_t *lock;
    apr_hash_t *waiting; /* transactionID hex -> cmp_waiting_t * */
    apr_pool_t *pool;
} cmp_ca_t;

/* A transaction the CA answered "waiting", until poll() ends it or its
 * total timeout passes (OpenSSL would give up on it then anyway). */
typedef struct cmp_waiting_t {
    char txid[2 * CMP_TRANSACTION_ID_LEN + 1];
    OSSL_CMP_CTX *ctx;
    apr_time_t deadline;
} cmp_waiting_t;

/* What the certConf callback checks against, and why it refused. */
typedef struct cmp_confirm_t {
    cmp_ca_t *cc;
    X509_REQ *csr;
    const char *refusal;
} cmp_confirm_t;

static void cmp_log(const cmp_ca_t *cc, const char *file, int line, int level, const char *msg)
{
    if (cc->conf.log) {
        cc->conf.log(cc->conf.log_baton, file, line, level, msg);
    }
}

/* OpenSSL's CMP client would print its progress on stdout: its errors
 * reach the error queue, which faults drain into the log. */
static int cmp_quiet(const char *func, const char *file, int line, OSSL_CMP_severity level,
                     const char *msg)
{
    (void)func, (void)file, (void)line, (void)level, (void)msg;
    return 1;
}

static int bounded(int seconds, int max)
{
    return (seconds <= 0 || seconds > max) ? max : seconds;
}

/* The certificate the CA returned must be for the CSR's key and issued
 * under the configured CA: anything else is refused to the CA (certConf
 * with a failure) and to the device. */
static const char *cmp_check_cert(cmp_ca_t *cc, X509_REQ *csr, X509 *cert)
{
    X509_STORE_CTX *sctx = NULL;
    const char *why = NULL;

    if (EVP_PKEY_eq(X509_REQ_get0_pubkey(csr), X509_get0_pubkey(cert)) != 1) {
        why = "the CA returned a certificate for another key; nothing was issued";
        goto leave;
    }
    sctx = X509_STORE_CTX_new();
    if (!sctx || !X509_STORE_CTX_init(sctx, cc->issuers, cert, cc->conf.ca_chain) ||
        X509_verify_cert(sctx) != 1) {
        why = "the CA returned a certificate that does not chain to the configured CA; "
              "nothing was issued";
    }
leave:
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return why;
}

static int cmp_confirm(OSSL_CMP_CTX *ctx, X509 *cert, int fail_info, const char **text)
{
    cmp_confirm_t *confirm = OSSL_CMP_CTX_get_certConf_cb_arg(ctx);

    /* OpenSSL's own checks (the key, for one) come first, in fail_info:
     * ours say why for the device. */
    confirm->refusal = cmp_check_cert(confirm->cc, confirm->csr, cert);
    if (!confirm->refusal && fail_info != 0) {
        confirm->refusal = "the CMP client refused the CA's certificate; nothing was issued";
    }
    if (confirm->refusal) {
        *text = confirm->refusal;
        fail_info |= 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
    }
    return fail_info;
}

/* generalInfo id-it-certProfile: the template's name, so that the CA
 * applies its own profile of that name. OpenSSL 3.0 has no helper. */
static int cmp_push_profile(OSSL_CMP_CTX *ctx, const char *name)
{
    ASN1_UTF8STRING *utf8 = ASN1_UTF8STRING_new();
    ASN1_STRING *seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_TYPE *value = ASN1_TYPE_new();
    ASN1_OBJECT *oid = OBJ_txt2obj(CMP_OID_CERT_PROFILE, 1);
    OSSL_CMP_ITAV *itav = NULL;
    unsigned char *der = NULL, *q;
    int len, total, ok = 0;

    if (!utf8 || !seq || !value || !oid || !ASN1_STRING_set(utf8, name, -1) ||
        (len = i2d_ASN1_UTF8STRING(utf8, NULL)) <= 0) {
        goto leave;
    }
    total = ASN1_object_size(1, len, V_ASN1_SEQUENCE);
    der = OPENSSL_malloc(total);
    if (!der) {
        goto leave;
    }
    q = der;
    ASN1_put_object(&q, 1, len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    i2d_ASN1_UTF8STRING(utf8, &q);
    ASN1_STRING_set0(seq, der, total);
    ASN1_TYPE_set(value, V_ASN1_SEQUENCE, seq);
    seq = NULL; /* value owns it */
    itav = OSSL_CMP_ITAV_create(oid, value);
    if (!itav) {
        goto leave;
    }
    oid = NULL, value = NULL; /* itav owns them */
    ok = OSSL_CMP_CTX_push0_geninfo_ITAV(ctx, itav);
    if (ok) {
        itav = NULL;
    }
leave:
    OSSL_CMP_ITAV_free(itav);
    ASN1_OBJECT_free(oid);
    ASN1_TYPE_free(value);
    ASN1_STRING_free(seq);
    ASN1_UTF8STRING_free(utf8);
    return ok;
}

static int cmp_set_protection(const cmp_ca_t *cc, OSSL_CMP_CTX *ctx)
{
    const scep_ca_cmp_conf_t *conf = &cc->conf;

    if (conf->mac_secret) {
        return OSSL_CMP_CTX_set1_referenceValue(ctx, (const unsigned char *)conf->mac_ref,
                                                conf->mac_ref ? (int)strlen(conf->mac_ref) : 0) &&
               OSSL_CMP_CTX_set1_secretValue(ctx, (const unsigned char *)conf->mac_secret,
                                             (int)strlen(conf->mac_secret));
    }
    return OSSL_CMP_CTX_set1_cert(ctx, conf->ra_cert) && OSSL_CMP_CTX_set1_pkey(ctx, conf->ra_key);
}

static int cmp_set_trusted(const cmp_ca_t *cc, OSSL_CMP_CTX *ctx)
{
    if (!cc->trusted) {
        return 1;
    }
    if (!X509_STORE_up_ref(cc->trusted)) {
        return 0;
    }
    if (!OSSL_CMP_CTX_set0_trustedStore(ctx, cc->trusted)) {
        X509_STORE_free(cc->trusted);
        return 0;
    }
    return 1;
}

/* A context for one p10cr of csr, with a fresh transactionID (its hex in
 * *txid). NULL on a fault (logged). */
static OSSL_CMP_CTX *cmp_new_ctx(const cmp_ca_t *cc, apr_pool_t *p, X509_REQ *csr,
                                 const char *profile, const char **txid)
{
    const scep_ca_cmp_conf_t *conf = &cc->conf;
    OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
    unsigned char id[CMP_TRANSACTION_ID_LEN];
    ASN1_OCTET_STRING *tid = ASN1_OCTET_STRING_new();
    int ok;

    ok = ctx && tid && RAND_bytes(id, sizeof(id)) == 1 &&
         ASN1_OCTET_STRING_set(tid, id, sizeof(id)) && OSSL_CMP_CTX_set1_transactionID(ctx, tid) &&
         OSSL_CMP_CTX_set_log_cb(ctx, cmp_quiet) && OSSL_CMP_CTX_set1_server(ctx, cc->host) &&
         OSSL_CMP_CTX_set_serverPort(ctx, cc->port) &&
         OSSL_CMP_CTX_set1_serverPath(ctx, cc->path) &&
         OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT,
                                 bounded(conf->msg_timeout, SCEP_CA_CMP_MAX_MSG_TIMEOUT)) &&
         OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT,
                                 bounded(conf->total_timeout, SCEP_CA_CMP_MAX_TOTAL_TIMEOUT)) &&
         cmp_set_protection(cc, ctx) && cmp_set_trusted(cc, ctx) &&
         (!profile || cmp_push_profile(ctx, profile)) && OSSL_CMP_CTX_set1_p10CSR(ctx, csr) &&
         OSSL_CMP_CTX_set_certConf_cb(ctx, cmp_confirm);
    ASN1_OCTET_STRING_free(tid);
    if (!ok) {
        cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR,
                SCEPLOGNO(270) "cannot prepare a CMP request; nothing was sent to the CA");
        scep_log_openssl(conf->log, conf->log_baton, SCEP_LOG_MARK, SCEP_LOG_ERR);
        OSSL_CMP_CTX_free(ctx);
        return NULL;
    }
    *txid = scep_hex(p, id, sizeof(id));
    return ctx;
}

/* The CA's status text when it rejected the request, else NULL. */
static const char *cmp_rejection(apr_pool_t *p, const OSSL_CMP_CTX *ctx)
{
    char status[512];

    if (OSSL_CMP_CTX_get_status(ctx) != OSSL_CMP_PKISTATUS_rejection) {
        return NULL;
    }
    return apr_pstrcat(
        p, "the CA rejected the request: ",
        OSSL_CMP_CTX_snprint_PKIStatus(ctx, status, sizeof(status)) ? status : "(no status)", NULL);
}

/* One step of the transaction in ctx (the request, or a pollReq when the
 * CA is waiting) and what it means for the device. */
static apr_status_t cmp_step(cmp_ca_t *cc, apr_pool_t *p, OSSL_CMP_CTX *ctx, X509_REQ *csr,
                             int *check_after, X509 **cert, scep_problem_t *prob)
{
    cmp_confirm_t confirm = { cc, csr, NULL };
    int res;

    *cert = NULL;
    *check_after = 0;
    OSSL_CMP_CTX_set_certConf_cb_arg(ctx, &confirm);
    res = OSSL_CMP_try_certreq(ctx, OSSL_CMP_P10CR, NULL, check_after);
    OSSL_CMP_CTX_set_certConf_cb_arg(ctx, NULL);
    if (res == 1) {
        *cert = X509_dup(OSSL_CMP_CTX_get0_newCert(ctx));
        if (*cert) {
            SCEP_OWN(p, *cert, X509_free);
            return APR_SUCCESS;
        }
    }
    else if (res == -1) {
        return scep_problem(prob, APR_EINCOMPLETE, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    else {
        if (!confirm.refusal) {
            confirm.refusal = cmp_rejection(p, ctx);
        }
        if (confirm.refusal) {
            /* the CA's answer or ours, not a fault: OpenSSL's queue says it again */
            ERR_clear_error();
            return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT,
                                confirm.refusal);
        }
    }
    cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR,
            apr_psprintf(p,
                         SCEPLOGNO(271) "no usable answer from the CMP server at %s:%d%s "
                                        "(unreachable, too slow, or not trusted)",
                         cc->host, cc->port, cc->path));
    scep_log_openssl(cc->conf.log, cc->conf.log_baton, SCEP_LOG_MARK, SCEP_LOG_ERR);
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
}

static void cmp_waiting_free(cmp_waiting_t *w)
{
    OSSL_CMP_CTX_free(w->ctx);
    free(w);
}

/* Keeps w for poll(), and drops the transactions nobody polled in time. */
static void cmp_keep_waiting(cmp_ca_t *cc, cmp_waiting_t *w)
{
    apr_time_t now = apr_time_now();
    apr_hash_index_t *hi;

    apr_thread_mutex_lock(cc->lock);
    for (hi = apr_hash_first(NULL, cc->waiting); hi; hi = apr_hash_next(hi)) {
        cmp_waiting_t *old = apr_hash_this_val(hi);

        if (old->deadline < now) {
            apr_hash_set(cc->waiting, old->txid, APR_HASH_KEY_STRING, NULL);
            cmp_waiting_free(old);
        }
    }
    apr_hash_set(cc->waiting, w->txid, APR_HASH_KEY_STRING, w);
    apr_thread_mutex_unlock(cc->lock);
}

/* The waiting transaction of txid, taken out so that one poll at a time
 * uses it; NULL when unknown here or past its total timeout. */
static cmp_waiting_t *cmp_take_waiting(cmp_ca_t *cc, const char *txid)
{
    cmp_waiting_t *w;

    apr_thread_mutex_lock(cc->lock);
    w = apr_hash_get(cc->waiting, txid, APR_HASH_KEY_STRING);
    if (w) {
        apr_hash_set(cc->waiting, txid, APR_HASH_KEY_STRING, NULL);
    }
    apr_thread_mutex_unlock(cc->lock);
    if (w && w->deadline < apr_time_now()) {
        cmp_waiting_free(w);
        w = NULL;
    }
    return w;
}

/* A waiting transaction (malloc: it outlives the request) or NULL. */
static cmp_waiting_t *cmp_waiting_new(const cmp_ca_t *cc, OSSL_CMP_CTX *ctx, const char *txid)
{
    cmp_waiting_t *w = calloc(1, sizeof(*w));

    if (w) {
        apr_cpystrn(w->txid, txid, sizeof(w->txid));
        w->ctx = ctx;
        w->deadline = apr_time_now() + apr_time_from_sec(bounded(cc->conf.total_timeout,
                                                                 SCEP_CA_CMP_MAX_TOTAL_TIMEOUT));
    }
    return w;
}

static apr_status_t cmp_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                              const scep_template_t *tmpl, X509 **cert, scep_ca_ticket_t *ticket,
                              scep_problem_t *prob)
{
    cmp_ca_t *cc = ca->baton;
    const char *txid;
    OSSL_CMP_CTX *ctx = cmp_new_ctx(cc, p, csr, tmpl ? tmpl->name : NULL, &txid);
    cmp_waiting_t *w;
    int check_after;
    apr_status_t rv;

    *cert = NULL;
    if (!ctx) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    rv = cmp_step(cc, p, ctx, csr, &check_after, cert, prob);
    if (rv == APR_EINCOMPLETE && (w = cmp_waiting_new(cc, ctx, txid)) != NULL) {
        cmp_keep_waiting(cc, w);
        ticket->text = apr_pstrcat(p, "cmp:", txid, NULL);
        ticket->retry_after = check_after;
        return rv;
    }
    OSSL_CMP_CTX_free(ctx);
    if (rv == APR_EINCOMPLETE) {
        cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR,
                SCEPLOGNO(272) "out of memory keeping a request the CA holds");
        return scep_problem(prob, APR_ENOMEM, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    return rv;
}

static apr_status_t cmp_poll(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                             const scep_template_t *tmpl, scep_ca_ticket_t *ticket, X509 **cert,
                             scep_problem_t *prob)
{
    cmp_ca_t *cc = ca->baton;
    cmp_waiting_t *w = NULL;
    int check_after;
    apr_status_t rv;

    *cert = NULL;
    (void)tmpl;
    if (strncmp(ticket->text, "cmp:", 4) == 0) {
        w = cmp_take_waiting(cc, ticket->text + 4);
    }
    if (!w) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT,
                            "the CA's transaction of this request is not known to this "
                            "server any more; nothing was issued");
    }
    rv = cmp_step(cc, p, w->ctx, csr, &check_after, cert, prob);
    if (rv == APR_EINCOMPLETE) {
        cmp_keep_waiting(cc, w);
        ticket->retry_after = check_after;
        return rv;
    }
    cmp_waiting_free(w);
    return rv;
}

static apr_status_t cmp_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store,
                            X509_CRL **crl, scep_problem_t *prob)
{
    (void)ca, (void)p, (void)store;
    *crl = NULL;
    return scep_problem(prob, APR_ENOTIMPL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                        "no CRL of the external CA is configured");
}

static apr_status_t cmp_cleanup(void *data)
{
    cmp_ca_t *cc = data;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, cc->waiting); hi; hi = apr_hash_next(hi)) {
        cmp_waiting_free(apr_hash_this_val(hi));
    }
    X509_STORE_free(cc->trusted);
    X509_STORE_free(cc->issuers);
    return APR_SUCCESS;
}

static const char *cmp_parse_url(cmp_ca_t *cc, apr_pool_t *p, const char *url)
{
    char *host = NULL, *path = NULL;
    int tls = 0;
    const char *err = NULL;

    if (!url || !OSSL_HTTP_parse_url(url, &tls, NULL, &host, NULL, &cc->port, &path, NULL, NULL)) {
        err = "the CMP server URL is not a URL";
    }
    else if (tls) {
        err = "https CMP server URLs are not supported yet";
    }
    else {
        cc->host = apr_pstrdup(p, host);
        cc->path = apr_pstrdup(p, path);
    }
    OPENSSL_free(host);
    OPENSSL_free(path);
    ERR_clear_error();
    return err;
}

static const char *cmp_load_stores(cmp_ca_t *cc)
{
    const scep_ca_cmp_conf_t *conf = &cc->conf;

    cc->issuers = X509_STORE_new();
    if (!cc->issuers || !X509_STORE_add_cert(cc->issuers, conf->ca_cert) ||
        !X509_STORE_set_flags(cc->issuers, X509_V_FLAG_PARTIAL_CHAIN)) {
        return "cannot hold the CA certificate";
    }
    if (conf->trust_file) {
        cc->trusted = X509_STORE_new();
        if (!cc->trusted || X509_STORE_load_file(cc->trusted, conf->trust_file) != 1) {
            return "cannot read the CMP server's trust anchors";
        }
    }
    return NULL;
}

static const char *cmp_check_conf(const scep_ca_cmp_conf_t *conf)
{
    if (!conf->ca_cert) {
        return "the CA certificate is missing";
    }
    if (!conf->mac_secret && (!conf->ra_cert || !conf->ra_key)) {
        return "neither an RA signing certificate and key nor a MAC secret is configured";
    }
    if (!conf->mac_secret && !conf->trust_file) {
        return "signature protection needs trust anchors for the CMP server";
    }
    return NULL;
}

scep_ca_backend_t *scep_ca_cmp(apr_pool_t *p, const scep_ca_cmp_conf_t *conf, const char **err)
{
    scep_ca_backend_t *ca;
    cmp_ca_t *cc;

    *err = cmp_check_conf(conf);
    if (*err) {
        return NULL;
    }
    cc = apr_pcalloc(p, sizeof(*cc));
    cc->conf = *conf;
    cc->pool = p;
    cc->waiting = apr_hash_make(p);
    if (apr_thread_mutex_create(&cc->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        *err = "cannot create the lock of waiting requests";
        return NULL;
    }
    apr_pool_cleanup_register(p, cc, cmp_cleanup, apr_pool_cleanup_null);
    *err = cmp_parse_url(cc, p, conf->server_url);
    if (!*err) {
        *err = cmp_load_stores(cc);
    }
    if (*err) {
        ERR_clear_error();
        return NULL;
    }
    ca = apr_pcalloc(p, sizeof(*ca));
    ca->baton = cc;
    ca->issue = cmp_issue;
    ca->crl = cmp_crl;
    ca->poll = cmp_poll;
    return ca;
}

apr_status_t scep_ca_cmp_check(scep_ca_backend_t *ca, apr_pool_t *p, const char **text)
{
    (void)ca;
    *text = apr_pstrdup(p, "not implemented yet");
    return APR_ENOTIMPL;
}
