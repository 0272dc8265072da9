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
 * The figures of mod_status's SCEP section: per server, the enrollments
 * issued, refused and held, the faults, and the state of the records, in a
 * memory block the caller gives (the module: shared memory every worker
 * process maps, kept across graceful restarts). Workers only add and set
 * with apr_atomic: no lock on a request's way. Slots are claimed by name
 * by one process alone (the parent, at startup), so that a server keeps
 * its figures across restarts and edits of the configuration.
 */
#ifndef mod_scep_scep_stats_h
#define mod_scep_scep_stats_h

#include <apr_pools.h>
#include <apr_time.h>

#include "scep_enroll.h"

/* The longest server name a slot keeps (longer ones are cut). */
#define SCEP_STATS_NAME_MAX 192

typedef enum {
    SCEP_STATS_ISSUED,       /* certificates issued: to a device, or on a manager's approval */
    SCEP_STATS_REFUSED,      /* requests refused on arrival, or denied by a CA manager */
    SCEP_STATS_HELD,         /* requests held for a CA manager or the external CA */
    SCEP_STATS_FAULTS,       /* enrollment messages answered "try again later" */
    SCEP_STATS_STORE_FAULTS, /* failed uses of the records */
    SCEP_STATS_COUNTERS
} scep_stats_counter_t;

typedef struct scep_stats_t scep_stats_t;

/* What a slot holds, read at one moment (each figure atomically). */
typedef struct scep_stats_view_t {
    const char *name;
    apr_uint32_t counters[SCEP_STATS_COUNTERS];
    int store_fault;        /* the last use of the records failed */
    apr_time_t store_since; /* when the records' state became what it is */
    apr_time_t last_fault;  /* the last failed use of the records; 0: none */
} scep_stats_view_t;

/* The bytes a block of capacity slots needs. */
apr_size_t scep_stats_size(int capacity);

/* Makes an empty block of capacity slots in mem (size bytes, at least
 * scep_stats_size(capacity), aligned for 64-bit atomics); now: the start
 * of the counting, and of the records' ok state. APR_EINVAL when it does
 * not fit. */
apr_status_t scep_stats_init(void *mem, apr_size_t size, int capacity, apr_time_t now,
                             scep_stats_t **stats);

int scep_stats_capacity(const scep_stats_t *stats);
/* When the counting started (scep_stats_init()'s now). */
apr_time_t scep_stats_started(const scep_stats_t *stats);

/* The slot of name: the one that has it, else the first free one, claimed.
 * Not thread-safe: one process claims (the module's parent). APR_ENOSPC
 * when every slot has another name. */
apr_status_t scep_stats_slot(scep_stats_t *stats, const char *name, int *slot);

/* Copies every slot of from (names and figures) into to, which has at
 * least from's capacity: a bigger block taking over. */
apr_status_t scep_stats_copy(scep_stats_t *to, scep_stats_t *from);

/* One more of counter in slot (atomic; a slot out of range is ignored). */
void scep_stats_add(scep_stats_t *stats, int slot, scep_stats_counter_t counter);

/* Counts an enrollment message's outcome (PKCSReq, RenewalReq, CertPoll;
 * other message types are not enrollments): a FAULT as a fault, and so a
 * refusal when records_failed (a use of the records failed on the way:
 * "the server's records cannot be reached ... try again later"); else,
 * unless it repeats a decision recorded before (outcome->repeated), as
 * issued, held or refused. */
void scep_stats_count_outcome(scep_stats_t *stats, int slot, int message_type,
                              const scep_outcome_t *outcome, int records_failed);

/* A use of the records failed at now / worked at now: the state changes
 * (and its time) only when it was the other one; a failure also counts
 * and is the last fault. */
void scep_stats_store_fault(scep_stats_t *stats, int slot, apr_time_t now);
void scep_stats_store_ok(scep_stats_t *stats, int slot, apr_time_t now);

/* The figures of slot into view (name on the block). APR_EINVAL for a slot
 * out of range. */
apr_status_t scep_stats_read(const scep_stats_t *stats, int slot, scep_stats_view_t *view);

/* Whole days from now until not_after, rounded down: 0 on the last day,
 * negative once expired. */
int scep_stats_days_left(apr_time_t not_after, apr_time_t now);

/* The key of a machine-readable line (mod_status ?auto): "SCEP" and what,
 * then, for one server among several, "[NAME]" with every byte of the name
 * other than letters, digits, '.', '-', '_' and '/' made '_' (no ':', no
 * space: readers split the line at its first colon). */
const char *scep_stats_key(apr_pool_t *p, const char *what, const char *server);

/* The name of a server's slot and lines: host, then "/port" when it has
 * one (0: none). */
const char *scep_stats_server_name(apr_pool_t *p, const char *host, unsigned port);

#endif /* mod_scep_scep_stats_h */
