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
 * Keys made in a PKCS#11 token for scepctl setup (scepctl_pkcs11.h).
 */

#include <string.h>

#include <apr_strings.h>

#include <openssl/rand.h>

#include <libp11.h>

#include "scep_key_pkcs11.h"
#include "scepctl_pkcs11.h"

#define KEY_ID_BYTES 16

/* A token opened and logged in, and what to release. */
typedef struct token_t {
    PKCS11_CTX *ctx;
    int loaded;
    PKCS11_SLOT *slots;
    unsigned int nslots;
    PKCS11_SLOT *slot;
} token_t;

static void token_close(token_t *t)
{
    if (t->slots) {
        PKCS11_release_all_slots(t->ctx, t->slots, t->nslots);
    }
    if (t->loaded) {
        PKCS11_CTX_unload(t->ctx);
    }
    if (t->ctx) {
        PKCS11_CTX_free(t->ctx);
    }
}

/* The URI's token= and object=, both required here. */
static apr_status_t uri_names(apr_pool_t *p, const char *uri, const char **token,
                              const char **object, const char **err)
{
    if (scep_pkcs11_uri_attr(p, uri, "token", token) != APR_SUCCESS ||
        scep_pkcs11_uri_attr(p, uri, "object", object) != APR_SUCCESS || !*token || !*object) {
        *err =
            apr_psprintf(p, "%s: a key made in a token needs token= and object= in its URI", uri);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static PKCS11_SLOT *slot_of_token(const token_t *t, const char *label)
{
    unsigned int i;

    for (i = 0; i < t->nslots; i++) {
        PKCS11_TOKEN *tok = t->slots[i].token;

        if (tok && tok->initialized && tok->label && strcmp(tok->label, label) == 0) {
            return &t->slots[i];
        }
    }
    return NULL;
}

/* The token labelled label, with a read-write session, logged in as its
 * user when a PIN is given. */
static apr_status_t token_open(apr_pool_t *p, const char *module, const char *pin,
                               const char *label, token_t *t, const char **err)
{
    memset(t, 0, sizeof(*t));
    t->ctx = PKCS11_CTX_new();
    if (!t->ctx || PKCS11_CTX_load(t->ctx, module) < 0) {
        *err = apr_psprintf(p, "cannot load the PKCS#11 module %s", module);
        return APR_EGENERAL;
    }
    t->loaded = 1;
    if (PKCS11_enumerate_slots(t->ctx, &t->slots, &t->nslots) < 0) {
        *err = apr_psprintf(p, "the PKCS#11 module %s lists no slots", module);
        return APR_EGENERAL;
    }
    t->slot = slot_of_token(t, label);
    if (!t->slot) {
        *err = apr_psprintf(p, "no initialized token labelled \"%s\" in %s", label, module);
        return APR_ENOENT;
    }
    if (PKCS11_open_session(t->slot, 1) < 0) {
        *err = apr_psprintf(p, "the token \"%s\" opens no read-write session", label);
        return APR_EGENERAL;
    }
    if (pin && PKCS11_login(t->slot, 0, pin) < 0) {
        *err = apr_psprintf(p, "the token \"%s\" refused the PIN of the PIN file", label);
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

static apr_status_t find_key(apr_pool_t *p, token_t *t, const char *label, int *exists,
                             const char **err)
{
    PKCS11_KEY *keys = NULL;
    unsigned int n = 0, i;

    *exists = 0;
    if (PKCS11_enumerate_keys(t->slot->token, &keys, &n) < 0) {
        *err = apr_psprintf(p, "the token \"%s\" lists no keys", t->slot->token->label);
        return APR_EGENERAL;
    }
    for (i = 0; i < n; i++) {
        *exists |= keys[i].isPrivate && keys[i].label && strcmp(keys[i].label, label) == 0;
    }
    return APR_SUCCESS;
}

/* The token of the URI opened and logged in (t: token_close() it in any
 * case), the URI's object label, and whether the token holds a private key
 * of that label. */
static apr_status_t token_find(apr_pool_t *p, const char *module, const char *pin, const char *uri,
                               token_t *t, const char **object, int *exists, const char **err)
{
    const char *token = NULL;
    apr_status_t rv;

    *exists = 0;
    memset(t, 0, sizeof(*t));
    rv = uri_names(p, uri, &token, object, err);
    if (rv == APR_SUCCESS) {
        rv = token_open(p, module, pin, token, t, err);
    }
    if (rv == APR_SUCCESS) {
        rv = find_key(p, t, *object, exists, err);
    }
    return rv;
}

apr_status_t scepctl_pkcs11_has_key(apr_pool_t *p, const char *module, const char *pin,
                                    const char *uri, int *exists, const char **err)
{
    const char *object = NULL;
    token_t t;
    apr_status_t rv = token_find(p, module, pin, uri, &t, &object, exists, err);

    token_close(&t);
    return rv;
}

/* libp11 0.4.12 (Debian 12) has no PKCS11_keygen() yet: its
 * PKCS11_generate_key(), deprecated for the coming 0.5 API, is the way it
 * makes a key in the token. */
static int generate_rsa(PKCS11_TOKEN *token, int bits, char *label, unsigned char *id)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return PKCS11_generate_key(token, 0, (unsigned int)bits, label, id, KEY_ID_BYTES);
#pragma GCC diagnostic pop
}

apr_status_t scepctl_pkcs11_make_key(apr_pool_t *p, const char *module, const char *pin,
                                     const char *uri, int bits, const char **err)
{
    const char *object = NULL;
    unsigned char id[KEY_ID_BYTES];
    int exists = 0;
    token_t t;
    apr_status_t rv = token_find(p, module, pin, uri, &t, &object, &exists, err);

    if (rv == APR_SUCCESS && exists) {
        *err = apr_psprintf(p, "%s: the token holds that key already", uri);
        rv = APR_EEXIST;
    }
    if (rv == APR_SUCCESS && RAND_bytes(id, sizeof(id)) != 1) {
        *err = "no random bytes for the key's id";
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && generate_rsa(t.slot->token, bits, apr_pstrdup(p, object), id) != 0) {
        *err = apr_psprintf(p, "%s: the token made no RSA key of %d bits", uri, bits);
        rv = APR_EGENERAL;
    }
    token_close(&t);
    return rv;
}
