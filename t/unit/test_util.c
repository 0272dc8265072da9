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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "scep.h"
#include "testutil.h"

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

/* 1 when the DER of csr holds the bytes of text anywhere. */
static int der_contains(X509_REQ *csr, const char *text)
{
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(csr, &der), i, found = 0;
    size_t n = strlen(text);

    ck_assert_int_gt(len, 0);
    for (i = 0; !found && i + (int)n <= len; i++) {
        found = memcmp(der + i, text, n) == 0;
    }
    OPENSSL_free(der);
    return found;
}

START_TEST(csr_at_rest_keeps_no_challenge_password)
{
    apr_pool_t *p;
    EVP_PKEY *key;
    X509_REQ *csr, *kept;
    STACK_OF(X509_EXTENSION) *exts;
    const ASN1_BIT_STRING *sig = NULL;

    apr_pool_create(&p, NULL);
    key = testutil_rsa_key(p);
    csr = testutil_csr(p, key, "/CN=rest.example.test", "critical,digitalSignature", NULL,
                       "DNS:rest.example.test", "Secret-Challenge-1234");
    ck_assert(der_contains(csr, "Secret-Challenge-1234"));
    /* as received: parsed, with the DER it came in cached */
    csr = testutil_csr_of_pem(p, scep_csr_pem(p, csr));
    kept = testutil_csr_of_pem(p, scep_csr_pem_at_rest(p, csr));
    ck_assert(!der_contains(kept, "Secret-Challenge-1234"));
    ck_assert_int_lt(X509_REQ_get_attr_by_NID(kept, NID_pkcs9_challengePassword, -1), 0);
    /* no signature to test guesses of the password against */
    X509_REQ_get0_signature(kept, &sig, NULL);
    ck_assert_int_eq(ASN1_STRING_length(sig), 0);
    ck_assert_int_ne(X509_REQ_verify(kept, key), 1);
    /* what approval needs is all there */
    ck_assert_int_eq(X509_NAME_cmp(X509_REQ_get_subject_name(kept), X509_REQ_get_subject_name(csr)),
                     0);
    ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(kept), key), 1);
    ck_assert_int_eq(scep_csr_key_usage(kept), scep_csr_key_usage(csr));
    ck_assert_str_eq(scep_csr_san_text(p, kept), "DNS:rest.example.test");
    exts = X509_REQ_get_extensions(kept);
    ck_assert_int_eq(sk_X509_EXTENSION_num(exts), 2);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    /* the original is left alone */
    ck_assert_int_ge(X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1), 0);
    ck_assert_int_eq(X509_REQ_verify(csr, key), 1);
    apr_pool_destroy(p);
}
END_TEST

/* A device's attribute may carry more than one value. */
START_TEST(csr_at_rest_drops_every_challenge_password)
{
    apr_pool_t *p;
    X509_REQ *csr, *kept;
    X509_ATTRIBUTE *attr;

    apr_pool_create(&p, NULL);
    csr = testutil_csr(p, testutil_ec_key(p), "/CN=twice", NULL, NULL, NULL, "first-secret");
    attr = X509_REQ_get_attr(csr, X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1));
    ck_assert(X509_ATTRIBUTE_set1_data(attr, MBSTRING_UTF8, "second-secret", -1));
    ck_assert(der_contains(csr, "second-secret"));
    kept = testutil_csr_of_pem(p, scep_csr_pem_at_rest(p, csr));
    ck_assert(!der_contains(kept, "first-secret") && !der_contains(kept, "second-secret"));
    ck_assert_int_eq(X509_REQ_get_attr_count(kept), 0);
    apr_pool_destroy(p);
}
END_TEST

/* A CSR sealed for an external CA: the DER as it came (signature and
 * challenge password intact) comes out with the RA encryption key, and
 * nothing in the seal shows the password; another key or an altered seal
 * opens nothing. */
START_TEST(csr_sealed_opens_with_the_ra_key_alone)
{
    apr_pool_t *p;
    testutil_pki_t *pki, *other;
    EVP_PKEY *key;
    X509_REQ *csr, *opened;
    unsigned char *der = NULL, *got = NULL;
    const char *sealed;
    char *altered;
    int len;

    apr_pool_create(&p, NULL);
    pki = testutil_pki_create(p);
    other = testutil_pki_create(p);
    key = testutil_rsa_key(p);
    csr =
        testutil_csr_of_pem(p, scep_csr_pem(p, testutil_csr(p, key, "/CN=seal.example.test", NULL,
                                                            NULL, NULL, "Secret-Challenge-5678")));
    sealed = scep_csr_seal(p, csr, pki->ra_enc_cert);
    ck_assert_ptr_nonnull(sealed);
    ck_assert_int_eq(strncmp(sealed, "-----BEGIN CMS-----", 19), 0);
    ck_assert_ptr_null(strstr(sealed, "Secret-Challenge-5678"));
    opened = scep_csr_unseal(p, sealed, pki->ra_enc_key);
    ck_assert_ptr_nonnull(opened);
    ck_assert_int_eq(X509_REQ_verify(opened, key), 1);
    ck_assert(der_contains(opened, "Secret-Challenge-5678"));
    len = i2d_X509_REQ(csr, &der);
    ck_assert_int_eq(i2d_X509_REQ(opened, &got), len);
    ck_assert_int_eq(memcmp(der, got, (size_t)len), 0);
    OPENSSL_free(der);
    OPENSSL_free(got);
    ck_assert_ptr_null(scep_csr_unseal(p, sealed, other->ra_enc_key));
    altered = apr_pstrdup(p, sealed);
    altered[strlen(altered) / 2] = altered[strlen(altered) / 2] == 'A' ? 'B' : 'A';
    ck_assert_ptr_null(scep_csr_unseal(p, altered, pki->ra_enc_key));
    ck_assert_ptr_null(scep_csr_unseal(p, "not a seal", pki->ra_enc_key));
    ERR_clear_error();
    apr_pool_destroy(p);
}
END_TEST

