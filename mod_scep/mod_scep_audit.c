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
 * SCEPAuditLog in httpd: where each server's audit lines go (a file, or a
 * piped logger as CustomLog's "|command"), opened by the parent as root in
 * the open_logs hook like Apache's own logs, and the lines of the
 * decisions the handlers make (scep_audit.c writes them).
 *
 * A file is opened with O_APPEND and written one write() per line: the
 * kernel appends each whole, so the children and their threads never
 * interleave lines. A pipe is atomic only up to PIPE_BUF bytes, and a
 * device's names can make a line longer, so lines to a piped logger are
 * written under the global mutex "scep-audit" (made only when some server
 * pipes its audit log; taken alone, never with another of the module's).
 * Servers naming the same target share one file or one logger.
 */

#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <util_mutex.h>

#include "mod_scep_private.h"
#include "scep_audit.h"

#define AUDIT_MUTEX_TYPE "scep-audit"

/* One file or piped logger, shared by the servers naming it. */
typedef struct target_t {
    const char *name; /* the directive's value */
    apr_file_t *file;
    int piped;
} target_t;

/* This generation's targets by name (on pconf; only read once the children
 * run), and the pipes' mutex (NULL without a piped logger). */
static apr_hash_t *targets;
static apr_global_mutex_t *pipe_mutex;

/* ----------------------------------------------------------------------
 * Startup
 */

const char *mod_scep_audit_set_log(cmd_parms *cmd, void *dconf, const char *arg)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(cmd->server);
    const char *path;

    (void)dconf;
    if (*arg == '|') {
        if (!arg[strspn(arg, "|$ \t")]) {
            return SCEP_AUDIT_LOG ": a piped logger needs its command after '|'";
        }
        conf->audit_log = arg;
        return NULL;
    }
    if (!(path = ap_server_root_relative(cmd->pool, arg))) {
        return apr_pstrcat(cmd->pool, SCEP_AUDIT_LOG ": invalid file path ", arg, NULL);
    }
    conf->audit_log = path;
    return NULL;
}

int mod_scep_audit_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    targets = NULL;
    pipe_mutex = NULL;
    return ap_mutex_register(pconf, AUDIT_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK
               : !OK;
}

/* The piped logger of "|command" ("||program", "|$shell command": httpd's
 * ap_open_piped_log() reads them as CustomLog does), restarted by httpd
 * when it dies. */
static apr_status_t open_pipe(apr_pool_t *pconf, server_rec *s, target_t *t)
{
    piped_log *pl = ap_open_piped_log(pconf, t->name + 1);

    if (!pl) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(721) "%s: " SCEP_AUDIT_LOG " cannot start its piped logger %s",
                     mod_scep_server_label(s), t->name);
        return APR_EGENERAL;
    }
    t->file = ap_piped_log_write_fd(pl);
    t->piped = 1;
    return APR_SUCCESS;
}

/* The file, as root, appended to; made 0640 when missing (subjects and
 * addresses are not for every local user). */
static apr_status_t open_file(apr_pool_t *pconf, server_rec *s, target_t *t)
{
    apr_status_t rv =
        apr_file_open(&t->file, t->name,
                      APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE | APR_FOPEN_LARGEFILE,
                      APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, pconf);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(720) "%s: " SCEP_AUDIT_LOG " cannot open %s%s",
                     mod_scep_server_label(s), t->name, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    }
    return rv;
}

static apr_status_t open_target(apr_pool_t *pconf, server_rec *s, const char *name)
{
    target_t *t = apr_hash_get(targets, name, APR_HASH_KEY_STRING);
    apr_status_t rv;

    if (t) {
        return APR_SUCCESS;
    }
    t = apr_pcalloc(pconf, sizeof(*t));
    t->name = name;
    rv = *name == '|' ? open_pipe(pconf, s, t) : open_file(pconf, s, t);
    if (rv == APR_SUCCESS) {
        apr_hash_set(targets, name, APR_HASH_KEY_STRING, t);
    }
    return rv;
}

static apr_status_t make_pipe_mutex(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv =
        ap_global_mutex_create(&pipe_mutex, NULL, AUDIT_MUTEX_TYPE, NULL, s, pconf, 0);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(722) "cannot create the global mutex " AUDIT_MUTEX_TYPE
                                    " of the piped audit logs%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        pipe_mutex = NULL;
    }
    return rv;
}

int mod_scep_audit_open_logs(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *main_s)
{
    int piped = 0;
    server_rec *s;
    const char *name;

    (void)plog;
    (void)ptemp;
    targets = apr_hash_make(pconf);
    for (s = main_s; s; s = s->next) {
        name = mod_scep_srv_conf(s)->audit_log;
        if (!name) {
            continue;
        }
        if (open_target(pconf, s, name) != APR_SUCCESS) {
            return !OK;
        }
        piped |= *name == '|';
    }
    return piped && make_pipe_mutex(pconf, main_s) != APR_SUCCESS ? !OK : OK;
}

void mod_scep_audit_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (!pipe_mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&pipe_mutex, apr_global_mutex_lockfile(pipe_mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SCEPLOGNO(723) "cannot attach to the global mutex " AUDIT_MUTEX_TYPE
                                    ": the piped audit logs get no lines from this process");
        pipe_mutex = NULL;
    }
}

/* ----------------------------------------------------------------------
 * Lines
 */

