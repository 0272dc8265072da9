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
 * mod_status's figures in a plain memory block (scep_stats.h). Every
 * figure a worker changes is one aligned 32- or 64-bit word changed with
 * apr_atomic: workers of every process (and of the old generation during a
 * graceful restart) add at once without a lock, and a reader sees each
 * figure whole. The names are written by the claiming process alone,
 * before the workers that read them exist.
 */

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "scep_stats.h"

#define STATS_MAGIC 0x53435354u /* "SCST" */

/* 64-bit words first: every slot stays 8-byte aligned. */
typedef struct stats_slot_t {
    volatile apr_uint64_t store_since;
    volatile apr_uint64_t last_fault;
    volatile apr_uint32_t counters[SCEP_STATS_COUNTERS];
    volatile apr_uint32_t store_fault;
    char name[SCEP_STATS_NAME_MAX]; /* "" while free */
} stats_slot_t;

struct scep_stats_t {
    apr_uint64_t started;
    apr_uint32_t magic;
    apr_uint32_t capacity;
    stats_slot_t slots[];
};

apr_size_t scep_stats_size(int capacity)
{
    return sizeof(scep_stats_t) + (apr_size_t)(capacity > 0 ? capacity : 0) * sizeof(stats_slot_t);
}

apr_status_t scep_stats_init(void *mem, apr_size_t size, int capacity, apr_time_t now,
                             scep_stats_t **stats)
{
    scep_stats_t *st = mem;
    int i;

    *stats = NULL;
    if (!mem || capacity <= 0 || size < scep_stats_size(capacity) ||
        ((apr_uintptr_t)mem % sizeof(apr_uint64_t)) != 0) {
        return APR_EINVAL;
    }
    memset(mem, 0, scep_stats_size(capacity));
    st->started = (apr_uint64_t)now;
    st->magic = STATS_MAGIC;
    st->capacity = (apr_uint32_t)capacity;
    for (i = 0; i < capacity; i++) {
        st->slots[i].store_since = (apr_uint64_t)now;
    }
    *stats = st;
    return APR_SUCCESS;
}

int scep_stats_capacity(const scep_stats_t *stats)
{
    return (int)stats->capacity;
}

apr_time_t scep_stats_started(const scep_stats_t *stats)
{
    return (apr_time_t)stats->started;
}

static stats_slot_t *slot_at(const scep_stats_t *stats, int slot)
{
    if (!stats || slot < 0 || (apr_uint32_t)slot >= stats->capacity) {
        return NULL;
    }
    return (stats_slot_t *)&stats->slots[slot];
}

apr_status_t scep_stats_slot(scep_stats_t *stats, const char *name, int *slot)
{
    char kept[SCEP_STATS_NAME_MAX];
    int i, free_slot = -1;

    *slot = -1;
    apr_cpystrn(kept, name && *name ? name : "-", sizeof(kept));
    for (i = 0; i < (int)stats->capacity; i++) {
        if (strcmp(stats->slots[i].name, kept) == 0) {
            *slot = i;
            return APR_SUCCESS;
        }
        if (free_slot < 0 && !stats->slots[i].name[0]) {
            free_slot = i;
        }
    }
    if (free_slot < 0) {
        return APR_ENOSPC;
    }
    memcpy(stats->slots[free_slot].name, kept, sizeof(kept));
    *slot = free_slot;
    return APR_SUCCESS;
}

apr_status_t scep_stats_copy(scep_stats_t *to, scep_stats_t *from)
{
    stats_slot_t *dst;
    stats_slot_t *src;
    int i, c;

    if (to->capacity < from->capacity) {
        return APR_EINVAL;
    }
    to->started = from->started;
    for (i = 0; i < (int)from->capacity; i++) {
        src = &from->slots[i];
        dst = &to->slots[i];
        memcpy(dst->name, src->name, sizeof(dst->name));
        for (c = 0; c < SCEP_STATS_COUNTERS; c++) {
            apr_atomic_set32(&dst->counters[c], apr_atomic_read32(&src->counters[c]));
        }
        apr_atomic_set32(&dst->store_fault, apr_atomic_read32(&src->store_fault));
        apr_atomic_set64(&dst->store_since, apr_atomic_read64(&src->store_since));
        apr_atomic_set64(&dst->last_fault, apr_atomic_read64(&src->last_fault));
    }
    return APR_SUCCESS;
}

