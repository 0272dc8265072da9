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
 * The `scep-manager` handler: the CA manager's page, where held requests
 * (SCEPCAType Standalone, or a template with `Issuance manual`) are
 * approved or denied and issued certificates are found and revoked. On a
 * Windows CA that is the Certification Authority console's "Pending
 * Requests" and "Issued Certificates"; the white paper's devices poll
 * (CertPoll) until a manager decides.
 *
 * Checks, in order: HTTPS (unless SCEPAdminAllowHTTP On, as the admin
 * page), an authenticated user (Apache's Require), membership of
 * SCEPCAManagerGroup when SCEPLDAPURL is set (mod_scep_ldap.c), then:
 *
 *   GET/HEAD  the page: pending requests, issued certificates (?q= searches
 *             subject and serial), recent requests with who decided them;
 *             JSON with the same data when Accept prefers application/json.
 *   POST      action=approve|deny (txn=, reason= for deny) or action=revoke
 *             (serial=, reason= a CRLReason), with csrf= the page's token.
 *             HTML forms get a 303 back to the page with the outcome;
 *             JSON clients the outcome with a status code.
 *
 * A GET that carries action= is refused (405): state changes only by POST,
 * so that a link or an <img> cannot make one. A POST is refused (403)
 * without the token of the signed-in user: the browser sends Basic or
 * Negotiate credentials to this page whoever asks it to, so a form posted
 * from another site would otherwise act in the manager's name.
 *
 * The token is HMAC-SHA256, under a key drawn once in the parent's process
 * pool (so every child and every generation after `apachectl graceful`
 * know it, and a full restart makes the old pages' tokens stale), of the
 * user name and the hour: a page's token is good until the end of the
 * next hour, at least one hour and at most two. Compared in constant time.
 *
 * The page needs no JavaScript; its Content-Security-Policy allows none,
 * nothing but its own inline style (by hash) and forms to itself.
 */

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <jansson.h>

#include "mod_scep_private.h"
#include "scep_algs.h"

#define SCEP_MANAGER_HANDLER "scep-manager"

/* Rows per list: the newest; older ones are found by searching. */
#define LIST_LIMIT 200
/* A form is a handful of short fields. */
#define FORM_MAX_BYTES 4096
#define FORM_MAX_FIELDS 8
#define REASON_MAX 256
#define SEARCH_MAX 128

#define CSRF_KEY_LEN 32
#define CSRF_USERDATA "mod_scep_manager_csrf_key"
#define CSRF_LABEL "scep-manager"
/* HKDF's info for the form tokens' key of a service (SCEPPasswordStore sql). */
#define CSRF_SERVICE_KEY_LABEL "mod_scep CA manager form token key v1"
#define CSRF_TOKEN_LEN ((apr_size_t)2 * SHA256_DIGEST_LENGTH)
#define CSRF_WINDOW apr_time_from_sec(3600)

static const char page_style[] =
    "body{font-family:sans-serif;margin:1em}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{border:1px solid #999;padding:.2em .4em;text-align:left;vertical-align:top}"
    "form{display:inline}input[type=text]{width:8em}.msg{background:#ffd;padding:.4em}";

/* This generation's state, set by post_config: the key lives in the
 * process pool (or, derived for a service, in service_csrf_key), the
 * header in a static buffer. */
static const unsigned char *csrf_key;
static unsigned char service_csrf_key[CSRF_KEY_LEN];
static char csp_header[256];

/* ----------------------------------------------------------------------
 * Startup
 */

/* The Content-Security-Policy: the inline style by its hash, nothing else
 * loads, forms only post here, no framing. */
static apr_status_t make_csp_header(server_rec *s)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char b64[64];

    if (!SHA256((const unsigned char *)page_style, sizeof(page_style) - 1, digest)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(152) "cannot hash the CA manager page's style for its "
                                    "Content-Security-Policy");
        mod_scep_log_openssl(s, APLOG_EMERG);
        return APR_EGENERAL;
    }
    apr_base64_encode(b64, (const char *)digest, sizeof(digest));
    apr_snprintf(csp_header, sizeof(csp_header),
                 "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
                 "frame-ancestors 'none'; base-uri 'none'",
                 b64);
    return APR_SUCCESS;
}

static apr_status_t cleanse_service_key(void *data)
{
    (void)data;
    OPENSSL_cleanse(service_csrf_key, sizeof(service_csrf_key));
    return APR_SUCCESS;
}

