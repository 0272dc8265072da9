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
 * A module of the integration tests (test_api.py), built there with apxs:
 * another module using mod_scep's public header as a real one would. It
 * finds the optional functions of include/mod_scep.h and shows them at the
 * handler `scep-api-test` as `key=value` lines:
 *
 *     GET .../mint     password=..., expires=... (seconds since the epoch; 0: single
 *                      password), or status=<apr_status_t> when refused
 *     GET .../status   the fields of mod_scep_status_t
 *
 * and `absent` (still 200) when mod_scep is not loaded.
 */

#include <apr_optional.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>

#include "mod_scep.h"

static APR_OPTIONAL_FN_TYPE(mod_scep_mint_password) *mint_password;
static APR_OPTIONAL_FN_TYPE(mod_scep_status) *scep_status;

/* After every module's register_hooks: mod_scep's functions, or NULL. */
static void retrieve_scep_functions(void)
{
    mint_password = APR_RETRIEVE_OPTIONAL_FN(mod_scep_mint_password);
    scep_status = APR_RETRIEVE_OPTIONAL_FN(mod_scep_status);
}

static void show_mint(request_rec *r)
{
    const char *password = NULL;
    apr_time_t expires = 0;
    apr_status_t rv = mint_password(r, &password, &expires);

    if (rv != APR_SUCCESS) {
        ap_rprintf(r, "status=%d\n", rv);
        return;
    }
    ap_rprintf(r, "password=%s\nexpires=%" APR_TIME_T_FMT "\n", password, apr_time_sec(expires));
}

static void show_status(request_rec *r)
{
    mod_scep_status_t st = { 0 };
    apr_status_t rv = scep_status(r->pool, r->server, &st);

    ap_rprintf(r, "status=%d\nversion=%s\nenabled=%d\nca_thumbprint=%s\n", rv, st.version,
               st.enabled, st.ca_thumbprint ? st.ca_thumbprint : "");
    ap_rprintf(r, "passwords_waiting=%d\npasswords_max=%d\nsingle_password=%d\n",
               st.passwords_waiting, st.passwords_max, st.single_password);
}

static int api_test_handler(request_rec *r)
{
    const char *what;

    if (!r->handler || strcmp(r->handler, "scep-api-test") != 0) {
        return DECLINED;
    }
    what = strrchr(r->uri, '/');
    what = what ? what + 1 : "";
    if (strcmp(what, "mint") != 0 && strcmp(what, "status") != 0) {
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!mint_password || !scep_status) {
        ap_rputs("absent\n", r);
    }
    else if (!strcmp(what, "mint")) {
        show_mint(r);
    }
    else {
        show_status(r);
    }
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_optional_fn_retrieve(retrieve_scep_functions, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(api_test_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(scep_api_test) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks,
};
