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
 * The HTTP helpers of every handler (mod_scep_http.h): the start every
 * handler shares, writing answers, the headers and the Accept negotiation
 * of the admin and manager pages, reading request bodies, JSON answers
 * (jansson), the HTTPS-only rule; and the TRACE refusal at the module's
 * locations, which knows their handlers' names as the handlers do.
 */

#include <apr_buckets.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <util_filter.h>

#include <openssl/err.h>

#include <jansson.h>

#include "mod_scep_private.h"
#include "scep_json.h"

/* What every handler does first (mod_scep_http.h). The server's check that
 * SCEPCACertificateFile is set comes last: a request for another handler,
 * or with another method, is no concern of it. */
int mod_scep_handler_start(request_rec *r, const char *name, int with_post, const char *csp,
                           mod_scep_srv_conf_t **conf)
{
    if (!r->handler || strcmp(r->handler, name) != 0) {
        return DECLINED;
    }
    ERR_clear_error();
    if (csp) {
        mod_scep_page_headers(r, csp);
    }
    /* For the Allow header of 405 and OPTIONS replies; HEAD goes with GET. */
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", with_post ? "POST" : NULL, NULL);
    if (r->method_number == M_OPTIONS) {
        /* httpd's default handler answers OPTIONS with the Allow list. */
        return DECLINED;
    }
    if (r->method_number != M_GET && (!with_post || r->method_number != M_POST)) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    *conf = mod_scep_srv_conf(r->server);
    if (!(*conf)->enabled) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(150) "SetHandler %s in a server without " SCEP_CA_CERTIFICATE_FILE
                                     ": the handler needs the CA%s",
                      name, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* ----------------------------------------------------------------------
 * Writing answers.
 */

/* On every answer of the admin and manager pages, errors (ap_die) included:
 * err_headers_out. No cache keeps them; no other site frames them (a
 * password or an Approve button under a clickjacking overlay), also in
 * browsers that know only X-Frame-Options; no sniffing, no Referer. */
void mod_scep_page_headers(request_rec *r, const char *csp)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
    /* The answer depends on Accept (HTML or JSON). */
    apr_table_mergen(r->err_headers_out, "Vary", "Accept");
    apr_table_setn(r->err_headers_out, "Content-Security-Policy", csp);
    apr_table_setn(r->err_headers_out, "X-Frame-Options", "DENY");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Referrer-Policy", "no-referrer");
}

int mod_scep_send_body(request_rec *r, int status, const char *content_type, const void *body,
                       apr_size_t len)
{
    r->status = status;
    ap_set_content_type(r, content_type);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only && ap_rwrite(body, (int)len, r) < 0) {
        /* The client went away: nothing left to answer. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      SCEPLOGNO(151) "the answer's body could not be sent: the client went away");
        return DONE;
    }
    return OK;
}

/* ----------------------------------------------------------------------
 * Content negotiation.
 */

/* The number a "q=" starts with, within RFC 9110's 0 to 1; 0 (not
 * acceptable) when it starts with none, or with NaN. */
static double weight_of(const char *text)
{
    char *stop;
    double weight = strtod(text, &stop);

    if (stop == text || !(weight > 0)) {
        return 0;
    }
    return weight > 1 ? 1 : weight;
}

/* The q value of one Accept element ("type/sub;a=b;q=0.5", len bytes),
 * 1 without one. */
static double element_quality(const char *element, apr_size_t len)
{
    const char *end = element + len, *param;

    for (param = memchr(element, ';', len); param; param = memchr(param, ';', end - param)) {
        param++;
        while (param < end && apr_isspace(*param)) {
            param++;
        }
        if (end - param > 2 && apr_tolower(param[0]) == 'q' && param[1] == '=') {
            return weight_of(param + 2);
        }
    }
    return 1.0;
}

/* How specifically a media range of len bytes matches type: 0 not at
 * all, 1 as the any-type range, 2 as "major/" with the asterisk, 3
 * exactly. */
static int range_match(const char *range, apr_size_t len, const char *type)
{
    apr_size_t major = strcspn(type, "/");

    if (len == 3 && !strncmp(range, "*/*", 3)) {
        return 1;
    }
    if (len == major + 2 && !strncasecmp(range, type, major + 1) && range[len - 1] == '*') {
        return 2;
    }
    return len == strlen(type) && !strncasecmp(range, type, len) ? 3 : 0;
}

/* The q value Accept gives type, from the most specific range that
 * matches it (RFC 9110, section 12.5.1); 0 when none does. */
static double accept_quality(const char *accept, const char *type)
{
    const char *element = accept;
    apr_size_t range_len, element_len;
    double quality = 0;
    int best = 0, match;

    while (*element) {
        while (*element == ',' || apr_isspace(*element)) {
            element++;
        }
        element_len = strcspn(element, ",");
        range_len = strcspn(element, ",; \t");
        match = range_match(element, range_len, type);
        if (match > best) {
            best = match;
            quality = element_quality(element, element_len);
        }
        element += element_len;
    }
    return quality;
}

/* The earliest of the types Accept ranks highest (mod_scep_http.h). */
int mod_scep_negotiate(request_rec *r, const char *const *types)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    double quality, best_quality = 0;
    int i, best = 0;

    for (i = 0; accept && types[i]; i++) {
        quality = accept_quality(accept, types[i]);
        if (quality > best_quality) {
            best_quality = quality;
            best = i;
        }
    }
    return best;
}

