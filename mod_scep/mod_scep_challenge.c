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
 * Challenge checks in httpd (scep_challenge.h): SCEPChallengeCheck and a
 * template's ChallengeCheck parsed, the startup refusals (a method listed
 * without its configuration, SCEPEnforcePassword Off with a list), the
 * program's check built once per server, and the checks of a request.
 */

#include <unistd.h>

#include <apr_strings.h>

#include "mod_scep_private.h"
#include "scep_challenge_program.h"

const char *mod_scep_challenge_list_parse(apr_pool_t *p, const char *args,
                                          const scep_challenge_list_t **list)
{
    scep_challenge_list_t *parsed = apr_pcalloc(p, sizeof(*parsed));
    const char *word;
    apr_status_t rv;

    while (*(word = ap_getword_conf(p, &args))) {
        rv = scep_challenge_list_add(parsed, word);
        if (rv == APR_EEXIST) {
            return apr_psprintf(p, "%s is listed twice", word);
        }
        if (rv != APR_SUCCESS) {
            return apr_psprintf(p, "unknown method '%s' (password, webhook, program)", word);
        }
    }
    if (!parsed->count) {
        return "needs at least one method (password, webhook, program)";
    }
    *list = parsed;
    return NULL;
}

static apr_status_t refuse_to_start(server_rec *s, const char *tag, const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "%s%s: %s%s", tag, mod_scep_server_label(s), why,
                 scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    return APR_EINVAL;
}

apr_status_t mod_scep_challenge_check_directives(server_rec *s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);

    /* Off says "no check", a list says which: one of them is a mistake. */
    if (conf->enforce_password == 0 && conf->challenge_checks) {
        return refuse_to_start(s, SCEPLOGNO(024),
                               SCEP_ENFORCE_PASSWORD " Off and " SCEP_CHALLENGE_CHECK
                                                     " contradict each other: remove one of them");
    }
    return APR_SUCCESS;
}

const scep_challenge_list_t *mod_scep_challenge_list(const mod_scep_srv_conf_t *conf)
{
    static const scep_challenge_list_t password = { 1, { SCEP_CHALLENGE_METHOD_PASSWORD } };
    static const scep_challenge_list_t none = { 0, { SCEP_CHALLENGE_METHOD_PASSWORD } };

    if (conf->challenge_checks) {
        return conf->challenge_checks;
    }
    return conf->enforce_password ? &password : &none;
}

/* The program's check, when SCEPChallengeProgram is set. */
static apr_status_t build_program(apr_pool_t *pconf, server_rec *s, mod_scep_srv_conf_t *conf)
{
    scep_challenge_program_conf_t pc = { 0 };

    conf->challenge_program = NULL;
    if (!conf->challenge_program_argv) {
        return APR_SUCCESS;
    }
    if (access(conf->challenge_program_argv[0], X_OK) != 0) {
        return refuse_to_start(s, SCEPLOGNO(025),
                               apr_pstrcat(pconf, SCEP_CHALLENGE_PROGRAM " ",
                                           conf->challenge_program_argv[0],
                                           " is not an executable file", NULL));
    }
    pc.argv = conf->challenge_program_argv;
    pc.time_limit = apr_time_from_sec(conf->challenge_program_timeout);
    pc.log = mod_scep_log_server;
    pc.log_baton = s;
    conf->challenge_program = scep_challenge_program(pconf, &pc);
    return APR_SUCCESS;
}

/* What a method needs configured, for the refusal of one without it;
 * NULL: nothing (the password store is always there). */
static const char *method_needs(scep_challenge_method_t method)
{
    switch (method) {
    case SCEP_CHALLENGE_METHOD_WEBHOOK:
        return "SCEPChallengeWebhook (its URL)";
    case SCEP_CHALLENGE_METHOD_PROGRAM:
        return SCEP_CHALLENGE_PROGRAM " (its path)";
    default:
        return NULL;
    }
}

/* The first method of list that this server cannot ask, as a refusal's
 * text for where (the directive that lists it), or NULL. */
static const char *unconfigured(apr_pool_t *p, const scep_challenge_checks_t *checks,
                                const scep_challenge_list_t *list, const char *where)
{
    int i;

    for (i = 0; list && i < list->count; i++) {
        if (method_needs(list->method[i]) && !checks->by_method[list->method[i]]) {
            return apr_pstrcat(p, where, " lists ", scep_challenge_method_name(list->method[i]),
                               ", which needs ", method_needs(list->method[i]), NULL);
        }
    }
    return NULL;
}

/* Every method the server's list or a template's names can be asked. */
static apr_status_t check_methods(apr_pool_t *pconf, server_rec *s, const mod_scep_srv_conf_t *conf)
{
    const scep_challenge_checks_t checks = { .by_method = {
                                                 [SCEP_CHALLENGE_METHOD_WEBHOOK] =
                                                     conf->challenge_webhook,
                                                 [SCEP_CHALLENGE_METHOD_PROGRAM] =
                                                     conf->challenge_program,
                                             } };
    const char *why =
        unconfigured(pconf, &checks, mod_scep_challenge_list(conf), SCEP_CHALLENGE_CHECK);
    int i;

    for (i = 0; !why && i < conf->templates->nelts; i++) {
        const scep_template_t *tmpl = APR_ARRAY_IDX(conf->templates, i, scep_template_t *);

        why = unconfigured(
            pconf, &checks, tmpl->challenge_checks,
            apr_pstrcat(pconf, SCEP_TEMPLATE_SECTION " ", tmpl->name, ">'s ChallengeCheck", NULL));
    }
    return why ? refuse_to_start(s, SCEPLOGNO(026), why) : APR_SUCCESS;
}

apr_status_t mod_scep_challenge_setup(apr_pool_t *pconf, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    apr_status_t rv = build_program(pconf, s, conf);

    return rv == APR_SUCCESS ? check_methods(pconf, s, conf) : rv;
}

const scep_challenge_checks_t *mod_scep_challenge_checks(request_rec *r)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    scep_challenge_checks_t *checks = apr_pcalloc(r->pool, sizeof(*checks));

    checks->by_method[SCEP_CHALLENGE_METHOD_PASSWORD] =
        scep_challenge_password(r->pool, mod_scep_password_store(r));
    checks->by_method[SCEP_CHALLENGE_METHOD_WEBHOOK] = conf->challenge_webhook;
    checks->by_method[SCEP_CHALLENGE_METHOD_PROGRAM] = conf->challenge_program;
    return checks;
}
