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
 * SCEPNotifyWebhook in httpd: each server's notification webhook built at
 * startup (scep_webhook.c), the notification of a PKIOperation's decision
 * made while its request is handled (scep_notify.c) and sent from the
 * log_transaction hook, which httpd runs once the answer has gone to the
 * device: a slow or dead webhook delays the worker, never the device's
 * answer, and at most SCEPWebhookTimeout.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>

#include "mod_scep_private.h"
#include "scep_notify.h"

/* The request pool's key of the notification waiting for its answer. */
#define PENDING_USERDATA "mod_scep notify"

typedef struct pending_t {
    scep_webhook_t *wh;
    const char *transaction_id;
    const char *body;
    apr_size_t len;
} pending_t;

apr_status_t mod_scep_notify_setup(apr_pool_t *pconf, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    mod_scep_webhook_use_t use = { 0 };

    conf->notify = NULL;
    if (!conf->notify_webhook) {
        if (!conf->notify_secret_file) {
            return APR_SUCCESS;
        }
        /* a configuration that says more than it does refuses to start */
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(060) "%s: " SCEP_NOTIFY_WEBHOOK_SECRET_FILE
                                    " is set without " SCEP_NOTIFY_WEBHOOK " (the URL)%s",
                     mod_scep_server_label(s), scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_EINVAL;
    }
    use.what = "notification webhook";
    use.url = conf->notify_webhook;
    use.url_directive = SCEP_NOTIFY_WEBHOOK;
    use.secret_file = conf->notify_secret_file;
    use.secret_directive = SCEP_NOTIFY_WEBHOOK_SECRET_FILE;
    conf->notify = mod_scep_webhook_create(pconf, s, &use);
    return conf->notify ? APR_SUCCESS : APR_EINVAL;
}

void mod_scep_notify_later(request_rec *r, const scep_request_t *req, const scep_outcome_t *outcome,
                           const scep_reply_t *reply)
{
    scep_webhook_t *wh = mod_scep_srv_conf(r->server)->notify;
    scep_notify_facts_t facts = {
        r->server->server_hostname, req, outcome, reply, r->useragent_ip, apr_time_now()
    };
    pending_t *pending;

    if (!wh || !scep_notify_wanted(req)) {
        return;
    }
    pending = apr_pcalloc(r->pool, sizeof(*pending));
    pending->wh = wh;
    pending->transaction_id = req->transaction_id;
    if (scep_notify_body(r->pool, &facts, &pending->body, &pending->len) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(683) "transaction %s: the notification cannot be made; none is "
                                     "sent",
                      scep_escape_text(r->pool, req->transaction_id, 0));
        mod_scep_rlog_openssl(r, APLOG_ERR);
        return;
    }
    apr_pool_userdata_setn(pending, PENDING_USERDATA, NULL, r->pool);
}

int mod_scep_notify_log_transaction(request_rec *r)
{
    pending_t *pending = NULL;

    apr_pool_userdata_get((void **)&pending, PENDING_USERDATA, r->pool);
    if (pending) {
        /* once: an internal redirect's requests share the pool */
        apr_pool_userdata_setn(NULL, PENDING_USERDATA, NULL, r->pool);
        scep_notify_send(pending->wh, r->pool, pending->transaction_id, pending->body, pending->len,
                         mod_scep_log_core, r);
    }
    return DECLINED;
}
