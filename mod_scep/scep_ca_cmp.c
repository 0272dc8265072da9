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
 * only the context holds). The ticket names that process (its pid and a
 * random instance, for a pid used again), so that another process knows
 * to wait for it while it lives and to submit the request again when it is
 * gone. What the CA issues is checked before it is confirmed (certConf), so
 * that a wrong certificate is refused to the CA too: its key must be the
 * CSR's and it must chain to the configured CA.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "scep_ca_cmp.h"

/* id-it-certProfile (RFC 9483 section 4.1.1): a SEQUENCE OF UTF8String. */
#define CMP_OID_CERT_PROFILE "1.3.6.1.5.5.7.4.21"
#define CMP_TRANSACTION_ID_LEN 16
#define CMP_INSTANCE_LEN 8

/* The transactions this process keeps for poll(). A forked child inherits
 * its parent's table: it knows it is not its own by owner, and forgets it
 * (never uses nor frees the parent's contexts) for a table of its own. */
typedef struct cmp_table_t {
    pid_t owner;                             /* 0: none made yet */
    char instance[2 * CMP_INSTANCE_LEN + 1]; /* random: tells a pid used again */
    apr_pool_t *pool;    /* unmanaged: the hash's, independent of other threads */
    apr_hash_t *waiting; /* transactionID hex -> cmp_waiting_t * */
} cmp_table_t;

typedef struct cmp_ca_t {
    scep_ca_cmp_conf_t conf;
    const char *host;
    int port;
    const char *path;
    X509_STORE *trusted; /* the CMP signer's anchors; NULL with MAC only */
    X509_STORE *issuers; /* conf.ca_cert, for the check of what comes back */
    SSL_CTX *tls;        /* https only: the server verified against conf.tls_ca_file */
    int host_is_ip;      /* no SNI then (RFC 6066) */
    /* Of table. Made with the backend, before Apache forks: a child gets it
     * unlocked, as no thread of the parent polls (it makes no tickets). */
    apr_thread_mutex_t *lock;
    cmp_table_t table;
} cmp_ca_t;

/* A transaction the CA answered "waiting", until poll() ends it or its
 * total timeout passes (OpenSSL would give up on it then anyway). busy
 * while a poll() asks about it (the table's lock is not held meanwhile). */
typedef struct cmp_waiting_t {
    char txid[2 * CMP_TRANSACTION_ID_LEN + 1];
    OSSL_CMP_CTX *ctx;
    apr_time_t next_poll; /* the CA's checkAfter: no exchange before */
    apr_time_t deadline;
    int busy;
} cmp_waiting_t;

/* What a ticket "cmp:<pid>.<instance>:<transactionID hex>" says. */
typedef struct cmp_ticket_t {
    long pid;
    char instance[2 * CMP_INSTANCE_LEN + 1];
    char txid[2 * CMP_TRANSACTION_ID_LEN + 1];
} cmp_ticket_t;

typedef enum { CMP_OWNED_HERE, CMP_OWNED_ELSEWHERE, CMP_OWNER_GONE } cmp_owner_t;

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

/* A TLS layer over a new connection to the https server: its certificate
 * verified against tls_ca_file and its name against the URL's host (SNI
 * for a host name, never for an IP address, RFC 6066). */