apr_status_t mod_scep_manager_post_config(server_rec *main_s)
{
    apr_pool_t *pproc = main_s->process->pool;
    void *key = NULL;
    apr_status_t rv;

    if (make_csp_header(main_s) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* The servers of a service share the key, so that a form from one is
     * taken by another behind a load balancer. */
    rv = mod_scep_passwords_service_key(CSRF_SERVICE_KEY_LABEL, service_csrf_key,
                                        sizeof(service_csrf_key));
    if (rv == APR_SUCCESS) {
        apr_pool_cleanup_register(main_s->process->pconf, NULL, cleanse_service_key,
                                  apr_pool_cleanup_null);
        csrf_key = service_csrf_key;
        return APR_SUCCESS;
    }
    if (rv != APR_ENOTIMPL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, main_s,
                     SCEPLOGNO(608) "cannot derive the key of the CA manager page's form tokens "
                                    "from " SCEP_SECRET_KEY_FILE);
        mod_scep_log_openssl(main_s, APLOG_EMERG);
        return rv;
    }
    apr_pool_userdata_get(&key, CSRF_USERDATA, pproc);
    if (!key) {
        key = apr_palloc(pproc, CSRF_KEY_LEN);
        if (RAND_bytes(key, CSRF_KEY_LEN) != 1) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_s,
                         SCEPLOGNO(600) "cannot draw the key of the CA manager page's form tokens");
            mod_scep_log_openssl(main_s, APLOG_EMERG);
            return APR_EGENERAL;
        }
        apr_pool_userdata_set(key, CSRF_USERDATA, apr_pool_cleanup_null, pproc);
    }
    csrf_key = key;
    return APR_SUCCESS;
}

/* ----------------------------------------------------------------------
 * Form tokens
 */

static apr_int64_t csrf_window_now(void)
{
    return apr_time_now() / CSRF_WINDOW;
}

/* Hex HMAC-SHA256 of "scep-manager:WINDOW:USER" for r->user: the window
 * is digits, so the user name (the rest) cannot shift into it. NULL on
 * failure (logged). */
static const char *csrf_token(request_rec *r, apr_int64_t window)
{
    const char *msg = apr_psprintf(r->pool, CSRF_LABEL ":%" APR_INT64_T_FMT ":%s", window, r->user);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!HMAC(scep_md(NID_sha256), csrf_key, CSRF_KEY_LEN, (const unsigned char *)msg, strlen(msg),
              mac, &len)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(601) "cannot compute the form token of the CA manager page");
        mod_scep_rlog_openssl(r, APLOG_ERR);
        return NULL;
    }
    return scep_hex(r->pool, mac, len);
}

/* 1 for the token of this window or the one before, 0 for another one, -1
 * when the tokens cannot be computed (logged). */
static int csrf_valid(request_rec *r, const char *token)
{
    apr_int64_t now = csrf_window_now();
    const char *expected;
    int i, ok = 0;

    if (!token || strlen(token) != CSRF_TOKEN_LEN) {
        return 0;
    }
    for (i = 0; i < 2; i++) {
        if (!(expected = csrf_token(r, now - i))) {
            return -1;
        }
        ok |= !CRYPTO_memcmp(expected, token, CSRF_TOKEN_LEN);
    }
    return ok;
}

/* ----------------------------------------------------------------------
 * Answers
 */

static const char *logged_user(request_rec *r)
{
    return ap_escape_logitem(r->pool, r->user);
}

static const char *html(apr_pool_t *p, const char *text)
{
    return text ? ap_escape_html2(p, text, 0) : "";
}

/* A value of the records in a cell: what a device sent may hold control
 * characters, invisible on a page (a manager would not see that two names
 * differ), and bytes that are not UTF-8; shown escaped as scepctl lists
 * them. Form fields keep html(): they send the value back. */
static const char *shown(apr_pool_t *p, const char *text)
{
    return text ? html(p, scep_escape_text(p, text, 0)) : "";
}

/* "" for no time (0). */
static const char *time_text(apr_pool_t *p, apr_time_t t)
{
    return t ? mod_scep_time_text(p, t) : "";
}

/* A revocation reason as the form sends it (the code) or a script may (the
 * name); SCEP_CRL_REASON_NONE when it is not one a manager may give. */
static int crl_reason_parse(const char *text)
{
    int reason = text ? scep_crl_reason_of(text) : SCEP_CRL_REASON_NONE;

    return scep_crl_reason_final(reason) ? reason : SCEP_CRL_REASON_NONE;
}

static const char *page_head(apr_pool_t *p, const char *title)
{
    return apr_pstrcat(p,
                       "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>",
                       title, "</title><style>", page_style, "</style></head>\n<body>\n<h1>", title,
                       "</h1>\n", NULL);
}

static int send_html(request_rec *r, int status, const char *body)
{
    return mod_scep_send_body(r, status, "text/html; charset=utf-8", body, strlen(body));
}

/* An error answer: a short page, or {"error": code, "message": text}. */
static int send_error(request_rec *r, int status, const char *code, const char *text)
{
    if (mod_scep_wants_json(r)) {
        return mod_scep_send_json(r, status,
                                  json_pack("{s:o, s:o}", "error",
                                            mod_scep_json_text(r->pool, code), "message",
                                            mod_scep_json_text(r->pool, text)));
    }
    return send_html(r, status,
                     apr_pstrcat(r->pool, page_head(r->pool, "SCEP CA manager"), "<p>",
                                 html(r->pool, text), "</p>\n</body></html>\n", NULL));
}

/* ----------------------------------------------------------------------
 * The page
 */

