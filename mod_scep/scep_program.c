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
 * One run of a program (scep_program.h): its standard input is written
 * and its output read in one poll loop, so that neither side waits on a
 * full pipe; the pipes and buffers live in a pool of the run, so that no
 * descriptor outlives it.
 */

#include <signal.h>
#include <string.h>

#include <apr_poll.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "scep_program.h"

#define KILL_GRACE apr_time_from_sec(2)

/* One of the child's pipes: its standard input (data written up to len)
 * or an output (read into buf, len so far). */
typedef struct stream_t {
    apr_file_t *file;
    char *buf;
    apr_size_t len;
    const unsigned char *data; /* standard input: what it gets */
    apr_size_t done;           /* standard input: bytes written */
    int input;
} stream_t;

static void stream_close(stream_t *s)
{
    apr_file_close(s->file);
    s->file = NULL;
}

/* Reads what is there; APR_EOF at the end, APR_ENOSPC over the limit. */
static apr_status_t read_stream(stream_t *s, apr_size_t limit)
{
    apr_size_t n = limit + 1 - s->len;
    apr_status_t rv = apr_file_read(s->file, s->buf + s->len, &n);

    if (rv == APR_SUCCESS || APR_STATUS_IS_EAGAIN(rv)) {
        s->len += n;
        return s->len > limit ? APR_ENOSPC : APR_SUCCESS;
    }
    return rv;
}

/* Writes what the pipe takes; closed once all is written, or when the
 * program closed its end (it decided without reading: not our fault,
 * its exit status says what it decided). */
static void write_stream(stream_t *s)
{
    apr_size_t n = s->len - s->done;
    apr_status_t rv = apr_file_write(s->file, s->data + s->done, &n);

    if (rv == APR_SUCCESS || APR_STATUS_IS_EAGAIN(rv)) {
        s->done += n;
    }
    if ((rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) || s->done == s->len) {
        stream_close(s);
    }
}

/* One stream's turn after poll(): APR_ENOSPC over the limit. */
static apr_status_t serve_stream(stream_t *s, apr_size_t limit)
{
    apr_status_t rv;

    if (s->input) {
        write_stream(s);
        return APR_SUCCESS;
    }
    rv = read_stream(s, limit);
    if (rv == APR_ENOSPC) {
        return rv;
    }
    if (rv != APR_SUCCESS) {
        stream_close(s);
    }
    return APR_SUCCESS;
}

/* Feeds stdin, reads stdout and stderr until all are closed, the
 * deadline or the limit: *stop says which limit stopped it. */
static apr_status_t drain(apr_pool_t *p, stream_t *s, apr_size_t limit, apr_time_t deadline,
                          const char **stop)
{
    apr_status_t rv = APR_SUCCESS;

    while (s[0].file || s[1].file || s[2].file) {
        apr_pollfd_t fds[3];
        apr_int32_t n = 0, ready;
        apr_interval_time_t left = deadline - apr_time_now();
        int i;

        if (left <= 0) {
            *stop = "ran past its time limit";
            return APR_TIMEUP;
        }
        for (i = 0; i < 3; i++) {
            if (s[i].file) {
                apr_pollfd_t fd = { p, APR_POLL_FILE, s[i].input ? APR_POLLOUT : APR_POLLIN,
                                    0, { NULL },      &s[i] };
                fd.desc.f = s[i].file;
                fds[n++] = fd;
            }
        }
        rv = apr_poll(fds, n, &ready, left);
        if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (rv != APR_SUCCESS) {
            *stop = "could not be read";
            return rv;
        }
        for (i = 0; i < n; i++) {
            if (fds[i].rtnevents && serve_stream(fds[i].client_data, limit) == APR_ENOSPC) {
                *stop = apr_psprintf(p, "wrote more than %" APR_SIZE_T_FMT " bytes", limit);
                return APR_ENOSPC;
            }
        }
    }
    return APR_SUCCESS;
}

