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
 * Challenge checks: the methods' names, the rule that combines them
 * (scep_challenge_run()) and the password store as the "password" method.
 */

#include <apr_strings.h>

#include "scep_challenge.h"

static const char *const method_names[SCEP_CHALLENGE_METHOD_COUNT] = {
    [SCEP_CHALLENGE_METHOD_PASSWORD] = "password",
    [SCEP_CHALLENGE_METHOD_WEBHOOK] = "webhook",
    [SCEP_CHALLENGE_METHOD_PROGRAM] = "program",
};

const char *scep_challenge_method_name(scep_challenge_method_t method)
{
    return method_names[method];
}

apr_status_t scep_challenge_list_add(scep_challenge_list_t *list, const char *name)
{
    int m, i;

    for (m = 0; m < SCEP_CHALLENGE_METHOD_COUNT && strcasecmp(name, method_names[m]) != 0; m++) {
    }
    if (m == SCEP_CHALLENGE_METHOD_COUNT) {
        return APR_EINVAL;
    }
    for (i = 0; i < list->count; i++) {
        if (list->method[i] == (scep_challenge_method_t)m) {
            return APR_EEXIST;
        }
    }
    list->method[list->count++] = (scep_challenge_method_t)m;
    return APR_SUCCESS;
}

/* One method's answer; a method listed without a check (which the startup
 * check prevents) cannot decide: a fault, never an allowance. */
static apr_status_t ask(const scep_challenge_checks_t *checks, scep_challenge_method_t method,
                        apr_pool_t *p, const scep_challenge_facts_t *facts, scep_problem_t *prob)
{
    scep_challenge_check_t *cc = checks ? checks->by_method[method] : NULL;

    *prob = (scep_problem_t){ SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    if (!cc) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                            apr_pstrcat(p, "the challenge check ", method_names[method],
                                        " is not configured", NULL));
    }
    return cc->check(cc, p, facts, prob);
}

apr_status_t scep_challenge_run(const scep_challenge_list_t *list,
                                const scep_challenge_checks_t *checks, apr_pool_t *p,
                                const scep_challenge_facts_t *facts, scep_problem_t *prob,
                                const char **decider)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    *decider = NULL;
    for (i = 0; list && i < list->count; i++) {
        *decider = method_names[list->method[i]];
        rv = ask(checks, list->method[i], p, facts, prob);
        /* allowed, or a fault: decided here; a refusal goes on */
        if (rv == APR_SUCCESS || prob->fail_info == SCEP_FAIL_NONE) {
            return rv;
        }
    }
    return rv;
}

/* ----------------------------------------------------------------------
 * The "password" method
 */

static apr_status_t password_check(scep_challenge_check_t *cc, apr_pool_t *p,
                                   const scep_challenge_facts_t *facts, scep_problem_t *prob)
{
    scep_password_store_t *ps = cc->baton;

    return ps->use(ps, p, facts->challenge, facts->key_usage, facts->spender, prob);
}

scep_challenge_check_t *scep_challenge_password(apr_pool_t *p, scep_password_store_t *ps)
{
    scep_challenge_check_t *cc = apr_pcalloc(p, sizeof(*cc));

    cc->name = method_names[SCEP_CHALLENGE_METHOD_PASSWORD];
    cc->baton = ps;
    cc->check = password_check;
    return cc;
}
