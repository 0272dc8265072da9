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

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_scep_private.h"

static void scep_register_hooks(apr_pool_t *p)
{
    static const char *const after_dbd[] = { "mod_dbd.c", NULL };

    (void)p;
    ap_hook_pre_config(mod_scep_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(mod_scep_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(mod_scep_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* after mod_dbd's: the service check takes a connection */
    ap_hook_child_init(mod_scep_child_init, after_dbd, NULL, APR_HOOK_MIDDLE);
    mod_scep_store_register_hooks();
    ap_hook_translate_name(mod_scep_refuse_trace, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(mod_scep_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_crl_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mod_scep_manager_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(mod_scep_notify_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    APR_REGISTER_OPTIONAL_FN(mod_scep_mint_password);
    APR_REGISTER_OPTIONAL_FN(mod_scep_status);
    mod_scep_status_register_hooks();
    /* the audit log (mod_scep_audit.c) */
    ap_hook_pre_config(mod_scep_audit_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_open_logs(mod_scep_audit_open_logs, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(mod_scep_audit_child_init, NULL, NULL, APR_HOOK_MIDDLE);
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
