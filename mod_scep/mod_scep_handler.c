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
 * The `scep` handler: the HTTP surface of RFC 8894 section 4. It routes on
 * the `operation` parameter, answers GetCACaps and GetCACert itself and
 * hands the pkiMessage of a PKIOperation, from a POST body or a GET
 * `message`, to mod_scep_pkioperation().
 *
 * Devices are sloppy with URLs: the query string is parsed here rather than
 * by a form decoder, because a raw '+' in base64 must survive (a form
 * decoder makes it a space), and bad escapes are kept as they are instead of
 * failing the request.
 */

#include <apr_lib.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_scep_private.h"

#define SCEP_HANDLER "scep"

/* The parameters of a request that matter to SCEP, unescaped. */
typedef struct query_params_t {
    const char *operation;
    const char *message;
} query_params_t;

/* Percent-decoding in place with httpd's decoder, which leaves '+' alone
 * (devices send it raw) and keeps a '%' that starts no valid escape: its
 * complaint about such an escape is ignored, as devices send those too. */
static void unescape_lenient(char *text)
{
    (void)ap_unescape_all(text);
}

/* Splits the query string at '&' and each pair at its first '=' only: raw
 * base64 padding ("...==") is part of the value. The first occurrence of a
 * parameter wins. */
static void parse_args(apr_pool_t *p, const char *args, query_params_t *params)
{
    char *copy, *pair, *value, *state = NULL;

    params->operation = params->message = NULL;
    if (!args) {
        return;
    }
    copy = apr_pstrdup(p, args);
    for (pair = apr_strtok(copy, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        value = strchr(pair, '=');
        if (!value) {
            continue;
        }
        *value++ = '\0';
        unescape_lenient(pair);
        unescape_lenient(value);
        if (!params->operation && !strcasecmp(pair, "operation")) {
            params->operation = value;
        }
        else if (!params->message && !strcasecmp(pair, "message")) {
            params->message = value;
        }
    }
}

/* Client errors: logged as NDES does, answered with a bare HTTP status. */
static int reject(request_rec *r, int status, const char *tag, int event, const char *text)
{
    scep_problem_t prob;

    scep_problem(&prob, APR_EINVAL, SCEP_FAIL_NONE, event, text);
    mod_scep_log_problem(r, APLOG_ERR, tag, &prob);
    return status;
}

/* Renewal is always served (macOS refuses to renew otherwise);
 * GetNextCACert only with a rollover certificate, as RFC 8894 asks. */
static int get_ca_caps(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    const char *caps = scep_capabilities(
        r->pool, SCEP_CAP_RENEWAL | (conf->next_ca_body ? SCEP_CAP_NEXT_CA_CERT : 0));

    return mod_scep_send_body(r, HTTP_OK, "text/plain", caps, strlen(caps));
}

/* The `message` of GetCACert names a CA for servers with several; with one
 * CA it is ignored, whatever it says. */
static int get_ca_cert(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    return mod_scep_send_body(r, HTTP_OK, conf->pki->getcacert_type, conf->pki->getcacert_body,
                              conf->pki->getcacert_len);
}

/* Reads the whole body, whatever its Content-Type and framing (length or
 * chunked), and stops with 413 as soon as it exceeds max: the rest is never
 * read (httpd closes the connection after a 413). */
static int read_body(request_rec *r, apr_size_t max, unsigned char **msg, apr_size_t *len)
{
    apr_status_t rv;

    if (mod_scep_body_announced_too_large(r, max)) {
        return reject(r, HTTP_REQUEST_ENTITY_TOO_LARGE, SCEPLOGNO(101), SCEP_EVENT_FAIL_TO_CONVERT,
                      apr_psprintf(r->pool,
                                   "PKIOperation body announced larger than " SCEP_MAX_REQUEST_SIZE
                                   " %" APR_SIZE_T_FMT,
                                   max));
    }
    rv = mod_scep_read_body(r, max, (char **)msg, len);
    if (APR_STATUS_IS_ENOSPC(rv)) {
        return reject(r, HTTP_REQUEST_ENTITY_TOO_LARGE, SCEPLOGNO(103), SCEP_EVENT_FAIL_TO_CONVERT,
                      apr_psprintf(r->pool,
                                   "PKIOperation body larger than " SCEP_MAX_REQUEST_SIZE
                                   " %" APR_SIZE_T_FMT,
                                   max));
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      SCEPLOGNO(102) "cannot read the PKIOperation body%s",
                      scep_event_text(SCEP_EVENT_FAIL_TO_CONVERT));
        return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
    }
    if (*len == 0) {
        return reject(r, HTTP_BAD_REQUEST, SCEPLOGNO(104), SCEP_EVENT_NO_MESSAGE,
                      "PKIOperation POST without a body");
    }
    return OK;
}

