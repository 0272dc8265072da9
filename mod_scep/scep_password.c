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

/* Challenge passwords: the one-time password cache and the encrypted
 * single password (see scep_password.h for the rules and formats). */

#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
/* KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT: bits of the first keyUsage
 * byte, as scep_csr_key_usage() gives it. */
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_password.h"
#include "scep_x509.h"

#define MAC_LEN SCEP_PASSWORD_MAC_LEN
#define MAC_KEY_LEN SCEP_PASSWORD_MAC_LEN

/* The halves of a password, as entries record them. */
#define SERVED_SIGN SCEP_PASSWORD_SERVED_SIGN
#define SERVED_ENCRYPT SCEP_PASSWORD_SERVED_ENCRYPT
#define SERVED_ALL SCEP_PASSWORD_SERVED_ALL

#define SEAL_MAGIC "SCEPPW1"
#define SEAL_PREFIX SEAL_MAGIC ":"
#define SEAL_IV_LEN 12
#define SEAL_TAG_LEN 16
/* A single password longer than this is refused; it also bounds the file. */
#define SINGLE_PASSWORD_MAX 255
#define SEALED_FILE_MAX 1024

#define PRIVATE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE)

#define TEXT_INVALID "the challenge password is not valid: it is unknown, expired or used up"
#define TEXT_USED_FOR_USAGE \
    "the challenge password was already used for a certificate with this key usage: " \
    "only one signing and one encryption certificate can be issued per password"

/* Which half of a password spender[] remembers. */
#define HALF_SIGN 0
#define HALF_ENCRYPT 1

typedef struct pw_entry_t {
    unsigned char mac[MAC_LEN]; /* HMAC-SHA256(cache key, password) */
    /* HMAC-SHA256(cache key, spender) of the request that used each half:
     * the same request again (a device whose reply was lost) passes. */
    unsigned char spender[2][MAC_LEN];
    apr_time_t expires;
    int served; /* SERVED_* halves already used */
    int in_use; /* 0: a free slot */
} pw_entry_t;

struct scep_pwcache_t {
    int capacity;
    unsigned char key[MAC_KEY_LEN];
    pw_entry_t entries[];
};

/* ----------------------------------------------------------------------
 * Helpers
 */

static apr_status_t cleanse_string(void *text)
{
    OPENSSL_cleanse(text, strlen(text));
    return APR_SUCCESS;
}

/* Passwords live in pools: wipe them when the pool is cleared, not only
 * when the memory happens to be reused. */
static void cleanse_with_pool(apr_pool_t *p, char *text)
{
    apr_pool_cleanup_register(p, text, cleanse_string, apr_pool_cleanup_null);
}

int scep_password_mac(const unsigned char *key, const char *password, unsigned char mac[MAC_LEN])
{
    size_t len = 0;

    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, MAC_KEY_LEN,
                     (const unsigned char *)password, strlen(password), mac, MAC_LEN, &len) &&
           len == MAC_LEN;
}

static apr_status_t crypto_problem(scep_problem_t *prob, const char *text)
{
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, text);
}

/* ----------------------------------------------------------------------
 * The one-time password cache
 */

apr_status_t scep_password_refused(scep_problem_t *prob, int served)
{
    return served == SERVED_ALL
               ? scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                              TEXT_INVALID)
               : scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST,
                              SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD, TEXT_USED_FOR_USAGE);
}

apr_size_t scep_pwcache_size(int capacity)
{
    return sizeof(scep_pwcache_t) + (apr_size_t)capacity * sizeof(pw_entry_t);
}

apr_status_t scep_pwcache_init(void *mem, int capacity, scep_pwcache_t **cache)
{
    scep_pwcache_t *c = mem;

    memset(c, 0, scep_pwcache_size(capacity));
    c->capacity = capacity;
    if (RAND_bytes(c->key, MAC_KEY_LEN) != 1) {
        *cache = NULL;
        return APR_EGENERAL;
    }
    *cache = c;
    return APR_SUCCESS;
}

int scep_pwcache_capacity(const scep_pwcache_t *cache)
{
    return cache->capacity;
}

static int entry_live(const pw_entry_t *e, apr_time_t now)
{
    return e->in_use && e->expires > now;
}

/* Live and not used up: a password still waiting for its device. */
static int entry_waiting(const pw_entry_t *e, apr_time_t now)
{
    return entry_live(e, now) && e->served != SERVED_ALL;
}

int scep_pwcache_in_use(const scep_pwcache_t *cache, apr_time_t now)
{
    int i, n = 0;

    for (i = 0; i < cache->capacity; i++) {
        n += entry_waiting(&cache->entries[i], now);
    }
    return n;
}

