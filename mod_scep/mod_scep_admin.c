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
 * The `scep-admin` handler: NDES's administration page, mscep_admin, that
 * hands a signed-in device administrator a challenge password (white
 * paper, "The Enrollment Process", step 2).
 *
 * Scripts and MDMs (Fleet's NDES proxy, GlobalProtect, PowerShell) scrape
 * that page, so it keeps NDES's bytes: HTML in UTF-16LE with a byte order
 * mark, the sentences word for word, and `<P> text` paragraphs (a known
 * script splits the page at '>' and expects one space before the text).
 * NDES answers 200 for the password page, the full-cache page and the
 * refusal page alike, and the scrapers look for the sentences in a 200
 * answer (Fleet rejects any other status before reading the body): the
 * HTML pages are all 200 here too.
 *
 * Beyond NDES, for machines (scripts, MDMs), with real status codes (200,
 * 503 when the cache is full, 403 when refused): a client that prefers
 * application/json in Accept gets JSON (UTF-8), one that prefers text/plain
 * the password alone on a line; and a POST of application/json
 * {"device": "ID"}, an MDM fetching a challenge for one device, gets the
 * JSON answer with the device echoed, and the device is logged with the
 * password it got. Only application/json is taken: a browser's form on
 * another site can send a POST with a form's types (and the user's Basic
 * credentials) but not that one without a CORS preflight, which is never
 * answered here.
 *
 * Checks, in order: HTTPS (unless SCEPAdminAllowHTTP On), SCEPPasswordVDir,
 * an authenticated user (Apache's authentication: mod_auth_gssapi,
 * mod_authnz_ldap, Basic with a file...), a POST's body, the user's
 * permission (mod_scep_ldap.c), then a password from the cache
 * (mod_scep_passwords.c).
 * Every answer, errors included, forbids caching: a password must never be
 * served from a cache to someone else, nor twice.
 */

#include <apr_strings.h>
#include <apr_time.h>
#include <apr_xlate.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <jansson.h>

#include "mod_scep_private.h"

#define SCEP_ADMIN_HANDLER "scep-admin"

/* The sentences scrapers look for, as NDES words them. */
#define NDES_TITLE "Network Device Enrollment Service"
#define NDES_CACHE_FULL "The password cache is full."
#define NDES_NO_PERMISSION "You do not have sufficient permission to enroll with SCEP."

/* UTF-16LE byte order mark: NDES sends one, and scrapers that decode
 * "UTF-16" (Python's codec, Go's BOMOverride) need it to pick the byte
 * order. */
static const unsigned char utf16le_bom[] = { 0xFF, 0xFE };

/* A machine's POST: its body's size, and the device identifier's. */
#define DEVICE_BODY_MAX 4096
#define DEVICE_ID_MAX 256

/* What the admin page answers. */
typedef enum { ANSWER_PASSWORD, ANSWER_CACHE_FULL, ANSWER_REFUSED } answer_kind_t;

/* The answer's form, in the order of answer_types: NDES's page first,
 * which is what a tie in Accept gets. */
typedef enum { FORMAT_HTML, FORMAT_JSON, FORMAT_TEXT } format_t;

static const char *const answer_types[] = { "text/html", "application/json", "text/plain", NULL };

/* The Content-Type of each form. */
static const char *const content_types[] = { "text/html; charset=utf-16", "application/json",
                                             "text/plain; charset=utf-8" };

typedef struct answer_t {
    answer_kind_t kind;
    format_t format;
    const char *password;
    apr_time_t expires; /* 0: the single password, which does not expire */
    const char *device; /* the device a machine's POST named; NULL for a GET */
} answer_t;

/* Why a machine's POST is refused before a password is considered. */
typedef struct post_refusal_t {
    int status;          /* 415, 413, 400 */
    const char *error;   /* the JSON answer's "error" */
    const char *message; /* its "message", also logged */
} post_refusal_t;

/* ----------------------------------------------------------------------
 * Writing answers.
 */

/* The admin page's Content-Security-Policy: NDES's page loads nothing and
 * has no scripts, styles or forms. */
#define ADMIN_CSP "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

/* UTF-8 text as UTF-16LE after a byte order mark, converted by APR (iconv)
 * rather than by hand. */
