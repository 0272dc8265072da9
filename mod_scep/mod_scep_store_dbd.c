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
 */

#include <string.h>

#include <apr_dbd.h>
#include <apr_global_mutex.h>
#include <apr_optional.h>

#include <httpd.h>
#include <http_log.h>
#include <mod_dbd.h>
#include <util_mutex.h>

#include "mod_scep_private.h"

#define WRITER_MUTEX_TYPE "scep-sqlite"
#define WRITER_USERDATA "mod_scep_sqlite_writer"

static apr_global_mutex_t *writer_mutex;

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

    if (!writer_mutex) {
        return;
    }
    rv =
        apr_global_mutex_child_init(&writer_mutex, apr_global_mutex_lockfile(writer_mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SCEPLOGNO(318) "cannot attach to the global mutex " WRITER_MUTEX_TYPE
                                    ": SQLite writers "
                                    "are left to SQLite's own locking");
        writer_mutex = NULL;
    }
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

/* The store's levels are syslog's, as APLOG_*. */
#if APLOG_ERR != SCEP_LOG_ERR || APLOG_DEBUG != SCEP_LOG_DEBUG
#error "SCEP_LOG_* must equal APLOG_*"
#endif

static void log_to_request(void *baton, int level, int logno, const char *msg)
{
    request_rec *r = baton;

    ap_log_rerror(APLOG_MARK, level, 0, r, "SCEP%03d: %s", logno, msg);
}

/* The connection a request holds, in its request_config. */
typedef struct held_conn_t {
    ap_dbd_t *dbd;
    scep_store_t *store;
} held_conn_t;

/* Gives the connection back to mod_dbd's pool. */
static apr_status_t release_conn(void *baton)
{
    request_rec *r = baton;
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);

    if (held && held->dbd && close) {
        close(r->server, held->dbd);
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
scep_store_t *mod_scep_store_dbd(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    held_conn_t *held = ap_get_module_config(r->request_config, &scep_module);
    ap_dbd_t *dbd;
    scep_sql_conn_t conn;

    if (held) {
        return held->store;
    }
    dbd = open ? open(r->pool, r->server) : NULL;
    if (!dbd) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(309) "no database connection from mod_dbd: check DBDriver and DBDParams "
                           "(NDES event 23)");
        return NULL;
    }
    held = apr_pcalloc(r->pool, sizeof(*held));
    held->dbd = dbd;
    ap_set_module_config(r->request_config, &scep_module, held);
    apr_pool_cleanup_register(r->pool, r, release_conn, apr_pool_cleanup_null);
    conn.driver = dbd->driver;
    conn.handle = dbd->handle;
    conn.prepared = dbd->prepared;
    conn.write_lock = write_lock_for(dbd);
    if (scep_store_sql(r->pool, &conn, log_to_request, r, &held->store) != APR_SUCCESS) {
        mod_scep_store_release(r);
        return NULL;
    }
    return held->store;
}

void mod_scep_store_release(request_rec *r)
{
    apr_pool_cleanup_run(r->pool, r, release_conn);
}
