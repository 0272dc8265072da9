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
 * A certmonger CA helper as the enrollment engine's CA backend: any program
 * written for certmonger's helper interface (doc/submit.txt: CERTMONGER_*
 * variables, exit statuses) submits the request to the site's CA, so that
 * Apache holds no CA key. The helper runs without a shell, with a clean
 * environment, bounded in time and output; what it returns is checked.
 */
#ifndef mod_scep_scep_ca_helper_h
#define mod_scep_scep_ca_helper_h

#include "scep_enroll.h"

typedef struct scep_ca_helper_conf_t {
    /* The helper's absolute path, then its arguments; NULL-terminated
     * (e.g. "/usr/lib/certmonger/local-submit", "-d", DIR, NULL). */
    const char *const *argv;
    apr_interval_time_t time_limit; /* 0: 30 seconds; then SIGTERM, 2 s later SIGKILL */
    apr_size_t output_limit;        /* of stdout and of stderr each; 0: 1 MiB */
    /* The CA's certificates: what the helper returns must chain to one of
     * them (the issuing CA need not be self-signed). Needed by issue() and
     * poll(); FETCH-ROOTS, which may provide it, runs without. */
    STACK_OF(X509) *ca_chain;
    scep_log_fn *log; /* faults, one line each (SCEP280-289) */
    void *log_baton;
} scep_ca_helper_conf_t;

/* The helper as a backend (issue, poll; crl refuses with event 44), on p
 * (with a copy of conf). issue() and poll() map the helper's exit status:
 * 0 issued (PEM or DER certificate or PKCS#7 certs-only on stdout: the one
 * for the CSR's key, which must chain to ca_chain, else a refusal with
 * event 31); 1 and 5 waiting (APR_EINCOMPLETE, the cookie as the ticket);
 * 2 rejected (badRequest, event 31, the helper's message as the text);
 * 3 unreachable, 4 under-configured, anything else, a time or output limit
 * passed: a fault, logged. */
scep_ca_backend_t *scep_ca_helper(apr_pool_t *p, const scep_ca_helper_conf_t *conf);

/* FETCH-ROOTS: the certificates the helper names as its CA's (root, other
 * roots, chain), on p; APR_EGENERAL (logged) when it fails. */
apr_status_t scep_ca_helper_fetch_roots(scep_ca_backend_t *ca, apr_pool_t *p,
                                        STACK_OF(X509) **roots);

/* IDENTIFY: what the helper says about itself and its CA, one line
 * (escaped), on p. APR_ENOTIMPL when the helper does not know the
 * operation (exit 6), APR_EGENERAL (logged) when it fails. */
apr_status_t scep_ca_helper_identify(scep_ca_backend_t *ca, apr_pool_t *p, const char **text);

#endif /* mod_scep_scep_ca_helper_h */
