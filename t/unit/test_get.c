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

/* The lenient decoding of GET PKIOperation messages, one quirk per test. */

#include <string.h>

#include <apr_pools.h>

#include <check.h>

#include "scep.h"

/* 0xfb 0xef 0xff 0x00 0x01: base64 "++//AAE=", base64url "--__AAE=". */
static const unsigned char expected[] = { 0xfb, 0xef, 0xff, 0x00, 0x01 };

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static void assert_decodes(const char *text)
{
    unsigned char *der = NULL;
    apr_size_t len = 0;

    ck_assert_int_eq(scep_decode_get_message(pool, text, &der, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(expected));
    ck_assert_mem_eq(der, expected, sizeof(expected));
}

static void assert_refused(const char *text)
{
    unsigned char *der = NULL;
    apr_size_t len = 0;

    ck_assert_int_ne(scep_decode_get_message(pool, text, &der, &len), APR_SUCCESS);
}

START_TEST(standard_base64)
{
    assert_decodes("++//AAE=");
}
END_TEST

START_TEST(plus_turned_into_space)
{
    assert_decodes("  //AAE=");
}
END_TEST

START_TEST(line_breaks)
{
    assert_decodes("++//\nAAE=\r\n");
}
END_TEST

START_TEST(base64url_alphabet)
{
    assert_decodes("--__AAE");
}
END_TEST

START_TEST(missing_padding)
{
    assert_decodes("++//AAE");
}
END_TEST

START_TEST(longer_input)
{
    unsigned char *der = NULL;
    apr_size_t len = 0;

    /* "SCEP message" */
    ck_assert_int_eq(scep_decode_get_message(pool, "U0NFUCBtZXNzYWdl", &der, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, 12);
    ck_assert_mem_eq(der, "SCEP message", 12);
}
END_TEST

START_TEST(garbage_refused)
{
    assert_refused("++//AA*E");
    assert_refused("%2B%2B");
    assert_refused("");
    assert_refused("\n\n");
    assert_refused("A");
}
END_TEST

Suite *scep_get_suite(void);

Suite *scep_get_suite(void)
{
    Suite *s = suite_create("get");
    TCase *tc = tcase_create("decode");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, standard_base64);
    tcase_add_test(tc, plus_turned_into_space);
    tcase_add_test(tc, line_breaks);
    tcase_add_test(tc, base64url_alphabet);
    tcase_add_test(tc, missing_padding);
    tcase_add_test(tc, longer_input);
    tcase_add_test(tc, garbage_refused);
    suite_add_tcase(s, tc);
    return s;
}