static void entry_free(pw_entry_t *e)
{
    OPENSSL_cleanse(e, sizeof(*e));
}

void scep_pwcache_move(scep_pwcache_t *to, scep_pwcache_t *from)
{
    memcpy(to->key, from->key, MAC_KEY_LEN);
    memcpy(to->entries, from->entries, (apr_size_t)from->capacity * sizeof(pw_entry_t));
    OPENSSL_cleanse(from, scep_pwcache_size(from->capacity));
    from->capacity = 0;
}

static void purge_expired(scep_pwcache_t *cache, apr_time_t now)
{
    int i;

    for (i = 0; i < cache->capacity; i++) {
        if (cache->entries[i].in_use && !entry_live(&cache->entries[i], now)) {
            entry_free(&cache->entries[i]);
        }
    }
}

/* A free slot, else the used-up password that expires first: a used-up
 * password is kept only so that its requests can be answered again, and
 * gives way to a new one. */
static pw_entry_t *free_slot(scep_pwcache_t *cache)
{
    pw_entry_t *oldest_spent = NULL, *e;
    int i;

    for (i = 0; i < cache->capacity; i++) {
        e = &cache->entries[i];
        if (!e->in_use) {
            return e;
        }
        if (e->served == SERVED_ALL && (!oldest_spent || e->expires < oldest_spent->expires)) {
            oldest_spent = e;
        }
    }
    if (oldest_spent) {
        entry_free(oldest_spent);
    }
    return oldest_spent;
}

apr_status_t scep_password_generate(apr_pool_t *p, int length, const char **password)
{
    unsigned char raw[SCEP_PASSWORD_BYTES_MAX];
    const char *text;
    apr_status_t rv = APR_SUCCESS;

    *password = NULL;
    if (length < SCEP_PASSWORD_BYTES_MIN || length > SCEP_PASSWORD_BYTES_MAX) {
        rv = APR_EINVAL;
        goto leave;
    }
    if (RAND_bytes(raw, length) != 1) {
        rv = APR_EGENERAL;
        goto leave;
    }
    text = scep_hex(p, raw, (apr_size_t)length);
    /* scep_hex allocated it on p: ours to wipe. */
    cleanse_with_pool(p, (char *)text);
    *password = text;
leave:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rv;
}

apr_status_t scep_pwcache_issue(scep_pwcache_t *cache, apr_pool_t *p, apr_time_t now,
                                const scep_pwcache_opts_t *opts, const char **password,
                                apr_time_t *expires)
{
    pw_entry_t *slot;
    const char *text = NULL;
    apr_status_t rv;

    *password = NULL;
    purge_expired(cache, now);
    slot = free_slot(cache);
    if (!slot || scep_pwcache_in_use(cache, now) >= opts->max) {
        rv = APR_ENOSPC;
        goto leave;
    }
    rv = scep_password_generate(p, opts->length, &text);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!scep_password_mac(cache->key, text, slot->mac)) {
        entry_free(slot);
        rv = APR_EGENERAL;
        goto leave;
    }
    slot->expires = now + opts->validity;
    slot->served = 0;
    slot->in_use = 1;
    *password = text;
    *expires = slot->expires;
leave:
    return rv;
}

/* The index of the live-or-expired entry whose MAC is mac, or -1. Every
 * entry is compared, with no early exit, so the time taken says nothing
 * about which entry matched or whether one did. */
static int find_entry(const scep_pwcache_t *cache, const unsigned char *mac)
{
    int i, hit, found = -1;

    for (i = 0; i < cache->capacity; i++) {
        hit = (CRYPTO_memcmp(cache->entries[i].mac, mac, MAC_LEN) == 0) &
              (cache->entries[i].in_use != 0);
        found = hit ? i : found;
    }
    return found;
}

int scep_password_halves(int key_usage)
{
    int asked = 0;

    if (key_usage < 0) {
        return SERVED_ALL;
    }
    if (key_usage & KU_DIGITAL_SIGNATURE) {
        asked |= SERVED_SIGN;
    }
    if (key_usage & KU_KEY_ENCIPHERMENT) {
        asked |= SERVED_ENCRYPT;
    }
    return asked ? asked : SERVED_ALL;
}

/* 1 when every half in asked was used by this spender. */
static int spent_by(const pw_entry_t *e, int asked, const unsigned char *spender)
{
    int same = 1;

    if (asked & SERVED_SIGN) {
        same &= CRYPTO_memcmp(e->spender[HALF_SIGN], spender, MAC_LEN) == 0;
    }
    if (asked & SERVED_ENCRYPT) {
        same &= CRYPTO_memcmp(e->spender[HALF_ENCRYPT], spender, MAC_LEN) == 0;
    }
    return same;
}