/* Waits for the child until deadline; APR_CHILD_DONE when reaped. */
static apr_status_t reap_until(apr_proc_t *proc, apr_time_t deadline, int *code,
                               apr_exit_why_e *why)
{
    for (;;) {
        apr_status_t rv = apr_proc_wait(proc, code, why, APR_NOWAIT);

        if (rv != APR_CHILD_NOTDONE || apr_time_now() >= deadline) {
            return rv;
        }
        apr_sleep(apr_time_from_msec(20));
    }
}

/* Ends the child: it has until deadline to exit by itself, then SIGTERM,
 * then SIGKILL; always reaped. */
static void end_child(apr_proc_t *proc, apr_time_t deadline, int stop, scep_program_run_t *run)
{
    apr_exit_why_e why = APR_PROC_EXIT;
    int code = 0;

    if (stop || reap_until(proc, deadline, &code, &why) != APR_CHILD_DONE) {
        if (!stop) {
            run->stop = "ran past its time limit";
        }
        apr_proc_kill(proc, SIGTERM);
        if (reap_until(proc, apr_time_now() + KILL_GRACE, &code, &why) != APR_CHILD_DONE) {
            apr_proc_kill(proc, SIGKILL);
            apr_proc_wait(proc, &code, &why, APR_WAIT);
        }
    }
    run->exited = APR_PROC_CHECK_EXIT(why) && !run->stop;
    run->exit_code = code;
}

static apr_status_t start_child(apr_pool_t *p, const scep_program_t *prog, apr_proc_t *proc)
{
    apr_procattr_t *attr;
    apr_status_t rv;

    if ((rv = apr_procattr_create(&attr, p)) != APR_SUCCESS ||
        (rv = apr_procattr_io_set(attr, prog->input ? APR_CHILD_BLOCK : APR_NO_FILE,
                                  APR_CHILD_BLOCK, APR_CHILD_BLOCK)) != APR_SUCCESS ||
        (rv = apr_procattr_cmdtype_set(attr, APR_PROGRAM)) != APR_SUCCESS ||
        (rv = apr_procattr_error_check_set(attr, 1)) != APR_SUCCESS) {
        return rv;
    }
    return apr_proc_create(proc, prog->argv[0], prog->argv, prog->env, attr, p);
}

apr_status_t scep_program_run(apr_pool_t *p, const scep_program_t *prog, scep_program_run_t *run)
{
    apr_size_t limit = prog->output_limit;
    apr_time_t start = apr_time_now(), deadline = start + prog->time_limit;
    apr_pool_t *rp = NULL;
    stream_t s[3];
    apr_proc_t proc;
    apr_status_t rv;
    int i;

    memset(run, 0, sizeof(*run));
    memset(s, 0, sizeof(s));
    rv = apr_pool_create(&rp, p);
    if (rv == APR_SUCCESS) {
        rv = start_child(rp, prog, &proc);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    for (i = 0; i < 2; i++) {
        s[i].file = i ? proc.err : proc.out;
        s[i].buf = apr_palloc(rp, limit + 2);
    }
    if (prog->input) {
        s[2] = (stream_t){ proc.in, NULL, prog->input_len, prog->input, 0, 1 };
        if (!prog->input_len) {
            stream_close(&s[2]);
        }
    }
    rv = drain(p, s, limit, deadline, &run->stop);
    for (i = 0; i < 3; i++) {
        if (s[i].file) {
            stream_close(&s[i]);
        }
    }
    for (i = 0; i < 2; i++) {
        run->len[i] = s[i].len > limit ? limit : s[i].len;
        run->out[i] = apr_pstrmemdup(p, s[i].buf, run->len[i]);
    }
    end_child(&proc, deadline, rv != APR_SUCCESS, run);
    run->elapsed = apr_time_now() - start;
    rv = APR_SUCCESS;
leave:
    if (rp) {
        apr_pool_destroy(rp);
    }
    return rv;
}

void scep_program_env_add(apr_array_header_t *env, const char *name, const char *value)
{
    if (value) {
        APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(env->pool, name, "=", value, NULL);
    }
}