/* The page's own URL for forms and redirects. */
static const char *page_path(request_rec *r)
{
    return ap_escape_uri(r->pool, r->uri);
}

/* What a redirect after a POST tells: ?done=CODE&id=ID, shown as
 * "<before> ID<after>". */
typedef struct outcome_t {
    const char *code;
    const char *before;
    const char *after;
} outcome_t;

static const outcome_t outcomes[] = {
    { "approved", "Request",
      " approved: its certificate is issued, and the device receives it at its next poll." },
    { "denied", "Request", " denied." },
    { "revoked", "Certificate", " revoked: the CRL lists it." },
    { "submitted", "Request",
      " approved and submitted: the CA holds it, and the device receives its certificate once "
      "the CA issues it." },
    { "at_ca", "Request", " waits for the CA, which decides it: it can only be denied here." },
    { "not_pending", "Request",
      " is no longer pending: another manager decided it, or it expired." },
    { "unknown_request", "There is no request", "." },
    { "not_issued", "Request",
      " could not be issued and is now rejected (Recent requests says why)." },
    { "unknown_cert", "There is no certificate", "." },
    { "already_revoked", "Certificate", " was revoked before: its first revocation stays." },
    { "revoke_at_ca", "Certificate",
      " was issued by the external CA, which alone revokes it and publishes its CRL: revoke it "
      "there." },
};

/* An external CA (SCEPCABackend cmp or helper) signs the CRL that GetCRL
 * serves (SCEPExternalCRL): a revocation in these records would be in no
 * CRL, so the page neither offers nor accepts one. */
static int ca_is_external(const request_rec *r)
{
    return mod_scep_srv_conf(r->server)->ca_backend != SCEP_BACKEND_BUILTIN;
}

static const outcome_t *outcome_by_code(const char *code)
{
    apr_size_t i;

    for (i = 0; code && i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        if (!strcmp(outcomes[i].code, code)) {
            return &outcomes[i];
        }
    }
    return NULL;
}

/* The hidden fields every form posts. */
static const char *form_start(request_rec *r, const char *token, const char *action,
                              const char *field, const char *value)
{
    return apr_pstrcat(r->pool, "<form method=\"post\" action=\"", html(r->pool, page_path(r)),
                       "\"><input type=\"hidden\" name=\"csrf\" value=\"", token,
                       "\"><input type=\"hidden\" name=\"action\" value=\"", action,
                       "\"><input type=\"hidden\" name=\"", field, "\" value=\"",
                       html(r->pool, value), "\">", NULL);
}

/* What the page shows: the lists, read once for HTML and JSON alike. */
typedef struct listing_t {
    const char *token;
    const char *search;
    const char *reason_select;    /* the revocation reasons' <select> */
    const scep_enroll_env_t *env; /* who decides a request the CA holds */
    apr_array_header_t *pending;
    apr_array_header_t *certs;
    apr_array_header_t *recent;
} listing_t;

/* One row of a list as HTML. */
typedef const char *row_fn(request_rec *r, const listing_t *l, const void *item);

/* The rows of items (pointers), each written by row: one copy at the end
 * rather than one per row. */
static const char *rows(request_rec *r, const listing_t *l, const apr_array_header_t *items,
                        row_fn *row)
{
    apr_array_header_t *parts = apr_array_make(r->pool, items->nelts, sizeof(const char *));
    int i;

    for (i = 0; i < items->nelts; i++) {
        APR_ARRAY_PUSH(parts, const char *) = row(r, l, APR_ARRAY_IDX(items, i, const void *));
    }
    return apr_array_pstrcat(r->pool, parts, '\0');
}

/* Said under a list that reached LIST_LIMIT rows. */
static const char *more_html(const apr_array_header_t *items, const char *how)
{
    return items->nelts < LIST_LIMIT
               ? ""
               : apr_pstrcat(items->pool,
                             "<p>Only the newest " APR_STRINGIFY(LIST_LIMIT) " are shown: ", how,
                             "</p>\n", NULL);
}

/* A pending request's approval: a button, or the CA's hold (it decides). */
static const char *approval_html(request_rec *r, const listing_t *l, const scep_txn_t *t)
{
    if (scep_enroll_at_ca(l->env, t)) {
        return apr_pstrcat(r->pool, "<span class=\"at-ca\">Waiting for the CA (asked again after ",
                           time_text(r->pool, t->ca_poll_at), ")</span> ", NULL);
    }
    return apr_pstrcat(
        r->pool, form_start(r, l->token, "approve", "txn", t->transaction_id),
        "<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button></form> ",
        NULL);
}

