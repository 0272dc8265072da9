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
 * The webhooks' HTTP client (scep_webhook.h) on libcurl's easy interface.
 * An easy handle keeps the connections it made open for the next transfer
 * on it, so each webhook keeps the handles of this process between posts
 * (a stack under a mutex: the one used last, whose connection is the
 * likeliest to be alive, is taken first). A forked child never takes its
 * parent's handles: their connections are the parent's.
 */

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "scep_algs.h"
#include "scep_webhook.h"

/* Handles kept idle per process: more threads than that posting at once
 * make handles that are freed after their post. */
#define IDLE_HANDLES 8

/* Largest TLS file read at startup (a CA bundle, a certificate chain). */
#define TLS_FILE_MAX ((apr_size_t)4 * 1024 * 1024)

struct scep_webhook_t {
    scep_webhook_conf_t conf;
    const char *shown_url; /* conf.url as log lines show it (shown_url()) */
    /* The TLS files, read at startup (a child runs as a user that may not
     * read a private key's file); len 0: not configured. */
    struct curl_blob ca, cert, key;
    apr_thread_mutex_t *lock;
    pid_t owner; /* the process whose handles idle holds */
    CURL *idle[IDLE_HANDLES];
    int idle_count;
};

/* One post's answer as it arrives, cut at the limit. */
typedef struct answer_buf_t {
    apr_pool_t *p;
    char *data;
    apr_size_t len, cap, limit;
    int too_long;
} answer_buf_t;

static void webhook_log(const scep_webhook_t *wh, const char *file, int line, const char *msg)
{
    if (wh->conf.log) {
        wh->conf.log(wh->conf.log_baton, file, line, SCEP_LOG_ERR, msg);
    }
}

static int host_is_loopback(apr_pool_t *p, const char *host)
{
    static const unsigned char v6_loopback[16] = { [15] = 1 };
    unsigned char addr[16];
    apr_size_t len = strlen(host);

    if (strcasecmp(host, "localhost") == 0) {
        return 1;
    }
    if (inet_pton(AF_INET, host, addr) == 1) {
        return addr[0] == 127;
    }
    /* curl gives an IPv6 host in its brackets. */
    return len > 2 && host[0] == '[' && host[len - 1] == ']' &&
           inet_pton(AF_INET6, apr_pstrmemdup(p, host + 1, len - 2), addr) == 1 &&
           !memcmp(addr, v6_loopback, sizeof(addr));
}

/* url without what may carry a credential: its user and password, and
 * its query (an API key such as Azure Functions' code=), shown as "?...";
 * url as it is when curl cannot read it. */
static const char *shown_url(apr_pool_t *p, const char *url)
{
    CURLU *u = curl_url();
    char *query = NULL, *text = NULL;
    const char *shown = url;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        if (curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK) {
            shown = apr_pstrcat(p, text, query ? "?..." : "", NULL);
        }
    }
    curl_free(query);
    curl_free(text);
    curl_url_cleanup(u);
    return shown;
}

const char *scep_webhook_check_url(apr_pool_t *p, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *why = NULL;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        why = apr_psprintf(p, "%s is not an absolute URL with a host", shown_url(p, url));
    }
    else if (strcmp(scheme, "http") == 0) {
        if (!host_is_loopback(p, host)) {
            why = apr_psprintf(p,
                               "%s: http is allowed to a loopback address only (127.0.0.0/8, "
                               "[::1], localhost); use https",
                               shown_url(p, url));
        }
    }
    else if (strcmp(scheme, "https") != 0) {
        why = apr_psprintf(p, "%s: the scheme must be https (or http to a loopback address)",
                           shown_url(p, url));
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return why;
}

/* A decoded secret on its pool, cleansed when the pool is cleared. */
typedef struct secret_t {
    unsigned char *key;
    apr_size_t len;
} secret_t;

static apr_status_t secret_cleanse(void *data)
{
    secret_t *secret = data;

    OPENSSL_cleanse(secret->key, secret->len);
    return APR_SUCCESS;
}

