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
 * SCEPExternalCRL: the external CA's CRL, read from a file (PEM or DER) or
 * fetched as DER from an http:// URL (OpenSSL's HTTP client, bounded in
 * time and size), kept
 * per process and read again when older than SCEPExternalCRLRefresh, on
 * demand, when GetCRL asks. Only a CRL that the core verified against the
 * CA certificate (scep_ext_crl_parse()) is kept; a failed refresh is
 * logged and the last good CRL goes on being served.
 */

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_log.h>

#include <openssl/http.h>

#include "mod_scep_private.h"
#include "scep_ext_crl.h"

/* Largest CRL read, and the longest wait for one download. */
#define EXT_CRL_MAX ((apr_size_t)16 * 1024 * 1024)
#define EXT_CRL_FETCH_TIMEOUT 10
/* After a failed read, the next try waits this long (seconds), so that
 * GetCRLs do not each wait for an unreachable server. */
#define EXT_CRL_RETRY 60

typedef struct mod_scep_ext_crl_t {
    server_rec *s;
    const char *where; /* a file or an http:// URL */
    X509 *ca_cert;
    apr_interval_time_t refresh;
#if APR_HAS_THREADS
    apr_thread_mutex_t *lock;
#endif
    X509_CRL *crl;    /* the last good one (own reference), NULL before */
    apr_time_t read;  /* when crl was read */
    apr_time_t tried; /* the last failed try, 0 none */
} mod_scep_ext_crl_t;

static int is_url(const char *where)
{
    return ap_strstr_c(where, "://") != NULL;
}

/* DER, as RFC 5280 (section 4.2.1.13) has CRLs served over HTTP: OpenSSL's
 * client then reads the whole body into memory within the timeout and the
 * size limit (a body it does not expect as ASN.1 comes back as a stream of
 * the connection, whose reads no timeout bounds). */
static apr_status_t fetch_url(apr_pool_t *p, const char *url, unsigned char **data, apr_size_t *len,
                              const char **why)
{
    BIO *body = OSSL_HTTP_get(url, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, 1,
                              EXT_CRL_MAX, EXT_CRL_FETCH_TIMEOUT);
    char *bytes = NULL;
    long n;

    if (!body) {
        *why = apr_pstrcat(p, "cannot be fetched as DER from ", url, NULL);
        return APR_EGENERAL;
    }
    n = BIO_get_mem_data(body, &bytes);
    *len = n > 0 ? (apr_size_t)n : 0;
    *data = apr_pmemdup(p, bytes, *len);
    BIO_free(body);
    return APR_SUCCESS;
}

/* The CRL now at its place, verified; *why on failure. */
static apr_status_t read_crl(mod_scep_ext_crl_t *ec, apr_pool_t *p, X509_CRL **crl,
                             const char **why)
{
    unsigned char *data = NULL;
    apr_size_t len = 0;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_status_t rv;

    if (is_url(ec->where)) {
        rv = fetch_url(p, ec->where, &data, &len, why);
    }
    else {
        rv = scep_read_file(p, ec->where, EXT_CRL_MAX, (char **)&data, &len, why);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_ext_crl_parse(p, data, len, ec->ca_cert, crl, &prob);
        *why = prob.text;
    }
    return rv;
}

static int is_due(const mod_scep_ext_crl_t *ec, apr_time_t now)
{
    if (ec->tried && now - ec->tried < apr_time_from_sec(EXT_CRL_RETRY)) {
        return 0;
    }
    return !ec->crl || now - ec->read >= ec->refresh;
}

/* Reads the CRL again when due; a failure is logged and keeps the old. */
static void refresh(mod_scep_ext_crl_t *ec, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    const char *why = NULL;
    X509_CRL *fresh = NULL;

    if (!is_due(ec, now)) {
        return;
    }
    if (read_crl(ec, p, &fresh, &why) != APR_SUCCESS) {
        ec->tried = now;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ec->s,
                     SCEPLOGNO(155) SCEP_EXTERNAL_CRL " %s: %s; %s%s", ec->where,
                     why ? why : "unreadable",
                     ec->crl ? "the last good CRL is served" : "no CRL can be served",
                     scep_event_text(SCEP_EVENT_GETCRL_FAILED));
        mod_scep_log_openssl(ec->s, APLOG_ERR);
        return;
    }
    X509_CRL_up_ref(fresh);
    X509_CRL_free(ec->crl);
    ec->crl = fresh;
    ec->read = now;
    ec->tried = 0;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ec->s,
                 SCEPLOGNO(156) SCEP_EXTERNAL_CRL " %s read: %d revoked certificates", ec->where,
                 sk_X509_REVOKED_num(X509_CRL_get_REVOKED(fresh)));
}

/* scep_crl_source_fn of the backends (scep_ca_with_crl()). */
static apr_status_t ext_crl_get(void *baton, apr_pool_t *p, X509_CRL **crl, scep_problem_t *prob)
{
    mod_scep_ext_crl_t *ec = baton;
    apr_status_t rv = APR_SUCCESS;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(ec->lock);
#endif
    refresh(ec, p);
    *crl = ec->crl;
    if (*crl) {
        X509_CRL_up_ref(*crl);
        SCEP_OWN(p, *crl, X509_CRL_free);
    }
    else {
        rv = scep_problem(prob, APR_EGENERAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                          "no verified CRL of the external CA is available now; try again "
                          "later");
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(ec->lock);
#endif
    return rv;
}

/* scep_crl_source_exit_fn: a server process ends without destroying the
 * pool the cache was made on. */
static void free_kept(void *baton)
{
    mod_scep_ext_crl_t *ec = baton;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(ec->lock);
#endif
    X509_CRL_free(ec->crl);
    ec->crl = NULL;
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(ec->lock);
#endif
}

/* The same when Apache (as a single process) destroys that pool. */
static apr_status_t free_kept_cleanup(void *data)
{
    free_kept(data);
    return APR_SUCCESS;
}

scep_ca_backend_t *mod_scep_ext_crl_backend(apr_pool_t *pconf, server_rec *s,
                                            scep_ca_backend_t *inner)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    mod_scep_ext_crl_t *ec;

    if (!conf->external_crl) {
        return scep_ca_with_crl(pconf, inner, NULL, NULL, NULL);
    }
    ec = apr_pcalloc(pconf, sizeof(*ec));
    ec->s = s;
    ec->where = conf->external_crl;
    ec->ca_cert = conf->pki->ca_cert;
    ec->refresh = apr_time_from_sec((apr_time_t)conf->external_crl_refresh_minutes * 60);
#if APR_HAS_THREADS
    apr_thread_mutex_create(&ec->lock, APR_THREAD_MUTEX_DEFAULT, pconf);
#endif
    apr_pool_cleanup_register(pconf, ec, free_kept_cleanup, apr_pool_cleanup_null);
    return scep_ca_with_crl(pconf, inner, ext_crl_get, free_kept, ec);
}