static void spend(pw_entry_t *e, int asked, const unsigned char *spender)
{
    if (asked & SERVED_SIGN) {
        memcpy(e->spender[HALF_SIGN], spender, MAC_LEN);
    }
    if (asked & SERVED_ENCRYPT) {
        memcpy(e->spender[HALF_ENCRYPT], spender, MAC_LEN);
    }
    e->served |= asked;
}

apr_status_t scep_pwcache_use(scep_pwcache_t *cache, apr_time_t now, const char *password,
                              int key_usage, const char *spender, scep_problem_t *prob)
{
    unsigned char mac[MAC_LEN], who[MAC_LEN];
    int asked = scep_password_halves(key_usage);
    pw_entry_t *e;
    int at;
    apr_status_t rv = APR_SUCCESS;

    if (!scep_password_mac(cache->key, password, mac) ||
        !scep_password_mac(cache->key, spender, who)) {
        rv = crypto_problem(prob, "cannot compute the HMAC of the challenge password");
        goto leave;
    }
    at = find_entry(cache, mac);
    e = at >= 0 ? &cache->entries[at] : NULL;
    if (!e || !entry_live(e, now)) {
        if (e) {
            entry_free(e);
        }
        rv = scep_password_refused(prob, SERVED_ALL);
        goto leave;
    }
    if ((e->served & asked) == asked && spent_by(e, asked, who)) {
        goto leave; /* the same request again */
    }
    if (e->served & asked) {
        rv = scep_password_refused(prob, e->served);
        goto leave;
    }
    spend(e, asked, who);
leave:
    OPENSSL_cleanse(mac, sizeof(mac));
    OPENSSL_cleanse(who, sizeof(who));
    return rv;
}

int scep_password_equal(const char *a, const char *b)
{
    unsigned char key[MAC_KEY_LEN], mac_a[MAC_LEN], mac_b[MAC_LEN];
    int equal = 0;

    if (RAND_bytes(key, sizeof(key)) == 1 && scep_password_mac(key, a, mac_a) &&
        scep_password_mac(key, b, mac_b)) {
        equal = CRYPTO_memcmp(mac_a, mac_b, MAC_LEN) == 0;
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(mac_a, sizeof(mac_a));
    OPENSSL_cleanse(mac_b, sizeof(mac_b));
    return equal;
}

/* ----------------------------------------------------------------------
 * Private files
 */

/* Returns rv itself, so the callers' failure paths visibly keep it. */
static apr_status_t file_problem(apr_pool_t *p, scep_problem_t *prob, const char *file,
                                 apr_status_t rv)
{
    scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, scep_file_error(p, file, rv));
    return rv;
}

/* A key or the sealed single password (scep_read_private_file()'s rule). */
static apr_status_t read_private_file(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                                      apr_size_t *len, scep_problem_t *prob)
{
    const char *why = NULL;
    apr_status_t rv = scep_read_private_file(p, file, max, data, len, &why);

    return rv == APR_SUCCESS ? rv : scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, why);
}

static apr_status_t write_and_close(apr_pool_t *p, apr_file_t *f, const char *file,
                                    const void *data, apr_size_t len, scep_problem_t *prob)
{
    apr_status_t rv = apr_file_write_full(f, data, len, NULL);
    apr_status_t rv_close = apr_file_close(f);

    if (rv == APR_SUCCESS) {
        rv = rv_close;
    }
    return rv == APR_SUCCESS ? rv : file_problem(p, prob, file, rv);
}

/* Writes data aside, 0600 before any byte is written, and renames it over
 * file, so a server starting meanwhile reads the old file or the new one. */
static apr_status_t replace_private_file(apr_pool_t *p, const char *file, const void *data,
                                         apr_size_t len, scep_problem_t *prob)
{
    char *temp = apr_pstrcat(p, file, ".XXXXXX", NULL);
    apr_file_t *f = NULL;
    apr_status_t rv;

    rv = apr_file_mktemp(&f, temp, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, p);
    if (rv != APR_SUCCESS) {
        f = NULL;
        rv = file_problem(p, prob, temp, rv);
        goto leave;
    }
    rv = apr_file_perms_set(temp, PRIVATE_PERMS);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        rv = file_problem(p, prob, temp, rv);
        goto leave;
    }
    rv = write_and_close(p, f, temp, data, len, prob);
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(temp, file, p);
        if (rv != APR_SUCCESS) {
            rv = file_problem(p, prob, file, rv);
        }
    }