apr_status_t scep_webhook_secret_decode(apr_pool_t *p, const char *text,
                                        const unsigned char **secret, apr_size_t *len)
{
    const char *start = text, *end = text + strlen(text);
    secret_t *kept = apr_pcalloc(p, sizeof(*kept));
    char *trimmed;
    apr_status_t rv;

    while (start < end && apr_isspace(*start)) {
        start++;
    }
    while (end > start && apr_isspace(end[-1])) {
        end--;
    }
    trimmed = apr_pstrmemdup(p, start, (apr_size_t)(end - start));
    rv = scep_decode_get_message(p, trimmed, &kept->key, &kept->len);
    OPENSSL_cleanse(trimmed, strlen(trimmed));
    if (rv != APR_SUCCESS) {
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, kept, secret_cleanse, apr_pool_cleanup_null);
    if (kept->len == 0 || kept->len > SCEP_WEBHOOK_SECRET_MAX_LEN) {
        return APR_EINVAL;
    }
    *secret = kept->key;
    *len = kept->len;
    return APR_SUCCESS;
}

const char *scep_webhook_signature(apr_pool_t *p, const unsigned char *secret,
                                   apr_size_t secret_len, const char *body, apr_size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *hex, *c;

    if (!HMAC(scep_md(NID_sha256), secret, (int)secret_len, (const unsigned char *)body, len, mac,
              &mac_len)) {
        return NULL;
    }
    /* step-ca's is lower-case (Go's hex.EncodeToString). */
    hex = apr_pstrdup(p, scep_hex(p, mac, mac_len));
    for (c = hex; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    return hex;
}

static apr_status_t curl_global_release(void *data)
{
    curl_global_cleanup();
    return APR_SUCCESS;
}

static apr_status_t webhook_cleanup(void *data)
{
    scep_webhook_process_exit(data);
    return APR_SUCCESS;
}

static const char *check_conf(apr_pool_t *p, const scep_webhook_conf_t *conf)
{
    const char *why = scep_webhook_check_url(p, conf->url);

    if (why) {
        return why;
    }
    if (!conf->client_cert != !conf->client_key) {
        return "a client certificate needs its key, and a key its certificate";
    }
    if (conf->timeout < 0 || conf->timeout > SCEP_WEBHOOK_MAX_TIMEOUT) {
        return apr_psprintf(p, "the time limit must be 1 to %d seconds", SCEP_WEBHOOK_MAX_TIMEOUT);
    }
    return NULL;
}

static apr_status_t blob_cleanse(void *data)
{
    struct curl_blob *blob = data;

    OPENSSL_cleanse(blob->data, blob->len);
    return APR_SUCCESS;
}

/* file (when set) into blob, on p; a key's file by the rule of private
 * files, its copy cleansed with p. NULL, or why not. */
static const char *read_blob(apr_pool_t *p, const char *file, int private_file,
                             struct curl_blob *blob)
{
    char *data = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv;

    if (!file) {
        return NULL;
    }
    rv = private_file ? scep_read_private_file(p, file, TLS_FILE_MAX, &data, &len, &why)
                      : scep_read_file(p, file, TLS_FILE_MAX, &data, &len, &why);
    if (rv != APR_SUCCESS) {
        return why;
    }
    blob->data = data;
    blob->len = len;
    blob->flags = CURL_BLOB_NOCOPY;
    if (private_file) {
        apr_pool_cleanup_register(p, blob, blob_cleanse, apr_pool_cleanup_null);
    }
    return NULL;
}

apr_status_t scep_webhook_create(apr_pool_t *p, const scep_webhook_conf_t *conf,
                                 scep_webhook_t **wh, const char **why)
{
    scep_webhook_t *w;

    w = apr_pcalloc(p, sizeof(*w));
    *why = check_conf(p, conf);
    if (!*why) {
        *why = read_blob(p, conf->ca_file, 0, &w->ca);
    }
    if (!*why) {
        *why = read_blob(p, conf->client_cert, 0, &w->cert);
    }
    if (!*why) {
        *why = read_blob(p, conf->client_key, 1, &w->key);
    }
    if (*why) {
        return APR_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        *why = "libcurl cannot be initialised";
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, NULL, curl_global_release, apr_pool_cleanup_null);
    w->conf = *conf;
    w->shown_url = shown_url(p, conf->url);
    if (!w->conf.timeout) {
        w->conf.timeout = SCEP_WEBHOOK_DEFAULT_TIMEOUT;
    }
    if (!w->conf.answer_limit) {
        w->conf.answer_limit = SCEP_WEBHOOK_ANSWER_LIMIT;
    }
    if (apr_thread_mutex_create(&w->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        *why = "its mutex cannot be created";
        return APR_EGENERAL;
    }
    w->owner = getpid();
    /* Registered after curl's release, so run before it. */
    apr_pool_cleanup_register(p, w, webhook_cleanup, apr_pool_cleanup_null);
    *wh = w;
    return APR_SUCCESS;
}

/* A handle of this process: an idle one, else a new one. */
static CURL *take_handle(scep_webhook_t *wh)
{
    CURL *h = NULL;

    apr_thread_mutex_lock(wh->lock);
    if (wh->owner != getpid()) {
        /* Forked: the handles are the parent's, never touched here. */
        wh->owner = getpid();
        wh->idle_count = 0;
    }
    if (wh->idle_count > 0) {
        h = wh->idle[--wh->idle_count];
    }
    apr_thread_mutex_unlock(wh->lock);
    return h ? h : curl_easy_init();
}

static void give_back_handle(scep_webhook_t *wh, CURL *h)
{
    apr_thread_mutex_lock(wh->lock);
    if (wh->owner == getpid() && wh->idle_count < IDLE_HANDLES) {
        wh->idle[wh->idle_count++] = h;
        h = NULL;
    }
    apr_thread_mutex_unlock(wh->lock);
    curl_easy_cleanup(h);
}

const char *scep_webhook_url(const scep_webhook_t *wh)
{
    return wh->shown_url;
}

void scep_webhook_process_exit(scep_webhook_t *wh)
{
    apr_thread_mutex_lock(wh->lock);
    if (wh->owner == getpid()) {
        while (wh->idle_count > 0) {
            curl_easy_cleanup(wh->idle[--wh->idle_count]);
        }
    }
    wh->idle_count = 0;
    apr_thread_mutex_unlock(wh->lock);
}

static size_t answer_write(char *data, size_t size, size_t nmemb, void *baton)
{
    answer_buf_t *a = baton;
    apr_size_t n = size * nmemb;
    char *grown;

    if (n > a->limit - a->len) {
        a->too_long = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (a->len + n + 1 > a->cap) {
        a->cap = (a->len + n + 1) * 2;
        grown = apr_palloc(a->p, a->cap);
        if (a->len) {
            memcpy(grown, a->data, a->len);
        }
        a->data = grown;
    }
    memcpy(a->data + a->len, data, n);
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

static struct curl_slist *request_headers(scep_webhook_t *wh, apr_pool_t *p, const char *body,
                                          apr_size_t len)
{
    struct curl_slist *headers = NULL;
    const char *sig;

    /* No "Expect: 100-continue": one round trip, whatever the size. */
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (wh->conf.id) {
        headers = curl_slist_append(headers,
                                    apr_pstrcat(p, "X-Smallstep-Webhook-ID: ", wh->conf.id, NULL));
    }
    if (wh->conf.secret) {
        sig = scep_webhook_signature(p, wh->conf.secret, wh->conf.secret_len, body, len);
        if (!sig) {
            /* Never unsigned when a secret is configured. */
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = curl_slist_append(headers, apr_pstrcat(p, "X-Smallstep-Signature: ", sig, NULL));
    }
    return headers;
}

/* Each option set at every post: a handle may have served another body. */
static CURLcode set_options(scep_webhook_t *wh, CURL *h, const char *body, apr_size_t len,
                            struct curl_slist *headers, answer_buf_t *a, char *error)
{
    const scep_webhook_conf_t *c = &wh->conf;
    long ms = (long)c->timeout * 1000;
    CURLcode rc = CURLE_OK;

#define SET(opt, val) \
    if (rc == CURLE_OK) { \
        rc = curl_easy_setopt(h, opt, val); \
    }
    SET(CURLOPT_URL, c->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PROXY, ""); /* never the environment's proxy */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, ms);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (wh->ca.len) {
        /* Only these anchors: not the system's bundle nor its directory. */
        SET(CURLOPT_CAINFO_BLOB, &wh->ca);
        SET(CURLOPT_CAPATH, NULL);
    }
    if (wh->cert.len) {
        SET(CURLOPT_SSLCERT_BLOB, &wh->cert);
        SET(CURLOPT_SSLKEY_BLOB, &wh->key);
    }
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_USERAGENT, "mod_scep");
    SET(CURLOPT_WRITEFUNCTION, answer_write);
    SET(CURLOPT_WRITEDATA, a);
    SET(CURLOPT_ERRORBUFFER, error);
#undef SET
    return rc;
}

static apr_status_t status_of(CURLcode rc, const answer_buf_t *a)
{
    switch (rc) {
    case CURLE_OK:
        return APR_SUCCESS;
    case CURLE_OPERATION_TIMEDOUT:
        return APR_TIMEUP;
    case CURLE_WRITE_ERROR:
        return a->too_long ? APR_ENOSPC : APR_EGENERAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return APR_ECONNREFUSED;
    default:
        return APR_EGENERAL;
    }
}

static void log_fault(scep_webhook_t *wh, apr_pool_t *p, CURLcode rc, const answer_buf_t *a,
                      const char *error)
{
    const char *what = wh->conf.what ? wh->conf.what : "webhook";

    if (a->too_long) {
        webhook_log(wh, SCEP_LOG_MARK,
                    apr_psprintf(p,
                                 SCEPLOGNO(651) "%s %s: its answer is longer than %" APR_SIZE_T_FMT
                                                " bytes",
                                 what, wh->shown_url, wh->conf.answer_limit));
    }
    else if (rc == CURLE_OPERATION_TIMEDOUT) {
        webhook_log(wh, SCEP_LOG_MARK,
                    apr_psprintf(p, SCEPLOGNO(652) "%s %s: no answer within %d s (%s)", what,
                                 wh->shown_url, wh->conf.timeout,
                                 *error ? error : curl_easy_strerror(rc)));
    }
    else {
        webhook_log(wh, SCEP_LOG_MARK,
                    apr_psprintf(p, SCEPLOGNO(653) "%s %s failed: %s", what, wh->shown_url,
                                 *error ? error : curl_easy_strerror(rc)));
    }
}

apr_status_t scep_webhook_post(scep_webhook_t *wh, apr_pool_t *p, const char *body, apr_size_t len,
                               scep_webhook_answer_t *answer)
{
    answer_buf_t a = { p, NULL, 0, 0, wh->conf.answer_limit, 0 };
    char error[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = request_headers(wh, p, body, len);
    CURL *h = take_handle(wh);
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    long status = 0;
    char *type = NULL;
    apr_status_t rv;

    memset(answer, 0, sizeof(*answer));
    if (h && headers) {
        rc = set_options(wh, h, body, len, headers, &a, error);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_perform(h);
    }
    rv = status_of(rc, &a);
    if (rv != APR_SUCCESS) {
        log_fault(wh, p, rc, &a, error);
        goto leave;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
    answer->status = (int)status;
    answer->content_type = type ? apr_pstrdup(p, type) : NULL;
    answer->body = a.data ? a.data : "";
    answer->len = a.len;

leave:
    if (h) {
        /* Nothing of this post stays set on the handle but its connections. */
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        give_back_handle(wh, h);
    }
    curl_slist_free_all(headers);
    return rv;
}