static apr_status_t to_utf16le(apr_pool_t *p, const char *text, char **out, apr_size_t *out_len)
{
    apr_xlate_t *xlate;
    apr_size_t in_left = strlen(text);
    /* Each UTF-8 byte becomes at most two bytes of UTF-16. */
    apr_size_t size = sizeof(utf16le_bom) + 2 * in_left, out_left;
    apr_status_t rv;

    if ((rv = apr_xlate_open(&xlate, "UTF-16LE", "UTF-8", p)) != APR_SUCCESS) {
        return rv;
    }
    *out = apr_palloc(p, size);
    memcpy(*out, utf16le_bom, sizeof(utf16le_bom));
    out_left = size - sizeof(utf16le_bom);
    rv = apr_xlate_conv_buffer(xlate, text, &in_left, *out + sizeof(utf16le_bom), &out_left);
    if (rv == APR_SUCCESS && in_left != 0) {
        rv = APR_INCOMPLETE;
    }
    *out_len = size - out_left;
    apr_xlate_close(xlate);
    return rv;
}

static int send_html(request_rec *r, const char *html)
{
    char *body;
    apr_size_t len;
    apr_status_t rv = to_utf16le(r->pool, html, &body, &len);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, rv, r,
            SCEPLOGNO(520) "cannot convert the admin page to UTF-16LE (APR without iconv?)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* "utf-16" as NDES labels it; the byte order mark says LE, and
     * browsers take the mark over the label. */
    return mod_scep_send_body(r, HTTP_OK, "text/html; charset=utf-16", body, len);
}

/* NDES's page around one part of its own: the title bar, the introduction,
 * then the paragraphs of body. */
static const char *ndes_page(apr_pool_t *p, const char *body)
{
    return apr_pstrcat(p,
                       "<HTML><Head><Title>" NDES_TITLE "</Title></Head>\r\n"
                       "<Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n"
                       "<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>"
                       "<TR><TD><Font Color=#FFFFFF Face=\"Arial\" Size=-1><B>" NDES_TITLE
                       "</B></Font></TD></TR></Table>\r\n"
                       "<P> Network Device Enrollment Service allows you to obtain certificates "
                       "for routers or other network devices using the Simple Certificate "
                       "Enrollment Protocol (SCEP).\r\n",
                       body, "</Font></Body></HTML>\r\n", NULL);
}

/* The validity paragraphs: one-time passwords expire and are spent, the
 * single password does neither. */
static const char *validity_html(apr_pool_t *p, const mod_scep_srv_conf_t *conf,
                                 const answer_t *answer)
{
    if (!answer->expires) {
        return "<P> This is the single password for all devices: it can be used any number "
               "of times and does not expire.\r\n";
    }
    return apr_psprintf(p,
                        "<P> This password can be used only once and will expire within %d "
                        "minute%s.\r\n"
                        "<P> Each enrollment requires a new challenge password. You can refresh "
                        "this web page to obtain a new challenge password.\r\n",
                        conf->password_validity, conf->password_validity == 1 ? "" : "s");
}

static const char *answer_html(apr_pool_t *p, const mod_scep_srv_conf_t *conf,
                               const answer_t *answer)
{
    switch (answer->kind) {
    case ANSWER_PASSWORD:
        return ndes_page(
            p, apr_pstrcat(p,
                           "<P> To complete certificate enrollment for your network device you "
                           "will need the following information:\r\n"
                           "<P> The thumbprint (hash value) for the CA certificate is: <B> ",
                           ap_escape_html2(p, conf->pki->ca_thumbprint, 0),
                           " </B>\r\n"
                           "<P> The enrollment challenge password is: <B> ",
                           ap_escape_html2(p, answer->password, 0), " </B>\r\n",
                           validity_html(p, conf, answer), NULL));
    case ANSWER_CACHE_FULL:
        return ndes_page(p,
                         apr_psprintf(p,
                                      "<P> " NDES_CACHE_FULL " Unused passwords expire within %d "
                                      "minutes: use a password already obtained, or wait until one "
                                      "has been used or has expired.\r\n",
                                      conf->password_validity));
    default:
        return ndes_page(p, "<P> " NDES_NO_PERMISSION
                            " Please contact your system administrator.\r\n");
    }
}

