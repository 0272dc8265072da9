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
 * The digests and ciphers fetched once (scep_algs.c): each is the named
 * algorithm from a provider, the same object at every call and in every
 * thread, usable where the built-in table's objects were; an algorithm no
 * loaded provider has falls back to the table.
 */

#include <pthread.h>
#include <string.h>

#include <check.h>

#include <openssl/evp.h>
#include <openssl/objects.h>

#include "scep_algs.h"
#include "testutil.h"

START_TEST(digests_are_fetched_once)
{
    static const int nids[] = { NID_sha1, NID_sha224, NID_sha256, NID_sha384, NID_sha512 };
    size_t i;

    for (i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
        const EVP_MD *md = scep_md(nids[i]);

        ck_assert_ptr_nonnull(md);
        ck_assert_int_eq(EVP_MD_get_type(md), nids[i]);
        /* A fetched object has its provider; the table's has none. */
        ck_assert_ptr_nonnull(EVP_MD_get0_provider(md));
        ck_assert_ptr_eq(scep_md(nids[i]), md);
    }
}
END_TEST

START_TEST(ciphers_are_fetched_once)
{
    static const int nids[] = { NID_aes_128_cbc, NID_aes_192_cbc, NID_aes_256_cbc, NID_des_ede3_cbc,
                                NID_aes_256_gcm };
    size_t i;

    for (i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
        const EVP_CIPHER *cipher = scep_cipher(nids[i]);

        ck_assert_ptr_nonnull(cipher);
        ck_assert_int_eq(EVP_CIPHER_get_nid(cipher), nids[i]);
        ck_assert_ptr_nonnull(EVP_CIPHER_get0_provider(cipher));
        ck_assert_ptr_eq(scep_cipher(nids[i]), cipher);
    }
}
END_TEST

/* Single DES is only in the legacy provider, which the module does not
 * load: the built-in table's object, as before (scep_msg.c refuses it
 * unless SCEPAllowLegacyAlgorithms). */
START_TEST(others_come_from_the_table)
{
    ck_assert_ptr_eq(scep_cipher(NID_des_cbc), EVP_get_cipherbynid(NID_des_cbc));
    ck_assert_ptr_eq(scep_md(NID_md5), EVP_get_digestbynid(NID_md5));
    ck_assert_ptr_null(scep_md(NID_undef));
}
END_TEST

START_TEST(digest_computes)
{
    static const unsigned char abc_sha256[] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    ck_assert_int_eq(EVP_Digest("abc", 3, out, &len, scep_md(NID_sha256), NULL), 1);
    ck_assert_uint_eq(len, sizeof(abc_sha256));
    ck_assert_mem_eq(out, abc_sha256, len);
}
END_TEST

#define THREADS 8

static void *first_use(void *arg)
{
    (void)arg;
    return (void *)scep_md(NID_sha384);
}

/* The first use may come from many threads at once: all get one object. */
START_TEST(threads_share_one_fetch)
{
    pthread_t threads[THREADS];
    void *got[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_create(&threads[i], NULL, first_use, NULL), 0);
    }
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(threads[i], &got[i]), 0);
        ck_assert_ptr_nonnull(got[i]);
        ck_assert_ptr_eq(got[i], got[0]);
    }
}
END_TEST

Suite *scep_algs_suite(void);

Suite *scep_algs_suite(void)
{
    Suite *s = suite_create("algs");
    TCase *tc = testutil_case(s, "algs", NULL, NULL);

    /* The threads first: even when the tests share a process (CK_FORK=no,
     * under valgrind), the first fetch is then theirs. */
    tcase_add_test(tc, threads_share_one_fetch);
    tcase_add_test(tc, digests_are_fetched_once);
    tcase_add_test(tc, ciphers_are_fetched_once);
    tcase_add_test(tc, others_come_from_the_table);
    tcase_add_test(tc, digest_computes);
    return s;
}
