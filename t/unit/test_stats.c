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
 * mod_status's figures (scep_stats.c): slots claimed by name and found
 * again, outcomes counted once, the records' state and its times, a bigger
 * block taking over, the keys of the ?auto lines, and processes adding at
 * once in shared memory without losing a count.
 */

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include <apr_pools.h>
#include <apr_time.h>

#include "scep_stats.h"
#include "testutil.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static scep_stats_t *block(int capacity, apr_time_t now)
{
    apr_size_t size = scep_stats_size(capacity);
    void *mem = apr_palloc(pool, size); /* APR aligns to 8 */
    scep_stats_t *stats = NULL;

    ck_assert_int_eq(scep_stats_init(mem, size, capacity, now, &stats), APR_SUCCESS);
    return stats;
}

static scep_stats_view_t view_of(const scep_stats_t *stats, int slot)
{
    scep_stats_view_t v;

    ck_assert_int_eq(scep_stats_read(stats, slot, &v), APR_SUCCESS);
    return v;
}

START_TEST(slots_by_name)
{
    scep_stats_t *stats = block(2, 1000);
    void *small = apr_palloc(pool, scep_stats_size(2));
    scep_stats_t *none = NULL;
    int a = -1, b = -1, again = -1, c = -1;

    ck_assert_int_eq(scep_stats_init(small, scep_stats_size(2) - 1, 2, 0, &none), APR_EINVAL);
    ck_assert_int_eq(scep_stats_init(small, scep_stats_size(2), 0, 0, &none), APR_EINVAL);
    ck_assert_int_eq(scep_stats_capacity(stats), 2);
    ck_assert_int_eq(scep_stats_started(stats), 1000);
    ck_assert_int_eq(scep_stats_slot(stats, "a.example/443", &a), APR_SUCCESS);
    ck_assert_int_eq(scep_stats_slot(stats, "b.example/443", &b), APR_SUCCESS);
    ck_assert_int_ne(a, b);
    ck_assert_int_eq(scep_stats_slot(stats, "a.example/443", &again), APR_SUCCESS);
    ck_assert_int_eq(again, a);
    ck_assert_int_eq(scep_stats_slot(stats, "c.example/443", &c), APR_ENOSPC);
    ck_assert_int_eq(c, -1);
    ck_assert_str_eq(view_of(stats, b).name, "b.example/443");
    ck_assert_int_eq(view_of(stats, a).store_since, 1000);
    /* out of range: ignored, or refused */
    scep_stats_add(stats, 2, SCEP_STATS_ISSUED);
    scep_stats_add(stats, -1, SCEP_STATS_ISSUED);
    {
        scep_stats_view_t v;

        ck_assert_int_eq(scep_stats_read(stats, 2, &v), APR_EINVAL);
    }
}
END_TEST

static void count_when(scep_stats_t *stats, int slot, int type, scep_outcome_kind_t kind,
                       int repeated, int records_failed)
{
    scep_outcome_t o;

    memset(&o, 0, sizeof(o));
    o.kind = kind;
    o.repeated = repeated;
    scep_stats_count_outcome(stats, slot, type, &o, records_failed);
}

static void count(scep_stats_t *stats, int slot, int type, scep_outcome_kind_t kind, int repeated)
{
    count_when(stats, slot, type, kind, repeated, 0);
}

