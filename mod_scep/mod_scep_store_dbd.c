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
 * The records of a request on mod_dbd's connection: the SQL lives in the
 * core (scep_store_sql.c, shared with scepctl); this file lends it the
 * connection, the request's error log and, on SQLite, the global mutex
 * "scep-sqlite" that writers take in turn (SQLite has one writer at a time:
 * without the mutex, writers of all children and threads collide in
 * SQLite's busy handler and apr_dbd's retries, and under load some give up
 * with "database is locked"). Like the password cache's, the mutex is made
 * once in the process pool, so children of the old and the new generation
 * share it across a graceful restart.
 *
 * A connection that failed is replaced, not given back as it is (the
 * store asks through scep_sql_conn_t.renew, and tries the operation again):
 * mod_dbd checks a connection only when it lends it (apr_dbd_check_conn,
 * which for SQLite never fails and for PostgreSQL PQresets a broken session
 * into one without the store's prepared statements), so a failed one would
 * go on failing until DBDExptime retires it, or forever below DBDKeep.
 * mod_dbd offers no way to discard one. So the replacement is made the way
 * mod_dbd makes a connection (dbd_construct() in mod_dbd.c): a pool of its
 * own beside the others (the failed one's parent), apr_dbd_open() with the
 * parameters of the configuration that opened the failed one (which
 * mod_dbd's post_connect hook tells, remember_config()), the DBDPrepareSQL
 * statements that other modules look up prepared in a new hash, then the
 * post_connect hooks (DBDInitSQL); the failed one is destroyed the way
 * mod_dbd destroys one (its pool, whose cleanup closes it), and the new one
 * is what goes back to mod_dbd's apr_reslist, which keeps no list of what it
 * lent (apr_reslist_release() takes whatever it is given). Not a new
 * handle in the same ap_dbd_t: mod_dbd closes the handle from the cleanup
 * of the connection's pool, which runs after its sub-pools are gone, so
 * the new handle would have to be allocated in that pool, which lives as
 * long as the connection: every replacement would leave memory behind.
 * Without threads mod_dbd keeps its one connection in a field of its own,
 * so there a failure stays final.
 */

#include <string.h>

#include <unistd.h>

#include <apr_atomic.h>
#include <apr_dbd.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_optional.h>
#include <apr_optional_hooks.h>
#include <apr_strings.h>

#include <httpd.h>
#include <ap_mpm.h>
#include <http_log.h>
#include <mod_dbd.h>
#include <util_mutex.h>

#include "mod_scep_private.h"

#define WRITER_MUTEX_TYPE "scep-sqlite"
#define WRITER_USERDATA "mod_scep_sqlite_writer"
/* On a connection's pool: the mod_dbd configuration that opened it. */
#define DBD_CFG_USERDATA "mod_scep_dbd_cfg"

static apr_global_mutex_t *writer_mutex;

static void check_services_at_start(apr_pool_t *pchild, server_rec *main_s);

#if APR_HAS_THREADS
/* Under a non-threaded MPM (prefork) mod_dbd lends every caller of a
 * process its one connection: the child's background thread
 * (mod_scep_poll.c) and the request take it in turn. NULL otherwise. */
static apr_thread_mutex_t *shared_conn_mutex;
#endif

static void shared_conn_lock(void)
{
#if APR_HAS_THREADS
    if (shared_conn_mutex) {
        apr_thread_mutex_lock(shared_conn_mutex);
    }
#endif
}

static void shared_conn_unlock(void)
{
#if APR_HAS_THREADS
    if (shared_conn_mutex) {
        apr_thread_mutex_unlock(shared_conn_mutex);
    }
#endif
}

void mod_scep_store_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, WRITER_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

apr_status_t mod_scep_store_post_config(server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    apr_global_mutex_t *mutex = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&mutex, WRITER_USERDATA, pproc);
    if (!mutex) {
        rv = ap_global_mutex_create(&mutex, NULL, WRITER_MUTEX_TYPE, NULL, s, pproc, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         SCEPLOGNO(317) "cannot create the global mutex " WRITER_MUTEX_TYPE
                                        " of the records");
            return rv;
        }
        apr_pool_userdata_set(mutex, WRITER_USERDATA, apr_pool_cleanup_null, pproc);
    }
    writer_mutex = mutex;
    return APR_SUCCESS;
}

void mod_scep_store_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
#if APR_HAS_THREADS
    int threaded = 0;

    shared_conn_mutex = NULL;
    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS || !threaded) {
        apr_thread_mutex_create(&shared_conn_mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    }
#endif
    if (writer_mutex &&
        (rv = apr_global_mutex_child_init(&writer_mutex, apr_global_mutex_lockfile(writer_mutex),
                                          pchild)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SCEPLOGNO(318) "cannot attach to the global mutex " WRITER_MUTEX_TYPE
                                    ": SQLite writers "
                                    "are left to SQLite's own locking");
        writer_mutex = NULL;
    }
    check_services_at_start(pchild, s);
}

