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
 * A CA backend that submits each request to an external CA over CMP
 * (RFC 4210 / RFC 9483) with OpenSSL's CMP client: a p10cr carrying the
 * device's CSR unchanged, protected by the RA's signing key or by a MAC
 * secret, the template name as the certificate profile, over http or
 * https. The module builds one per server with SCEPCABackend cmp.
 *
 * A request the CA holds ("waiting") gets the ticket
 * "cmp:<pid>.<instance>:<transactionID hex>": OpenSSL 3.0 cannot resume a
 * CMP transaction in a new context, so the transaction stays in the
 * process that began it (pid, and a random instance made in that process,
 * which tells a pid used again). poll() of a ticket:
 *  - held here: a pollReq (none before the CA's checkAfter: APR_EINCOMPLETE
 *    with the seconds left); past the total timeout or over: refused, not
 *    known any more (event 31);
 *  - held by another process that lives: APR_EINCOMPLETE, the same ticket,
 *    retry_after 5, no exchange;
 *  - its process is gone (a restart, a child that ended, the pid used
 *    again): the request is submitted again as a new transaction (logged,
 *    SCEP273), with issue()'s results (a new ticket, the certificate, or a
 *    refusal).
 * scep_ca_cmp() may run before the process forks (Apache's children): a
 * child never uses nor frees what its parent holds.
 */
#ifndef mod_scep_scep_ca_cmp_h
#define mod_scep_scep_ca_cmp_h

#include "scep_enroll.h"

/* Longest waits the backend accepts, in seconds. A worker never hangs:
 * one issue() or poll() makes at most two exchanges (the request or a
 * pollReq, then certConf) of the message timeout each. The total timeout
 * is how long a CMP transaction may last, polling included: a CA that
 * holds a request for a person to decide needs days. */
#define SCEP_CA_CMP_MAX_MSG_TIMEOUT 120
#define SCEP_CA_CMP_MAX_TOTAL_TIMEOUT (7 * 86400)

typedef struct scep_ca_cmp_conf_t {
    const char *server_url; /* http://host[:port]/path or https:// */
    /* PEM: trust anchors of an https server's certificate, whose name must
     * be the URL's host (sent as SNI when it is a name). Required with an
     * https URL, refused with an http one. */
    const char *tls_ca_file;
    /* Protection: the RA's signing certificate and key, or, when
     * mac_secret is set, a MAC (PBM) with mac_ref as senderKID. */
    X509 *ra_cert;
    EVP_PKEY *ra_key;
    const char *mac_ref;
    const char *mac_secret; /* read from a private file by the caller */
    /* PEM trust anchors for the CA's CMP signer (signature-protected
     * answers); required unless mac_secret is set. */
    const char *trust_file;
    /* The CA that must have issued what comes back (a trust anchor for
     * the check, which may be an intermediate) and certificates between. */
    X509 *ca_cert;
    STACK_OF(X509) *ca_chain; /* may be NULL */
    /* Seconds for one message exchange and for a whole transaction
     * (polling included: a ticket older than that is not known any more);
     * 0 takes the maximum, more than the maximum is cut to it. */
    int msg_timeout;
    int total_timeout;
    scep_log_fn *log; /* faults; every line starts with its SCEPLOGNO() tag */
    void *log_baton;
} scep_ca_cmp_conf_t;

/* The CMP backend on p (with a copy of conf; its objects must live as
 * long as p; the transactions it holds are freed with p). Its crl()
 * refuses with event 44: no CRL is fetched over CMP.
 * NULL with *err set when conf cannot work (bad URL, no protection, no
 * trust anchors, https without tls_ca_file or tls_ca_file without https,
 * a file that cannot be read). */
scep_ca_backend_t *scep_ca_cmp(apr_pool_t *p, const scep_ca_cmp_conf_t *conf, const char **err);

/* Whether the CMP server of ca (a backend of scep_ca_cmp()) can be reached
 * and answers, trusted and protected as issue() needs: a general message
 * (genm) exchange, bounded by the timeouts. APR_SUCCESS: *text says what
 * the server answered (how many InfoTypeAndValues); APR_EINVAL: the CA
 * rejected it (its status text); APR_EGENERAL: no usable answer
 * (unreachable, too slow, untrusted or wrongly protected answer: OpenSSL's
 * reasons in *text). On p; a failure is logged too (SCEP274). */
apr_status_t scep_ca_cmp_check(scep_ca_backend_t *ca, apr_pool_t *p, const char **text);

#endif /* mod_scep_scep_ca_cmp_h */