static void assert_utf8(const char *text, apr_size_t len, unsigned long code)
{
    unsigned long got = 0xdead;

    ck_assert_uint_eq(scep_utf8_char(text, &got), len);
    if (len) {
        ck_assert_uint_eq(got, code);
    }
}

START_TEST(utf8_characters_are_checked_strictly)
{
    assert_utf8("A", 1, 'A');
    assert_utf8("\xc3\xa9", 2, 0xe9);
    assert_utf8("\xc2\x9b", 2, 0x9b);
    assert_utf8("\xe2\x82\xac", 3, 0x20ac);
    assert_utf8("\xf0\x9f\x98\x80", 4, 0x1f600);
    assert_utf8("\xf4\x8f\xbf\xbf", 4, 0x10ffff);
    assert_utf8("\xc3\x28", 0, 0);         /* no continuation byte */
    assert_utf8("\xc3", 0, 0);             /* cut off by the end */
    assert_utf8("\x80", 0, 0);             /* a stray continuation byte */
    assert_utf8("\xc0\xaf", 0, 0);         /* overlong '/' */
    assert_utf8("\xe0\x80\xaf", 0, 0);     /* overlong, three bytes */
    assert_utf8("\xed\xa0\x80", 0, 0);     /* a surrogate (CESU-8) */
    assert_utf8("\xf4\x90\x80\x80", 0, 0); /* above U+10FFFF */
    assert_utf8("\xff", 0, 0);
}
END_TEST