static BIO *cmp_tls_push(const cmp_ca_t *cc, BIO *conn)
{
    BIO *tls = BIO_new(BIO_f_ssl());
    SSL *ssl = SSL_new(cc->tls);

    if (!tls || !ssl || !SSL_set1_host(ssl, cc->host) ||
        (!cc->host_is_ip && !SSL_set_tlsext_host_name(ssl, cc->host))) {
        SSL_free(ssl);
        BIO_free(tls);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    BIO_set_ssl(tls, ssl, BIO_CLOSE);
    return BIO_push(tls, conn);
}

/* The TLS layer off again after the exchange; the connection is OpenSSL's
 * HTTP client's to free. A failed close_notify (the peer gone) is no news:
 * the queue keeps what the exchange said. */
static BIO *cmp_tls_pop(BIO *tls)
{
    BIO *conn;

    ERR_set_mark();
    BIO_ssl_shutdown(tls);
    conn = BIO_pop(tls);
    BIO_free(tls);
    ERR_pop_to_mark();
    return conn;
}

/* OpenSSL's HTTP client calls this around each exchange with the server
 * (as apps/cmp.c's app_http_tls_cb): 3.0 has no https of its own. */
static BIO *cmp_tls_cb(BIO *bio, void *arg, int connect, int detail)
{
    (void)detail;
    return connect ? cmp_tls_push(arg, bio) : cmp_tls_pop(bio);
}

/* OpenSSL 3.0 uses https when the callback has an argument. */
static int cmp_set_tls(cmp_ca_t *cc, OSSL_CMP_CTX *ctx)
{
    return !cc->tls ||
           (OSSL_CMP_CTX_set_http_cb(ctx, cmp_tls_cb) && OSSL_CMP_CTX_set_http_cb_arg(ctx, cc));
}

/* A context for an exchange with the CMP server of cc: its address (never
 * through a proxy of the environment: the configured URL is what is
 * verified), the timeouts, our protection, the trust in its answers. NULL
 * on a fault (in OpenSSL's queue). */
static OSSL_CMP_CTX *cmp_base_ctx(cmp_ca_t *cc)
{
    const scep_ca_cmp_conf_t *conf = &cc->conf;
    OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
    int ok;

    ok = ctx && OSSL_CMP_CTX_set_log_cb(ctx, cmp_quiet) &&
         OSSL_CMP_CTX_set1_server(ctx, cc->host) && OSSL_CMP_CTX_set_serverPort(ctx, cc->port) &&
         OSSL_CMP_CTX_set1_serverPath(ctx, cc->path) && OSSL_CMP_CTX_set1_no_proxy(ctx, cc->host) &&
         OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT,
                                 bounded(conf->msg_timeout, SCEP_CA_CMP_MAX_MSG_TIMEOUT)) &&
         OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT,
                                 bounded(conf->total_timeout, SCEP_CA_CMP_MAX_TOTAL_TIMEOUT)) &&
         cmp_set_protection(cc, ctx) && cmp_set_trusted(cc, ctx) && cmp_set_tls(cc, ctx);
    if (!ok) {
        OSSL_CMP_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A context for one p10cr of csr, with a fresh transactionID (its hex in
 * *txid). NULL on a fault (logged). */
static OSSL_CMP_CTX *cmp_new_ctx(cmp_ca_t *cc, apr_pool_t *p, X509_REQ *csr, const char *profile,
                                 const char **txid)
{
    OSSL_CMP_CTX *ctx = cmp_base_ctx(cc);
    unsigned char id[CMP_TRANSACTION_ID_LEN];
    ASN1_OCTET_STRING *tid = ASN1_OCTET_STRING_new();
    int ok;

    ok = ctx && tid && RAND_bytes(id, sizeof(id)) == 1 &&
         ASN1_OCTET_STRING_set(tid, id, sizeof(id)) && OSSL_CMP_CTX_set1_transactionID(ctx, tid) &&
         (!profile || cmp_push_profile(ctx, profile)) && OSSL_CMP_CTX_set1_p10CSR(ctx, csr) &&
         OSSL_CMP_CTX_set_certConf_cb(ctx, cmp_confirm);
    ASN1_OCTET_STRING_free(tid);
    if (!ok) {
        cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR,
                SCEPLOGNO(270) "cannot prepare a CMP request; nothing was sent to the CA");
        scep_log_openssl(cc->conf.log, cc->conf.log_baton, SCEP_LOG_MARK, SCEP_LOG_ERR);
        OSSL_CMP_CTX_free(ctx);
        return NULL;
    }
    *txid = scep_hex(p, id, sizeof(id));
    return ctx;
}

/* The CA's status text when it rejected what (the request, a general
 * message), else NULL. */