START_TEST(outcomes_counted_once)
{
    scep_stats_t *stats = block(1, 0);
    scep_stats_view_t v;
    int s = -1;

    ck_assert_int_eq(scep_stats_slot(stats, "only", &s), APR_SUCCESS);
    count(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_ISSUED, 0);
    count(stats, s, SCEP_MSG_RENEWALREQ, SCEP_OUTCOME_ISSUED, 0);
    count(stats, s, SCEP_MSG_CERTPOLL, SCEP_OUTCOME_ISSUED, 0);
    count(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_ISSUED, 1); /* a replay */
    count(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_HELD, 0);
    count(stats, s, SCEP_MSG_CERTPOLL, SCEP_OUTCOME_HELD, 1); /* still held */
    count(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_REFUSED, 0);
    count(stats, s, SCEP_MSG_CERTPOLL, SCEP_OUTCOME_REFUSED, 0);
    count(stats, s, SCEP_MSG_CERTPOLL, SCEP_OUTCOME_REFUSED, 1); /* denied before */
    count(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_FAULT, 0);
    count(stats, s, SCEP_MSG_CERTPOLL, SCEP_OUTCOME_FAULT, 1); /* faults always count */
    /* refused for want of records: "try again later", a fault */
    count_when(stats, s, SCEP_MSG_PKCSREQ, SCEP_OUTCOME_REFUSED, 0, 1);
    /* GetCert, GetCRL and the rest are no enrollments */
    count(stats, s, SCEP_MSG_GETCERT, SCEP_OUTCOME_ISSUED, 0);
    count(stats, s, SCEP_MSG_GETCRL, SCEP_OUTCOME_REFUSED, 0);
    count(stats, s, SCEP_MSG_GETCRL, SCEP_OUTCOME_FAULT, 0);
    count(stats, s, SCEP_MSG_CERTREP, SCEP_OUTCOME_REFUSED, 0);
    /* a manager's decisions */
    scep_stats_add(stats, s, SCEP_STATS_ISSUED);
    scep_stats_add(stats, s, SCEP_STATS_REFUSED);
    v = view_of(stats, s);
    ck_assert_uint_eq(v.counters[SCEP_STATS_ISSUED], 4);
    ck_assert_uint_eq(v.counters[SCEP_STATS_HELD], 1);
    ck_assert_uint_eq(v.counters[SCEP_STATS_REFUSED], 3);
    ck_assert_uint_eq(v.counters[SCEP_STATS_FAULTS], 3);
    ck_assert_uint_eq(v.counters[SCEP_STATS_STORE_FAULTS], 0);
}
END_TEST

START_TEST(records_state_and_times)
{
    scep_stats_t *stats = block(1, 100);
    scep_stats_view_t v;
    int s = -1;

    ck_assert_int_eq(scep_stats_slot(stats, "only", &s), APR_SUCCESS);
    v = view_of(stats, s);
    ck_assert_int_eq(v.store_fault, 0);
    ck_assert_int_eq(v.store_since, 100);
    ck_assert_int_eq(v.last_fault, 0);
    /* ok while ok: nothing moves */
    scep_stats_store_ok(stats, s, 150);
    ck_assert_int_eq(view_of(stats, s).store_since, 100);
    scep_stats_store_fault(stats, s, 200);
    scep_stats_store_fault(stats, s, 300);
    v = view_of(stats, s);
    ck_assert_int_eq(v.store_fault, 1);
    ck_assert_int_eq(v.store_since, 200); /* the first fault of the run */
    ck_assert_int_eq(v.last_fault, 300);
    ck_assert_uint_eq(v.counters[SCEP_STATS_STORE_FAULTS], 2);
    scep_stats_store_ok(stats, s, 400);
    scep_stats_store_ok(stats, s, 500);
    v = view_of(stats, s);
    ck_assert_int_eq(v.store_fault, 0);
    ck_assert_int_eq(v.store_since, 400);
    ck_assert_int_eq(v.last_fault, 300);
    ck_assert_uint_eq(v.counters[SCEP_STATS_STORE_FAULTS], 2);
}
END_TEST

START_TEST(bigger_block_takes_over)
{
    scep_stats_t *small = block(1, 10), *big = block(3, 20);
    scep_stats_view_t v;
    int s = -1, t = -1;

    ck_assert_int_eq(scep_stats_slot(small, "kept", &s), APR_SUCCESS);
    scep_stats_add(small, s, SCEP_STATS_HELD);
    scep_stats_add(small, s, SCEP_STATS_HELD);
    scep_stats_store_fault(small, s, 15);
    ck_assert_int_eq(scep_stats_copy(small, big), APR_EINVAL);
    ck_assert_int_eq(scep_stats_copy(big, small), APR_SUCCESS);
    ck_assert_int_eq(scep_stats_started(big), 10);
    ck_assert_int_eq(scep_stats_slot(big, "kept", &t), APR_SUCCESS);
    ck_assert_int_eq(t, s);
    v = view_of(big, t);
    ck_assert_uint_eq(v.counters[SCEP_STATS_HELD], 2);
    ck_assert_int_eq(v.store_fault, 1);
    ck_assert_int_eq(v.store_since, 15);
    ck_assert_int_eq(v.last_fault, 15);
    ck_assert_int_eq(scep_stats_slot(big, "new", &t), APR_SUCCESS);
    ck_assert_int_ne(t, s);
}
END_TEST