START_TEST(utf8_text_replaces_stray_bytes)
{
    apr_pool_t *p;
    const char *valid = "CN=Gr\xc3\xbc\xc3\x9f"
                        "e\x1b";

    apr_pool_create(&p, NULL);
    ck_assert_ptr_eq(scep_utf8_text(p, valid), valid);
    ck_assert_ptr_null(scep_utf8_text(p, NULL));
    ck_assert_str_eq(scep_utf8_text(p, "bad\xc3\x28 \xed\xa0\x80\xff"),
                     "bad\xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    apr_pool_destroy(p);
}
END_TEST

/* Escaped as expected, with a backslash kept as it is unless the text
 * must be restorable. */
static void assert_escaped(const char *text, const char *expected)
{
    apr_pool_t *p;
    const char *kept;

    apr_pool_create(&p, NULL);
    ck_assert_str_eq(scep_escape_text(p, text, SCEP_ESCAPE_BACKSLASH), expected);
    kept = scep_escape_text(p, text, 0);
    ck_assert_str_eq(kept, strstr(text, "\\") ? text : expected);
    apr_pool_destroy(p);
}

START_TEST(escape_text_leaves_nothing_a_terminal_or_a_line_reader_acts_on)
{
    assert_escaped("CN=router-1.example.test, O=Example", "CN=router-1.example.test, O=Example");
    assert_escaped("CN=Gr\xc3\xbc\xc3\x9f"
                   "e \xe2\x82\xac",
                   "CN=Gr\xc3\xbc\xc3\x9f"
                   "e \xe2\x82\xac");
    assert_escaped("a\tb\nc\rd", "a\\tb\\nc\\rd");
    assert_escaped("back\\slash", "back\\\\slash");
    assert_escaped("\x1b[31mred", "\\x1B[31mred");
    assert_escaped("del\x7f", "del\\x7F");
    assert_escaped("csi\xc2\x9b"
                   "31m",
                   "csi\\xC2\\x9B31m"); /* C1 CSI, as UTF-8 */
    assert_escaped("bad\xc3\x28", "bad\\xC3(");
    assert_escaped("\xed\xa0\x80", "\\xED\\xA0\\x80");
    assert_escaped("\x01\x1f", "\\x01\\x1F");
    assert_escaped("", "");
}
END_TEST

/* Every event of the list is worded with its own number; none is worded
 * as nothing. */
START_TEST(event_text_names_each_event_of_the_list)
{
    ck_assert_str_eq(scep_event_text(SCEP_EVENT_NONE), "");
    ck_assert_str_eq(scep_event_text(SCEP_EVENT_FAILED_TO_LOAD), " (NDES event 2)");
    ck_assert_str_eq(scep_event_text(SCEP_EVENT_INVALID_PASSWORD), " (NDES event 29)");
    ck_assert_str_eq(scep_event_text(SCEP_EVENT_FAILED_DECRYPT_PASSWORD), " (NDES event 49)");
    ck_assert_str_eq(scep_event_text(3), "");
#define CHECK_EVENT_TEXT(name, id) ck_assert_str_eq(scep_event_text(name), " (NDES event " #id ")");
    SCEP_EVENTS(CHECK_EVENT_TEXT)
#undef CHECK_EVENT_TEXT
}
END_TEST

/* ----------------------------------------------------------------------
 * scep_read_private_file(): the one rule of files holding a key or a
 * password, both ways.
 */

static const char *write_file(apr_pool_t *p, const char *dir, const char *name, const char *text,
                              mode_t mode)
{
    const char *file = testutil_path(p, dir, name);
    FILE *f = fopen(file, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(file, mode), 0);
    return file;
}

/* Read under the private rule with room for max bytes: the status, and
 * *why when refused. */
static apr_status_t read_private(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                                 const char **why)
{
    apr_size_t len = 12345;
    apr_status_t rv = scep_read_private_file(p, file, max, data, &len, why);

    if (rv == APR_SUCCESS) {
        ck_assert_ptr_null(*why);
        ck_assert_uint_eq(len, strlen(*data));
    }
    else {
        ck_assert_ptr_null(*data);
        ck_assert_ptr_nonnull(*why);
        ck_assert_ptr_nonnull(strstr(*why, file));
    }
    return rv;
}

START_TEST(private_file_of_the_owner_alone_is_read)
{
    apr_pool_t *p;
    const char *dir, *why = "unset";
    char *data = NULL;
    apr_size_t len = 0;

    apr_pool_create(&p, NULL);
    dir = testutil_tempdir(p);
    ck_assert_int_eq(read_private(p, write_file(p, dir, "rw", "secret\n", 0600), 7, &data, &why),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "secret\n");
    ck_assert_int_eq(read_private(p, write_file(p, dir, "ro", "key", 0400), 3, &data, &why),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "key");
    /* the plain reader takes any mode */
    ck_assert_int_eq(
        scep_read_file(p, write_file(p, dir, "public", "cert", 0644), 4, &data, &len, &why),
        APR_SUCCESS);
    ck_assert_str_eq(data, "cert");
    apr_pool_destroy(p);
}
END_TEST

START_TEST(private_file_open_to_group_or_others_is_refused)
{
    apr_pool_t *p;
    const char *dir, *why = NULL;
    char *data = NULL;
    const mode_t modes[] = { 0640, 0604, 0660, 0644, 0620, 0602, 0610, 0601 };
    apr_size_t i;

    apr_pool_create(&p, NULL);
    dir = testutil_tempdir(p);
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        const char *file =
            write_file(p, dir, apr_psprintf(p, "loose-%o", (unsigned)modes[i]), "secret", modes[i]);
        const char *mode = apr_psprintf(p, "(mode %04o)", (unsigned)modes[i]);

        ck_assert_int_eq(read_private(p, file, 64, &data, &why), APR_EACCES);
        ck_assert_msg(strstr(why, mode), "'%s' does not say %s", why, mode);
        ck_assert_ptr_nonnull(strstr(why, apr_pstrcat(p, "chmod 600 ", file, NULL)));
    }
    apr_pool_destroy(p);
}
END_TEST

START_TEST(private_file_missing_large_or_not_regular_is_refused)
{
    apr_pool_t *p;
    const char *dir, *why = NULL;
    char *data = NULL;

    apr_pool_create(&p, NULL);
    dir = testutil_tempdir(p);
    ck_assert(
        APR_STATUS_IS_ENOENT(read_private(p, testutil_path(p, dir, "missing"), 64, &data, &why)));
    ck_assert_int_eq(read_private(p, write_file(p, dir, "large", "12345678", 0600), 7, &data, &why),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "larger than 7 bytes"));
    ck_assert_int_eq(read_private(p, dir, 64, &data, &why), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "not a regular file"));
    apr_pool_destroy(p);
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
    tc = tcase_create("csr_at_rest");
    tcase_add_test(tc, csr_at_rest_keeps_no_challenge_password);
    tcase_add_test(tc, csr_at_rest_drops_every_challenge_password);
    tcase_add_test(tc, csr_sealed_opens_with_the_ra_key_alone);
    suite_add_tcase(s, tc);
    tc = tcase_create("escape");
    tcase_add_test(tc, utf8_characters_are_checked_strictly);
    tcase_add_test(tc, utf8_text_replaces_stray_bytes);
    tcase_add_test(tc, escape_text_leaves_nothing_a_terminal_or_a_line_reader_acts_on);
    suite_add_tcase(s, tc);
    tc = tcase_create("events");
    tcase_add_test(tc, event_text_names_each_event_of_the_list);
    suite_add_tcase(s, tc);
    tc = tcase_create("private_file");
    tcase_add_test(tc, private_file_of_the_owner_alone_is_read);
    tcase_add_test(tc, private_file_open_to_group_or_others_is_refused);
    tcase_add_test(tc, private_file_missing_large_or_not_regular_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
