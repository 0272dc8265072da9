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
 * The glue's log helpers: OpenSSL's error queue drained into the error log,
 * and the problems the core reports logged with their NDES event.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include <openssl/err.h>

#include "mod_scep_private.h"

/* One entry of the OpenSSL error queue as text, 0 when the queue is empty. */
static int next_openssl_error(char *text, apr_size_t size, const char **data)
{
    int flags = 0;
    unsigned long e = ERR_get_error_all(NULL, NULL, NULL, data, &flags);

    if (!e) {
        return 0;
    }
    ERR_error_string_n(e, text, size);
    if (!(flags & ERR_TXT_STRING) || !*data) {
        *data = "";
    }
    return 1;
}

void mod_scep_log_openssl(server_rec *s, int level)
{
    char text[256];
    const char *data;

    while (next_openssl_error(text, sizeof(text), &data)) {
        ap_log_error(APLOG_MARK, level, 0, s, SCEPLOGNO(001) "OpenSSL: %s%s%s", text,
                     *data ? ": " : "", data);
    }
}

void mod_scep_rlog_openssl(request_rec *r, int level)
{
    char text[256];
    const char *data;

    while (next_openssl_error(text, sizeof(text), &data)) {
        ap_log_rerror(APLOG_MARK, level, 0, r, SCEPLOGNO(002) "OpenSSL: %s%s%s", text,
                      *data ? ": " : "", data);
    }
}

/* " (NDES event N)", or nothing for problems without an event. */
const char *mod_scep_event_suffix(apr_pool_t *p, int event)
{
    return event == SCEP_EVENT_NONE ? "" : apr_psprintf(p, " (NDES event %d)", event);
}

void mod_scep_log_problem(request_rec *r, int level, int logno, const scep_problem_t *prob)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "SCEP%03d: %s%s", logno,
                  prob->text ? prob->text : "unspecified failure",
                  mod_scep_event_suffix(r->pool, prob->event));
    mod_scep_rlog_openssl(r, level);
}