static apr_status_t writer_acquire(void *baton)
{
    (void)baton;
    return scep_global_mutex_lock(writer_mutex);
}

static apr_status_t writer_release(void *baton)
{
    (void)baton;
    return apr_global_mutex_unlock(writer_mutex);
}

static const scep_sql_lock_t writer_lock = { writer_acquire, writer_release, NULL };

/* PostgreSQL and others lock rows themselves. */
static const scep_sql_lock_t *write_lock_for(const ap_dbd_t *dbd)
{
    return writer_mutex && strcmp(apr_dbd_name(dbd->driver), "sqlite3") == 0 ? &writer_lock : NULL;
}

/* The store's view of a mod_dbd connection: no renewal. */
static void conn_of(const ap_dbd_t *dbd, scep_sql_conn_t *conn)
{
    conn->driver = dbd->driver;
    conn->handle = dbd->handle;
    conn->prepared = dbd->prepared;
    conn->write_lock = write_lock_for(dbd);
    conn->renew = NULL;
    conn->renew_baton = NULL;
}

/*
 * A service, not a crowd (scep_service.c): each process checks each server
 * once against the records, at its start, or at the first use of the
 * records when the database could not be reached then (a fault ends when
 * its cause ends). A server that presents another service ends its process
 * with APEXIT_CHILDFATAL, which stops the whole server: httpd's way for a
 * child that cannot work (the parent stops when a child of its current
 * generation exits so, under prefork, worker and event). _exit(), not
 * exit(): other threads may be running, and no atexit handler (OpenSSL's
 * cleanup) must pull their libraries from under them.
 *
 * Only for databases other servers can reach: a SQLite file is one
 * machine's, one server's, whose RA certificates may be renewed without
 * telling anyone (several servers need a database server anyway).
 */
static void refuse_other_service(server_rec *s, const scep_service_t *ours,
                                 const scep_service_t *theirs, apr_pool_t *p)
{
    char when[APR_RFC822_DATE_LEN];

    apr_rfc822_date(when, theirs->recorded);
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                 SCEPLOGNO(020) "this server is not the enrollment service its database records "
                                "for CA '%s' (recorded %s): %s. Every server on one database "
                                "must present the same CA and RA certificates: give this one "
                                "the service's files (SCEPCACertificateFile, SCEPRACertificate), "
                                "or, after a rollover, once every server has the new files, "
                                "record them with 'scepctl service --record'. Stopping",
                 scep_escape_text(p, ours->issuer, 0), when,
                 scep_service_difference(p, ours, theirs));
    _exit(APEXIT_CHILDFATAL);
}

static void check_service(apr_pool_t *p, server_rec *s, const ap_dbd_t *dbd, scep_store_t *store)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    const scep_pki_t *pki = conf->pki;
    scep_service_t *ours, *theirs = NULL;
    int first = 0;
    apr_status_t rv;

    if (strcmp(apr_dbd_name(dbd->driver), "sqlite3") == 0) {
        apr_atomic_set32(&conf->service_checked, 1);
        return;
    }
    ours = scep_service_of(p, pki->ca_cert, pki->ra_sign_cert, pki->ra_enc_cert);
    if (!ours) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SCEPLOGNO(021) "cannot digest the CA and RA certificates for the service "
                                    "check");
        mod_scep_log_openssl(s, APLOG_ERR);
        return;
    }
    rv = scep_service_check(p, store, ours, &theirs, &first);
    if (rv == APR_EMISMATCH) {
        refuse_other_service(s, ours, theirs, p);
    }
    if (rv != APR_SUCCESS) {
        return; /* logged by the store; checked again at the next use */
    }
    apr_atomic_set32(&conf->service_checked, 1);
    if (first) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SCEPLOGNO(022) "recorded this server's certificates as the enrollment "
                                    "service of CA '%s' (CA SHA-256 %s, RA %s): every server on "
                                    "this database must present them",
                     scep_escape_text(p, ours->issuer, 0), ours->ca_sha256, ours->ra_sha256);
    }
}