START_TEST(days_and_keys)
{
    apr_time_t now = apr_time_from_sec(1700000000);
    apr_time_t day = apr_time_from_sec(86400);

    ck_assert_int_eq(scep_stats_days_left(now + 30 * day, now), 30);
    ck_assert_int_eq(scep_stats_days_left(now + 30 * day - 1, now), 29);
    ck_assert_int_eq(scep_stats_days_left(now + 1, now), 0);
    ck_assert_int_eq(scep_stats_days_left(now, now), 0);
    ck_assert_int_eq(scep_stats_days_left(now - 1, now), -1);
    ck_assert_int_eq(scep_stats_days_left(now - day, now), -1);
    ck_assert_int_eq(scep_stats_days_left(now - day - 1, now), -2);
    ck_assert_str_eq(scep_stats_key(pool, "Issued", NULL), "SCEPIssued");
    ck_assert_str_eq(scep_stats_key(pool, "Issued", "scep.example.com/443"),
                     "SCEPIssued[scep.example.com/443]");
    /* no colon, space, bracket or control: a reader splits at the first ':' */
    ck_assert_str_eq(scep_stats_key(pool, "Held", "a b:c]\n\xc3\xa9"), "SCEPHeld[a_b_c____]");
    ck_assert_str_eq(scep_stats_server_name(pool, "scep.example.com", 443), "scep.example.com/443");
    ck_assert_str_eq(scep_stats_server_name(pool, "localhost", 0), "localhost");
    ck_assert_str_eq(scep_stats_server_name(pool, NULL, 0), "-");
}
END_TEST

/* Processes adding to one block in shared memory at once, as workers do:
 * no count lost without a lock. */
START_TEST(processes_add_without_a_lock)
{
    enum { PROCS = 6, EACH = 20000 };
    apr_size_t size = scep_stats_size(2);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    scep_stats_t *stats = NULL;
    scep_stats_view_t v;
    pid_t pids[PROCS];
    int s = -1, i, n, status;

    ck_assert_ptr_ne(mem, MAP_FAILED);
    ck_assert_int_eq(scep_stats_init(mem, size, 2, 0, &stats), APR_SUCCESS);
    ck_assert_int_eq(scep_stats_slot(stats, "shared", &s), APR_SUCCESS);
    for (i = 0; i < PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            for (n = 0; n < EACH; n++) {
                scep_stats_add(stats, s, SCEP_STATS_ISSUED);
                if (n % 100 == 0) {
                    scep_stats_store_fault(stats, s, n + 1);
                    scep_stats_store_ok(stats, s, n + 2);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < PROCS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    v = view_of(stats, s);
    ck_assert_uint_eq(v.counters[SCEP_STATS_ISSUED], (uintmax_t)PROCS * EACH);
    ck_assert_uint_eq(v.counters[SCEP_STATS_STORE_FAULTS], (uintmax_t)PROCS * (EACH / 100));
    ck_assert_int_eq(v.store_fault, 0);
    munmap(mem, size);
}
END_TEST

Suite *scep_stats_suite(void);

Suite *scep_stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = testutil_case(s, "stats", setup, teardown);

    tcase_add_test(tc, slots_by_name);
    tcase_add_test(tc, outcomes_counted_once);
    tcase_add_test(tc, records_state_and_times);
    tcase_add_test(tc, bigger_block_takes_over);
    tcase_add_test(tc, days_and_keys);
    tcase_add_test(tc, processes_add_without_a_lock);
    return s;
}
