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
 * PKCS#11 private keys through OpenSSL's pkcs11 engine (scep_key_pkcs11.h).
 *
 * The ENGINE API is deprecated in OpenSSL 3, but Debian 12 has no
 * pkcs11-provider: the engine (libengine-pkcs11-openssl) is the PKCS#11
 * path OpenSSL offers there, so this file alone asks for the deprecated
 * declarations. The keys it returns are ordinary EVP_PKEYs whose private
 * operations the engine carries out in the token.
 */

#define OPENSSL_SUPPRESS_DEPRECATED

#include <string.h>
#include <strings.h>

#include <apr_escape.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include "scep_key_pkcs11.h"

#define PKCS11_SCHEME "pkcs11:"
#define PKCS11_ENGINE_ID "pkcs11"
#define PIN_FILE_MAX 4096

/* The process's engine and what it was told (malloc'd: they outlive no
 * pool but are freed by the cleanup of the pool that configured them). */
static struct {
    char *module;
    char *pin;
    ENGINE *engine; /* structural and functional reference, made at the first load */
} pkcs11;

static apr_status_t problem(scep_problem_t *prob, apr_status_t rv, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, text);
}

/* The newest OpenSSL error's reason, left in the queue for the caller's
 * drain into the log. */
static const char *openssl_reason(void)
{
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());

    return reason ? reason : "no reason given";
}

int scep_key_is_pkcs11(const char *location)
{
    return location && strncasecmp(location, PKCS11_SCHEME, sizeof(PKCS11_SCHEME) - 1) == 0;
}

/* One "name=value" of a list separated by sep, or NULL. */
static const char *attr_in(apr_pool_t *p, const char *list, char sep, const char *name)
{
    apr_size_t name_len = strlen(name);
    const char *at = list;

    while (at && *at) {
        apr_size_t len = strcspn(at, sep == ';' ? ";" : "&");

        if (len > name_len && strncmp(at, name, name_len) == 0 && at[name_len] == '=') {
            return apr_pstrmemdup(p, at + name_len + 1, len - name_len - 1);
        }
        at = at[len] ? at + len + 1 : NULL;
    }
    return NULL;
}

apr_status_t scep_pkcs11_uri_attr(apr_pool_t *p, const char *uri, const char *name,
                                  const char **value)
{
    const char *rest, *query, *raw;
    char *path;

    *value = NULL;
    if (!scep_key_is_pkcs11(uri)) {
        return APR_EINVAL;
    }
    rest = uri + sizeof(PKCS11_SCHEME) - 1;
    query = strchr(rest, '?');
    path = query ? apr_pstrmemdup(p, rest, (apr_size_t)(query - rest)) : apr_pstrdup(p, rest);
    raw = attr_in(p, path, ';', name);
    if (!raw && query) {
        raw = attr_in(p, query + 1, '&', name);
    }
    if (raw) {
        *value = apr_punescape_url(p, raw, NULL, NULL, 0);
    }
    return raw && !*value ? APR_EINVAL : APR_SUCCESS;
}

/* Whether the URI has the attribute (or a broken one: *broken). */
static int has_attr(apr_pool_t *p, const char *uri, const char *name, int *broken)
{
    const char *value = NULL;

    if (scep_pkcs11_uri_attr(p, uri, name, &value) != APR_SUCCESS) {
        *broken = 1;
    }
    return value != NULL;
}

const char *scep_key_pkcs11_unfit(apr_pool_t *p, const char *uri)
{
    const char *type = NULL;
    int broken = 0;

    if (!scep_key_is_pkcs11(uri)) {
        return "it is not a pkcs11: URI";
    }
    if (has_attr(p, uri, "pin-value", &broken) || has_attr(p, uri, "pin-source", &broken)) {
        return "a pkcs11: URI must not carry the PIN (pin-value, pin-source): put it in "
               "the PIN file (SCEPPKCS11PINFile), whose mode keeps it private";
    }
    if (has_attr(p, uri, "module-path", &broken) || has_attr(p, uri, "module-name", &broken)) {
        return "a pkcs11: URI here names no module (module-path, module-name): the module "
               "is SCEPPKCS11Module's";
    }
    if (!has_attr(p, uri, "object", &broken) && !has_attr(p, uri, "id", &broken)) {
        return broken ? "the pkcs11: URI has a broken %-escape"
                      : "the pkcs11: URI names no object (object= or id=)";
    }
    if (scep_pkcs11_uri_attr(p, uri, "type", &type) != APR_SUCCESS || broken) {
        return "the pkcs11: URI has a broken %-escape";
    }
    if (type && strcmp(type, "private") != 0) {
        return "the pkcs11: URI names another type of object than a private key (type=private)";
    }
    return NULL;
}

