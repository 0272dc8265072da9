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
 * The HTTP helpers every handler uses (mod_scep_http.c): the start of a
 * handler, writing an answer, the pages' headers, Accept negotiation,
 * request bodies, JSON answers (jansson), times, the HTTPS-only rule; and the
 * TRACE refusal at the module's locations.
 */
#ifndef mod_scep_mod_scep_http_h
#define mod_scep_mod_scep_http_h

#include <httpd.h>

#include <jansson.h>

#include "mod_scep_config.h"

/* What every handler does first. DECLINED unless r is for the handler
 * called name, and for OPTIONS (httpd's default handler answers it with the
 * Allow list: GET, HEAD, and POST when with_post); 405 for other methods;
 * 500 (logged) in a server without SCEPCACertificateFile. OK when the
 * request is the handler's, with *conf its server's configuration. With a
 * csp (the admin and manager pages), every answer, 405 included, has
 * mod_scep_page_headers(). OpenSSL's error queue starts empty: what a
 * failure drains is this request's. */
int mod_scep_handler_start(request_rec *r, const char *name, int with_post, const char *csp,
                           mod_scep_srv_conf_t **conf);

/* A whole answer: status, Content-Type, Content-Length and the body (none
 * for HEAD). OK, or DONE when the client went away before it had it
 * (logged at debug): nothing is left to answer then. */
int mod_scep_send_body(request_rec *r, int status, const char *content_type, const void *body,
                       apr_size_t len);

/* The headers of every answer of the admin and manager pages, errors
 * included: no caching, no framing (csp: the page's
 * Content-Security-Policy, with frame-ancestors 'none'), no sniffing, no
 * Referer. */
void mod_scep_page_headers(request_rec *r, const char *csp);

/* The index of the media type of types (NULL-terminated) that r's Accept
 * ranks highest (RFC 9110's q values, the most specific range deciding),
 * the earliest of those ranked alike: 0 (the handler's own type) when
 * Accept is missing or ranks them all alike. */
int mod_scep_negotiate(request_rec *r, const char *const *types);

/* JSON when Accept prefers application/json over text/html. */
int mod_scep_wants_json(request_rec *r);

/* 1 when r's Content-Type is the media type type (compared without regard
 * to case), parameters such as charset aside; 0 otherwise or without one. */
int mod_scep_content_type_is(request_rec *r, const char *type);

/* 1 when r's Content-Length announces more than max bytes: answer 413
 * before reading anything. */
int mod_scep_body_announced_too_large(request_rec *r, apr_size_t max);

/* r's whole body, whatever its framing (length or chunked), in r's pool:
 * *data (*len bytes, followed by a NUL that *len does not count).
 * APR_ENOSPC as soon as it is past max bytes: the rest is never read
 * (httpd closes the connection after the 413 the caller answers); another
 * status when the input filters failed (ap_map_http_request_error() makes
 * the answer of it). */
apr_status_t mod_scep_read_body(request_rec *r, apr_size_t max, char **data, apr_size_t *len);

/* Values of a JSON answer (jansson's json_t, a new reference): text as a
 * JSON string, each byte that is not UTF-8 as U+FFFD, NULL as null; a time
 * as mod_scep_time_text(), 0 as null. NULL only when jansson could not
 * allocate: json_pack() and json_array_append_new() pass that on, and
 * mod_scep_send_json() answers it. */
json_t *mod_scep_json_text(apr_pool_t *p, const char *text);
json_t *mod_scep_json_time(apr_pool_t *p, apr_time_t t);

/* doc as a whole JSON answer (application/json, one line and a newline;
 * keys in their order; ASCII only, controls and the rest as \uXXXX), as
 * mod_scep_send_body(). Takes doc's reference. NULL doc, or one jansson
 * cannot write: 500, logged. */
int mod_scep_send_json(request_rec *r, int status, json_t *doc);

/* A time as RFC 3339 UTC text: YYYY-MM-DDTHH:MM:SSZ. */
const char *mod_scep_time_text(apr_pool_t *p, apr_time_t t);

/* HTTPS only unless SCEPAdminAllowHTTP On: 0 when refused (logged). */
int mod_scep_https_only(request_rec *r, const mod_scep_srv_conf_t *conf);

/* The translate_name hook: TRACE refused (405) at the module's locations. */
int mod_scep_refuse_trace(request_rec *r);

#endif /* mod_scep_mod_scep_http_h */