/* At a process's start, for every server with a CA: the service check on
 * a connection of its own. */
static void check_services_at_start(apr_pool_t *pchild, server_rec *main_s)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    server_rec *s;
    apr_pool_t *p;
    ap_dbd_t *dbd;
    scep_sql_conn_t conn;
    scep_store_t *store = NULL;

    for (s = main_s; s && open && close; s = s->next) {
        if (!mod_scep_srv_conf(s)->enabled) {
            continue;
        }
        apr_pool_create(&p, pchild);
        if (!(dbd = open(p, s))) {
            /* info: mod_dbd has logged why, and a request that needs the
             * records will log its own fault (on SQLite, which is never
             * checked, nothing else is deferred) */
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         SCEPLOGNO(023) "no database connection from mod_dbd at the start of "
                                        "this process: the server's service is checked at the "
                                        "first use of the records");
        }
        else {
            conn_of(dbd, &conn);
            if (strcmp(apr_dbd_name(dbd->driver), "sqlite3") == 0 ||
                scep_store_sql(p, &conn, mod_scep_log_server, s, &store) == APR_SUCCESS) {
                check_service(p, s, dbd, store);
            }
            close(s, dbd);
        }
        apr_pool_destroy(p);
    }
}

/* The connection a request holds, in its request_config; faulted: a use
 * of the records failed (mod_status's figures). */
typedef struct held_conn_t {
    ap_dbd_t *dbd;
    scep_store_t *store;
    int faulted;
} held_conn_t;

/* The store's lines about a request (baton: the request): an error is a
 * use of the records that failed (the store logs only what still fails
 * after its one retry), for mod_status's figures. */
static void store_log_request(void *baton, const char *file, int line, int level, const char *msg)
{
    request_rec *r = baton;
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);

    mod_scep_log_core(baton, file, line, level, msg);
    if (level <= SCEP_LOG_ERR) {
        if (held) {
            held->faulted = 1;
        }
        apr_table_setn(r->notes, MOD_SCEP_NOTE_RECORDS_FAULT, "1");
        mod_scep_stats_store_fault(r->server);
    }
}

/* mod_dbd's post_connect hook, run on every connection it opens. */
static apr_status_t remember_config(apr_pool_t *pool, dbd_cfg_t *cfg, ap_dbd_t *dbd)
{
    (void)pool;
    apr_pool_userdata_setn(cfg, DBD_CFG_USERDATA, NULL, dbd->pool);
    return APR_SUCCESS;
}

void mod_scep_store_register_hooks(void)
{
    APR_OPTIONAL_HOOK(dbd, post_connect, remember_config, NULL, NULL, APR_HOOK_MIDDLE);
}

#if APR_HAS_THREADS
/* The statements of DBDPrepareSQL (and ap_dbd_prepare()), in a new hash as
 * mod_dbd prepares them: an empty query is one a later line took back. */
static apr_status_t prepare_configured(apr_pool_t *pool, const dbd_cfg_t *cfg, ap_dbd_t *dbd)
{
    apr_hash_index_t *hi;
    const void *label;
    void *query;
    apr_dbd_prepared_t *stmt;

    dbd->prepared = apr_hash_make(pool);
    for (hi = apr_hash_first(pool, cfg->queries); hi; hi = apr_hash_next(hi)) {
        apr_hash_this(hi, &label, NULL, &query);
        stmt = NULL;
        if (*(const char *)query &&
            apr_dbd_prepare(dbd->driver, pool, dbd->handle, query, label, &stmt) != 0) {
            return APR_EGENERAL;
        }
        if (stmt) {
            apr_hash_set(dbd->prepared, label, APR_HASH_KEY_STRING, stmt);
        }
    }
    return APR_SUCCESS;
}

/* mod_dbd's post_connect hooks (DBDInitSQL, remember_config(), other
 * modules'), as it runs them: in order, until one fails. */