/* Writes to a pipe under the mutex; to a file as it is. */
static apr_status_t append(const target_t *t, const char *line, apr_size_t len)
{
    apr_status_t rv;

    if (!t->piped) {
        return scep_audit_append(t->file, line, len);
    }
    if (!pipe_mutex) {
        return APR_ENOLOCK;
    }
    if ((rv = scep_global_mutex_lock(pipe_mutex)) != APR_SUCCESS) {
        return rv;
    }
    rv = scep_audit_append(t->file, line, len);
    apr_global_mutex_unlock(pipe_mutex);
    return rv;
}

/* rec's line, with its time and server, to the audit log of r's server (if
 * it has one). A line that cannot be written is logged: the decision
 * stands, the audit log misses it. */
static void write_record(request_rec *r, scep_audit_record_t *rec)
{
    const char *name = mod_scep_srv_conf(r->server)->audit_log;
    const target_t *t = name && targets ? apr_hash_get(targets, name, APR_HASH_KEY_STRING) : NULL;
    const char *line;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!t) {
        return;
    }
    rec->time = apr_time_now();
    rec->server = r->server->server_hostname;
    if (!(line = scep_audit_line(r->pool, rec, &len))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(724) "the audit line of a decision (%s, transaction %s) cannot "
                                     "be made: it is missing from " SCEP_AUDIT_LOG " %s",
                      scep_audit_event_name(rec->event),
                      scep_escape_text(r->pool, rec->transaction_id ? rec->transaction_id : "-", 0),
                      t->name);
        return;
    }
    if ((rv = append(t, line, len)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      SCEPLOGNO(725) "the audit line of a decision (%s, transaction %s) was not "
                                     "written whole to " SCEP_AUDIT_LOG " %s",
                      scep_audit_event_name(rec->event),
                      scep_escape_text(r->pool, rec->transaction_id ? rec->transaction_id : "-", 0),
                      t->name);
    }
}

int mod_scep_audit_enabled(request_rec *r)
{
    return mod_scep_srv_conf(r->server)->audit_log != NULL;
}

void mod_scep_audit_pkiop(request_rec *r, const scep_request_t *req, const scep_outcome_t *outcome,
                          const scep_reply_t *reply)
{
    scep_audit_record_t rec = { 0 };

    if (!req || !mod_scep_audit_enabled(r) ||
        !scep_audit_of_outcome(r->pool, req, outcome, reply, &rec)) {
        return;
    }
    rec.client_address = r->useragent_ip;
    write_record(r, &rec);
}

const scep_txn_t *mod_scep_audit_find_txn(request_rec *r, scep_store_t *store,
                                          const char *transaction_id)
{
    scep_txn_t *txn = NULL;

    if (!mod_scep_audit_enabled(r) ||
        store->find_transaction(store, r->pool, transaction_id, &txn) != APR_SUCCESS) {
        return NULL;
    }
    return txn;
}

/* An administrator's decision on rec: by r's user, from r's address. */
static void write_admin_record(request_rec *r, scep_audit_record_t *rec, scep_audit_event_t event,
                               const char *reason)
{
    rec->event = event;
    rec->client_address = r->useragent_ip;
    rec->user = r->user;
    rec->reason = reason;
    write_record(r, rec);
}

void mod_scep_audit_decision(request_rec *r, scep_store_t *store, scep_audit_event_t event,
                             const scep_txn_t *before, const char *transaction_id,
                             const char *reason)
{
    scep_audit_record_t rec = { 0 };
    const scep_txn_t *after;

    if (!mod_scep_audit_enabled(r)) {
        return;
    }
    /* the names of the request as it was held (a denial wipes its CSR),
     * the serial of what an approval issued */
    after = mod_scep_audit_find_txn(r, store, transaction_id);
    if (after && (after->serial || !before)) {
        before = after;
    }
    if (before) {
        scep_audit_of_txn(r->pool, before, &rec);
    }
    else {
        rec.fail_info = SCEP_FAIL_NONE;
        rec.transaction_id = transaction_id;
    }
    write_admin_record(r, &rec, event, reason);
}

void mod_scep_audit_revoked(request_rec *r, scep_store_t *store, const char *serial,
                            const char *reason)
{
    scep_audit_record_t rec = { 0 };
    scep_cert_record_t *cert = NULL;
    const scep_txn_t *txn;

    if (!mod_scep_audit_enabled(r)) {
        return;
    }
    if (store->find_cert(store, r->pool, serial, &cert) == APR_SUCCESS) {
        scep_audit_of_cert(r->pool, cert, &rec);
        if (cert->transaction_id &&
            (txn = mod_scep_audit_find_txn(r, store, cert->transaction_id)) != NULL) {
            rec.template_name = txn->template_name;
        }
    }
    else {
        rec.fail_info = SCEP_FAIL_NONE;
        rec.serial = serial;
    }
    write_admin_record(r, &rec, SCEP_AUDIT_REVOKED, reason);
}

void mod_scep_audit_password(request_rec *r, const char *device, apr_time_t expires)
{
    scep_audit_record_t rec = { 0 };

    if (!mod_scep_audit_enabled(r)) {
        return;
    }
    rec.event = SCEP_AUDIT_PASSWORD_ISSUED;
    rec.fail_info = SCEP_FAIL_NONE;
    rec.client_address = r->useragent_ip;
    rec.user = r->user;
    rec.device = device;
    rec.password_expires = expires;
    write_record(r, &rec);
}
