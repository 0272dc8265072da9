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
 * The module record and its hooks: what each hook does lives in
 * mod_scep_startup.c (configuration, PKI, startup checks), the handlers'
 * files and mod_scep_http.c.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_request.h>

#include "mod_scep_private.h"

/* The handler `SetHandler` gives r's location, NULL when none: what the
 * core makes r->handler of, later, in its fixups. */
static const char *configured_handler(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL;
    const char *name;

    if (!d->expr_handler) {
        return NULL;
    }
    name = ap_expr_str_exec(r, d->expr_handler, &err);
    return err ? NULL : name;
}

/*
 * TRACE echoes the request, its Authorization header (the admin and manager
 * pages' Basic credentials) included. httpd answers it in map_to_storage,
 * before any access check or handler, whatever <Location> says (Require,
 * <LimitExcept>); only the server-wide TraceEnable turns it off, and the
 * drop-in must not decide that for the other sites of the server. So the
 * module refuses TRACE at its own locations here, at translate_name, where
 * the <Location> configuration already applies. Its handlers are "scep"
 * and "scep-..." by convention.
 */
static int scep_refuse_trace(request_rec *r)
{
    const char *name;

    if (r->method_number != M_TRACE) {
        return DECLINED;
    }
    name = configured_handler(r);
    if (name && (!strcmp(name, "scep") || !strncmp(name, "scep-", 5))) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    return DECLINED;
}

static void scep_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(mod_scep_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(mod_scep_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(mod_scep_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(mod_scep_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    mod_scep_store_register_hooks();
    ap_hook_translate_name(scep_refuse_trace, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(mod_scep_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_crl_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_manager_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Not AP_DECLARE_MODULE: mod_scep_private.h already says APLOG_USE_MODULE. */
module AP_MODULE_DECLARE_DATA scep_module = {
    STANDARD20_MODULE_STUFF,
    NULL, /* no per-directory configuration */
    NULL,
    mod_scep_create_srv_conf,
    mod_scep_merge_srv_conf,
    mod_scep_cmds,
    scep_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE,
#endif
};