static void run_post_connect(apr_pool_t *pool, dbd_cfg_t *cfg, ap_dbd_t *dbd)
{
    apr_array_header_t *hooks = apr_optional_hook_get("post_connect");
    const dbd_LINK_post_connect_t *link;
    apr_status_t rv;
    int i;

    for (i = 0; hooks && i < hooks->nelts; i++) {
        link = &APR_ARRAY_IDX(hooks, i, dbd_LINK_post_connect_t);
        rv = link->pFunc(pool, cfg, dbd);
        if (rv != OK && rv != DECLINED) {
            return;
        }
    }
}

static apr_status_t close_handle(void *data)
{
    ap_dbd_t *dbd = data;

    return apr_dbd_close(dbd->driver, dbd->handle);
}

/* A new connection like old, in a pool of its own under parent; *error
 * (in p) says why there is none. */
static apr_status_t open_like(apr_pool_t *p, apr_pool_t *parent, dbd_cfg_t *cfg,
                              const ap_dbd_t *old, ap_dbd_t **made, const char **error)
{
    apr_pool_t *pool, *stmt_pool;
    ap_dbd_t *dbd;
    const char *why = NULL;
    apr_status_t rv = apr_pool_create(&pool, parent);

    *made = NULL;
    *error = "out of memory";
    if (rv != APR_SUCCESS) {
        return rv;
    }
    dbd = apr_pcalloc(pool, sizeof(*dbd));
    dbd->pool = pool;
    dbd->driver = old->driver;
    rv = apr_dbd_open_ex(dbd->driver, pool, cfg->params, &dbd->handle, &why);
    if (rv != APR_SUCCESS) {
        *error = apr_pstrdup(p, why ? why : "cannot connect");
        goto leave;
    }
    /* As mod_dbd's: the pool's end closes it, after its statements' pool. */
    apr_pool_cleanup_register(pool, dbd, close_handle, apr_pool_cleanup_null);
    if ((rv = apr_pool_create(&stmt_pool, pool)) != APR_SUCCESS) {
        goto leave;
    }
    if ((rv = prepare_configured(stmt_pool, cfg, dbd)) != APR_SUCCESS) {
        *error = apr_pstrcat(p, "cannot prepare the DBDPrepareSQL statements: ",
                             apr_dbd_error(dbd->driver, dbd->handle, 0), NULL);
        goto leave;
    }
    run_post_connect(stmt_pool, cfg, dbd);
    *made = dbd;
leave:
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* scep_sql_renew_fn: the held connection replaced by a new one, in its
 * place in mod_dbd's pool (see the top). */
static apr_status_t renew_conn(void *baton, scep_sql_conn_t *conn)
{
    request_rec *r = baton;
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);
    dbd_cfg_t *cfg = NULL;
    ap_dbd_t *fresh;
    const char *error;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&cfg, DBD_CFG_USERDATA, held->dbd->pool);
    if (!cfg) {
        return APR_ENOTIMPL;
    }
    rv = open_like(r->pool, apr_pool_parent_get(held->dbd->pool), cfg, held->dbd, &fresh, &error);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      SCEPLOGNO(345) "no new database connection: %s", error);
        return rv;
    }
    apr_pool_destroy(held->dbd->pool);
    held->dbd = fresh;
    conn->handle = fresh->handle;
    conn->prepared = fresh->prepared;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  SCEPLOGNO(346) "the failed database connection was replaced by a new one");
    return APR_SUCCESS;
}
#endif

/* Gives the connection back to mod_dbd's pool. */
static apr_status_t release_conn(void *baton)
{
    request_rec *r = baton;
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    /* apr_pool_cleanup_run() calls this also when nothing is held */
    if (held && held->dbd) {
        if (!held->faulted) {
            mod_scep_stats_store_ok(r->server);
        }
        if (close) {
            close(r->server, held->dbd);
        }
        shared_conn_unlock();
    }
    ap_set_module_config(r->request_config, &scep_module, NULL);
    return APR_SUCCESS;
}

/*
 * A connection is taken with ap_dbd_open() and given back as soon as the
 * records are done with (mod_scep_store_release()), not when the request
 * pool goes: that pool can outlive the answer by a keep-alive wait (the end
 * of a request is a bucket the core may hold back), during which the
 * connection would be idle for other requests, and under prefork a child
 * told to stop then tears down mod_dbd's pool with the connection still
 * out. The request pool's cleanup only catches error paths.
 */
