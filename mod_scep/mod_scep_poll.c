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
 * The background poll: in each child process, one thread asks the external
 * CAs about the requests they hold (scep_enroll_poll_ca()), every
 * SCEPCAPollInterval seconds (the smallest of the servers'), so that a
 * certificate the CA issued is ready before the device's next CertPoll,
 * and a CA's refusal is recorded. The engine's compare-and-set of a
 * request's poll time makes one process ask about it, whichever children
 * run. The thread has its own pools (a child's pool is not shared across
 * threads), sleeps on a condition that the child's exit signals, and is
 * joined before the child's pool, and mod_dbd's connections in it, go.
 */

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include <httpd.h>
#include <http_log.h>

#include "mod_scep_private.h"

#if APR_HAS_THREADS

typedef struct poller_t {
    apr_array_header_t *servers; /* of server_rec *: those whose CA holds requests */
    apr_interval_time_t interval;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *wake;
    int stop; /* under mutex */
    apr_thread_t *thread;
} poller_t;

/* One server's round, on its own pool. */
static void poll_server(apr_pool_t *parent, server_rec *s)
{
    apr_pool_t *p;
    int asked = 0;
    apr_status_t rv;

    if (apr_pool_create(&p, parent) != APR_SUCCESS) {
        return;
    }
    rv = scep_enroll_poll_ca(mod_scep_server_env(p, s), &asked);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     SCEPLOGNO(157) "%s: the background poll of the requests the external CA "
                                    "holds failed; next round in %d seconds",
                     mod_scep_server_label(s), mod_scep_srv_conf(s)->ca_poll_interval);
    }
    else if (asked > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     SCEPLOGNO(158) "%s: background poll: the external CA was asked about %d "
                                    "held requests",
                     mod_scep_server_label(s), asked);
    }
    apr_pool_destroy(p);
}

static void *APR_THREAD_FUNC poll_main(apr_thread_t *thread, void *data)
{
    poller_t *pl = data;
    apr_allocator_t *allocator = NULL;
    apr_pool_t *root = NULL;
    int i;

    (void)thread;
    if (apr_allocator_create(&allocator) != APR_SUCCESS ||
        apr_pool_create_unmanaged_ex(&root, NULL, allocator) != APR_SUCCESS) {
        return NULL;
    }
    apr_allocator_owner_set(allocator, root);
    apr_thread_mutex_lock(pl->mutex);
    while (!pl->stop) {
        apr_thread_cond_timedwait(pl->wake, pl->mutex, pl->interval);
        if (pl->stop) {
            break;
        }
        apr_thread_mutex_unlock(pl->mutex);
        for (i = 0; i < pl->servers->nelts; i++) {
            poll_server(root, APR_ARRAY_IDX(pl->servers, i, server_rec *));
        }
        apr_thread_mutex_lock(pl->mutex);
    }
    apr_thread_mutex_unlock(pl->mutex);
    apr_pool_destroy(root);
    /* returns rather than apr_thread_exit(): pthread_exit() from this frame
     * would leave its stack poisoned for AddressSanitizer, which then
     * reports its own write there at the thread's end */
    return NULL;
}

/* A pre-cleanup of the child's pool: the thread ends (its round, if one
 * runs, first) before the pool's other cleanups close what it uses. */
static apr_status_t poll_stop(void *data)
{
    poller_t *pl = data;
    apr_status_t thread_rv;

    apr_thread_mutex_lock(pl->mutex);
    pl->stop = 1;
    apr_thread_cond_signal(pl->wake);
    apr_thread_mutex_unlock(pl->mutex);
    apr_thread_join(&thread_rv, pl->thread);
    return APR_SUCCESS;
}

/* The servers whose CA may hold requests, and the shortest interval. */
static apr_array_header_t *servers_to_poll(apr_pool_t *p, server_rec *main_s,
                                           apr_interval_time_t *interval)
{
    apr_array_header_t *servers = apr_array_make(p, 2, sizeof(server_rec *));
    mod_scep_srv_conf_t *conf;
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        conf = mod_scep_srv_conf(s);
        if (!conf->enabled || !conf->ca || !conf->ca->poll) {
            continue;
        }
        APR_ARRAY_PUSH(servers, server_rec *) = s;
        if (servers->nelts == 1 || apr_time_from_sec(conf->ca_poll_interval) < *interval) {
            *interval = apr_time_from_sec(conf->ca_poll_interval);
        }
    }
    return servers;
}

void mod_scep_poll_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    poller_t *pl = apr_pcalloc(pchild, sizeof(*pl));
    apr_status_t rv;

    pl->servers = servers_to_poll(pchild, main_s, &pl->interval);
    if (pl->servers->nelts == 0) {
        return;
    }
    if ((rv = apr_thread_mutex_create(&pl->mutex, APR_THREAD_MUTEX_DEFAULT, pchild)) !=
            APR_SUCCESS ||
        (rv = apr_thread_cond_create(&pl->wake, pchild)) != APR_SUCCESS ||
        (rv = apr_thread_create(&pl->thread, NULL, poll_main, pl, pchild)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, main_s,
                     SCEPLOGNO(159) "cannot start the background poll of the external CAs: "
                                    "requests they hold are asked about only at the devices' "
                                    "CertPoll");
        return;
    }
    apr_pool_pre_cleanup_register(pchild, pl, poll_stop);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_s,
                 SCEPLOGNO(160) "background poll of the external CAs every %d seconds",
                 (int)apr_time_sec(pl->interval));
}

#else /* !APR_HAS_THREADS: the requests are asked about at CertPoll only */

void mod_scep_poll_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    (void)pchild;
    (void)main_s;
}

#endif