/* expires is 0 for the single password, which has neither an expiry nor
 * a validity: both null. A machine's POST gets its device back last. NULL
 * when jansson has no memory. */
static json_t *password_json(apr_pool_t *p, const mod_scep_srv_conf_t *conf, const answer_t *answer)
{
    int single = answer->expires == 0;
    json_t *doc =
        json_pack("{s:o, s:o, s:o, s:o, s:b}", "password", mod_scep_json_text(p, answer->password),
                  "expires", mod_scep_json_time(p, answer->expires), "validity_minutes",
                  single ? json_null() : json_integer(conf->password_validity), "ca_thumbprint",
                  mod_scep_json_text(p, conf->pki->ca_thumbprint), "single_password", single);

    if (doc && answer->device &&
        json_object_set_new(doc, "device", mod_scep_json_text(p, answer->device)) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static json_t *error_json(const char *error, const char *message)
{
    return json_pack("{s:s, s:s}", "error", error, "message", message);
}

static int send_json(request_rec *r, const mod_scep_srv_conf_t *conf, const answer_t *answer)
{
    switch (answer->kind) {
    case ANSWER_PASSWORD:
        return mod_scep_send_json(r, HTTP_OK, password_json(r->pool, conf, answer));
    case ANSWER_CACHE_FULL:
        return mod_scep_send_json(r, HTTP_SERVICE_UNAVAILABLE,
                                  json_pack("{s:s, s:s, s:i}", "error", "password_cache_full",
                                            "message", NDES_CACHE_FULL, "validity_minutes",
                                            conf->password_validity));
    default:
        return mod_scep_send_json(r, HTTP_FORBIDDEN,
                                  error_json("not_authorized", NDES_NO_PERMISSION));
    }
}

/* text/plain: the password alone on a line, for `curl -f` and shell
 * scripts; the refusals' sentences with their status otherwise, never a
 * line that could be taken for a password with 200. */
static int send_text(request_rec *r, const answer_t *answer)
{
    int status = answer->kind == ANSWER_PASSWORD     ? HTTP_OK
                 : answer->kind == ANSWER_CACHE_FULL ? HTTP_SERVICE_UNAVAILABLE
                                                     : HTTP_FORBIDDEN;
    const char *text = answer->kind == ANSWER_PASSWORD     ? answer->password
                       : answer->kind == ANSWER_CACHE_FULL ? NDES_CACHE_FULL
                                                           : NDES_NO_PERMISSION;

    text = apr_pstrcat(r->pool, text, "\n", NULL);
    return mod_scep_send_body(r, status, content_types[FORMAT_TEXT], text, strlen(text));
}

static int send_answer(request_rec *r, const mod_scep_srv_conf_t *conf, const answer_t *answer)
{
    switch (answer->format) {
    case FORMAT_JSON:
        return send_json(r, conf, answer);
    case FORMAT_TEXT:
        return send_text(r, answer);
    default:
        return send_html(r, answer_html(r->pool, conf, answer));
    }
}

/* The user name as the logs show it: it comes from the client. */
static const char *logged_user(request_rec *r)
{
    return ap_escape_logitem(r->pool, r->user);
}

/* " for device \"ID\"" after the user in the lines of a machine's POST,
 * the identifier escaped as the user's name is (quotes, backslashes,
 * controls and bytes beyond ASCII as \xNN); nothing for a GET. */
static const char *logged_device(request_rec *r, const answer_t *answer)
{
    return answer->device ? apr_psprintf(r->pool, " for device \"%s\"",
                                         ap_escape_logitem(r->pool, answer->device))
                          : "";
}

/* ----------------------------------------------------------------------
 * The checks before a password is handed out.
 */

/* SCEPPasswordVDir, NDES's MSCEP_Admin: passwords only at or below that
 * URL path. Like an IIS virtual directory it is matched without regard to
 * case and by whole path segments: /certsrv/mscep_admin covers
 * /certsrv/mscep_admin, /certsrv/MSCEP_Admin/ and
 * /certsrv/mscep_admin/default.asp, not /certsrv/mscep_administrator.
 * Trailing slashes of the directive do not matter; empty (or "/") allows
 * any path. r->uri is the requested path, decoded and normalised, before
 * any Alias. */
static int below_vdir(const char *uri, const char *vdir)
{
    apr_size_t len = strlen(vdir);

    while (len > 0 && vdir[len - 1] == '/') {
        len--;
    }
    return len == 0 || (!strncasecmp(uri, vdir, len) && (uri[len] == '\0' || uri[len] == '/'));
}

static int in_password_vdir(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    if (below_vdir(r->uri, conf->password_vdir)) {
        return 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  SCEPLOGNO(522) "no passwords at %s: " SCEP_PASSWORD_VDIR
                                 " is '%s'; put SetHandler " SCEP_ADMIN_HANDLER
                                 " below it or change " SCEP_PASSWORD_VDIR,
                  ap_escape_logitem(r->pool, r->uri), conf->password_vdir);
    return 0;
}

/* Apache's authentication normally answers 401 before the handler runs;
 * no user here means the location has no authentication at all. */
static int authenticated(request_rec *r)
{
    if (r->user && *r->user) {
        return 1;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_ERR, 0, r,
        SCEPLOGNO(523) "the admin page at %s needs authentication, or anyone gets passwords: add "
                       "AuthType (GSSAPI, Basic...) and Require valid-user to its <Location>",
        ap_escape_logitem(r->pool, r->uri));
    return 0;
}

/* A password, or the answer that the cache is full: the answer's kind
 * and, on success, the password. An HTTP status on failure. */
static int issue_password(request_rec *r, const mod_scep_srv_conf_t *conf, answer_t *answer)
{
    char until[APR_RFC822_DATE_LEN];
    int waiting;
    apr_status_t rv = mod_scep_password_issue(r, &answer->password, &answer->expires, &waiting);

    if (APR_STATUS_IS_ENOSPC(rv)) {
        ap_log_rerror(
            APLOG_MARK, APLOG_WARNING, 0, r,
            SCEPLOGNO(524) "no password for %s (%s)%s: the password cache is full, %d passwords "
                           "waiting to be used (" SCEP_PASSWORD_MAX ")",
            logged_user(r), r->useragent_ip, logged_device(r, answer), conf->password_max);
        answer->kind = ANSWER_CACHE_FULL;
        return OK;
    }
    if (rv != APR_SUCCESS) {
        /* mod_scep_password_issue logged why. */
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    answer->kind = ANSWER_PASSWORD;
    mod_scep_audit_password(r, answer->device, answer->expires);
    if (!answer->expires) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      SCEPLOGNO(525) "the single password shown to %s (%s)%s", logged_user(r),
                      r->useragent_ip, logged_device(r, answer));
        return OK;
    }
    apr_rfc822_date(until, answer->expires);
    ap_log_rerror(
        APLOG_MARK, APLOG_INFO, 0, r,
        SCEPLOGNO(526) "one-time password handed out to %s (%s)%s, valid until %s; %d of at most "
                       "%d (" SCEP_PASSWORD_MAX ") now wait for their devices",
        logged_user(r), r->useragent_ip, logged_device(r, answer), until, waiting,
        conf->password_max);
    return OK;
}

/* ----------------------------------------------------------------------
 * A machine's POST: {"device": "ID"}.
 */

static int post_refused(post_refusal_t *refusal, int status, const char *error, const char *message)
{
    refusal->status = status;
    refusal->error = error;
    refusal->message = message;
    return 0;
}

/* The identifier in the body's JSON text (len bytes), copied to p: an
 * object with the one member "device", a string of 1 to DEVICE_ID_MAX bytes
 * (jansson takes UTF-8 only, and no NUL). Anything else is refused rather
 * than guessed at: a member misspelt ("Device") or added in a later version
 * is an error the MDM's administrator sees. 1, or 0 with the refusal. */
static int device_of_json(apr_pool_t *p, const char *text, apr_size_t len, const char **device,
                          post_refusal_t *refusal)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    json_t *id = json_object_get(doc, "device");
    int ok = 0;

    if (!doc) {
        post_refused(refusal, HTTP_BAD_REQUEST, "bad_json",
                     apr_psprintf(p, "the body is not JSON: %s (line %d, column %d)", err.text,
                                  err.line, err.column));
        goto leave;
    }
    if (!json_is_object(doc) || !json_is_string(id) || json_object_size(doc) != 1) {
        post_refused(refusal, HTTP_BAD_REQUEST, "bad_request",
                     "the body must be a JSON object with one member, \"device\", a string");
        goto leave;
    }
    if (json_string_length(id) < 1 || json_string_length(id) > DEVICE_ID_MAX) {
        post_refused(refusal, HTTP_BAD_REQUEST, "bad_device",
                     apr_psprintf(p, "\"device\" must be 1 to %d bytes of UTF-8", DEVICE_ID_MAX));
        goto leave;
    }
    *device = apr_pstrmemdup(p, json_string_value(id), json_string_length(id));
    ok = 1;
leave:
    json_decref(doc);
    return ok;
}

