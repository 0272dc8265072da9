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
 * The "program" challenge check (scep_challenge_program.h): the facts into
 * a clean environment, the CSR's DER to standard input, the exit status
 * read as micromdm's CSR verifier's (0 allows, 1 refuses), the rest a
 * fault.
 */

#include <string.h>

#include <apr_strings.h>

#include "scep_challenge_program.h"
#include "scep_program.h"

#define PROGRAM_TIME_LIMIT apr_time_from_sec(10)
#define PROGRAM_OUTPUT_LIMIT ((apr_size_t)64 * 1024)
#define PROGRAM_PATH "PATH=/usr/bin:/bin"
#define PROGRAM_TEXT_LIMIT 256 /* bytes of the program's words in a failInfoText */
#define PROGRAM_DENIED 1

static void program_log(const scep_challenge_program_conf_t *conf, const char *file, int line,
                        const char *msg)
{
    if (conf->log) {
        conf->log(conf->log_baton, file, line, SCEP_LOG_ERR, msg);
    }
}

/* Nothing of Apache's environment: PATH and the facts (micromdm's
 * verifier reads TRANSACTIONID; the others are ours). */
static const char *const *program_env(apr_pool_t *p, const scep_challenge_facts_t *facts)
{
    apr_array_header_t *env = apr_array_make(p, 8, sizeof(const char *));

    APR_ARRAY_PUSH(env, const char *) = PROGRAM_PATH;
    scep_program_env_add(env, "TRANSACTIONID", facts->transaction_id);
    scep_program_env_add(env, "SCEP_CHALLENGE", facts->challenge);
    scep_program_env_add(env, "SCEP_MESSAGE_TYPE", facts->message_type);
    scep_program_env_add(env, "SCEP_TEMPLATE", facts->template_name);
    scep_program_env_add(env, "SCEP_CLIENT_ADDRESS", facts->client_addr);
    APR_ARRAY_PUSH(env, const char *) = NULL;
    return (const char *const *)env->elts;
}

/* The first line of the program's words (stdout, else stderr), bounded
 * and escaped: a device's failInfoText and the log read it. */
static const char *first_line(apr_pool_t *p, const scep_program_run_t *run)
{
    const char *text = *run->out[0] ? run->out[0] : run->out[1];
    apr_size_t n = strcspn(text, "\r\n");

    return scep_escape_text(
        p, apr_pstrmemdup(p, text, n < PROGRAM_TEXT_LIMIT ? n : PROGRAM_TEXT_LIMIT), 0);
}

/* A run that decided nothing, logged: the engine fails closed. */
static apr_status_t fault(apr_pool_t *p, const scep_challenge_program_conf_t *conf,
                          const scep_challenge_facts_t *facts, const scep_program_run_t *run,
                          scep_problem_t *prob)
{
    const char *why = run->stop     ? apr_psprintf(p, "%s, stopped after %" APR_TIME_T_FMT " ms",
                                                   run->stop, apr_time_as_msec(run->elapsed))
                      : run->exited ? apr_psprintf(p, "exited with status %d", run->exit_code)
                                    : "was killed by a signal";

    program_log(conf, SCEP_LOG_MARK,
                apr_psprintf(p,
                             SCEPLOGNO(290) "transaction %s: challenge program %s %s: \"%s\"; "
                                            "nothing was issued",
                             scep_escape_text(p, facts->transaction_id, 0), conf->argv[0], why,
                             first_line(p, run)));
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                        "the challenge program failed");
}

static apr_status_t program_check(scep_challenge_check_t *cc, apr_pool_t *p,
                                  const scep_challenge_facts_t *facts, scep_problem_t *prob)
{
    const scep_challenge_program_conf_t *conf = cc->baton;
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(facts->csr, &der);
    scep_program_t prog = {
        conf->argv,       program_env(p, facts), der, len > 0 ? (apr_size_t)len : 0,
        conf->time_limit, conf->output_limit
    };
    scep_program_run_t run;
    apr_status_t rv;
    char err[128];

    if (len <= 0) {
        scep_log_openssl(conf->log, conf->log_baton, SCEP_LOG_MARK, SCEP_LOG_ERR);
        rv = scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                          "the request cannot be encoded for the challenge program");
        goto leave;
    }
    rv = scep_program_run(p, &prog, &run);
    if (rv != APR_SUCCESS) {
        program_log(conf, SCEP_LOG_MARK,
                    apr_psprintf(p, SCEPLOGNO(289) "challenge program %s cannot be started: %s",
                                 conf->argv[0], apr_strerror(rv, err, sizeof(err))));
        rv = scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                          "the challenge program cannot be started");
    }
    else if (run.stop || !run.exited || (run.exit_code && run.exit_code != PROGRAM_DENIED)) {
        rv = fault(p, conf, facts, &run, prob);
    }
    else if (run.exit_code == PROGRAM_DENIED) {
        rv = scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                          apr_pstrcat(p, "the challenge program refused the request: ",
                                      first_line(p, &run), NULL));
    }
leave:
    OPENSSL_free(der);
    return rv;
}

scep_challenge_check_t *scep_challenge_program(apr_pool_t *p,
                                               const scep_challenge_program_conf_t *conf)
{
    scep_challenge_check_t *cc = apr_pcalloc(p, sizeof(*cc));
    scep_challenge_program_conf_t *copy = apr_pmemdup(p, conf, sizeof(*conf));

    if (!copy->time_limit) {
        copy->time_limit = PROGRAM_TIME_LIMIT;
    }
    if (!copy->output_limit) {
        copy->output_limit = PROGRAM_OUTPUT_LIMIT;
    }
    cc->name = scep_challenge_method_name(SCEP_CHALLENGE_METHOD_PROGRAM);
    cc->baton = copy;
    cc->check = program_check;
    return cc;
}
