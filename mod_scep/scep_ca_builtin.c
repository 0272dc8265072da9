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
 * The built-in CA as the enrollment engine's CA backend: scep_ca_issue()
 * with the configuration's options, and the service's CRL kept in the
 * records (scep_crl_current(), scep_crl_shared.c).
 */

#include <apr_strings.h>

#include "scep_enroll.h"

static apr_status_t builtin_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                  const scep_template_t *tmpl, X509 **cert,
                                  scep_ca_ticket_t *ticket, scep_problem_t *prob)
{
    const scep_ca_builtin_conf_t *conf = ca->baton;
    scep_issue_opts_t opts = { conf->validity_days, conf->md, tmpl, conf->crl_url };

    (void)ticket; /* it never holds a request */
    if (tmpl && tmpl->validity_days) {
        opts.validity_days = tmpl->validity_days;
    }
    return scep_ca_issue(p, conf->pki, csr, &opts, cert, prob);
}

static apr_status_t builtin_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store,
                                X509_CRL **crl, scep_problem_t *prob)
{
    const scep_ca_builtin_conf_t *conf = ca->baton;
    scep_crl_opts_t opts = { conf->md, conf->crl_validity_hours, 0 };
    apr_status_t rv = scep_crl_current(p, conf->pki, &opts, store, crl, prob);

    if (rv != APR_SUCCESS && prob->text) {
        /* no CRL of this CA (no key) is the device's answer, event 44; a
         * fault of the records (no text, logged by the store) is not */
        prob->fail_info = SCEP_FAIL_BAD_REQUEST;
    }
    return rv;
}

scep_ca_backend_t *scep_ca_builtin(apr_pool_t *p, const scep_ca_builtin_conf_t *conf)
{
    scep_ca_backend_t *ca = apr_pcalloc(p, sizeof(*ca));

    ca->baton = apr_pmemdup(p, conf, sizeof(*conf));
    ca->issue = builtin_issue;
    ca->crl = builtin_crl;
    return ca;
}
