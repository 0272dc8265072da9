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
 * PKIOperation in httpd: the pkiMessage is parsed, the enrollment engine
 * (scep_enroll.c) decides on it with this request's records, built-in CA
 * and password cache, and its outcome goes back as a signed CertRep.
 *
 * HTTP errors are left for messages that cannot be read at all (400) and
 * for a CertRep that cannot be signed (500); every other answer is a
 * CertRep, a server fault's too (scep_enroll_reply(); the engine logged
 * why a refusal or a fault is one).
 */

#include <apr_strings.h>

#include "httpd.h"
#include "http_log.h"
#include "http_protocol.h"

#include "mod_scep_private.h"

static scep_store_t *request_records(void *baton)
{
    return mod_scep_store_acquire(baton);
}

/* What the engine decides by, from the server's configuration. */
static const scep_enroll_conf_t *enroll_conf(apr_pool_t *p, const mod_scep_srv_conf_t *conf)
{
    scep_enroll_conf_t *ec = apr_pcalloc(p, sizeof(*ec));

    ec->pki = conf->pki;
    ec->challenge_checks = mod_scep_challenge_list(conf);
    ec->standalone = conf->ca_type == SCEP_CA_STANDALONE;
    ec->renewal_subject_match = !conf->disable_renewal_subject_match;
    ec->cache_request_minutes = conf->cache_request_minutes;
    ec->refresh_period_days = conf->refresh_period_days;
    ec->signature_template = conf->signature_template;
    ec->encryption_template = conf->encryption_template;
    ec->general_purpose_template = conf->general_purpose_template;
    ec->templates = conf->templates;
    return ec;
}

const scep_enroll_env_t *mod_scep_enroll_env(request_rec *r)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    scep_enroll_env_t *env = apr_pcalloc(r->pool, sizeof(*env));

    env->pool = r->pool;
    env->conf = enroll_conf(r->pool, conf);
    env->records = request_records;
    env->records_baton = r;
    env->ca = conf->ca;
    env->challenge_checks = mod_scep_challenge_checks(r);
    env->log = mod_scep_log_core;
    env->log_baton = r;
    env->client_addr = r->useragent_ip;
    return env;
}

const scep_enroll_env_t *mod_scep_server_env(apr_pool_t *p, server_rec *s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    scep_enroll_env_t *env = apr_pcalloc(p, sizeof(*env));

    env->pool = p;
    env->conf = enroll_conf(p, conf);
    /* opened once per environment (the pool of a background round) */
    env->records = mod_scep_server_records;
    env->records_baton = mod_scep_server_records_baton(p, s);
    env->ca = conf->ca;
    env->log = mod_scep_log_server;
    env->log_baton = s;
    return env;
}

static int send_certrep(request_rec *r, const scep_request_t *req, const scep_reply_t *reply)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    unsigned char *der;
    apr_size_t len;
    scep_problem_t prob;

    if (scep_certrep_build(r->pool, conf->pki, req, reply, &der, &len, &prob) != APR_SUCCESS) {
        mod_scep_log_problem(r, APLOG_ERR, SCEPLOGNO(212), &prob);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return mod_scep_send_body(r, HTTP_OK, "application/x-pki-message", der, len);
}

static void warn_legacy(request_rec *r, const scep_request_t *req)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  SCEPLOGNO(215) "transaction %s uses single DES or MD5, which RFC 8894 "
                                 "forbids; accepted because SCEPAllowLegacyAlgorithms is On",
                  req->transaction_id);
}

int mod_scep_pkioperation(request_rec *r, const unsigned char *msg, apr_size_t len)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    const scep_enroll_env_t *env = mod_scep_enroll_env(r);
    scep_parse_opts_t opts = { conf->allow_legacy, 0 };
    scep_reply_t reply;
    scep_outcome_t outcome;
    scep_request_t *req = NULL;
    scep_problem_t prob;
    int status;

    if (scep_request_parse(r->pool, conf->pki, msg, len, &opts, &req, &prob) != APR_SUCCESS) {
        if (!req) {
            mod_scep_log_problem(r, APLOG_WARNING, SCEPLOGNO(213), &prob);
            return HTTP_BAD_REQUEST;
        }
        scep_enroll_refuse_unparsed(env, req, &prob, &outcome);
    }
    else {
        if (req->legacy_alg) {
            warn_legacy(r, req);
        }
        scep_enroll_message(env, req, &outcome);
        /* the outcome holds copies: the connection is not needed to send it */
        mod_scep_store_release(r);
    }
    /* decided (and recorded) whether or not the answer goes out */
    mod_scep_stats_outcome(r, req, &outcome);
    scep_enroll_reply(r->pool, conf->pki, conf->certrep_include_chain, &outcome, &reply);
    status = send_certrep(r, req, &reply);
    /* recorded, whether or not its CertRep could be signed */
    mod_scep_audit_pkiop(r, req, &outcome, &reply);
    /* decided, whether or not the device stayed for its answer */
    if (status != HTTP_INTERNAL_SERVER_ERROR) {
        mod_scep_notify_later(r, req, &outcome, &reply);
    }
    return status;
}
