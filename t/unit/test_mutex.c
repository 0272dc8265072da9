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
 * scep_global_mutex_lock against the false deadlock of fcntl locks, staged
 * with two real processes of two threads each, as Apache's threaded workers
 * meet on the password cache and SQLite writer mutexes:
 *
 *   parent: main thread holds A        child: main thread holds B
 *           thread waits for B                 thread waits for A
 *
 * Each holder would let go, yet the kernel sees two processes waiting for
 * each other. The first test shows that apr_global_mutex_lock alone fails
 * there (the premise), the second that scep_global_mutex_lock waits it out.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_global_mutex.h>
#include <apr_thread_proc.h>

#include <check.h>

#include "scep.h"
#include "testutil.h"

/* How long the child keeps B after the parent's thread asked for it. */
#define CHILD_HOLDS apr_time_from_msec(200)

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

typedef apr_status_t (*lock_fn_t)(apr_global_mutex_t *mutex);

typedef struct waiter_t {
    apr_global_mutex_t *mutex;
    lock_fn_t lock;
    apr_status_t rv;
} waiter_t;

/* Takes the mutex and lets go of it again. Returns rather than calling
 * apr_thread_exit() (see test_ca.c). */
static void *APR_THREAD_FUNC take_and_release(apr_thread_t *thread, void *data)
{
    waiter_t *w = data;

    (void)thread;
    w->rv = w->lock(w->mutex);
    if (w->rv == APR_SUCCESS) {
        apr_global_mutex_unlock(w->mutex);
    }
    return NULL;
}

static apr_global_mutex_t *fcntl_mutex(const char *dir, const char *name)
{
    apr_global_mutex_t *mutex;

    ck_assert_int_eq(
        apr_global_mutex_create(&mutex, testutil_path(pool, dir, name), APR_LOCK_FCNTL, pool),
        APR_SUCCESS);
    return mutex;
}

/* 1 when /proc/locks shows a process blocked on a lock ("->"). */
static int someone_blocked(void)
{
    char line[256];
    int found = 0;
    FILE *f = fopen("/proc/locks", "r");

    while (f && !found && fgets(line, sizeof(line), f)) {
        found = strstr(line, "->") != NULL;
    }
    if (f) {
        fclose(f);
    }
    return found;
}

static void wait_until_blocked(void)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(10);

    while (!someone_blocked() && apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(5));
    }
}

static void send_byte(int fd)
{
    ck_assert_int_eq(write(fd, "x", 1), 1);
}

static void receive_byte(int fd)
{
    char c;

    ck_assert_int_eq(read(fd, &c, 1), 1);
}

/* The child's side: holds b, its thread waits for a; lets go of b when told. */
static void child(apr_global_mutex_t *a, apr_global_mutex_t *b, int from_parent, int to_parent)
{
    waiter_t w = { a, apr_global_mutex_lock, APR_EGENERAL };
    apr_thread_t *thread;
    apr_status_t thread_rv;
    char c;

    if (read(from_parent, &c, 1) != 1 || apr_global_mutex_lock(b) != APR_SUCCESS ||
        apr_thread_create(&thread, NULL, take_and_release, &w, pool) != APR_SUCCESS) {
        _exit(2);
    }
    wait_until_blocked();
    if (write(to_parent, "b", 1) != 1 || read(from_parent, &c, 1) != 1) {
        _exit(3);
    }
    apr_global_mutex_unlock(b);
    apr_thread_join(&thread_rv, thread);
    _exit(w.rv == APR_SUCCESS ? 0 : 4);
}

/* Stages the two processes and returns what lock() answered the parent's
 * thread that asked for b. */
static apr_status_t false_deadlock(lock_fn_t lock)
{
    const char *dir = testutil_tempdir(pool);
    apr_global_mutex_t *a = fcntl_mutex(dir, "a.lock"), *b = fcntl_mutex(dir, "b.lock");
    waiter_t w = { b, lock, APR_EGENERAL };
    apr_thread_t *thread;
    apr_status_t thread_rv;
    int down[2], up[2], status;
    pid_t pid;

    ck_assert_int_eq(pipe(down), 0);
    ck_assert_int_eq(pipe(up), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        child(a, b, down[0], up[1]);
    }
    ck_assert_int_eq(apr_global_mutex_lock(a), APR_SUCCESS);
    send_byte(down[1]);
    receive_byte(up[0]); /* the child holds b and its thread waits for a */
    ck_assert_int_eq(apr_thread_create(&thread, NULL, take_and_release, &w, pool), APR_SUCCESS);
    apr_sleep(CHILD_HOLDS);
    send_byte(down[1]); /* the child lets go of b */
    apr_thread_join(&thread_rv, thread);
    apr_global_mutex_unlock(a);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ended with %d", status);
    close(down[0]);
    close(down[1]);
    close(up[0]);
    close(up[1]);
    return w.rv;
}

START_TEST(fcntl_locks_report_a_deadlock_that_is_not_one)
{
    ck_assert_int_eq(false_deadlock(apr_global_mutex_lock), APR_FROM_OS_ERROR(EDEADLK));
}
END_TEST

START_TEST(global_mutex_lock_waits_out_a_false_deadlock)
{
    ck_assert_int_eq(false_deadlock(scep_global_mutex_lock), APR_SUCCESS);
}
END_TEST

Suite *scep_mutex_suite(void);

Suite *scep_mutex_suite(void)
{
    Suite *s = suite_create("mutex");
    TCase *tc = tcase_create("false deadlock");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, fcntl_locks_report_a_deadlock_that_is_not_one);
    tcase_add_test(tc, global_mutex_lock_waits_out_a_false_deadlock);
    suite_add_tcase(s, tc);
    return s;
}