static void secret_free(char **secret)
{
    if (*secret) {
        OPENSSL_clear_free(*secret, strlen(*secret));
        *secret = NULL;
    }
}

/* The engine goes with the configuration that made it: the keys loaded
 * through it hold references of their own until they are freed. */
static apr_status_t forget(void *unused)
{
    (void)unused;
    if (pkcs11.engine) {
        ENGINE_finish(pkcs11.engine);
        ENGINE_free(pkcs11.engine);
        pkcs11.engine = NULL;
    }
    OPENSSL_free(pkcs11.module);
    pkcs11.module = NULL;
    secret_free(&pkcs11.pin);
    return APR_SUCCESS;
}

apr_status_t scep_key_pkcs11_configure(apr_pool_t *p, const char *module, const char *pin,
                                       scep_problem_t *prob)
{
    forget(NULL);
    apr_pool_cleanup_kill(p, NULL, forget);
    pkcs11.module = OPENSSL_strdup(module);
    pkcs11.pin = pin ? OPENSSL_strdup(pin) : NULL;
    if (!pkcs11.module || (pin && !pkcs11.pin)) {
        forget(NULL);
        return problem(prob, APR_ENOMEM, "out of memory");
    }
    apr_pool_cleanup_register(p, NULL, forget, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t scep_key_pkcs11_read_pin(apr_pool_t *p, const char *file, const char **pin,
                                      scep_problem_t *prob)
{
    char *data = NULL;
    apr_size_t len = 0, line;
    const char *why = NULL;
    apr_status_t rv;

    *pin = NULL;
    rv = scep_read_private_file(p, file, PIN_FILE_MAX, &data, &len, &why);
    if (rv != APR_SUCCESS) {
        return problem(prob, rv, why);
    }
    line = strcspn(data, "\r\n");
    if (line == 0) {
        rv = problem(prob, APR_EINVAL, apr_psprintf(p, "%s has an empty first line", file));
    }
    else {
        *pin = apr_pstrmemdup(p, data, line);
    }
    OPENSSL_cleanse(data, len);
    return rv;
}

/* The engine of the configuration, made at the first key. */
static apr_status_t engine_ready(apr_pool_t *p, scep_problem_t *prob)
{
    ENGINE *e;

    if (pkcs11.engine) {
        return APR_SUCCESS;
    }
    if (!pkcs11.module) {
        return problem(prob, APR_EINVAL,
                       "a pkcs11: key needs the PKCS#11 module (SCEPPKCS11Module, scepctl "
                       "--pkcs11-module)");
    }
    e = ENGINE_by_id(PKCS11_ENGINE_ID);
    if (!e) {
        return problem(prob, APR_ENOTIMPL,
                       apr_psprintf(p,
                                    "OpenSSL has no pkcs11 engine (install "
                                    "libengine-pkcs11-openssl): %s",
                                    openssl_reason()));
    }
    if (!ENGINE_ctrl_cmd_string(e, "MODULE_PATH", pkcs11.module, 0) ||
        (pkcs11.pin && !ENGINE_ctrl_cmd_string(e, "PIN", pkcs11.pin, 0)) || !ENGINE_init(e)) {
        ENGINE_free(e);
        return problem(prob, APR_EGENERAL,
                       apr_psprintf(p, "the pkcs11 engine refused the module %s: %s", pkcs11.module,
                                    openssl_reason()));
    }
    pkcs11.engine = e;
    return APR_SUCCESS;
}

/* Never a prompt on a terminal for a PIN: the PIN file gives it or none. */
static int refuse_pin_prompt(char *buf, int size, int rwflag, void *unused)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)unused;
    return -1;
}

apr_status_t scep_key_pkcs11_load(apr_pool_t *p, const char *uri, EVP_PKEY **key,
                                  scep_problem_t *prob)
{
    const char *unfit = scep_key_pkcs11_unfit(p, uri);
    UI_METHOD *no_prompt = NULL;
    EVP_PKEY *k = NULL;
    apr_status_t rv;

    *key = NULL;
    if (unfit) {
        return problem(prob, APR_EINVAL, unfit);
    }
    rv = engine_ready(p, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    no_prompt = UI_UTIL_wrap_read_pem_callback(refuse_pin_prompt, 0);
    k = no_prompt ? ENGINE_load_private_key(pkcs11.engine, uri, no_prompt, NULL) : NULL;
    if (!k) {
        rv = problem(prob, APR_EINVAL,
                     apr_psprintf(p,
                                  "%s: the token gave no private key (the PIN of the PIN file "
                                  "refused, no such object or token, the module %s failing): %s",
                                  uri, pkcs11.module, openssl_reason()));
        goto leave;
    }
    SCEP_OWN(p, k, EVP_PKEY_free);
    *key = k;
leave:
    UI_destroy_method(no_prompt);
    return rv;
}