scep_store_t *mod_scep_store_acquire(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);
    ap_dbd_t *dbd;
    scep_sql_conn_t conn;

    if (held) {
        return held->store;
    }
    shared_conn_lock();
    dbd = open ? open(r->pool, r->server) : NULL;
    if (!dbd) {
        shared_conn_unlock();
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(309) "no database connection from mod_dbd: check DBDriver and DBDParams%s",
            scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
        apr_table_setn(r->notes, MOD_SCEP_NOTE_RECORDS_FAULT, "1");
        mod_scep_stats_store_fault(r->server);
        return NULL;
    }
    held = apr_pcalloc(r->pool, sizeof(*held));
    held->dbd = dbd;
    ap_set_module_config(r->request_config, &scep_module, held);
    apr_pool_cleanup_register(r->pool, r, release_conn, apr_pool_cleanup_null);
    conn_of(dbd, &conn);
#if APR_HAS_THREADS
    conn.renew = renew_conn;
    conn.renew_baton = r;
#endif
    if (scep_store_sql(r->pool, &conn, store_log_request, r, &held->store) != APR_SUCCESS) {
        mod_scep_store_release(r);
        return NULL;
    }
    if (!apr_atomic_read32(&mod_scep_srv_conf(r->server)->service_checked)) {
        check_service(r->pool, r->server, dbd, held->store);
    }
    return held->store;
}

void mod_scep_store_release(request_rec *r)
{
    apr_pool_cleanup_run(r->pool, r, release_conn);
}

/* A connection taken for the server (no request), given back by p's
 * cleanup; faulted as held_conn_t's. */
typedef struct server_conn_t {
    server_rec *s;
    ap_dbd_t *dbd;
    int faulted;
} server_conn_t;

/* The store's lines about a server's connection (baton: the
 * server_conn_t), errors counted as store_log_request()'s. */
static void store_log_server(void *baton, const char *file, int line, int level, const char *msg)
{
    server_conn_t *held = baton;

    mod_scep_log_server(held->s, file, line, level, msg);
    if (level <= SCEP_LOG_ERR) {
        held->faulted = 1;
        mod_scep_stats_store_fault(held->s);
    }
}

static apr_status_t close_server_conn(void *data)
{
    server_conn_t *held = data;
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    if (!held->faulted) {
        mod_scep_stats_store_ok(held->s);
    }
    if (close) {
        close(held->s, held->dbd);
    }
    shared_conn_unlock();
    return APR_SUCCESS;
}

scep_store_t *mod_scep_store_open_server(apr_pool_t *p, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    server_conn_t *held = apr_pcalloc(p, sizeof(*held));
    scep_sql_conn_t conn;
    scep_store_t *store = NULL;

    shared_conn_lock();
    held->s = s;
    held->dbd = open ? open(p, s) : NULL;
    if (!held->dbd) {
        shared_conn_unlock();
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SCEPLOGNO(154) "no database connection from mod_dbd for the requests "
                                    "the external CA holds: check DBDriver and DBDParams");
        mod_scep_stats_store_fault(s);
        return NULL;
    }
    apr_pool_cleanup_register(p, held, close_server_conn, apr_pool_cleanup_null);
    conn_of(held->dbd, &conn);
    if (scep_store_sql(p, &conn, store_log_server, held, &store) != APR_SUCCESS) {
        apr_pool_cleanup_run(p, held, close_server_conn);
        return NULL;
    }
    return store;
}

/* mod_scep_server_records()'s baton. */
typedef struct server_records_t {
    apr_pool_t *pool;
    server_rec *s;
    scep_store_t *store;
} server_records_t;

void *mod_scep_server_records_baton(apr_pool_t *p, server_rec *s)
{
    server_records_t *sr = apr_pcalloc(p, sizeof(*sr));

    sr->pool = p;
    sr->s = s;
    return sr;
}

scep_store_t *mod_scep_server_records(void *baton)
{
    server_records_t *sr = baton;

    if (!sr->store) {
        sr->store = mod_scep_store_open_server(sr->pool, sr->s);
    }
    return sr->store;
}