static const char *cmp_rejection(apr_pool_t *p, const OSSL_CMP_CTX *ctx, const char *what)
{
    char status[512];

    if (OSSL_CMP_CTX_get_status(ctx) != OSSL_CMP_PKISTATUS_rejection) {
        return NULL;
    }
    return apr_pstrcat(
        p, "the CA rejected the ", what, ": ",
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
            confirm.refusal = cmp_rejection(p, ctx, "request");
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

/* This process's table, made on its first use in this process: a child
 * forked after scep_ca_cmp() forgets its parent's (whose contexts are the
 * parent's to use and free). NULL without memory. With cc->lock held. */
static cmp_table_t *cmp_own_table(cmp_ca_t *cc)
{
    cmp_table_t *t = &cc->table;
    unsigned char instance[CMP_INSTANCE_LEN];
    pid_t pid = getpid();

    if (t->owner == pid) {
        return t;
    }
    memset(t, 0, sizeof(*t));
    if (RAND_bytes(instance, sizeof(instance)) != 1 ||
        apr_pool_create_unmanaged_ex(&t->pool, NULL, NULL) != APR_SUCCESS) {
        ERR_clear_error();
        return NULL;
    }
    t->waiting = apr_hash_make(t->pool);
    apr_cpystrn(t->instance, scep_hex(t->pool, instance, sizeof(instance)), sizeof(t->instance));
    t->owner = pid;
    return t;
}

static void cmp_drop_waiting(cmp_table_t *t, cmp_waiting_t *w)
{
    apr_hash_set(t->waiting, w->txid, APR_HASH_KEY_STRING, NULL);
    cmp_waiting_free(w);
}

static apr_time_t cmp_after(int seconds)
{
    return apr_time_now() + apr_time_from_sec(seconds);
}

/* Keeps the waiting transaction in ctx for poll() and returns its ticket
 * (on p), after dropping the transactions nobody polled in time. NULL
 * without memory (ctx freed). */
static const char *cmp_keep_waiting(cmp_ca_t *cc, apr_pool_t *p, OSSL_CMP_CTX *ctx,
                                    const char *txid, int check_after)
{
    cmp_waiting_t *w = calloc(1, sizeof(*w));
    apr_time_t now = apr_time_now();
    const char *ticket = NULL;
    apr_hash_index_t *hi;
    cmp_table_t *t;

    apr_thread_mutex_lock(cc->lock);
    t = cmp_own_table(cc);
    if (!w || !t) {
        goto leave;
    }
    for (hi = apr_hash_first(NULL, t->waiting); hi; hi = apr_hash_next(hi)) {
        cmp_waiting_t *old = apr_hash_this_val(hi);

        if (!old->busy && old->deadline < now) {
            cmp_drop_waiting(t, old);
        }
    }
    apr_cpystrn(w->txid, txid, sizeof(w->txid));
    w->ctx = ctx;
    w->next_poll = cmp_after(check_after);
    w->deadline = cmp_after(bounded(cc->conf.total_timeout, SCEP_CA_CMP_MAX_TOTAL_TIMEOUT));
    apr_hash_set(t->waiting, w->txid, APR_HASH_KEY_STRING, w);
    ticket = apr_psprintf(p, "cmp:%ld.%s:%s", (long)t->owner, t->instance, txid);
    w = NULL, ctx = NULL; /* the table's */
leave:
    apr_thread_mutex_unlock(cc->lock);
    free(w);
    OSSL_CMP_CTX_free(ctx);
    return ticket;
}

/* The waiting transaction of txid for one poll(): APR_SUCCESS with *w,
 * busy until cmp_release_waiting(); APR_EINCOMPLETE with *wait seconds
 * when the CA's checkAfter has not passed; APR_EAGAIN when a concurrent
 * poll() has it; APR_NOTFOUND when it ended or passed its total timeout (freed). */
static apr_status_t cmp_take_waiting(cmp_ca_t *cc, const char *txid, cmp_waiting_t **w, int *wait)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv = APR_NOTFOUND;
    cmp_waiting_t *found;
    cmp_table_t *t;

    *w = NULL;
    apr_thread_mutex_lock(cc->lock);
    t = cmp_own_table(cc);
    found = t ? apr_hash_get(t->waiting, txid, APR_HASH_KEY_STRING) : NULL;
    if (!found) {
        /* not known here */
    }
    else if (found->busy) {
        rv = APR_EAGAIN; /* another thread asks now */
    }
    else if (found->deadline < now) {
        cmp_drop_waiting(t, found);
    }
    else if (now < found->next_poll) {
        *wait = (int)apr_time_sec(found->next_poll - now + APR_USEC_PER_SEC - 1);
        rv = APR_EINCOMPLETE;
    }
    else {
        found->busy = 1;
        *w = found;
        rv = APR_SUCCESS;
    }
    apr_thread_mutex_unlock(cc->lock);
    return rv;
}

/* After a poll() of w: still waiting, to ask again after check_after
 * seconds, or over (freed). */
static void cmp_release_waiting(cmp_ca_t *cc, cmp_waiting_t *w, int waiting, int check_after)
{
    apr_thread_mutex_lock(cc->lock);
    if (waiting) {
        w->busy = 0;
        w->next_poll = cmp_after(check_after);
    }
    else {
        cmp_drop_waiting(&cc->table, w);
    }
    apr_thread_mutex_unlock(cc->lock);
}

static apr_status_t cmp_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                              const scep_template_t *tmpl, X509 **cert, scep_ca_ticket_t *ticket,
                              scep_problem_t *prob)
{
    cmp_ca_t *cc = ca->baton;
    const char *txid;
    OSSL_CMP_CTX *ctx = cmp_new_ctx(cc, p, csr, tmpl ? tmpl->name : NULL, &txid);
    int check_after;
    apr_status_t rv;

    *cert = NULL;
    if (!ctx) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    rv = cmp_step(cc, p, ctx, csr, &check_after, cert, prob);
    if (rv != APR_EINCOMPLETE) {
        OSSL_CMP_CTX_free(ctx);
        return rv;
    }
    ticket->text = cmp_keep_waiting(cc, p, ctx, txid, check_after);
    if (!ticket->text) {
        cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR,
                SCEPLOGNO(272) "out of memory keeping a request the CA holds");
        return scep_problem(prob, APR_ENOMEM, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    ticket->retry_after = check_after;
    return rv;
}

/* What a ticket "cmp:<pid>.<instance>:<transactionID hex>" names; 0 when
 * it is no ticket of this backend. */
static int cmp_parse_ticket(const char *text, cmp_ticket_t *t)
{
    static const char hex[] = "0123456789ABCDEF"; /* scep_hex()'s */
    const char *at;
    char *end;
    apr_size_t n;

    if (!text || strncmp(text, "cmp:", 4) != 0 || !apr_isdigit(text[4])) {
        return 0;
    }
    errno = 0;
    t->pid = strtol(text + 4, &end, 10);
    if (errno || t->pid <= 0 || t->pid != (pid_t)t->pid || *end != '.') {
        return 0;
    }
    at = end + 1;
    n = strspn(at, hex);
    if (n != sizeof(t->instance) - 1 || at[n] != ':') {
        return 0;
    }
    apr_cpystrn(t->instance, at, n + 1);
    at += n + 1;
    n = strspn(at, hex);
    if (n != sizeof(t->txid) - 1 || at[n] != '\0') {
        return 0;
    }
    apr_cpystrn(t->txid, at, n + 1);
    return 1;
}

/* Who holds the transaction of t: this process; another that lives (kill()
 * may be refused to us: it lives); nobody any more (the process ended, or
 * its pid is ours now, with another instance). */
static cmp_owner_t cmp_owner(cmp_ca_t *cc, const cmp_ticket_t *t)
{
    cmp_table_t *own;
    int same;

    if (t->pid != (long)getpid()) {
        return (kill((pid_t)t->pid, 0) == 0 || errno == EPERM) ? CMP_OWNED_ELSEWHERE
                                                               : CMP_OWNER_GONE;
    }
    apr_thread_mutex_lock(cc->lock);
    own = cmp_own_table(cc);
    same = own && strcmp(own->instance, t->instance) == 0;
    apr_thread_mutex_unlock(cc->lock);
    return same ? CMP_OWNED_HERE : CMP_OWNER_GONE;
}

static apr_status_t cmp_still_waiting(scep_ca_ticket_t *ticket, int seconds, scep_problem_t *prob)
{
    ticket->retry_after = seconds;
    return scep_problem(prob, APR_EINCOMPLETE, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
}

/* A pollReq in the transaction this process holds, unless the CA's
 * checkAfter has not passed yet. */
static apr_status_t cmp_poll_here(cmp_ca_t *cc, apr_pool_t *p, X509_REQ *csr, const char *txid,
                                  scep_ca_ticket_t *ticket, X509 **cert, scep_problem_t *prob)
{
    cmp_waiting_t *w;
    int check_after = 0;
    apr_status_t rv = cmp_take_waiting(cc, txid, &w, &check_after);

    if (rv == APR_EINCOMPLETE) {
        return cmp_still_waiting(ticket, check_after, prob);
    }
    if (rv == APR_EAGAIN) {
        return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    }
    if (rv != APR_SUCCESS) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT,
                            "the CA's transaction of this request is not known to this "
                            "server any more; nothing was issued");
    }
    rv = cmp_step(cc, p, w->ctx, csr, &check_after, cert, prob);
    cmp_release_waiting(cc, w, rv == APR_EINCOMPLETE, check_after);
    if (rv == APR_EINCOMPLETE) {
        ticket->retry_after = check_after;
    }
    return rv;
}

