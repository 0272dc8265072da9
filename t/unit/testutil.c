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

/* Shared unit-test helpers; see testutil.h. */

#include <stdlib.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include <check.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "testutil.h"

#define CA_SUBJECT "/CN=Test CA/O=mod_scep tests"
#define RA_SUBJECT "/CN=Test RA/O=mod_scep tests"

static void check_ok(apr_status_t rv, const scep_problem_t *prob, const char *what)
{
    ck_assert_msg(rv == APR_SUCCESS, "%s failed: %s", what, prob->text ? prob->text : "(no text)");
}

/* The test directories hold plain files only. */
static apr_status_t remove_dir(void *data)
{
    const char *dir = data;
    apr_pool_t *p;
    apr_dir_t *d;
    apr_finfo_t entry;

    apr_pool_create(&p, NULL);
    if (apr_dir_open(&d, dir, p) == APR_SUCCESS) {
        while (apr_dir_read(&entry, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
            if (entry.filetype == APR_REG) {
                apr_file_remove(apr_pstrcat(p, dir, "/", entry.name, NULL), p);
            }
        }
        apr_dir_close(d);
    }
    apr_dir_remove(dir, p);
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

const char *testutil_tempdir(apr_pool_t *p)
{
    const char *base = getenv("TMPDIR");
    char *dir = apr_pstrcat(p, base && *base ? base : "/tmp", "/scep-test-XXXXXX", NULL);

    ck_assert_msg(mkdtemp(dir) != NULL, "cannot create a directory like %s", dir);
    apr_pool_cleanup_register(p, dir, remove_dir, apr_pool_cleanup_null);
    return dir;
}

const char *testutil_path(apr_pool_t *p, const char *dir, const char *name)
{
    return apr_pstrcat(p, dir, "/", name, NULL);
}

/* RSA key generation is the slowest part of the unit tests (minutes under
 * valgrind): a few keys made once per process serve every test in turn, so
 * the keys one test asks for still differ from each other. */
#define RSA_KEYS 8

EVP_PKEY *testutil_rsa_key(apr_pool_t *p)
{
    static EVP_PKEY *keys[RSA_KEYS];
    static unsigned int next;
    EVP_PKEY **cached = &keys[next++ % RSA_KEYS];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *key = *cached;

    if (key) {
        SCEP_OWN(p, key, EVP_PKEY_free);
    }
    else {
        check_ok(scep_x509_key_generate(p, SCEP_KEY_RSA, 2048, &key, &prob), &prob, "RSA key");
        *cached = key;
    }
    /* p frees its reference; the cache keeps one until the process exits */
    ck_assert(EVP_PKEY_up_ref(key));
    return key;
}

EVP_PKEY *testutil_ec_key(apr_pool_t *p)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *key = NULL;

    check_ok(scep_x509_key_generate(p, SCEP_KEY_EC, 256, &key, &prob), &prob, "EC key");
    return key;
}

EVP_PKEY *testutil_rsa_public(apr_pool_t *p, const char *type, int bits, const char *e_hex)
{
    BIGNUM *n = BN_new(), *e = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *key = NULL;

    ck_assert(n && bld && ctx && BN_hex2bn(&e, e_hex));
    ck_assert(BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD));
    ck_assert(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n));
    ck_assert(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
    ck_assert_ptr_nonnull(params = OSSL_PARAM_BLD_to_param(bld));
    ck_assert(EVP_PKEY_fromdata_init(ctx) == 1);
    ck_assert(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1);
    SCEP_OWN(p, key, EVP_PKEY_free);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(e);
    BN_free(n);
    return key;
}

EVP_PKEY *testutil_keygen(apr_pool_t *p, const char *type, const char *curve, int explicit)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    OSSL_PARAM params[3], *param = params;
    EVP_PKEY *key = NULL;

    ck_assert_ptr_nonnull(ctx);
    if (curve) {
        *param++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve, 0);
    }
    if (explicit) {
        *param++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING,
                                                    (char *)OSSL_PKEY_EC_ENCODING_EXPLICIT, 0);
    }
    *param = OSSL_PARAM_construct_end();
    ck_assert(EVP_PKEY_keygen_init(ctx) == 1);
    ck_assert(EVP_PKEY_CTX_set_params(ctx, params) == 1);
    ck_assert_msg(EVP_PKEY_generate(ctx, &key) == 1, "no %s key", type);
    SCEP_OWN(p, key, EVP_PKEY_free);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

X509_NAME *testutil_name(apr_pool_t *p, const char *subject)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_NAME *name = NULL;

    check_ok(scep_x509_name_parse(p, subject, &name, &prob), &prob, subject);
    return name;
}

X509 *testutil_cert(apr_pool_t *p, const char *subject, EVP_PKEY *key, const scep_x509_exts_t *exts,
                    apr_time_t not_before, apr_time_t not_after, X509 *issuer_cert,
                    EVP_PKEY *issuer_key)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_x509_profile_t profile = { { NULL, NULL, NULL, NULL }, not_before, not_after, 365, NULL };
    X509 *cert = NULL;

    if (exts) {
        profile.exts = *exts;
    }
    check_ok(scep_x509_cert_create(p, &profile, testutil_name(p, subject), key, issuer_cert,
                                   issuer_cert ? issuer_key : key, &cert, &prob),
             &prob, subject);
    return cert;
}

