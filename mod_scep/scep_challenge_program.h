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
 * The "program" challenge check (SCEPChallengeProgram): a site's program
 * decides, as micromdm's CSR verifier does. It runs without a shell
 * (scep_program.c), with a clean environment holding the request's facts
 * (PATH=/usr/bin:/bin, TRANSACTIONID, SCEP_CHALLENGE, SCEP_MESSAGE_TYPE,
 * SCEP_TEMPLATE, SCEP_CLIENT_ADDRESS) and the CSR in DER on its standard
 * input. Exit status 0 allows; 1 refuses, with the first line the program
 * wrote (stdout, else stderr) as the failInfoText, escaped; anything else,
 * a signal, the time or output limit is a fault (logged): the engine fails
 * closed.
 */
#ifndef mod_scep_scep_challenge_program_h
#define mod_scep_scep_challenge_program_h

#include "scep_challenge.h"

typedef struct scep_challenge_program_conf_t {
    /* The program's absolute path, then its arguments; NULL-terminated. */
    const char *const *argv;
    apr_interval_time_t time_limit; /* 0: 10 seconds; then SIGTERM, 2 s later SIGKILL */
    apr_size_t output_limit;        /* of stdout and of stderr each; 0: 64 KiB */
    scep_log_fn *log;               /* faults, one line each (SCEP289-299) */
    void *log_baton;
} scep_challenge_program_conf_t;

/* The program as the "program" check, on p (with a copy of conf). */
scep_challenge_check_t *scep_challenge_program(apr_pool_t *p,
                                               const scep_challenge_program_conf_t *conf);

#endif /* mod_scep_scep_challenge_program_h */
