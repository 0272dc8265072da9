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
 * A small HTTP client (libcurl) for the module's webhooks: the challenge
 * check and the notifications POST a JSON body to one URL, signed as
 * step-ca signs its webhooks' requests (X-Smallstep-Webhook-ID, and
 * X-Smallstep-Signature: the hex HMAC-SHA256 of the exact body, keyed by
 * the decoded bytes of the base64 secret), with a CA file for the
 * server's certificate, an optional client certificate, a time limit for
 * the whole exchange and a bounded answer. Connections are reused within
 * a process: each webhook keeps a few easy handles per process (under a
 * mutex), which a forked child never shares with its parent and frees at
 * its end with scep_webhook_process_exit().
 */
#ifndef mod_scep_scep_webhook_h
#define mod_scep_scep_webhook_h

#include "scep.h"

#define SCEP_WEBHOOK_DEFAULT_TIMEOUT 5   /* seconds (SCEPWebhookTimeout) */
#define SCEP_WEBHOOK_MAX_TIMEOUT 300     /* seconds: a worker never hangs longer */
#define SCEP_WEBHOOK_ANSWER_LIMIT 65536  /* bytes of an answer's body, by default */
#define SCEP_WEBHOOK_SECRET_MAX_LEN 1024 /* bytes of a decoded secret */

typedef struct scep_webhook_conf_t {
    /* https://..., or http:// to a loopback address only (checked by
     * scep_webhook_check_url()). */
    const char *url;
    /* What the log lines call it: "challenge webhook", "notification
     * webhook". */
    const char *what;
    /* PEM trust anchors of an https server's certificate, whose name must
     * be the URL's host; NULL: the system's trust store. */
    const char *ca_file;
    /* PEM client certificate (chain) presented to an https server, and
     * its unencrypted PEM key (mode 0600): both or neither. */
    const char *client_cert;
    const char *client_key;
    /* X-Smallstep-Webhook-ID; NULL: the header is not sent. */
    const char *id;
    /* The HMAC-SHA256 key of X-Smallstep-Signature (decoded bytes, see
     * scep_webhook_secret_decode()); NULL: the header is not sent. */
    const unsigned char *secret;
    apr_size_t secret_len;
    int timeout;             /* seconds for one whole exchange; 0: the default */
    apr_size_t answer_limit; /* bytes; a longer answer is a fault; 0: the default */
    scep_log_fn *log;        /* faults, one line each (SCEP650-659) */
    void *log_baton;
} scep_webhook_conf_t;

typedef struct scep_webhook_t scep_webhook_t;

/* What came back: the HTTP status (any, 2xx or not) and the body. */
typedef struct scep_webhook_answer_t {
    int status;
    const char *content_type; /* NULL: none */
    const char *body;         /* NUL-terminated after its len bytes, on the post's pool */
    apr_size_t len;
} scep_webhook_answer_t;

/* NULL when url may be a webhook's: https:// with a host, or http:// to a
 * loopback address (127.0.0.0/8, [::1], localhost); else why not, on p. */
const char *scep_webhook_check_url(apr_pool_t *p, const char *url);

/* A secret file's text (step-ca: standard base64, surrounding white space
 * ignored) to the HMAC key bytes, on p. APR_EINVAL when it is not base64,
 * empty or longer than SCEP_WEBHOOK_SECRET_MAX_LEN once decoded. The
 * caller cleanses text; the key is cleansed when p is cleared. */
apr_status_t scep_webhook_secret_decode(apr_pool_t *p, const char *text,
                                        const unsigned char **secret, apr_size_t *len);

/* The lower-case hex HMAC-SHA256 of body under secret, on p: the value of
 * X-Smallstep-Signature. */
const char *scep_webhook_signature(apr_pool_t *p, const unsigned char *secret,
                                   apr_size_t secret_len, const char *body, apr_size_t len);

/* The webhook on p, with a copy of conf (its strings and secret must live
 * as long as p), at startup, before the process forks: the TLS files are
 * read here (a child may run as a user that cannot read them; the key's
 * by the rule of private files, scep_read_private_file(), its copy
 * cleansed with p). APR_EINVAL with *why (on p) when conf is wrong: the
 * URL (scep_webhook_check_url()), a client certificate without its key or
 * the reverse, a file that cannot be read or a key file others may
 * access, a time limit out of range. Initialises libcurl (once per
 * process; released with p). */
apr_status_t scep_webhook_create(apr_pool_t *p, const scep_webhook_conf_t *conf,
                                 scep_webhook_t **wh, const char **why);

/* POSTs body (Content-Type: application/json, signed as conf says) and
 * waits at most the time limit for the whole answer, whose body goes on p.
 * APR_SUCCESS when an answer came, whatever its status: the caller judges
 * it. A fault (logged, with the URL but never the body): the time limit
 * passed (APR_TIMEUP), the server unreachable (APR_ECONNREFUSED), an
 * answer longer than the limit (APR_ENOSPC), any other failure: TLS
 * refused (certificate not trusted, name mismatch), the connection closed
 * without an answer... (APR_EGENERAL). Safe in any thread. */
apr_status_t scep_webhook_post(scep_webhook_t *wh, apr_pool_t *p, const char *body, apr_size_t len,
                               scep_webhook_answer_t *answer);

/* The URL it posts to (for log lines). */
const char *scep_webhook_url(const scep_webhook_t *wh);

/* Frees the connections this process made (a forked server process ends
 * without destroying the pool the webhook was made on). No call follows. */
void scep_webhook_process_exit(scep_webhook_t *wh);

#endif /* mod_scep_scep_webhook_h */
