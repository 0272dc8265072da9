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
 * A site's program run on a request's behalf (the certmonger CA helper,
 * the challenge check program): without a shell, with the environment the
 * caller built from nothing, its standard input fed, its standard output
 * and error drained together (a child blocked on a full pipe would never
 * exit), stopped at the time or output limit and always reaped.
 */
#ifndef mod_scep_scep_program_h
#define mod_scep_scep_program_h

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct scep_program_t {
    const char *const *argv;        /* absolute path first; NULL-terminated */
    const char *const *env;         /* "NAME=value", NULL-terminated: all it gets */
    const unsigned char *input;     /* its standard input; NULL: none (closed) */
    apr_size_t input_len;           /* a program that exits unread is no fault */
    apr_interval_time_t time_limit; /* then SIGTERM, 2 s later SIGKILL */
    apr_size_t output_limit;        /* of stdout and of stderr each */
} scep_program_t;

/* What one run left. */
typedef struct scep_program_run_t {
    char *out[2]; /* stdout, stderr: NUL-terminated, at most output_limit bytes */
    apr_size_t len[2];
    int exited;       /* 1: it exited by itself, with exit_code; 0: a signal ended it, or we did */
    int exit_code;    /* when exited */
    const char *stop; /* why we stopped it ("ran past its time limit"), NULL when it ended */
    apr_interval_time_t elapsed;
} scep_program_run_t;

/* Runs the program, *run on p. APR_SUCCESS when it ran (ended by itself,
 * or stopped: run->stop); else the error that kept it from starting. */
apr_status_t scep_program_run(apr_pool_t *p, const scep_program_t *prog, scep_program_run_t *run);

/* Appends "name=value" to env (of const char *) on env's pool; nothing
 * when value is NULL. */
void scep_program_env_add(apr_array_header_t *env, const char *name, const char *value);

#endif /* mod_scep_scep_program_h */