const char *testutil_write_cert(apr_pool_t *p, const char *dir, const char *name, X509 *cert)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *file = testutil_path(p, dir, name);

    check_ok(scep_x509_write_cert(p, file, cert, &prob), &prob, file);
    return file;
}

const char *testutil_write_key(apr_pool_t *p, const char *dir, const char *name, EVP_PKEY *key)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *file = testutil_path(p, dir, name);

    check_ok(scep_x509_write_key(p, file, key, &prob), &prob, file);
    return file;
}

static void make_ra(apr_pool_t *p, testutil_pki_t *pki, scep_ra_role_t role)
{
    EVP_PKEY *key = testutil_rsa_key(p);
    X509 *cert =
        testutil_cert(p, RA_SUBJECT, key, scep_x509_ra_exts(role), 0,
                      apr_time_now() + apr_time_from_sec(730 * 86400), pki->ca_cert, pki->ca_key);
    const char *base = role == SCEP_RA_SIGN ? "ra-sign" : "ra-enc";
    const char *cert_file =
        testutil_write_cert(p, pki->dir, apr_pstrcat(p, base, ".crt", NULL), cert);
    const char *key_file = testutil_write_key(p, pki->dir, apr_pstrcat(p, base, ".key", NULL), key);

    if (role == SCEP_RA_SIGN) {
        pki->ra_sign_cert = cert;
        pki->ra_sign_key = key;
        pki->ra_sign_cert_file = cert_file;
        pki->ra_sign_key_file = key_file;
    }
    else {
        pki->ra_enc_cert = cert;
        pki->ra_enc_key = key;
        pki->ra_enc_cert_file = cert_file;
        pki->ra_enc_key_file = key_file;
    }
}

testutil_pki_t *testutil_pki_create(apr_pool_t *p)
{
    testutil_pki_t *pki = apr_pcalloc(p, sizeof(*pki));

    pki->dir = testutil_tempdir(p);
    pki->ca_key = testutil_rsa_key(p);
    pki->ca_cert = testutil_cert(p, CA_SUBJECT, pki->ca_key, scep_x509_ca_exts(), 0,
                                 apr_time_now() + apr_time_from_sec(3650 * 86400), NULL, NULL);
    pki->ca_cert_file = testutil_write_cert(p, pki->dir, "ca.crt", pki->ca_cert);
    pki->ca_key_file = testutil_write_key(p, pki->dir, "ca.key", pki->ca_key);
    make_ra(p, pki, SCEP_RA_SIGN);
    make_ra(p, pki, SCEP_RA_ENCRYPT);
    return pki;
}

void testutil_add_ra(scep_pki_config_t *conf, const char *cert_file, const char *key_file)
{
    scep_ra_file_t *ra = apr_array_push(conf->ra_files);

    ra->cert_file = cert_file;
    ra->key_file = key_file;
}

scep_pki_config_t *testutil_pki_config(apr_pool_t *p, const testutil_pki_t *pki, int separate_ra)
{
    scep_pki_config_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->ca_cert_file = pki->ca_cert_file;
    conf->ca_key_file = pki->ca_key_file;
    conf->ra_files = apr_array_make(p, 2, sizeof(scep_ra_file_t));
    conf->include_root = 1;
    if (separate_ra) {
        testutil_add_ra(conf, pki->ra_sign_cert_file, pki->ra_sign_key_file);
        testutil_add_ra(conf, pki->ra_enc_cert_file, pki->ra_enc_key_file);
    }
    return conf;
}

scep_pki_t *testutil_pki_load(apr_pool_t *p, const testutil_pki_t *pki, int separate_ra)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *loaded = NULL;

    check_ok(scep_pki_load(p, testutil_pki_config(p, pki, separate_ra), &loaded, &prob), &prob,
             "scep_pki_load");
    return loaded;
}

X509 *testutil_issue(apr_pool_t *p, X509_REQ *csr, const scep_template_t *tmpl, int days)
{
    scep_issue_opts_t opts = { days, NULL, tmpl, NULL };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert = NULL;

    ck_assert_msg(scep_ca_issue(p, testutil_pki_load(p, testutil_pki_create(p), 0), csr, &opts,
                                &cert, &prob) == APR_SUCCESS,
                  "%s", prob.text);
    return cert;
}

X509_REQ *testutil_csr(apr_pool_t *p, EVP_PKEY *key, const char *subject, const char *key_usage,
                       const char *ext_key_usage, const char *subject_alt_name,
                       const char *challenge)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_x509_exts_t exts = { NULL, key_usage, ext_key_usage, subject_alt_name };
    X509_REQ *csr = NULL;

    check_ok(scep_x509_csr_create(p, key, testutil_name(p, subject), &exts, challenge, &csr, &prob),
             &prob, "CSR");
    return csr;
}

X509_REQ *testutil_csr_of_pem(apr_pool_t *p, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);

    BIO_free(bio);
    ck_assert_ptr_nonnull(csr);
    SCEP_OWN(p, csr, X509_REQ_free);
    return csr;
}

TCase *testutil_case(Suite *s, const char *name, SFun setup, SFun teardown)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}
