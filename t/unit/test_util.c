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

/* The core's small helpers (scep_util.c) that no other suite covers. */

#include <limits.h>

#include <check.h>

#include "scep.h"

/* One text that scep_parse_int must refuse, leaving the value alone. */
static void assert_refused(const char *text, int min, int max)
{
    int value = 12345;

    ck_assert_msg(!scep_parse_int(text, min, max, &value), "'%s' accepted in [%d, %d]",
                  text ? text : "(null)", min, max);
    ck_assert_int_eq(value, 12345);
}

START_TEST(parse_int_takes_whole_numbers_in_range)
{
    int value = 0;

    ck_assert(scep_parse_int("5", 1, 10, &value));
    ck_assert_int_eq(value, 5);
    ck_assert(scep_parse_int("010", 1, 10, &value));
    ck_assert_int_eq(value, 10);
    ck_assert(scep_parse_int("-3", -5, 5, &value));
    ck_assert_int_eq(value, -3);
    ck_assert(scep_parse_int("2147483647", INT_MIN, INT_MAX, &value));
    ck_assert_int_eq(value, INT_MAX);
    ck_assert(scep_parse_int("-2147483648", INT_MIN, INT_MAX, &value));
    ck_assert_int_eq(value, INT_MIN);
}
END_TEST

START_TEST(parse_int_refuses_anything_else)
{
    assert_refused(NULL, 0, 10);
    assert_refused("", 0, 10);
    assert_refused("-", -10, 10);
    assert_refused("+5", 0, 10);
    assert_refused(" 5", 0, 10);
    assert_refused("5 ", 0, 10);
    assert_refused("5x", 0, 10);
    assert_refused("0x5", 0, 10);
    assert_refused("11", 0, 10);
    assert_refused("-1", 0, 10);
    assert_refused("2147483648", INT_MIN, INT_MAX);
    assert_refused("99999999999999999999999", INT_MIN, INT_MAX);
}
END_TEST

Suite *scep_util_suite(void);

Suite *scep_util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("parse_int");

    tcase_add_test(tc, parse_int_takes_whole_numbers_in_range);
    tcase_add_test(tc, parse_int_refuses_anything_else);
    suite_add_tcase(s, tc);
    return s;
}