/* JSON only for a client that asks for it over HTML: browsers send
 * text/html first or rank everything equally (a missing Accept, or
 * "any/any"), and get the NDES page. */
int mod_scep_wants_json(request_rec *r)
{
    static const char *const types[] = { "text/html", "application/json", NULL };

    return mod_scep_negotiate(r, types) == 1;
}

/* 1 when r's Content-Type is the media type type (case-insensitive), with
 * or without parameters. */
int mod_scep_content_type_is(request_rec *r, const char *type)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t len = strlen(type);

    return ct && !strncasecmp(ct, type, len) &&
           (ct[len] == '\0' || ct[len] == ';' || apr_isspace(ct[len]));
}

/* ----------------------------------------------------------------------
 * Request bodies.
 */

/* Content-Length larger than allowed: answer before reading anything. */
int mod_scep_body_announced_too_large(request_rec *r, apr_size_t max)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t announced;
    char *end;

    return cl && apr_strtoff(&announced, cl, &end, 10) == APR_SUCCESS && *end == '\0' &&
           announced > (apr_off_t)max;
}

/* Moves the data buckets of in to body (set aside on the request pool, as
 * the input filters reuse their buffers); notes EOS. */
static apr_status_t take_input(request_rec *r, apr_bucket_brigade *in, apr_bucket_brigade *body,
                               apr_size_t *total, int *seen_eos)
{
    apr_bucket *b;
    const char *data;
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;

    while (!APR_BRIGADE_EMPTY(in)) {
        b = APR_BRIGADE_FIRST(in);
        if (APR_BUCKET_IS_EOS(b)) {
            *seen_eos = 1;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            apr_bucket_delete(b);
            continue;
        }
        if ((rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ)) != APR_SUCCESS ||
            (rv = apr_bucket_setaside(b, r->pool)) != APR_SUCCESS) {
            break;
        }
        *total += len;
        APR_BUCKET_REMOVE(b);
        APR_BRIGADE_INSERT_TAIL(body, b);
    }
    return rv;
}

/* The whole body (mod_scep_http.h): read until EOS or until it is past
 * max, whichever comes first. */