static apr_status_t cmp_poll(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                             const scep_template_t *tmpl, scep_ca_ticket_t *ticket, X509 **cert,
                             scep_problem_t *prob)
{
    cmp_ca_t *cc = ca->baton;
    cmp_ticket_t t;

    *cert = NULL;
    if (!cmp_parse_ticket(ticket->text, &t)) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT,
                            "the CA's ticket of this request is not a CMP transaction of "
                            "this server; nothing was issued");
    }
    switch (cmp_owner(cc, &t)) {
    case CMP_OWNED_HERE:
        return cmp_poll_here(cc, p, csr, t.txid, ticket, cert, prob);
    case CMP_OWNED_ELSEWHERE:
        /* the process that holds it asks: not this one, and not later than it could */
        return scep_problem(prob, APR_EAGAIN, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    case CMP_OWNER_GONE:
    default:
        cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_WARNING,
                apr_psprintf(p,
                             SCEPLOGNO(273) "the CA's CMP transaction %s of this request was lost "
                                            "with the process %ld that held it (a restart?); "
                                            "the request is submitted again",
                             t.txid, t.pid));
        return cmp_issue(ca, p, csr, tmpl, cert, ticket, prob);
    }
}

static apr_status_t cmp_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store,
                            X509_CRL **crl, scep_problem_t *prob)
{
    (void)ca, (void)p, (void)store;
    *crl = NULL;
    return scep_problem(prob, APR_ENOTIMPL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                        "no CRL of the external CA is configured");
}