leave:
    if (rv != APR_SUCCESS && f) {
        apr_file_remove(temp, p);
    }
    return rv;
}

/* ----------------------------------------------------------------------
 * The secret key
 */

apr_status_t scep_secret_key_create(apr_pool_t *p, const char *file, scep_problem_t *prob)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    apr_file_t *f = NULL;
    apr_status_t rv;

    if (RAND_bytes(key, sizeof(key)) != 1) {
        rv = crypto_problem(prob, "cannot draw random bytes for the secret key");
        goto leave;
    }
    /* EXCL: never replace a key (the password it encrypts would be lost);
     * 0600 from the start, never readable by others. */
    rv = apr_file_open(&f, file,
                       APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL | APR_FOPEN_BINARY,
                       PRIVATE_PERMS, p);
    if (rv != APR_SUCCESS) {
        rv = file_problem(p, prob, file, rv);
        goto leave;
    }
    rv = write_and_close(p, f, file, key, sizeof(key), prob);
    if (rv != APR_SUCCESS) {
        apr_file_remove(file, p);
    }
leave:
    OPENSSL_cleanse(key, sizeof(key));
    return rv;
}

apr_status_t scep_secret_key_derive(const unsigned char *secret, const char *label,
                                    unsigned char *out, apr_size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, SCEP_SECRET_KEY_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label)),
        OSSL_PARAM_construct_end()
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, len, params) == 1;

    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t scep_secret_key_read(apr_pool_t *p, const char *file,
                                  unsigned char key[SCEP_SECRET_KEY_LEN], scep_problem_t *prob)
{
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    rv = read_private_file(p, file, SCEP_SECRET_KEY_LEN, &data, &len, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (len != SCEP_SECRET_KEY_LEN) {
        rv = scep_problem(prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                          apr_psprintf(p, "%s is not a secret key: %d random bytes expected", file,
                                       SCEP_SECRET_KEY_LEN));
        goto leave;
    }
    memcpy(key, data, SCEP_SECRET_KEY_LEN);
leave:
    if (data) {
        OPENSSL_cleanse(data, len);
    }
    return rv;
}

/* ----------------------------------------------------------------------
 * The single password
 */

static apr_status_t gcm_seal(EVP_CIPHER_CTX *ctx, const unsigned char *key, const char *password,
                             unsigned char *blob)
{
    unsigned char *iv = blob, *tag = blob + SEAL_IV_LEN, *ct = tag + SEAL_TAG_LEN;
    int len = (int)strlen(password), out = 0, final = 0;

    if (RAND_bytes(iv, SEAL_IV_LEN) != 1 ||
        !EVP_EncryptInit_ex2(ctx, scep_cipher(NID_aes_256_gcm), key, iv, NULL) ||
        !EVP_EncryptUpdate(ctx, NULL, &out, (const unsigned char *)SEAL_MAGIC,
                           (int)strlen(SEAL_MAGIC)) ||
        !EVP_EncryptUpdate(ctx, ct, &out, (const unsigned char *)password, len) ||
        !EVP_EncryptFinal_ex(ctx, ct + out, &final) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, tag)) {
        return APR_EGENERAL;
    }
    return out + final == len ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t scep_single_password_seal(apr_pool_t *p, const unsigned char *key,
                                       const char *password, const char **sealed,
                                       scep_problem_t *prob)
{
    apr_size_t pw_len = strlen(password);
    apr_size_t blob_len = SEAL_IV_LEN + SEAL_TAG_LEN + pw_len;
    unsigned char *blob = NULL;
    char *b64;
    EVP_CIPHER_CTX *ctx = NULL;
    apr_status_t rv;

    *sealed = NULL;
    if (pw_len == 0 || pw_len > SINGLE_PASSWORD_MAX) {
        rv = scep_problem(
            prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
            apr_psprintf(p, "a single password has 1 to %d characters", SINGLE_PASSWORD_MAX));
        goto leave;
    }
    blob = apr_palloc(p, blob_len);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || gcm_seal(ctx, key, password, blob) != APR_SUCCESS) {
        rv = crypto_problem(prob, "cannot encrypt the single password (AES-256-GCM)");
        goto leave;
    }
    b64 = apr_palloc(p, 4 * ((blob_len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, blob, (int)blob_len);
    *sealed = apr_pstrcat(p, SEAL_PREFIX, b64, NULL);
    rv = APR_SUCCESS;
leave:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

/* Decodes the base64 after the prefix into *blob; 0 when it is not base64
 * of at least an IV, a tag and one byte. */
static int sealed_decode(apr_pool_t *p, const char *b64, unsigned char **blob, apr_size_t *blob_len)
{
    apr_size_t len = strlen(b64), pad = 0;
    int n;

    if (len == 0 || len % 4 != 0) {
        return 0;
    }
    pad = (b64[len - 1] == '=') + (b64[len - 2] == '=');
    *blob = apr_palloc(p, len / 4 * 3 + 1);
    n = EVP_DecodeBlock(*blob, (const unsigned char *)b64, (int)len);
    if (n < 0 || (apr_size_t)n < pad) {
        return 0;
    }
    *blob_len = (apr_size_t)n - pad;
    return *blob_len > SEAL_IV_LEN + SEAL_TAG_LEN;
}

static int gcm_open(EVP_CIPHER_CTX *ctx, const unsigned char *key, const unsigned char *blob,
                    apr_size_t blob_len, char *plain)
{
    const unsigned char *iv = blob, *tag = blob + SEAL_IV_LEN, *ct = tag + SEAL_TAG_LEN;
    int ct_len = (int)(blob_len - SEAL_IV_LEN - SEAL_TAG_LEN), out = 0, final = 0;

    return EVP_DecryptInit_ex2(ctx, scep_cipher(NID_aes_256_gcm), key, iv, NULL) &&
           EVP_DecryptUpdate(ctx, NULL, &out, (const unsigned char *)SEAL_MAGIC,
                             (int)strlen(SEAL_MAGIC)) &&
           EVP_DecryptUpdate(ctx, (unsigned char *)plain, &out, ct, ct_len) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, (void *)tag) &&
           EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + out, &final) > 0 &&
           out + final == ct_len;
}

apr_status_t scep_single_password_open(apr_pool_t *p, const unsigned char *key, const char *sealed,
                                       const char **password, scep_problem_t *prob)
{
    apr_size_t prefix = strlen(SEAL_PREFIX), blob_len = 0;
    unsigned char *blob = NULL;
    char *plain = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    apr_status_t rv = APR_SUCCESS;

    *password = NULL;
    if (strncmp(sealed, SEAL_PREFIX, prefix) != 0 ||
        !sealed_decode(p, sealed + prefix, &blob, &blob_len)) {
        rv = scep_problem(prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_FAILED_DECRYPT_PASSWORD,
                          "not an encrypted single password (\"" SEAL_PREFIX "\" and base64 "
                          "expected)");
        goto leave;
    }
    plain = apr_pcalloc(p, blob_len - SEAL_IV_LEN - SEAL_TAG_LEN + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || !gcm_open(ctx, key, blob, blob_len, plain)) {
        rv = scep_problem(prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_FAILED_DECRYPT_PASSWORD,
                          "the single password does not decrypt with the secret key: the "
                          "file or the key was changed or damaged");
        goto leave;
    }
    cleanse_with_pool(p, plain);
    /* A NUL inside would make the password shorter than what was sealed. */
    if (strlen(plain) != blob_len - SEAL_IV_LEN - SEAL_TAG_LEN) {
        rv = scep_problem(prob, APR_EINVAL, SCEP_FAIL_NONE, SCEP_EVENT_FAILED_DECRYPT_PASSWORD,
                          "the decrypted single password is not text");
        goto leave;
    }
    *password = plain;
leave:
    if (plain && rv != APR_SUCCESS) {
        OPENSSL_cleanse(plain, blob_len - SEAL_IV_LEN - SEAL_TAG_LEN);
    }
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

apr_status_t scep_single_password_write(apr_pool_t *p, const char *file, const unsigned char *key,
                                        const char *password, scep_problem_t *prob)
{
    const char *sealed = NULL;
    apr_status_t rv = scep_single_password_seal(p, key, password, &sealed, prob);

    if (rv == APR_SUCCESS) {
        sealed = apr_pstrcat(p, sealed, "\n", NULL);
        rv = replace_private_file(p, file, sealed, strlen(sealed), prob);
    }
    return rv;
}

/* Drops the line end (and any trailing white space an editor added). */
static void strip_trailing_space(char *text)
{
    apr_size_t len = strlen(text);

    while (len > 0 && apr_isspace(text[len - 1])) {
        text[--len] = '\0';
    }
}

apr_status_t scep_single_password_read(apr_pool_t *p, const char *file, const unsigned char *key,
                                       const char **password, scep_problem_t *prob)
{
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    *password = NULL;
    rv = read_private_file(p, file, SEALED_FILE_MAX, &data, &len, prob);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    strip_trailing_space(data);
    rv = scep_single_password_open(p, key, data, password, prob);
    if (rv != APR_SUCCESS && prob) {
        prob->text = apr_psprintf(p, "%s: %s", file, prob->text);
    }
leave:
    return rv;
}
