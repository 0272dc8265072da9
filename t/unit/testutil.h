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
 * Helpers shared by the unit tests: temporary directories, keys,
 * certificates and CSRs made with the core's scep_x509 functions, and a
 * test PKI on disk that scep_pki_load() reads.
 *
 * Every helper fails the running Check test (ck_abort_msg, with the
 * problem text) instead of returning an error, so tests read straight
 * through; call them from inside a test. Everything lives in the pool
 * passed in.
 */
#ifndef mod_scep_testutil_h
#define mod_scep_testutil_h

#include <apr_pools.h>
#include <apr_time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <check.h>

#include "scep.h"
#include "scep_x509.h"

/* A new empty directory (mode 0700) under $TMPDIR or /tmp; it and the
 * files in it are removed when p is cleared or destroyed. */
const char *testutil_tempdir(apr_pool_t *p);

/* dir/name, on p. */
const char *testutil_path(apr_pool_t *p, const char *dir, const char *name);

/* A fresh RSA-2048 key. */
EVP_PKEY *testutil_rsa_key(apr_pool_t *p);
/* A fresh EC P-256 key. */
EVP_PKEY *testutil_ec_key(apr_pool_t *p);

/* A public key only, of type "RSA" or "RSA-PSS", with a random odd modulus
 * of bits bits and the exponent e_hex: for keys nobody could use (a 65536-bit
 * modulus, an even exponent) that only the checks read. */
EVP_PKEY *testutil_rsa_public(apr_pool_t *p, const char *type, int bits, const char *e_hex);
/* A fresh key of an OpenSSL type ("EC", "ED25519", "RSA-PSS"), on curve when
 * not NULL; explicit: the SPKI carries the curve's parameters, not its name. */
EVP_PKEY *testutil_keygen(apr_pool_t *p, const char *type, const char *curve, int explicit);

/* A name from OpenSSL's "/CN=x/O=y" form. */
X509_NAME *testutil_name(apr_pool_t *p, const char *subject);

/* A certificate for key issued by issuer_cert/issuer_key (issuer_cert NULL:
 * self-signed by key). exts in OpenSSL configuration syntax (may be NULL:
 * no extensions besides SKI and AKI; scep_x509_ca_exts() and
 * scep_x509_ra_exts() give the standard ones). not_before 0 means now, not_after 0
 * means a year after not_before. SHA-256. */
X509 *testutil_cert(apr_pool_t *p, const char *subject, EVP_PKEY *key, const scep_x509_exts_t *exts,
                    apr_time_t not_before, apr_time_t not_after, X509 *issuer_cert,
                    EVP_PKEY *issuer_key);

/* Writes a PEM certificate (0644) or a PEM private key (0600) to dir/name
 * and returns the path. A key file must not exist yet. */
const char *testutil_write_cert(apr_pool_t *p, const char *dir, const char *name, X509 *cert);
const char *testutil_write_key(apr_pool_t *p, const char *dir, const char *name, EVP_PKEY *key);

/* A test PKI on disk, as `scepctl setup` lays it out. */
typedef struct testutil_pki_t {
    const char *dir;
    X509 *ca_cert; /* "/CN=Test CA/O=mod_scep tests", self-signed, 10 years */
    EVP_PKEY *ca_key;
    X509 *ra_sign_cert; /* "/CN=Test RA/O=mod_scep tests", keyUsage digitalSignature */
    EVP_PKEY *ra_sign_key;
    X509 *ra_enc_cert; /* same subject, keyUsage keyEncipherment, dataEncipherment */
    EVP_PKEY *ra_enc_key;
    const char *ca_cert_file;      /* dir/ca.crt */
    const char *ca_key_file;       /* dir/ca.key */
    const char *ra_sign_cert_file; /* dir/ra-sign.crt */
    const char *ra_sign_key_file;  /* dir/ra-sign.key */
    const char *ra_enc_cert_file;  /* dir/ra-enc.crt */
    const char *ra_enc_key_file;   /* dir/ra-enc.key */
} testutil_pki_t;

/* A new PKI in a new temporary directory: RSA-2048 CA (SHA-256) and its
 * two RA certificates (EKU Certificate Request Agent, 2 years). */
testutil_pki_t *testutil_pki_create(apr_pool_t *p);

/* The configuration that loads pki: the two RA certificates as candidates
 * when separate_ra, else none (simple mode: the CA key acts as RA). No
 * chain file; include_root on. Add candidates with testutil_add_ra(). */
scep_pki_config_t *testutil_pki_config(apr_pool_t *p, const testutil_pki_t *pki, int separate_ra);

/* Appends an RA candidate to conf. */
void testutil_add_ra(scep_pki_config_t *conf, const char *cert_file, const char *key_file);

/* scep_pki_load() of testutil_pki_config(); fails the test on error. */
scep_pki_t *testutil_pki_load(apr_pool_t *p, const testutil_pki_t *pki, int separate_ra);

/* scep_ca_issue() of csr by a new test PKI under tmpl (NULL: the CSR's
 * usages) for days (0: the default); fails the test on error. */
X509 *testutil_issue(apr_pool_t *p, X509_REQ *csr, const scep_template_t *tmpl, int days);

/* A CSR of key for subject ("/CN=..."), signed with SHA-256. key_usage,
 * ext_key_usage and subject_alt_name (configuration syntax, e.g.
 * "critical,digitalSignature", "clientAuth", "DNS:a.example") go into the
 * extensionRequest when not NULL; challenge becomes the challengePassword
 * when not NULL. */
X509_REQ *testutil_csr(apr_pool_t *p, EVP_PKEY *key, const char *subject, const char *key_usage,
                       const char *ext_key_usage, const char *subject_alt_name,
                       const char *challenge);

/* The CSR in pem, on p; fails the test when it does not parse. */
X509_REQ *testutil_csr_of_pem(apr_pool_t *p, const char *pem);

/* A case of s named name: each of its tests runs between setup and
 * teardown (a checked fixture: in the test's own process). */
TCase *testutil_case(Suite *s, const char *name, SFun setup, SFun teardown);

#endif /* mod_scep_testutil_h */