/* The device a machine's POST names (its Content-Type first: nothing else
 * is read otherwise). 1 with *device; 0 with the refusal to answer, or
 * with refusal->status alone when the body could not be read. */
static int posted_device(request_rec *r, const char **device, post_refusal_t *refusal)
{
    char *body;
    apr_size_t len;
    apr_status_t rv;

    if (!mod_scep_content_type_is(r, "application/json")) {
        return post_refused(refusal, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                            "a POST takes Content-Type: application/json, "
                            "{\"device\": \"ID\"}");
    }
    /* The announced length first: nothing is read of a body too large. */
    rv = mod_scep_body_announced_too_large(r, DEVICE_BODY_MAX)
             ? APR_ENOSPC
             : mod_scep_read_body(r, DEVICE_BODY_MAX, &body, &len);
    if (APR_STATUS_IS_ENOSPC(rv)) {
        return post_refused(
            refusal, HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
            apr_psprintf(r->pool, "the body is larger than %d bytes", DEVICE_BODY_MAX));
    }
    if (rv != APR_SUCCESS) {
        return post_refused(refusal, ap_map_http_request_error(rv, HTTP_BAD_REQUEST), NULL, NULL);
    }
    return device_of_json(r->pool, body, len, device, refusal);
}

/* The refusal of a machine's POST: its JSON answer, and a line at info for
 * the administrator of the MDM, who reads the server's log to find out why
 * the integration fails. */
