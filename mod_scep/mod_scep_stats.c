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
 * mod_status's figures in the server: the block of scep_stats.c in
 * anonymous shared memory that every worker process maps, one slot per
 * server with SCEP, bumped where an outcome is known (PKIOperation, the CA
 * manager page) and where the records are used (mod_scep_store_dbd.c).
 *
 * Like the password cache, the segment is made once in the process pool
 * and found again there by every later generation, so the figures survive
 * `apachectl graceful`; a full stop ends them. Each server finds its slot
 * again by its name and port (scep_stats_server_name(): ServerName's, else
 * its virtual host address's), which stay the same across restarts and
 * edits of the configuration. When a restart brings more servers than the
 * segment has slots, a bigger segment takes over the figures; what workers
 * of the old generation still count in the old one then is lost (at most
 * their requests in flight).
 *
 * Workers add with apr_atomic alone: no lock on a request's way. The slots
 * are claimed here, in the parent, before the workers that read them are
 * made.
 */

#include <apr_hash.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>

#include "mod_scep_private.h"
#include "scep_stats.h"

/* The process pool's userdata key of the surviving segment. */
#define STATS_USERDATA "mod_scep_stats"
/* Slots of a first segment at least: room for servers added later. */
#define STATS_MIN_SLOTS 16

typedef struct stats_shm_t {
    apr_shm_t *shm;
    scep_stats_t *stats;
} stats_shm_t;

/* This generation's: set again by each generation's post_config. */
static scep_stats_t *stats;
static apr_hash_t *slots; /* the server_rec's address (apr_uintptr_t) -> int slot, on pconf */

static apr_status_t segment_create(server_rec *s, int capacity, stats_shm_t *made)
{
    apr_size_t size = scep_stats_size(capacity);
    apr_status_t rv = apr_shm_create(&made->shm, size, NULL, s->process->pool);

    if (rv == APR_SUCCESS) {
        rv = scep_stats_init(apr_shm_baseaddr_get(made->shm), size, capacity, apr_time_now(),
                             &made->stats);
        if (rv != APR_SUCCESS) {
            apr_shm_destroy(made->shm);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(700) "cannot create the shared memory of mod_status's figures "
                                    "(%d servers)%s",
                     capacity, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    }
    return rv;
}

/* The surviving segment, with at least capacity slots: made on the first
 * generation, or a bigger one that takes over the figures. */
static apr_status_t segment_ensure(server_rec *s, int capacity, stats_shm_t **found)
{
    apr_pool_t *pproc = s->process->pool;
    stats_shm_t *kept = NULL, made = { NULL, NULL };
    int old_capacity;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&kept, STATS_USERDATA, pproc);
    if (kept && scep_stats_capacity(kept->stats) >= capacity) {
        *found = kept;
        return APR_SUCCESS;
    }
    rv = segment_create(s, capacity < STATS_MIN_SLOTS ? STATS_MIN_SLOTS : capacity, &made);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!kept) {
        kept = apr_pcalloc(pproc, sizeof(*kept));
        apr_pool_userdata_set(kept, STATS_USERDATA, apr_pool_cleanup_null, pproc);
    }
    else {
        old_capacity = scep_stats_capacity(kept->stats);
        scep_stats_copy(made.stats, kept->stats);
        /* only this process's mapping goes: the old workers keep theirs */
        apr_shm_destroy(kept->shm);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     SCEPLOGNO(701) "mod_status's figures moved to a segment of %d servers "
                                    "(was %d)",
                     scep_stats_capacity(made.stats), old_capacity);
    }
    *kept = made;
    *found = kept;
    return APR_SUCCESS;
}

/* The name of s's slot: its name and port, made unique in this
 * generation (two servers of one name and port count apart). */
static const char *slot_name(apr_pool_t *p, server_rec *s, apr_hash_t *taken)
{
    apr_port_t port = s->port ? s->port : s->addrs ? s->addrs->host_port : 0;
    const char *base = scep_stats_server_name(p, s->server_hostname, (unsigned)port);
    const char *name = base;
    int n = 1;

    while (apr_hash_get(taken, name, APR_HASH_KEY_STRING)) {
        name = apr_psprintf(p, "%s#%d", base, ++n);
    }
    apr_hash_set(taken, name, APR_HASH_KEY_STRING, name);
    return name;
}