static const char *pending_row_html(request_rec *r, const listing_t *l, const void *item)
{
    const scep_txn_t *t = item;
    apr_pool_t *p = r->pool;

    return apr_pstrcat(
        p, "<tr id=\"txn-", html(p, t->transaction_id), "\"><td>", shown(p, t->transaction_id),
        "</td><td>", shown(p, t->subject), "</td><td>", shown(p, t->san), "</td><td>",
        shown(p, t->key_desc), "</td><td>", shown(p, t->template_name), "</td><td>",
        shown(p, t->client_addr), "</td><td>", time_text(p, t->created), "</td><td>",
        approval_html(r, l, t), form_start(r, l->token, "deny", "txn", t->transaction_id),
        "<input type=\"text\" name=\"reason\" required maxlength=\"" APR_STRINGIFY(
            REASON_MAX) "\" placeholder=\"reason\" aria-label=\"reason for denying\">"
                        "<button type=\"submit\" name=\"decision\" "
                        "value=\"deny\">Deny</button></form>"
                        "</td></tr>\n",
        NULL);
}

static const char *pending_html(request_rec *r, const listing_t *l)
{
    return apr_pstrcat(r->pool,
                       apr_psprintf(r->pool, "<h2>Pending requests (%d)</h2>\n", l->pending->nelts),
                       "<table id=\"pending\"><tr><th>Transaction</th><th>Subject</th>"
                       "<th>Subject alternative names</th><th>Key</th><th>Template</th>"
                       "<th>Requested from</th><th>Received</th><th>Decision</th></tr>\n",
                       rows(r, l, l->pending, pending_row_html), "</table>\n",
                       more_html(l->pending, "decide them to see the older ones."), NULL);
}

static const char *reason_select_html(apr_pool_t *p)
{
    apr_array_header_t *options = apr_array_make(p, 16, sizeof(const char *));
    int reason;

    APR_ARRAY_PUSH(options, const char *) =
        "<select name=\"reason\" aria-label=\"revocation reason\">";
    for (reason = 0; reason <= SCEP_CRL_REASON_MAX; reason++) {
        if (scep_crl_reason_final(reason)) {
            APR_ARRAY_PUSH(options, const char *) = apr_psprintf(
                p, "<option value=\"%d\">%s</option>", reason, scep_crl_reason_name(reason));
        }
    }
    APR_ARRAY_PUSH(options, const char *) = "</select>";
    return apr_array_pstrcat(p, options, '\0');
}

static const char *revocation_text(apr_pool_t *p, const scep_cert_record_t *c)
{
    const char *reason = scep_crl_reason_name(c->reason);

    if (!c->revoked_at) {
        return "valid";
    }
    return apr_psprintf(p, "revoked %s%s%s", time_text(p, c->revoked_at), reason ? ", " : "",
                        reason ? reason : "");
}

static const char *cert_row_html(request_rec *r, const listing_t *l, const void *item)
{
    const scep_cert_record_t *c = item;
    apr_pool_t *p = r->pool;
    const char *revoke =
        c->revoked_at       ? ""
        : ca_is_external(r) ? "at the CA"
                            : apr_pstrcat(p, form_start(r, l->token, "revoke", "serial", c->serial),
                                          l->reason_select,
                                          "<button type=\"submit\" name=\"decision\" "
                                          "value=\"revoke\">Revoke</button></form>",
                                          NULL);

    return apr_pstrcat(p, "<tr id=\"cert-", html(p, c->serial), "\"><td>", shown(p, c->serial),
                       "</td><td>", shown(p, c->subject), "</td><td>", time_text(p, c->not_before),
                       "</td><td>", time_text(p, c->not_after), "</td><td>",
                       shown(p, c->transaction_id), "</td><td>", revocation_text(p, c), "</td><td>",
                       revoke, "</td></tr>\n", NULL);
}

static const char *certs_html(request_rec *r, const listing_t *l)
{
    apr_pool_t *p = r->pool;

    return apr_pstrcat(
        p, "<h2>Issued certificates</h2>\n<form method=\"get\" action=\"", html(p, page_path(r)),
        "\"><input type=\"search\" name=\"q\" maxlength=\"", APR_STRINGIFY(SEARCH_MAX),
        "\" aria-label=\"subject or serial contains\" "
        "placeholder=\"subject or serial\" value=\"",
        html(p, l->search),
        "\"><button type=\"submit\">Search</button></form>\n"
        "<table id=\"certificates\"><tr><th>Serial</th><th>Subject</th><th>Valid from</th>"
        "<th>Valid until</th><th>Transaction</th><th>Status</th><th>Revoke</th></tr>\n",
        rows(r, l, l->certs, cert_row_html), "</table>\n",
        more_html(l->certs, "search to find older ones."), NULL);
}

static const char *recent_row_html(request_rec *r, const listing_t *l, const void *item)
{
    const scep_txn_t *t = item;
    apr_pool_t *p = r->pool;

    (void)l;
    return apr_pstrcat(p, "<tr><td>", shown(p, t->transaction_id), "</td><td>",
                       shown(p, t->subject), "</td><td>", shown(p, t->status), "</td><td>",
                       shown(p, t->decided_by), "</td><td>", shown(p, t->reason), "</td><td>",
                       shown(p, t->serial), "</td><td>", time_text(p, t->created), "</td><td>",
                       time_text(p, t->updated), "</td></tr>\n", NULL);
}

