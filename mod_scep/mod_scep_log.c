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
 * The glue's log helpers (mod_scep_log.h says how to call them): the core's
 * lines and OpenSSL's error queue passed to httpd's error log at the place
 * of the call that logs them.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include "mod_scep_private.h"

/* The core's levels are syslog's, as APLOG_*. */
#if APLOG_ERR != SCEP_LOG_ERR || APLOG_DEBUG != SCEP_LOG_DEBUG
#error "SCEP_LOG_* must equal APLOG_*"
#endif

void mod_scep_log_core(void *baton, const char *file, int line, int level, const char *msg)
{
    request_rec *r = baton;

    ap_log_rerror_(file, line, APLOG_MODULE_INDEX, level, 0, r, "%s", msg);
}

void mod_scep_log_server(void *baton, const char *file, int line, int level, const char *msg)
{
    server_rec *s = baton;

    ap_log_error_(file, line, APLOG_MODULE_INDEX, level, 0, s, "%s", msg);
}

/* Where a drained OpenSSL error goes: a request's log, else a server's. */
typedef struct log_target_t {
    request_rec *r;
    server_rec *s;
    int module_index;
} log_target_t;

static void log_to_target(void *baton, const char *file, int line, int level, const char *msg)
{
    const log_target_t *to = baton;

    if (to->r) {
        ap_log_rerror_(file, line, to->module_index, level, 0, to->r, "%s", msg);
    }
    else {
        ap_log_error_(file, line, to->module_index, level, 0, to->s, "%s", msg);
    }
}

void mod_scep_log_openssl_at(const char *file, int line, int module_index, server_rec *s, int level)
{
    log_target_t to = { NULL, s, module_index };

    scep_log_openssl(log_to_target, &to, file, line, level);
}

void mod_scep_rlog_openssl_at(const char *file, int line, int module_index, request_rec *r,
                              int level)
{
    log_target_t to = { r, NULL, module_index };

    scep_log_openssl(log_to_target, &to, file, line, level);
}

static const char *problem_text(const scep_problem_t *prob)
{
    return prob->text ? prob->text : "unspecified failure";
}

void mod_scep_log_problem_at(const char *file, int line, int module_index, request_rec *r,
                             int level, const char *tag, const scep_problem_t *prob)
{
    ap_log_rerror_(file, line, module_index, level, 0, r, "%s%s%s", tag, problem_text(prob),
                   scep_event_text(prob->event));
    mod_scep_rlog_openssl_at(file, line, module_index, r, level);
}

void mod_scep_log_startup_problem_at(const char *file, int line, int module_index, server_rec *s,
                                     const char *tag, const scep_problem_t *prob)
{
    int event = prob->event != SCEP_EVENT_NONE ? prob->event : SCEP_EVENT_FAILED_TO_LOAD;

    ap_log_error_(file, line, module_index, APLOG_EMERG, 0, s, "%s%s%s", tag, problem_text(prob),
                  scep_event_text(event));
    mod_scep_log_openssl_at(file, line, module_index, s, APLOG_EMERG);
}

const char *mod_scep_server_label(server_rec *s)
{
    return s->is_virtual
               ? apr_psprintf(s->process->pconf, "virtual host %s:%u (%s:%d)", s->server_hostname,
                              (unsigned)s->port, s->defn_name, (int)s->defn_line_number)
               : "main server";
}