static int enabled_servers(server_rec *main_s)
{
    server_rec *s;
    int n = 0;

    for (s = main_s; s; s = s->next) {
        n += mod_scep_srv_conf(s)->enabled ? 1 : 0;
    }
    return n;
}

/* Every server with SCEP gets its slot; APR_ENOSPC when the segment is
 * too small for names old and new. */
static apr_status_t claim_slots(apr_pool_t *pconf, server_rec *main_s, scep_stats_t *st,
                                apr_hash_t *map)
{
    apr_hash_t *taken = apr_hash_make(pconf);
    server_rec *s;
    apr_uintptr_t *key;
    int *slot;
    apr_status_t rv;

    for (s = main_s; s; s = s->next) {
        if (!mod_scep_srv_conf(s)->enabled) {
            continue;
        }
        slot = apr_palloc(pconf, sizeof(*slot));
        rv = scep_stats_slot(st, slot_name(pconf, s, taken), slot);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        key = apr_palloc(pconf, sizeof(*key));
        *key = (apr_uintptr_t)s;
        apr_hash_set(map, key, sizeof(*key), slot);
    }
    return APR_SUCCESS;
}

apr_status_t mod_scep_stats_post_config(apr_pool_t *pconf, server_rec *main_s)
{
    int servers = enabled_servers(main_s);
    stats_shm_t *kept = NULL;
    apr_hash_t *map = apr_hash_make(pconf);
    apr_status_t rv;

    stats = NULL;
    slots = NULL;
    /* the first pass only checks the configuration (as the password cache) */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG || servers == 0) {
        return APR_SUCCESS;
    }
    rv = segment_ensure(main_s, servers * 2, &kept);
    if (rv == APR_SUCCESS) {
        rv = claim_slots(pconf, main_s, kept->stats, map);
    }
    if (APR_STATUS_IS_ENOSPC(rv) && kept) {
        /* the names of servers gone since fill it: room for them and ours */
        rv = segment_ensure(main_s, scep_stats_capacity(kept->stats) + servers * 2, &kept);
        if (rv == APR_SUCCESS) {
            rv = claim_slots(pconf, main_s, kept->stats, map);
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    stats = kept->stats;
    slots = map;
    return APR_SUCCESS;
}

/* s's slot, -1 without one (SCEP is not enabled there). */
static int slot_of(server_rec *s)
{
    apr_uintptr_t key = (apr_uintptr_t)s;
    const int *slot = slots ? apr_hash_get(slots, &key, sizeof(key)) : NULL;

    return slot ? *slot : -1;
}

void mod_scep_stats_outcome(request_rec *r, const scep_request_t *req,
                            const scep_outcome_t *outcome)
{
    if (stats && req) {
        scep_stats_count_outcome(stats, slot_of(r->server), req->message_type, outcome,
                                 apr_table_get(r->notes, MOD_SCEP_NOTE_RECORDS_FAULT) != NULL);
    }
}

void mod_scep_stats_add(server_rec *s, scep_stats_counter_t counter)
{
    if (stats) {
        scep_stats_add(stats, slot_of(s), counter);
    }
}

void mod_scep_stats_store_fault(server_rec *s)
{
    if (stats) {
        scep_stats_store_fault(stats, slot_of(s), apr_time_now());
    }
}

void mod_scep_stats_store_ok(server_rec *s)
{
    if (stats) {
        scep_stats_store_ok(stats, slot_of(s), apr_time_now());
    }
}

apr_status_t mod_scep_stats_read(server_rec *s, scep_stats_view_t *view, apr_time_t *started)
{
    if (!stats) {
        return APR_ENOTIMPL;
    }
    *started = scep_stats_started(stats);
    return scep_stats_read(stats, slot_of(s), view);
}