static int refuse_post(request_rec *r, const post_refusal_t *refusal)
{
    if (!refusal->error) {
        /* The input filters logged the broken body. */
        return refusal->status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(531) "admin page: POST by %s (%s) refused with %d: %s", logged_user(r),
                  r->useragent_ip, refusal->status, ap_escape_logitem(r->pool, refusal->message));
    return mod_scep_send_json(r, refusal->status, error_json(refusal->error, refusal->message));
}

/* ----------------------------------------------------------------------
 * The handler.
 */

/* A POST is a machine's and answered in JSON; a GET in the form Accept
 * prefers. */
static format_t answer_format(request_rec *r)
{
    return r->method_number == M_POST ? FORMAT_JSON : (format_t)mod_scep_negotiate(r, answer_types);
}

static int admin_page(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    answer_t answer = { ANSWER_REFUSED, answer_format(r), NULL, 0, NULL };
    post_refusal_t refusal;
    int status;

    if (!mod_scep_https_only(r, conf)) {
        return HTTP_FORBIDDEN;
    }
    if (!in_password_vdir(r, conf)) {
        return HTTP_NOT_FOUND;
    }
    if (!authenticated(r)) {
        return HTTP_FORBIDDEN;
    }
    if (r->method_number == M_POST && !posted_device(r, &answer.device, &refusal)) {
        return refuse_post(r, &refusal);
    }
    switch (mod_scep_ldap_authorized(r, conf)) {
    case 1:
        break;
    case 0:
        return send_answer(r, conf, &answer);
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* A HEAD request gets the headers of the page, but no password: one
     * that nobody can read would hold a place in the cache until it
     * expires. */
    if (r->header_only) {
        ap_set_content_type(r, content_types[answer.format]);
        return OK;
    }
    if ((status = issue_password(r, conf, &answer)) != OK) {
        return status;
    }
    return send_answer(r, conf, &answer);
}

int mod_scep_admin_handler(request_rec *r)
{
    mod_scep_srv_conf_t *conf = NULL;
    int status = mod_scep_handler_start(r, SCEP_ADMIN_HANDLER, 1, ADMIN_CSP, &conf);

    return status == OK ? admin_page(r, conf) : status;
}