static const char *recent_html(request_rec *r, const listing_t *l)
{
    return apr_pstrcat(r->pool,
                       "<h2>Recent requests</h2>\n<table id=\"recent\"><tr><th>Transaction</th>"
                       "<th>Subject</th><th>State</th><th>Decided by</th><th>Reason</th>"
                       "<th>Serial</th><th>Received</th><th>Changed</th></tr>\n",
                       rows(r, l, l->recent, recent_row_html), "</table>\n", NULL);
}

static const char *message_html(apr_pool_t *p, apr_table_t *args)
{
    const outcome_t *o = outcome_by_code(apr_table_get(args, "done"));
    const char *id = apr_table_get(args, "id");

    if (!o || !id) {
        return "";
    }
    return apr_pstrcat(p, "<p class=\"msg\" role=\"status\" id=\"outcome\">", o->before, " ",
                       shown(p, id), o->after, "</p>\n", NULL);
}

static int send_page_html(request_rec *r, apr_table_t *args, const listing_t *l)
{
    apr_pool_t *p = r->pool;

    return send_html(r, HTTP_OK,
                     apr_pstrcat(p, page_head(p, "SCEP CA manager"), "<p>Signed in as <b>",
                                 html(p, r->user), "</b>.</p>\n", message_html(p, args),
                                 pending_html(r, l), certs_html(r, l), recent_html(r, l),
                                 "</body></html>\n", NULL));
}

/* Who a pending request waits for: "CA" (the external CA holds it, a
 * ticket) or "manager"; NULL for a request that is not held. */
static const char *waiting_for(const scep_txn_t *t)
{
    if (strcmp(t->status, SCEP_TXN_PENDING) != 0) {
        return NULL;
    }
    return t->ca_ticket ? "CA" : "manager";
}

static json_t *txn_json(apr_pool_t *p, const void *item)
{
    const scep_txn_t *t = item;

    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "transaction_id",
        mod_scep_json_text(p, t->transaction_id), "status", mod_scep_json_text(p, t->status),
        "subject", mod_scep_json_text(p, t->subject), "san", mod_scep_json_text(p, t->san), "key",
        mod_scep_json_text(p, t->key_desc), "template", mod_scep_json_text(p, t->template_name),
        "client_addr", mod_scep_json_text(p, t->client_addr), "created",
        mod_scep_json_time(p, t->created), "updated", mod_scep_json_time(p, t->updated),
        "decided_by", mod_scep_json_text(p, t->decided_by), "reason",
        mod_scep_json_text(p, t->reason), "serial", mod_scep_json_text(p, t->serial), "waiting_for",
        mod_scep_json_text(p, waiting_for(t)), "ca_poll_at", mod_scep_json_time(p, t->ca_poll_at));
}

static json_t *cert_json(apr_pool_t *p, const void *item)
{
    const scep_cert_record_t *c = item;

    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "serial",
                     mod_scep_json_text(p, c->serial), "subject", mod_scep_json_text(p, c->subject),
                     "transaction_id", mod_scep_json_text(p, c->transaction_id), "not_before",
                     mod_scep_json_time(p, c->not_before), "not_after",
                     mod_scep_json_time(p, c->not_after), "revoked_at",
                     mod_scep_json_time(p, c->revoked_at), "revocation_reason",
                     mod_scep_json_text(p, c->revoked_at ? scep_crl_reason_name(c->reason) : NULL));
}

/* One row of a list as JSON. */
typedef json_t *row_json_fn(apr_pool_t *p, const void *item);

/* items (pointers) as a JSON array, each written by row; NULL when jansson
 * could not allocate. */