apr_status_t mod_scep_read_body(request_rec *r, apr_size_t max, char **data, apr_size_t *len)
{
    apr_bucket_brigade *in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_bucket_brigade *body = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_size_t total = 0;
    int seen_eos = 0;
    apr_status_t rv = APR_SUCCESS;

    while (!seen_eos && total <= max) {
        rv = ap_get_brigade(r->input_filters, in, AP_MODE_READBYTES, APR_BLOCK_READ,
                            HUGE_STRING_LEN);
        if (rv != APR_SUCCESS || (rv = take_input(r, in, body, &total, &seen_eos)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (total > max) {
        return APR_ENOSPC;
    }
    /* A NUL after the body, for parsers of text; *len does not count it. */
    *data = apr_palloc(r->pool, total + 1);
    *len = total;
    rv = apr_brigade_flatten(body, *data, len);
    (*data)[*len] = '\0';
    return rv;
}

/* ----------------------------------------------------------------------
 * JSON answers (jansson: never written by hand) and times.
 */

/* How every JSON answer is written: keys in the order they were set; ASCII
 * only, so that a control character a device sent (C0 and C1: a terminal's
 * escape sequences, which a manager who reads the answer with curl would
 * otherwise run) and anything beyond ASCII arrive as \uXXXX (DEL, which
 * terminals ignore, stays as it is: jansson escapes only below U+0020); the
 * separators ", " and ": " on one line. */
#define JSON_ANSWER_FLAGS (JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII | JSON_INDENT(0))

/* The core's, which the webhooks and notifications use too. */
json_t *mod_scep_json_text(apr_pool_t *p, const char *text)
{
    return scep_json_text(p, text);
}

json_t *mod_scep_json_time(apr_pool_t *p, apr_time_t t)
{
    return t ? mod_scep_json_text(p, mod_scep_time_text(p, t)) : json_null();
}

/* Written into r's pool by json_dumpb() (jansson 2.10), measured first:
 * no buffer of jansson's allocator to give back. */
int mod_scep_send_json(request_rec *r, int status, json_t *doc)
{
    size_t len = doc ? json_dumpb(doc, NULL, 0, JSON_ANSWER_FLAGS) : 0;
    char *body = len ? apr_palloc(r->pool, len + 1) : NULL;

    if (body && json_dumpb(doc, body, len, JSON_ANSWER_FLAGS) != len) {
        body = NULL;
    }
    json_decref(doc);
    if (!body) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(153) "the JSON answer could not be made: out of memory");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    body[len] = '\n';
    return mod_scep_send_body(r, status, "application/json", body, len + 1);
}

/* RFC 3339, UTC, whole seconds (the records' form of times too). */
const char *mod_scep_time_text(apr_pool_t *p, apr_time_t t)
{
    return scep_time_text(p, t);
}

/* ----------------------------------------------------------------------
 * Checks.
 */

/* The white paper only recommends SSL for this page ("Not setting SSL
 * allows an un-authenticated user to hijack the password"); it is
 * enforced here, and on the CA manager page (credentials, decisions). */
int mod_scep_https_only(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    if (conf->admin_allow_http || ap_ssl_conn_is_ssl(r->connection)) {
        return 1;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_ERR, 0, r,
        SCEPLOGNO(521) "the admin pages answer over HTTPS only, and %s came over plain HTTP: serve "
                       "it over HTTPS (mod_ssl) or set " SCEP_ADMIN_ALLOW_HTTP " On (e.g. behind a "
                       "proxy that terminates TLS)",
        ap_escape_logitem(r->pool, r->uri));
    return 0;
}

/* The handler `SetHandler` gives r's location, NULL when none: what the
 * core makes r->handler of, later, in its fixups. */
static const char *configured_handler(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL;
    const char *name;

    if (!d->expr_handler) {
        return NULL;
    }
    name = ap_expr_str_exec(r, d->expr_handler, &err);
    return err ? NULL : name;
}

/*
 * TRACE echoes the request, its Authorization header (the admin and manager
 * pages' Basic credentials) included. httpd answers it in map_to_storage,
 * before any access check or handler, whatever <Location> says (Require,
 * <LimitExcept>); only the server-wide TraceEnable turns it off, and the
 * drop-in must not decide that for the other sites of the server. So the
 * module refuses TRACE at its own locations here, at translate_name, where
 * the <Location> configuration already applies. Its handlers are "scep"
 * and "scep-..." by convention.
 */
int mod_scep_refuse_trace(request_rec *r)
{
    const char *name;

    if (r->method_number != M_TRACE) {
        return DECLINED;
    }
    name = configured_handler(r);
    if (name && (!strcmp(name, "scep") || !strncmp(name, "scep-", 5))) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    return DECLINED;
}
