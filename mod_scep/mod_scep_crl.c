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
 * The `scep-crl` handler: the CA backend's CRL (the built-in CA's is the
 * one the service keeps in the records, scep_crl_shared.c) as DER
 * (application/pkix-crl, RFC 2585) at the plain HTTP URL that SCEPCRLURL
 * puts into issued certificates' CRL distribution points.
 * Plain HTTP on purpose: relying parties fetch CRLs without TLS, whose own
 * revocation checks would need this very CRL. Without a CRL configured (an
 * external CA without SCEPExternalCRL) it answers 404 with the reason.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_scep_private.h"

#define SCEP_CRL_HANDLER "scep-crl"

static int send_crl(request_rec *r, X509_CRL *crl)
{
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    int status;

    if (len <= 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(120) "cannot encode the CRL%s",
                      scep_event_text(SCEP_EVENT_GETCRL_FAILED));
        mod_scep_rlog_openssl(r, APLOG_ERR);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    status = mod_scep_send_body(r, HTTP_OK, "application/pkix-crl", der, (apr_size_t)len);
    OPENSSL_free(der);
    return status;
}

/* A CA without a CRL here (an external CA without SCEPExternalCRL): there
 * is nothing at this URL, which is the relying party's answer, not a
 * server fault. */
static int no_crl_configured(request_rec *r, const scep_problem_t *prob)
{
    const char *text = apr_pstrcat(r->pool, prob->text, "\n", NULL);

    mod_scep_log_problem(r, APLOG_WARNING, SCEPLOGNO(161), prob);
    return mod_scep_send_body(r, HTTP_NOT_FOUND, "text/plain; charset=utf-8", text, strlen(text));
}

int mod_scep_crl_handler(request_rec *r)
{
    mod_scep_srv_conf_t *conf = NULL;
    scep_ca_backend_t *ca;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_store_t *store;
    X509_CRL *crl;
    apr_status_t rv;
    int status;

    if ((status = mod_scep_handler_start(r, SCEP_CRL_HANDLER, 0, NULL, &conf)) != OK) {
        return status;
    }
    if (!(store = mod_scep_store_acquire(r))) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ca = mod_scep_enroll_env(r)->ca;
    rv = ca->crl(ca, r->pool, store, &crl, &prob);
    mod_scep_store_release(r);
    if (rv == APR_ENOTIMPL) {
        return no_crl_configured(r, &prob);
    }
    if (rv != APR_SUCCESS) {
        if (prob.text) {
            mod_scep_log_problem(r, APLOG_ERR, SCEPLOGNO(122), &prob);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return send_crl(r, crl);
}