/* Frees this process's table and the transactions in it; a forked child
 * that made no table of its own has its parent's, which it leaves alone. */
static void cmp_drop_own_table(cmp_ca_t *cc)
{
    apr_hash_index_t *hi;

    apr_thread_mutex_lock(cc->lock);
    if (cc->table.owner == getpid()) {
        for (hi = apr_hash_first(NULL, cc->table.waiting); hi; hi = apr_hash_next(hi)) {
            cmp_waiting_free(apr_hash_this_val(hi));
        }
        apr_pool_destroy(cc->table.pool);
        memset(&cc->table, 0, sizeof(cc->table));
    }
    apr_thread_mutex_unlock(cc->lock);
}

static void cmp_process_exit(scep_ca_backend_t *ca)
{
    cmp_drop_own_table(ca->baton);
}

static apr_status_t cmp_cleanup(void *data)
{
    cmp_ca_t *cc = data;

    cmp_drop_own_table(cc);
    X509_STORE_free(cc->trusted);
    X509_STORE_free(cc->issuers);
    SSL_CTX_free(cc->tls);
    return APR_SUCCESS;
}

/* An https URL needs tls_ca_file, and tls_ca_file an https URL: a
 * configured restriction is never dropped silently. */
static const char *cmp_parse_url(cmp_ca_t *cc, apr_pool_t *p, const char *url)
{
    char *host = NULL, *path = NULL;
    ASN1_OCTET_STRING *ip = NULL;
    int tls = 0;
    const char *err = NULL;

    if (!url || !OSSL_HTTP_parse_url(url, &tls, NULL, &host, NULL, &cc->port, &path, NULL, NULL)) {
        err = "the CMP server URL is not a URL";
    }
    else if (tls && !cc->conf.tls_ca_file) {
        err = "an https CMP server URL needs a TLS CA file to verify the server";
    }
    else if (!tls && cc->conf.tls_ca_file) {
        err = "a TLS CA file is configured but the CMP server URL is not https";
    }
    else {
        cc->host = apr_pstrdup(p, host);
        cc->path = apr_pstrdup(p, path);
        ip = a2i_IPADDRESS(host);
        cc->host_is_ip = ip != NULL;
    }
    ASN1_OCTET_STRING_free(ip);
    OPENSSL_free(host);
    OPENSSL_free(path);
    ERR_clear_error();
    return err;
}

