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
 * connection and the request's error log.
 */

#include <apr_dbd.h>
#include <apr_optional.h>

#include <httpd.h>
#include <http_log.h>
#include <mod_dbd.h>

#include "mod_scep_private.h"

/* The store's levels are syslog's, as APLOG_*. */
#if APLOG_ERR != SCEP_LOG_ERR || APLOG_DEBUG != SCEP_LOG_DEBUG
#error "SCEP_LOG_* must equal APLOG_*"
#endif

static void log_to_request(void *baton, int level, int logno, const char *msg)
{
    request_rec *r = baton;

    ap_log_rerror(APLOG_MARK, level, 0, r, "SCEP%03d: %s", logno, msg);
}

scep_store_t *mod_scep_store_dbd(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    ap_dbd_t *dbd = acquire ? acquire(r) : NULL;
    scep_sql_conn_t conn;
    scep_store_t *store = NULL;

    if (!dbd) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            SCEPLOGNO(309) "no database connection from mod_dbd: check DBDriver and DBDParams "
                           "(NDES event 23)");
        return NULL;
    }
    conn.driver = dbd->driver;
    conn.handle = dbd->handle;
    conn.prepared = dbd->prepared;
    scep_store_sql(r->pool, &conn, log_to_request, r, &store);
    return store;
}