static json_t *rows_json(apr_pool_t *p, const apr_array_header_t *items, row_json_fn *row)
{
    json_t *list = json_array();
    int i;

    for (i = 0; list && i < items->nelts; i++) {
        if (json_array_append_new(list, row(p, APR_ARRAY_IDX(items, i, const void *))) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

static int send_page_json(request_rec *r, const listing_t *l)
{
    apr_pool_t *p = r->pool;

    return mod_scep_send_json(
        r, HTTP_OK,
        json_pack("{s:o, s:o, s:o, s:i, s:o, s:o, s:o}", "user", mod_scep_json_text(p, r->user),
                  "csrf", mod_scep_json_text(p, l->token), "search",
                  mod_scep_json_text(p, l->search), "limit", LIST_LIMIT, "pending",
                  rows_json(p, l->pending, txn_json), "certificates",
                  rows_json(p, l->certs, cert_json), "recent", rows_json(p, l->recent, txn_json)));
}

/* Requests pending longer than SCEPRefreshPeriod expire first, so that
 * the list offers none that cannot be approved any more. */
static apr_status_t read_listing(request_rec *r, scep_store_t *store, listing_t *l)
{
    apr_status_t rv;

    /* Expiring is a write, which a HEAD request must not cause. */
    if ((!r->header_only &&
         (rv = scep_enroll_expire_pending(mod_scep_enroll_env(r))) != APR_SUCCESS) ||
        (rv = store->list_requests(store, r->pool, SCEP_TXN_PENDING, LIST_LIMIT, &l->pending)) !=
            APR_SUCCESS ||
        (rv = store->list_certs(store, r->pool, l->search, LIST_LIMIT, &l->certs)) != APR_SUCCESS) {
        return rv;
    }
    return store->list_requests(store, r->pool, NULL, LIST_LIMIT, &l->recent);
}

static int show_page(request_rec *r, scep_store_t *store, apr_table_t *args)
{
    listing_t l = { NULL, NULL, NULL, mod_scep_enroll_env(r), NULL, NULL, NULL };
    const char *q = apr_table_get(args, "q");

    l.search = q && *q ? q : NULL;
    if (l.search && strlen(l.search) > SEARCH_MAX) {
        return send_error(r, HTTP_BAD_REQUEST, "search_too_long",
                          apr_psprintf(r->pool, "A search is at most %d characters.", SEARCH_MAX));
    }
    if (!(l.token = csrf_token(r, csrf_window_now()))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    l.reason_select = reason_select_html(r->pool);
    if (read_listing(r, store, &l) != APR_SUCCESS) {
        /* Logged by the store. */
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return mod_scep_wants_json(r) ? send_page_json(r, &l) : send_page_html(r, args, &l);
}

/* ----------------------------------------------------------------------
 * Decisions
 */

typedef struct decision_t {
    const char *action; /* approve, deny, revoke */
    const char *id;     /* the transaction or the serial */
    const char *reason;
    int crl_reason; /* revoke: a CRLReason code */
} decision_t;

/* The query (GET) as a table; NULL when it is not well-formed
 * application/x-www-form-urlencoded. */
static apr_table_t *query_args(request_rec *r)
{
    apr_table_t *args = apr_table_make(r->pool, 4);
    char *state, *pair, *value;
    char *query = apr_pstrdup(r->pool, r->args ? r->args : "");

    for (pair = apr_strtok(query, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        value = strchr(pair, '=');
        if (value) {
            *value++ = '\0';
        }
        if (ap_unescape_urlencoded(pair) != OK || (value && ap_unescape_urlencoded(value) != OK)) {
            return NULL;
        }
        apr_table_add(args, pair, value ? value : "");
    }
    return args;
}

/* The POSTed form (ap_parse_form_data, at most FORM_MAX_BYTES) as a table;
 * an HTTP status when it cannot be read or names a field twice (which
 * one would count is a guess). */
static int read_form(request_rec *r, apr_table_t **form)
{
    apr_array_header_t *pairs = NULL;
    ap_form_pair_t *pair;
    apr_off_t len;
    apr_size_t size;
    char *value;
    int status = ap_parse_form_data(r, NULL, &pairs, FORM_MAX_FIELDS, FORM_MAX_BYTES);

    if (status != OK) {
        return status;
    }
    *form = apr_table_make(r->pool, pairs->nelts);
    while ((pair = apr_array_pop(pairs)) != NULL) {
        if (apr_table_get(*form, pair->name) ||
            apr_brigade_length(pair->value, 1, &len) != APR_SUCCESS) {
            return HTTP_BAD_REQUEST;
        }
        size = (apr_size_t)len;
        value = apr_palloc(r->pool, size + 1);
        if (apr_brigade_flatten(pair->value, value, &size) != APR_SUCCESS ||
            memchr(value, '\0', size)) {
            return HTTP_BAD_REQUEST;
        }
        value[size] = '\0';
        apr_table_setn(*form, pair->name, value);
    }
    return OK;
}

static int has_control_chars(const char *text)
{
    for (; *text; text++) {
        if (apr_iscntrl(*text)) {
            return 1;
        }
    }
    return 0;
}

/* The decision a form asks for; NULL and an error answer's text when it
 * is not one. */
static const decision_t *parse_decision(request_rec *r, apr_table_t *form, const char **why)
{
    decision_t *d = apr_pcalloc(r->pool, sizeof(*d));

    d->action = apr_table_get(form, "action");
    d->reason = apr_table_get(form, "reason");
    if (d->action && (!strcmp(d->action, "approve") || !strcmp(d->action, "deny"))) {
        d->id = apr_table_get(form, "txn");
        *why = "Which request? The form has no txn.";
    }
    else if (d->action && !strcmp(d->action, "revoke")) {
        d->id = apr_table_get(form, "serial");
        *why = "Which certificate? The form has no serial.";
    }
    else {
        *why = "The action must be approve, deny or revoke.";
        return NULL;
    }
    if (!d->id || !*d->id) {
        return NULL;
    }
    if (!strcmp(d->action, "deny") && (!d->reason || !*d->reason)) {
        *why = "A denial needs a reason.";
        return NULL;
    }
    if (d->reason && strlen(d->reason) > REASON_MAX) {
        *why = apr_psprintf(r->pool, "A reason is at most %d characters.", REASON_MAX);
        return NULL;
    }
    if (d->reason && has_control_chars(d->reason)) {
        /* It goes into the log and into the device's failInfoText. */
        *why = "A reason is one line of text.";
        return NULL;
    }
    if (!strcmp(d->action, "revoke") &&
        (d->crl_reason = crl_reason_parse(d->reason)) == SCEP_CRL_REASON_NONE) {
        *why = "The reason of a revocation is a CRLReason: unspecified, keyCompromise, "
               "cACompromise, affiliationChanged, superseded, cessationOfOperation or "
               "privilegeWithdrawn.";
        return NULL;
    }
    return d;
}

/* The answer after a decision: HTML forms go back to the page (303, so
 * that reloading it does not post again), scripts get JSON: {"result":
 * code, "id": id}, and key: text (NULL as null) after them with a key. */
static int send_outcome(request_rec *r, int json_status, const char *code, const char *id,
                        const char *key, const char *text)
{
    json_t *doc;

    if (mod_scep_wants_json(r)) {
        doc = json_pack("{s:o, s:o}", "result", mod_scep_json_text(r->pool, code), "id",
                        mod_scep_json_text(r->pool, id));
        if (doc && key && json_object_set_new(doc, key, mod_scep_json_text(r->pool, text)) != 0) {
            json_decref(doc);
            doc = NULL;
        }
        return mod_scep_send_json(r, json_status, doc);
    }
    apr_table_setn(r->headers_out, "Location",
                   ap_construct_url(r->pool,
                                    apr_pstrcat(r->pool, page_path(r), "?done=", code,
                                                "&id=", ap_escape_urlencoded(r->pool, id), NULL),
                                    r));
    return HTTP_SEE_OTHER;
}

/* The serial a just-approved request got, for the JSON answer; NULL when
 * the records do not tell it. */
static const char *issued_serial(request_rec *r, scep_store_t *store, const char *txn_id)
{
    scep_txn_t *txn = NULL;

    if (store->find_transaction(store, r->pool, txn_id, &txn) != APR_SUCCESS) {
        return NULL;
    }
    return txn->serial;
}

/* mod_status's figures: an approval issued now, a denial, an approval
 * that cannot be issued any more (rejected). An approval submitted to the
 * external CA was counted held when the device asked. */
static void count_decision(request_rec *r, int approve, apr_status_t rv)
{
    if (rv == APR_SUCCESS) {
        mod_scep_stats_add(r->server, approve ? SCEP_STATS_ISSUED : SCEP_STATS_REFUSED);
    }
    else if (approve && APR_STATUS_IS_EINVAL(rv)) {
        mod_scep_stats_add(r->server, SCEP_STATS_REFUSED);
    }
}

/* The engine's decisions' statuses as outcomes; it logs the decision with
 * who made it. */
static int decide(request_rec *r, scep_store_t *store, const decision_t *d)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    int approve = !strcmp(d->action, "approve");
    const scep_enroll_env_t *env = mod_scep_enroll_env(r);
    const scep_txn_t *before = mod_scep_audit_find_txn(r, store, d->id);
    apr_status_t rv = approve ? scep_enroll_approve(env, d->id, r->user, &prob)
                              : scep_enroll_deny(env, d->id, r->user, d->reason);
    const char *serial;

    count_decision(r, approve, rv);
    if (rv == APR_SUCCESS || (approve && APR_STATUS_IS_EINCOMPLETE(rv))) {
        mod_scep_audit_decision(r, store, approve ? SCEP_AUDIT_APPROVED : SCEP_AUDIT_DENIED, before,
                                d->id, approve ? NULL : d->reason);
    }
    if (rv == APR_SUCCESS && approve) {
        serial = issued_serial(r, store, d->id);
        return send_outcome(r, HTTP_OK, "approved", d->id, serial ? "serial" : NULL, serial);
    }
    if (rv == APR_SUCCESS) {
        return send_outcome(r, HTTP_OK, "denied", d->id, NULL, NULL);
    }
    if (APR_STATUS_IS_NOTFOUND(rv)) {
        return send_outcome(r, HTTP_NOT_FOUND, "unknown_request", d->id, NULL, NULL);
    }
    if (approve && APR_STATUS_IS_EINCOMPLETE(rv)) {
        return send_outcome(r, HTTP_ACCEPTED, "submitted", d->id, NULL, NULL);
    }
    if (approve && APR_STATUS_IS_EBUSY(rv)) {
        return send_outcome(r, HTTP_CONFLICT, "at_ca", d->id, NULL, NULL);
    }
    if (APR_STATUS_IS_EEXIST(rv)) {
        return send_outcome(r, HTTP_CONFLICT, "not_pending", d->id, NULL, NULL);
    }
    if (approve && APR_STATUS_IS_EINVAL(rv)) {
        return send_outcome(r, HTTP_UNPROCESSABLE_ENTITY, "not_issued", d->id, "message",
                            prob.text);
    }
    /* A server fault, logged there. */
    return HTTP_INTERNAL_SERVER_ERROR;
}

static int revoke_cert(request_rec *r, scep_store_t *store, const decision_t *d)
{
    apr_status_t rv;

    if (ca_is_external(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SCEPLOGNO(607) "CA manager %s asked to revoke certificate %s: the external "
                                     "CA revokes its certificates, not this server",
                      logged_user(r), ap_escape_logitem(r->pool, d->id));
        return send_outcome(r, HTTP_CONFLICT, "revoke_at_ca", d->id, NULL, NULL);
    }
    rv = store->revoke(store, r->pool, d->id, d->crl_reason);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      SCEPLOGNO(602) "CA manager %s revoked certificate %s, reason %s (%d)",
                      logged_user(r), ap_escape_logitem(r->pool, d->id),
                      scep_crl_reason_name(d->crl_reason), d->crl_reason);
        mod_scep_audit_revoked(r, store, d->id, scep_crl_reason_name(d->crl_reason));
        return send_outcome(r, HTTP_OK, "revoked", d->id, NULL, NULL);
    }
    if (APR_STATUS_IS_NOTFOUND(rv)) {
        return send_outcome(r, HTTP_NOT_FOUND, "unknown_cert", d->id, NULL, NULL);
    }
    if (APR_STATUS_IS_EEXIST(rv)) {
        return send_outcome(r, HTTP_CONFLICT, "already_revoked", d->id, NULL, NULL);
    }
    /* A server fault, logged by the store. */
    return HTTP_INTERNAL_SERVER_ERROR;
}

static int refuse_without_token(request_rec *r, const char *action)
{
    ap_log_rerror(
        APLOG_MARK, APLOG_WARNING, 0, r,
        SCEPLOGNO(603) "CA manager page: POST by %s (%s) refused, %s: the form token is missing, "
                       "stale or another user's (a page older than two hours, or a form posted "
                       "from another site)",
        logged_user(r), r->useragent_ip, action ? ap_escape_logitem(r->pool, action) : "no action");
    return send_error(r, HTTP_FORBIDDEN, "csrf",
                      "The form was stale or did not come from this page: reload the page "
                      "and try again.");
}

static int post_decision(request_rec *r, scep_store_t *store)
{
    apr_table_t *form = NULL;
    const decision_t *d;
    const char *why = NULL;
    int status = read_form(r, &form);

    if (status != OK) {
        return status;
    }
    /* The token first: nothing about the form is answered to a forger. */
    switch (csrf_valid(r, apr_table_get(form, "csrf"))) {
    case 1:
        break;
    case 0:
        return refuse_without_token(r, apr_table_get(form, "action"));
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!(d = parse_decision(r, form, &why))) {
        return send_error(r, HTTP_BAD_REQUEST, "bad_request", why);
    }
    return !strcmp(d->action, "revoke") ? revoke_cert(r, store, d) : decide(r, store, d);
}

/* ----------------------------------------------------------------------
 * The handler
 */

/* Apache's authentication normally answers 401 before the handler runs;
 * no user here means the location has no authentication at all. */
static int authenticated(request_rec *r)
{
    if (r->user && *r->user) {
        return 1;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_ERR, 0, r,
        SCEPLOGNO(604) "the CA manager page at %s needs authentication, or anyone can issue and "
                       "revoke certificates: add AuthType (GSSAPI, Basic...) and Require "
                       "valid-user to its <Location>",
        ap_escape_logitem(r->pool, r->uri));
    return 0;
}

static int refuse_get_with_action(request_rec *r)
{
    ap_log_rerror(
        APLOG_MARK, APLOG_WARNING, 0, r,
        SCEPLOGNO(605) "CA manager page: GET with an action by %s (%s) refused: decisions are "
                       "made by POST only",
        logged_user(r), r->useragent_ip);
    apr_table_setn(r->err_headers_out, "Allow", "POST");
    return send_error(r, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                      "Decisions are made with the page's buttons (POST), not by links.");
}

static int manager_page(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    scep_store_t *store;
    apr_table_t *args;

    if (!mod_scep_https_only(r, conf)) {
        return HTTP_FORBIDDEN;
    }
    if (!authenticated(r)) {
        return HTTP_FORBIDDEN;
    }
    switch (mod_scep_ldap_is_ca_manager(r, conf)) {
    case 1:
        break;
    case 0:
        return send_error(r, HTTP_FORBIDDEN, "not_authorized",
                          "You are not a CA manager: only members of the CA managers' group "
                          "may use this page.");
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!(args = query_args(r))) {
        return HTTP_BAD_REQUEST;
    }
    if (r->method_number == M_GET && apr_table_get(args, "action")) {
        return refuse_get_with_action(r);
    }
    if (!(store = mod_scep_store_acquire(r))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return r->method_number == M_POST ? post_decision(r, store) : show_page(r, store, args);
}

int mod_scep_manager_handler(request_rec *r)
{
    mod_scep_srv_conf_t *conf = NULL;
    int status = mod_scep_handler_start(r, SCEP_MANAGER_HANDLER, 1, csp_header, &conf);

    return status == OK ? manager_page(r, conf) : status;
}