static const char *cmp_load_tls(cmp_ca_t *cc)
{
    cc->tls = SSL_CTX_new(TLS_client_method());
    if (!cc->tls || !SSL_CTX_set_min_proto_version(cc->tls, TLS1_2_VERSION) ||
        SSL_CTX_load_verify_file(cc->tls, cc->conf.tls_ca_file) != 1) {
        return "cannot read the TLS CA file of the https CMP server";
    }
    SSL_CTX_set_verify(cc->tls, SSL_VERIFY_PEER, NULL);
    return NULL;
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
    return conf->tls_ca_file ? cmp_load_tls(cc) : NULL;
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
    ca->process_exit = cmp_process_exit;
    return ca;
}

/* OpenSSL's queue (drained) as one line of its reasons, for whoever asked
 * why: the server's own words among them, escaped. */
static const char *cmp_errors_text(apr_pool_t *p)
{
    const char *text = "", *data;
    unsigned long e;
    int flags;

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *reason = ERR_reason_error_string(e);
        int has_data = (flags & ERR_TXT_STRING) && data && *data;

        text = apr_pstrcat(p, text, *text ? "; " : "", reason ? reason : "unknown error",
                           has_data ? ": " : "", has_data ? data : "", NULL);
    }
    return *text ? scep_escape_text(p, text, 0) : "no reason given";
}

apr_status_t scep_ca_cmp_check(scep_ca_backend_t *ca, apr_pool_t *p, const char **text)
{
    cmp_ca_t *cc = ca->baton;
    OSSL_CMP_CTX *ctx = cmp_base_ctx(cc);
    STACK_OF(OSSL_CMP_ITAV) *itavs = ctx ? OSSL_CMP_exec_GENM_ses(ctx) : NULL;
    const char *where =
        apr_psprintf(p, "%s://%s:%d%s", cc->tls ? "https" : "http", cc->host, cc->port, cc->path);
    apr_status_t rv = APR_SUCCESS;

    if (itavs) {
        *text = apr_psprintf(p,
                             "the CMP server at %s answered a general message with %d "
                             "InfoTypeAndValue(s), protected and trusted as requests need",
                             where, sk_OSSL_CMP_ITAV_num(itavs));
        goto leave;
    }
    *text = ctx ? cmp_rejection(p, ctx, "general message") : NULL;
    if (*text) {
        ERR_clear_error(); /* the queue says it again */
        rv = APR_EINVAL;
    }
    else {
        *text = apr_pstrcat(p, "no usable answer from the CMP server at ", where,
                            " (unreachable, too slow, or not trusted): ", cmp_errors_text(p), NULL);
        rv = APR_EGENERAL;
    }
    cmp_log(cc, SCEP_LOG_MARK, SCEP_LOG_ERR, apr_pstrcat(p, SCEPLOGNO(274), *text, NULL));
leave:
    sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
    OSSL_CMP_CTX_free(ctx);
    return rv;
}