void scep_stats_add(scep_stats_t *stats, int slot, scep_stats_counter_t counter)
{
    stats_slot_t *s = slot_at(stats, slot);

    if (s && counter < SCEP_STATS_COUNTERS) {
        apr_atomic_inc32(&s->counters[counter]);
    }
}

static int is_enrollment(int message_type)
{
    return message_type == SCEP_MSG_PKCSREQ || message_type == SCEP_MSG_RENEWALREQ ||
           message_type == SCEP_MSG_CERTPOLL;
}

void scep_stats_count_outcome(scep_stats_t *stats, int slot, int message_type,
                              const scep_outcome_t *outcome, int records_failed)
{
    if (!is_enrollment(message_type)) {
        return;
    }
    if (outcome->kind == SCEP_OUTCOME_FAULT ||
        (outcome->kind == SCEP_OUTCOME_REFUSED && records_failed)) {
        scep_stats_add(stats, slot, SCEP_STATS_FAULTS);
        return;
    }
    if (outcome->repeated) {
        return; /* counted when it was decided */
    }
    switch (outcome->kind) {
    case SCEP_OUTCOME_ISSUED:
        scep_stats_add(stats, slot, SCEP_STATS_ISSUED);
        return;
    case SCEP_OUTCOME_HELD:
        scep_stats_add(stats, slot, SCEP_STATS_HELD);
        return;
    default:
        scep_stats_add(stats, slot, SCEP_STATS_REFUSED);
        return;
    }
}

void scep_stats_store_fault(scep_stats_t *stats, int slot, apr_time_t now)
{
    stats_slot_t *s = slot_at(stats, slot);

    if (!s) {
        return;
    }
    apr_atomic_inc32(&s->counters[SCEP_STATS_STORE_FAULTS]);
    apr_atomic_set64(&s->last_fault, (apr_uint64_t)now);
    if (apr_atomic_cas32(&s->store_fault, 1, 0) == 0) {
        apr_atomic_set64(&s->store_since, (apr_uint64_t)now);
    }
}

void scep_stats_store_ok(scep_stats_t *stats, int slot, apr_time_t now)
{
    stats_slot_t *s = slot_at(stats, slot);

    /* a read first: the usual case (ok stays ok) writes nothing */
    if (s && apr_atomic_read32(&s->store_fault) && apr_atomic_cas32(&s->store_fault, 0, 1) == 1) {
        apr_atomic_set64(&s->store_since, (apr_uint64_t)now);
    }
}

apr_status_t scep_stats_read(const scep_stats_t *stats, int slot, scep_stats_view_t *view)
{
    stats_slot_t *s = slot_at(stats, slot);
    int c;

    memset(view, 0, sizeof(*view));
    if (!s) {
        return APR_EINVAL;
    }
    view->name = s->name;
    for (c = 0; c < SCEP_STATS_COUNTERS; c++) {
        view->counters[c] = apr_atomic_read32(&s->counters[c]);
    }
    view->store_fault = apr_atomic_read32(&s->store_fault) != 0;
    view->store_since = (apr_time_t)apr_atomic_read64(&s->store_since);
    view->last_fault = (apr_time_t)apr_atomic_read64(&s->last_fault);
    return APR_SUCCESS;
}

int scep_stats_days_left(apr_time_t not_after, apr_time_t now)
{
    apr_time_t day = apr_time_from_sec(86400);
    apr_time_t left = not_after - now;

    /* rounded down, below zero too: expired an hour ago is day -1 */
    return (int)(left >= 0 ? left / day : -((-left + day - 1) / day));
}

static char key_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_' || c == '/') {
        return c;
    }
    return '_';
}

const char *scep_stats_key(apr_pool_t *p, const char *what, const char *server)
{
    char *name, *c;

    if (!server) {
        return apr_pstrcat(p, "SCEP", what, NULL);
    }
    name = apr_pstrdup(p, server);
    for (c = name; *c; c++) {
        *c = key_char(*c);
    }
    return apr_pstrcat(p, "SCEP", what, "[", name, "]", NULL);
}

const char *scep_stats_server_name(apr_pool_t *p, const char *host, unsigned port)
{
    const char *h = host && *host ? host : "-";

    return port ? apr_psprintf(p, "%s/%u", h, port) : apr_pstrdup(p, h);
}
