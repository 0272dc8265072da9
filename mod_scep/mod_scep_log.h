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
 * The glue's log helpers (mod_scep_log.c). Each is a macro that passes the
 * caller's file and line (APLOG_MARK) on, as mod_ssl's
 * ssl_log_ssl_error(APLOG_MARK, ...) does: a line says where it was
 * written, not where the helper lives. A helper that logs a line of its own
 * takes the caller's literal tag, `SCEPLOGNO(213)`, as `const char *tag`
 * (t/check_lognos.sh checks every call). The macros are variadic so that
 * an argument may be a compound literal.
 */
#ifndef mod_scep_mod_scep_log_h
#define mod_scep_mod_scep_log_h

#include <httpd.h>

#include "scep.h"

/* mod_scep_log_openssl(s, level), mod_scep_rlog_openssl(r, level): drain
 * OpenSSL's error queue into the log, one line per entry (the core's
 * SCEP090 "OpenSSL: ..."), after a failure whose details it holds. */
#define mod_scep_log_openssl(...) mod_scep_log_openssl_at(APLOG_MARK, __VA_ARGS__)
#define mod_scep_rlog_openssl(...) mod_scep_rlog_openssl_at(APLOG_MARK, __VA_ARGS__)
void mod_scep_log_openssl_at(const char *file, int line, int module_index, server_rec *s,
                             int level);
void mod_scep_rlog_openssl_at(const char *file, int line, int module_index, request_rec *r,
                              int level);

/* mod_scep_log_problem(r, level, tag, prob): logs "SCEPnnn: <text> (NDES
 * event N)" for a problem reported by the core, then drains the OpenSSL
 * error queue at the same level. */
#define mod_scep_log_problem(...) mod_scep_log_problem_at(APLOG_MARK, __VA_ARGS__)
void mod_scep_log_problem_at(const char *file, int line, int module_index, request_rec *r,
                             int level, const char *tag, const scep_problem_t *prob);

/* mod_scep_log_startup_problem(s, tag, prob): the same for a problem that
 * stops the server's start: at APLOG_EMERG,
 * and a problem without an event of its own is event 2 (the service
 * failed to load). */
#define mod_scep_log_startup_problem(...) mod_scep_log_startup_problem_at(APLOG_MARK, __VA_ARGS__)
void mod_scep_log_startup_problem_at(const char *file, int line, int module_index, server_rec *s,
                                     const char *tag, const scep_problem_t *prob);

/* A scep_log_fn for the core (baton: the request_rec): its tagged lines go
 * to the request's error log at the core caller's file and line. */
void mod_scep_log_core(void *baton, const char *file, int line, int level, const char *msg);

/* The same for the core's lines about a server, not a request (baton: the
 * server_rec): the CA backends' faults, the background poll. */
void mod_scep_log_server(void *baton, const char *file, int line, int level, const char *msg);

#endif /* mod_scep_mod_scep_log_h */
