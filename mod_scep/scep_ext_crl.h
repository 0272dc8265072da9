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
 * An external CA's CRL, provided by the site (SCEPExternalCRL): checked
 * before it is ever served, and given to a CA backend whose CA makes its
 * CRLs elsewhere (CMP, certmonger helpers) as its crl().
 */
#ifndef mod_scep_scep_ext_crl_h
#define mod_scep_scep_ext_crl_h

#include "scep_enroll.h"

/* The CRL in data (PEM or DER), on p, when ca_cert issued it: its issuer
 * is ca_cert's subject and its signature verifies with ca_cert's key. A
 * CRL that does not parse or verify is refused (APR_EINVAL, prob's text
 * says why, event 44). Its dates are not judged: a stale CRL is still the
 * CA's latest word, which relying parties judge by its nextUpdate. */
apr_status_t scep_ext_crl_parse(apr_pool_t *p, const unsigned char *data, apr_size_t len,
                                X509 *ca_cert, X509_CRL **crl, scep_problem_t *prob);

/* Where a backend's crl() gets the CRL: a verified one on p (the caller's
 * own reference), or an error with prob filled (a fault logged by the
 * source, or a refusal). */
typedef apr_status_t scep_crl_source_fn(void *baton, apr_pool_t *p, X509_CRL **crl,
                                        scep_problem_t *prob);

/* What the source frees at its process's end (scep_ca_backend_t's
 * process_exit): the CRL it kept. */
typedef void scep_crl_source_exit_fn(void *baton);

/* inner with its crl() replaced, on p: source (with baton) when set, else
 * a refusal with event 44 saying that no CRL of the external CA is
 * configured. issue() and poll() are inner's; process_exit() is inner's
 * and then source_exit's (either may be NULL). */
scep_ca_backend_t *scep_ca_with_crl(apr_pool_t *p, scep_ca_backend_t *inner,
                                    scep_crl_source_fn *source,
                                    scep_crl_source_exit_fn *source_exit, void *baton);

#endif /* mod_scep_scep_ext_crl_h */