/* The longest base64 text a message of max bytes can take: 4 characters
 * per 3 bytes, a line break (up to 2 characters) per 64 characters as
 * sscep sends them, and padding. */
static apr_size_t max_base64_len(apr_size_t max)
{
    apr_size_t b64 = (max + 2) / 3 * 4;

    return b64 + b64 / 32 + 4;
}

static int get_message_too_large(request_rec *r, apr_size_t max)
{
    return reject(r, HTTP_REQUEST_ENTITY_TOO_LARGE, SCEPLOGNO(106), SCEP_EVENT_FAIL_TO_CONVERT,
                  apr_psprintf(r->pool,
                               "PKIOperation message larger than " SCEP_MAX_REQUEST_SIZE
                               " %" APR_SIZE_T_FMT,
                               max));
}

/* The `message` of a GET PKIOperation, already unescaped. The length of the
 * text is checked first so that no oversized text is decoded; the decoded
 * length decides. */
static int decode_get_message(request_rec *r, apr_size_t max, const char *text, unsigned char **msg,
                              apr_size_t *len)
{
    if (!text || !*text) {
        return reject(r, HTTP_BAD_REQUEST, SCEPLOGNO(105), SCEP_EVENT_NO_MESSAGE,
                      "PKIOperation GET without a message parameter");
    }
    if (strlen(text) > max_base64_len(max)) {
        return get_message_too_large(r, max);
    }
    if (scep_decode_get_message(r->pool, text, msg, len) != APR_SUCCESS) {
        return reject(r, HTTP_BAD_REQUEST, SCEPLOGNO(107), SCEP_EVENT_FAIL_TO_CONVERT,
                      "PKIOperation message is not base64");
    }
    return *len > max ? get_message_too_large(r, max) : OK;
}

static int pki_operation(request_rec *r, const mod_scep_srv_conf_t *conf,
                         const query_params_t *params)
{
    unsigned char *msg = NULL;
    apr_size_t len = 0;
    int status;

    if (r->method_number == M_POST) {
        status = read_body(r, conf->max_request_size, &msg, &len);
    }
    else {
        status = decode_get_message(r, conf->max_request_size, params->message, &msg, &len);
    }
    return status == OK ? mod_scep_pkioperation(r, msg, len) : status;
}

/* The rollover certificate, its reply built at startup. RFC 8894 requires
 * rejecting GetNextCACert when there is none; clients probe for it, so
 * that is no error of the server: logged at info. */
static int get_next_ca_cert(request_rec *r, const mod_scep_srv_conf_t *conf)
{
    if (conf->next_ca_body) {
        return mod_scep_send_body(r, HTTP_OK, "application/x-x509-next-ca-cert", conf->next_ca_body,
                                  conf->next_ca_len);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(108) "GetNextCACert: no rollover CA certificate is configured%s",
                  scep_event_text(SCEP_EVENT_NO_OPERATION));
    return HTTP_BAD_REQUEST;
}

/* HEAD asks for the headers of what GET would answer, and must change
 * nothing (RFC 9110, 9.2.1); a PKIOperation enrolls, spends a password and
 * writes records, so its message is neither read nor processed: 405 (the
 * URL's Allow still names HEAD, which the other operations answer). */
static int refuse_head(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(251) "HEAD PKIOperation refused without reading its message: "
                                 "a PKIOperation changes state, a HEAD request must not");
    return HTTP_METHOD_NOT_ALLOWED;
}

static int dispatch(request_rec *r, const mod_scep_srv_conf_t *conf, const query_params_t *params)
{
    if (!params->operation) {
        return reject(r, HTTP_BAD_REQUEST, SCEPLOGNO(109), SCEP_EVENT_NO_OPERATION,
                      "request without an operation parameter");
    }
    if (!strcasecmp(params->operation, "PKIOperation")) {
        return r->header_only ? refuse_head(r) : pki_operation(r, conf, params);
    }
    /* Only PKIOperation has a body; others are answered without reading one. */
    if (!strcasecmp(params->operation, "GetCACaps")) {
        return get_ca_caps(r, conf);
    }
    if (!strcasecmp(params->operation, "GetCACert")) {
        return get_ca_cert(r, conf);
    }
    if (!strcasecmp(params->operation, "GetNextCACert")) {
        return get_next_ca_cert(r, conf);
    }
    return reject(r, HTTP_BAD_REQUEST, SCEPLOGNO(110), SCEP_EVENT_NO_OPERATION,
                  apr_psprintf(r->pool, "unknown operation '%s'",
                               ap_escape_logitem(r->pool, params->operation)));
}

int mod_scep_handler(request_rec *r)
{
    mod_scep_srv_conf_t *conf = NULL;
    query_params_t params;
    int status = mod_scep_handler_start(r, SCEP_HANDLER, 1, NULL, &conf);

    if (status != OK) {
        return status;
    }
    parse_args(r->pool, r->args, &params);
    return dispatch(r, conf, &params);
}
