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
 * Challenge passwords (httpd-free core): the NDES one-time password cache
 * and the encrypted single password.
 *
 * The cache lives in a memory block the caller provides (the glue puts it
 * in APR shared memory, shared by every worker process). It holds no
 * password in clear: each entry is an HMAC-SHA256 of the password under a
 * random key kept in the block, the expiry, and the key usages already
 * served. It holds no pointers either, so it works at whatever address a
 * process maps it. The cache does no locking: callers serialise every call
 * on one block (the glue's global mutex).
 *
 * The use rule (white paper, "Password and Password Cache"): a password
 * serves one request for a general-purpose key (keyUsage with both
 * digitalSignature and keyEncipherment, 0xa0, or no keyUsage at all), or
 * two requests: one for a signing key (digitalSignature without
 * keyEncipherment, e.g. 0x80) and one for an encryption key
 * (keyEncipherment without digitalSignature, e.g. 0x20); then it is gone.
 * Only those two bits count, so 0xa8 is general purpose and 0x88 signing.
 * A keyUsage with neither bit (e.g. keyAgreement only, 0x08) is treated as
 * general purpose: it spends the whole password, the conservative reading.
 * A general-purpose request on a password that already served one half
 * asks again for a usage it served: event 43, as a repeated half is.
 */
#ifndef mod_scep_scep_password_h
#define mod_scep_scep_password_h

#include <apr_pools.h>
#include <apr_time.h>

#include "scep.h"
#include "scep_enroll.h"

/* Bytes of randomness a password may have (SCEPPasswordLength's range). */
#define SCEP_PASSWORD_BYTES_MIN 4
#define SCEP_PASSWORD_BYTES_MAX 64

/* The AES-256-GCM key of the single password (SCEPSecretKeyFile). */
#define SCEP_SECRET_KEY_LEN 32

/* ----------------------------------------------------------------------
 * The one-time password cache.
 */

typedef struct scep_pwcache_t scep_pwcache_t;

/* What a new password gets. */
typedef struct scep_pwcache_opts_t {
    int max;             /* passwords waiting at most (SCEPPasswordMax) */
    apr_time_t validity; /* lifetime of a new password */
    int length;          /* bytes of randomness, SCEP_PASSWORD_BYTES_MIN..MAX */
} scep_pwcache_opts_t;

/* Bytes a cache of capacity entries needs. */
apr_size_t scep_pwcache_size(int capacity);

/* Lays out an empty cache of capacity entries in mem (scep_pwcache_size()
 * bytes) with a new random HMAC key. */
apr_status_t scep_pwcache_init(void *mem, int capacity, scep_pwcache_t **cache);

int scep_pwcache_capacity(const scep_pwcache_t *cache);

/* Passwords issued and neither expired at now nor used up. */
int scep_pwcache_in_use(const scep_pwcache_t *cache, apr_time_t now);

/* Moves the key and the entries of from into the empty cache to, which
 * must be at least as big, and leaves from empty with capacity 0: a process
 * still holding from (an old generation of workers) can neither accept nor
 * issue a password any more, so none is spent twice. */
void scep_pwcache_move(scep_pwcache_t *to, scep_pwcache_t *from);

/* A new password: 2 * opts->length upper-case hex digits from RAND_bytes,
 * on p (cleansed when p is cleared), valid until *expires. Expired entries
 * are purged first. APR_ENOSPC when opts->max passwords are waiting. */
apr_status_t scep_pwcache_issue(scep_pwcache_t *cache, apr_pool_t *p, apr_time_t now,
                                const scep_pwcache_opts_t *opts, const char **password,
                                apr_time_t *expires);

/* Spends password for a request with key_usage (scep_csr_key_usage(): -1
 * when absent) by the rule above. spender names the request (the glue:
 * transactionID and key id): the same request again passes as long as the
 * password lives, so a device whose reply was lost (a worker killed between
 * the password and the records) gets its certificate; a used-up password is
 * kept until it expires or its slot is needed for a new one. Every entry is
 * compared, in constant time, whichever matches. Refusals fill prob with
 * failInfo badRequest and event 29 (unknown, expired or used up: the text
 * does not say which) or 43 (used before for this key usage by another
 * request). */
apr_status_t scep_pwcache_use(scep_pwcache_t *cache, apr_time_t now, const char *password,
                              int key_usage, const char *spender, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Passwords in general.
 */

/* Bytes of an HMAC-SHA256 and of its key. */
#define SCEP_PASSWORD_MAC_LEN 32

/* HMAC-SHA256 of text under a SCEP_PASSWORD_MAC_LEN-byte key; 0 when it
 * cannot be computed. */
int scep_password_mac(const unsigned char *key, const char *text,
                      unsigned char mac[SCEP_PASSWORD_MAC_LEN]);

/* The halves (SCEP_PASSWORD_SERVED_*) a request with key_usage spends by
 * the use rule above (-1: no keyUsage, both). */
int scep_password_halves(int key_usage);

/* The refusal of a request whose halves the password served already
 * (served, SCEP_PASSWORD_SERVED_*): failInfo badRequest with event 29 when
 * it is used up (pass SCEP_PASSWORD_SERVED_ALL for one unknown or expired:
 * the text does not say which), 43 when one half went to another request. */
apr_status_t scep_password_refused(scep_problem_t *prob, int served);

/* A random password of length bytes as upper-case hex, on p (cleansed when
 * p is cleared). */
apr_status_t scep_password_generate(apr_pool_t *p, int length, const char **password);

/* 1 when a and b are the same string. Both are MACed under a fresh random
 * key and the MACs compared with CRYPTO_memcmp, so the time taken says
 * nothing about where they differ, nor about their lengths. */
int scep_password_equal(const char *a, const char *b);

/* ----------------------------------------------------------------------
 * The single password, encrypted at rest (NDES keeps it DPAPI-encrypted in
 * the registry; a 0600 key file stands in for DPAPI).
 *
 * Key file: exactly SCEP_SECRET_KEY_LEN random bytes, mode 0600.
 * Password file: one line of text,
 *     "SCEPPW1:" base64(IV (12 bytes) | GCM tag (16 bytes) | ciphertext)
 * AES-256-GCM with a random IV per write; the prefix "SCEPPW1" is the
 * additional authenticated data, so a file of another version or a
 * tampered one fails to decrypt rather than yielding garbage.
 */

/* Writes a new random key to file, 0600, never replacing one (APR_EEXIST). */
apr_status_t scep_secret_key_create(apr_pool_t *p, const char *file, scep_problem_t *prob);

/* Reads the key; refuses a file open to group or others or of another size. */
apr_status_t scep_secret_key_read(apr_pool_t *p, const char *file,
                                  unsigned char key[SCEP_SECRET_KEY_LEN], scep_problem_t *prob);

/* A key of its own purpose from the secret key: HKDF-SHA256 with label as
 * its info, len bytes into out. The servers of a service that share the
 * secret key file derive the same keys (the passwords' HMAC key, the CA
 * manager page's form tokens), and no key serves two purposes. */
apr_status_t scep_secret_key_derive(const unsigned char *secret, const char *label,
                                    unsigned char *out, apr_size_t len);

/* The password file's line for password (no line end), on p. */
apr_status_t scep_single_password_seal(apr_pool_t *p, const unsigned char *key,
                                       const char *password, const char **sealed,
                                       scep_problem_t *prob);

/* The password in a password file's line, on p (cleansed when p is
 * cleared); prob's event is 49 when it does not decrypt. */
apr_status_t scep_single_password_open(apr_pool_t *p, const unsigned char *key, const char *sealed,
                                       const char **password, scep_problem_t *prob);

/* Seals password and writes it to file (0600), replacing it atomically. */
apr_status_t scep_single_password_write(apr_pool_t *p, const char *file, const unsigned char *key,
                                        const char *password, scep_problem_t *prob);

/* Reads and opens file (which must not be open to group or others);
 * prob's event is 49 when it does not decrypt. */
apr_status_t scep_single_password_read(apr_pool_t *p, const char *file, const unsigned char *key,
                                       const char **password, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * The one-time passwords of a service of several servers, in its records
 * (SCEPPasswordStore sql, scep_password_sql.c): the rule above, the
 * passwords and their spenders kept as hex HMACs under a key derived from
 * the secret key file that every server shares (never the password), one
 * conditional UPDATE per use (of two servers spending the same half at
 * once, one wins), SCEPPasswordMax counted for the whole service.
 */

/* The passwords' HMAC key: HKDF-SHA256 of the secret key with a label of
 * its own, so the key bytes that encrypt the single password never MAC. */
apr_status_t scep_password_sql_key(const unsigned char *secret,
                                   unsigned char mac_key[SCEP_PASSWORD_MAC_LEN]);

typedef struct scep_password_sql_conf_t {
    unsigned char mac_key[SCEP_PASSWORD_MAC_LEN]; /* scep_password_sql_key() */
    scep_pwcache_opts_t opts;                     /* max is the service's */
} scep_password_sql_conf_t;

/* The store on the records that records(baton) gives (NULL: unreachable,
 * logged by it; a fault), with a copy of conf, on p. Faults are logged by
 * the records. */
scep_password_store_t *scep_password_sql(apr_pool_t *p, const scep_password_sql_conf_t *conf,
                                         scep_store_t *(*records)(void *baton), void *baton);

/* The service's single password, sealed in the records (scep_secret) with
 * the secret key as the password file is: opened, or, when none is
 * recorded, made (length bytes) and recorded unless another server
 * recorded one meanwhile (then that one). prob's event is 49 when it does
 * not decrypt. */
apr_status_t scep_single_password_sql(apr_pool_t *p, scep_store_t *store,
                                      const unsigned char *secret, int length,
                                      const char **password, scep_problem_t *prob);

/* Records password as the service's single password, replacing one. */
apr_status_t scep_single_password_sql_set(apr_pool_t *p, scep_store_t *store,
                                          const unsigned char *secret, const char *password,
                                          scep_problem_t *prob);

#endif /* mod_scep_scep_password_h */
