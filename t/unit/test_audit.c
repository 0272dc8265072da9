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

/* The audit log's lines (scep_audit.c): what each decision writes, parsed
 * back and checked against the certificate, the CSR and the records'
 * row; hostile text escaped; whole lines from several processes. The
 * module's side is tested end to end (t/integration/test_audit.py). */

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include <apr_strings.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "scep_audit.h"
#include "testutil.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* The keys of every line, in their order. */
static const char *const keys[] = { "time",
                                    "event",
                                    "server",
                                    "transaction_id",
                                    "message_type",
                                    "subject",
                                    "subject_alt_names",
                                    "serial",
                                    "template",
                                    "client_address",
                                    "user",
                                    "fail_info",
                                    "fail_info_text",
                                    "reason",
                                    NULL };

/* rec's line, checked to be one line of ASCII ending in its newline with
 * the keys in order, parsed back. */
static json_t *line_of(const scep_audit_record_t *rec)
{
    apr_size_t len = 0, i;
    const char *line = scep_audit_line(pool, rec, &len);
    json_error_t err;
    json_t *doc;
    const char *key;
    void *iter;
    int k = 0;

    ck_assert_ptr_nonnull(line);
    ck_assert_uint_eq(strlen(line), len);
    ck_assert_msg(len > 1 && line[len - 1] == '\n', "ends in a newline: %s", line);
    for (i = 0; i + 1 < len; i++) {
        /* DEL passes as it is (jansson): terminals ignore it */
        ck_assert_msg(line[i] >= 0x20 && line[i] <= 0x7f, "byte %u at %u of %s is not ASCII text",
                      (unsigned)(unsigned char)line[i], (unsigned)i, line);
    }
    doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(doc != NULL, "not JSON (%s): %s", err.text, line);
    for (iter = json_object_iter(doc); iter && keys[k]; iter = json_object_iter_next(doc, iter)) {
        key = json_object_iter_key(iter);
        ck_assert_str_eq(key, keys[k++]);
    }
    ck_assert_ptr_null(keys[k]);
    return doc;
}

static const char *text_at(json_t *doc, const char *key)
{
    json_t *value = json_object_get(doc, key);

    ck_assert_msg(json_is_string(value), "%s is not a string", key);
    return json_string_value(value);
}

static void null_at(json_t *doc, const char *key)
{
    ck_assert_msg(json_is_null(json_object_get(doc, key)), "%s is not null", key);
}

static void names_are(json_t *doc, const char *const *names)
{
    json_t *list = json_object_get(doc, "subject_alt_names");
    size_t i = 0;

    ck_assert(json_is_array(list));
    for (; names[i]; i++) {
        ck_assert_uint_gt(json_array_size(list), i);
        ck_assert_str_eq(json_string_value(json_array_get(list, i)), names[i]);
    }
    ck_assert_uint_eq(json_array_size(list), i);
}

static X509_REQ *device_csr(void)
{
    return testutil_csr(
        pool, testutil_ec_key(pool), "/CN=device-7/O=Audit Tests", "critical,digitalSignature",
        NULL, "DNS:device-7.example,IP:192.0.2.70,email:ops@example.com", "0123456789ABCDEF");
}

static scep_request_t request(int type, X509_REQ *csr)
{
    scep_request_t req = { 0 };

    req.message_type = type;
    req.transaction_id = "4A6F3C2B";
    req.csr = csr;
    return req;
}

static const char *const device_names[] = { "DNS:device-7.example", "IP Address:192.0.2.70",
                                            "email:ops@example.com", NULL };

START_TEST(issued_names_the_certificate_the_device_got)
{
    X509_REQ *csr = device_csr();
    X509 *cert = testutil_issue(pool, csr, NULL, 30);
    scep_request_t req = request(SCEP_MSG_PKCSREQ, csr);
    scep_outcome_t outcome = {
        SCEP_OUTCOME_ISSUED, cert, NULL, { SCEP_FAIL_NONE, 0, NULL }, "Workstation"
    };
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, NULL, NULL };
    scep_audit_record_t rec = { 0 };
    json_t *doc;

    ck_assert(scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    rec.time = apr_time_from_sec(1700000000) + 123456;
    rec.server = "scep.example";
    rec.client_address = "192.0.2.7";
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "time"), "2023-11-14T22:13:20.123Z");
    ck_assert_str_eq(text_at(doc, "event"), "issued");
    ck_assert_str_eq(text_at(doc, "server"), "scep.example");
    ck_assert_str_eq(text_at(doc, "transaction_id"), "4A6F3C2B");
    ck_assert_str_eq(text_at(doc, "message_type"), "PKCSReq");
    ck_assert_str_eq(text_at(doc, "subject"), scep_name_text(pool, X509_get_subject_name(cert)));
    names_are(doc, device_names);
    ck_assert_str_eq(text_at(doc, "serial"), scep_serial_hex(pool, X509_get0_serialNumber(cert)));
    ck_assert_str_eq(text_at(doc, "template"), "Workstation");
    ck_assert_str_eq(text_at(doc, "client_address"), "192.0.2.7");
    null_at(doc, "user");
    null_at(doc, "fail_info");
    null_at(doc, "fail_info_text");
    null_at(doc, "reason");
    json_decref(doc);
}
END_TEST

START_TEST(refused_says_fail_info_and_text)
{
    X509_REQ *csr = device_csr();
    scep_request_t req = request(SCEP_MSG_RENEWALREQ, csr);
    scep_outcome_t outcome = { SCEP_OUTCOME_REFUSED,
                               NULL,
                               NULL,
                               { SCEP_FAIL_BAD_MESSAGE_CHECK, 29, "the password is wrong" },
                               NULL };
    scep_reply_t reply = { SCEP_STATUS_FAILURE, SCEP_FAIL_BAD_MESSAGE_CHECK,
                           "the password is wrong", NULL, NULL };
    scep_audit_record_t rec = { 0 };
    json_t *doc;

    ck_assert(scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "event"), "refused");
    ck_assert_str_eq(text_at(doc, "message_type"), "RenewalReq");
    ck_assert_str_eq(text_at(doc, "subject"), scep_name_text(pool, X509_REQ_get_subject_name(csr)));
    names_are(doc, device_names);
    null_at(doc, "serial");
    null_at(doc, "template");
    ck_assert_str_eq(text_at(doc, "fail_info"), "badMessageCheck");
    ck_assert_str_eq(text_at(doc, "fail_info_text"), "the password is wrong");
    json_decref(doc);
}
END_TEST

START_TEST(line_never_holds_the_challenge)
{
    scep_request_t req = request(SCEP_MSG_PKCSREQ, device_csr());
    scep_outcome_t outcome = {
        SCEP_OUTCOME_HELD, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, "Manual"
    };
    scep_reply_t reply = { SCEP_STATUS_PENDING, SCEP_FAIL_NONE, NULL, NULL, NULL };
    scep_audit_record_t rec = { 0 };
    apr_size_t len;
    const char *line;

    req.challenge = "0123456789ABCDEF";
    ck_assert(scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    ck_assert_int_eq(rec.event, SCEP_AUDIT_HELD);
    line = scep_audit_line(pool, &rec, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_null(strstr(line, "0123456789ABCDEF"));
    ck_assert_ptr_nonnull(strstr(line, "\"event\":\"held\""));
    ck_assert_ptr_nonnull(strstr(line, "\"template\":\"Manual\""));
}
END_TEST

START_TEST(certpoll_names_the_subject_polled_for)
{
    scep_request_t req = request(SCEP_MSG_CERTPOLL, NULL);
    scep_outcome_t outcome = { SCEP_OUTCOME_HELD, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, NULL };
    scep_reply_t reply = { SCEP_STATUS_PENDING, SCEP_FAIL_NONE, NULL, NULL, NULL };
    scep_audit_record_t rec = { 0 };
    json_t *doc;

    req.subject = testutil_name(pool, "/CN=polling device");
    ck_assert(scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "event"), "held");
    ck_assert_str_eq(text_at(doc, "message_type"), "CertPoll");
    ck_assert_str_eq(text_at(doc, "subject"), "CN=polling device");
    null_at(doc, "subject_alt_names");
    null_at(doc, "fail_info");
    json_decref(doc);
}
END_TEST

START_TEST(reads_and_faults_are_no_decisions)
{
    scep_request_t req = request(SCEP_MSG_GETCERT, NULL);
    scep_outcome_t outcome = { SCEP_OUTCOME_ISSUED, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, NULL };
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, NULL, NULL };
    scep_audit_record_t rec = { 0 };

    ck_assert(!scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    req.message_type = SCEP_MSG_GETCRL;
    ck_assert(!scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    req.message_type = SCEP_MSG_PKCSREQ;
    outcome.kind = SCEP_OUTCOME_FAULT;
    ck_assert(!scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    /* a message of an unknown type refused: audited, named by its number */
    req.message_type = 99;
    outcome.kind = SCEP_OUTCOME_REFUSED;
    reply.status = SCEP_STATUS_FAILURE;
    reply.fail_info = SCEP_FAIL_BAD_REQUEST;
    ck_assert(scep_audit_of_outcome(pool, &req, &outcome, &reply, &rec));
    ck_assert_str_eq(rec.message_type, "99");
    ck_assert_str_eq(scep_fail_info_name(rec.fail_info), "badRequest");
}
END_TEST

/* What a device controls (its names, its transactionID) may hold quotes,
 * backslashes, newlines, escape sequences for a terminal, bytes that are
 * not UTF-8: a line stays one line of JSON, and the text comes back as
 * sent but for the stray bytes (U+FFFD). */
START_TEST(hostile_text_is_escaped)
{
    scep_audit_record_t rec = { 0 };
    json_t *doc;

    rec.event = SCEP_AUDIT_REFUSED;
    rec.fail_info = SCEP_FAIL_BAD_REQUEST;
    rec.transaction_id = "tx\"}\n{\"event\":\"issued";
    rec.subject = "CN=a\"b\\c\r\nd\x01\x1b[31m\x7f\xc2\x85 e\xff\xfe";
    rec.san = apr_array_make(pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(rec.san, const char *) = "DNS:x\ny";
    rec.fail_info_text = "bad \xe2\x80\x8b name";
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "transaction_id"), "tx\"}\n{\"event\":\"issued");
    ck_assert_str_eq(text_at(doc, "event"), "refused");
    ck_assert_str_eq(text_at(doc, "subject"),
                     "CN=a\"b\\c\r\nd\x01\x1b[31m\x7f\xc2\x85 e\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(doc, "subject_alt_names"), 0)),
        "DNS:x\ny");
    ck_assert_str_eq(text_at(doc, "fail_info_text"), "bad \xe2\x80\x8b name");
    json_decref(doc);
}
END_TEST

START_TEST(password_line_says_who_not_which)
{
    scep_audit_record_t rec = { 0 };
    apr_size_t len;
    const char *line;
    json_t *doc;

    rec.event = SCEP_AUDIT_PASSWORD_ISSUED;
    rec.fail_info = SCEP_FAIL_NONE;
    rec.user = "alice";
    rec.client_address = "198.51.100.4";
    rec.device = "serial-0042";
    rec.password_expires = apr_time_from_sec(1700003600);
    line = scep_audit_line(pool, &rec, &len);
    ck_assert_ptr_nonnull(line);
    doc = json_loadb(line, len, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(text_at(doc, "event"), "password_issued");
    ck_assert_str_eq(text_at(doc, "user"), "alice");
    ck_assert_str_eq(text_at(doc, "device"), "serial-0042");
    ck_assert_str_eq(text_at(doc, "expires"), "2023-11-14T23:13:20Z");
    ck_assert_ptr_null(json_object_get(doc, "password"));
    ck_assert_uint_eq(json_object_size(doc), 16);
    json_decref(doc);
    /* the single password does not expire */
    rec.password_expires = 0;
    rec.device = NULL;
    doc = json_loads(scep_audit_line(pool, &rec, &len), 0, NULL);
    null_at(doc, "expires");
    null_at(doc, "device");
    json_decref(doc);
}
END_TEST

/* A manager's decision names the request as the records hold it: the
 * certificate's names once issued, the CSR's while held, the recorded text
 * once decided (the CSR is wiped). */
START_TEST(records_row_gives_the_names)
{
    X509_REQ *csr = device_csr();
    X509 *cert = testutil_issue(pool, csr, NULL, 30);
    scep_txn_t txn = { 0 };
    scep_audit_record_t rec = { 0 };
    scep_cert_record_t crec = { 0 };
    json_t *doc;

    txn.transaction_id = "T1";
    txn.message_type = SCEP_MSG_PKCSREQ;
    txn.subject = "CN=device-7, O=Audit Tests";
    txn.template_name = "Manual";
    txn.san = "DNS:from-text.example, IP Address:192.0.2.71";
    txn.csr_pem = scep_csr_pem_at_rest(pool, csr);
    scep_audit_of_txn(pool, &txn, &rec);
    rec.event = SCEP_AUDIT_DENIED;
    rec.user = "bob";
    rec.reason = "not ours";
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "event"), "denied");
    ck_assert_str_eq(text_at(doc, "transaction_id"), "T1");
    ck_assert_str_eq(text_at(doc, "message_type"), "PKCSReq");
    ck_assert_str_eq(text_at(doc, "template"), "Manual");
    ck_assert_str_eq(text_at(doc, "user"), "bob");
    ck_assert_str_eq(text_at(doc, "reason"), "not ours");
    names_are(doc, device_names);
    null_at(doc, "fail_info");
    json_decref(doc);

    txn.csr_pem = NULL;
    scep_audit_of_txn(pool, &txn, &rec);
    doc = line_of(&rec);
    {
        static const char *const from_text[] = { "DNS:from-text.example", "IP Address:192.0.2.71",
                                                 NULL };
        names_are(doc, from_text);
    }
    json_decref(doc);

    crec.serial = scep_serial_hex(pool, X509_get0_serialNumber(cert));
    crec.cert_pem = scep_cert_pem(pool, cert);
    crec.subject = "CN=device-7, O=Audit Tests";
    crec.transaction_id = "T1";
    memset(&rec, 0, sizeof(rec));
    scep_audit_of_cert(pool, &crec, &rec);
    rec.event = SCEP_AUDIT_REVOKED;
    rec.reason = "keyCompromise";
    doc = line_of(&rec);
    ck_assert_str_eq(text_at(doc, "event"), "revoked");
    ck_assert_str_eq(text_at(doc, "serial"), crec.serial);
    ck_assert_str_eq(text_at(doc, "transaction_id"), "T1");
    ck_assert_str_eq(text_at(doc, "reason"), "keyCompromise");
    names_are(doc, device_names);
    json_decref(doc);
}
END_TEST

#define WRITERS 6
#define LINES_EACH 300

/* Processes appending long lines (beyond PIPE_BUF and a page) to one file
 * opened once with O_APPEND, as the children of a server do: every line
 * comes out whole. */
START_TEST(processes_append_whole_lines)
{
    const char *file = testutil_path(pool, testutil_tempdir(pool), "audit.log");
    apr_file_t *f = NULL;
    pid_t pids[WRITERS];
    int i, n, status, counts[WRITERS] = { 0 };
    char *data = NULL, *line, *state;
    apr_size_t len;
    const char *why = NULL;

    ck_assert_int_eq(apr_file_open(&f, file, APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                                   APR_FPROT_UREAD | APR_FPROT_UWRITE, pool),
                     APR_SUCCESS);
    for (i = 0; i < WRITERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            scep_audit_record_t rec = { 0 };
            char *subject = apr_palloc(pool, 9000);
            const char *text;

            memset(subject, 'a' + i, 8999);
            subject[8999] = '\0';
            rec.event = SCEP_AUDIT_ISSUED;
            rec.fail_info = SCEP_FAIL_NONE;
            rec.subject = subject;
            for (n = 0; n < LINES_EACH; n++) {
                rec.transaction_id = apr_psprintf(pool, "%d", i);
                text = scep_audit_line(pool, &rec, &len);
                if (!text || scep_audit_append(f, text, len) != APR_SUCCESS) {
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(scep_read_file(pool, file, (apr_size_t)64 * 1024 * 1024, &data, &len, &why),
                     APR_SUCCESS);
    for (line = apr_strtok(data, "\n", &state); line; line = apr_strtok(NULL, "\n", &state)) {
        json_t *doc = json_loads(line, 0, NULL);
        const char *subject;

        ck_assert_msg(doc != NULL, "a line is not whole JSON");
        ck_assert(scep_parse_int(text_at(doc, "transaction_id"), 0, WRITERS - 1, &n));
        subject = text_at(doc, "subject");
        ck_assert_uint_eq(strlen(subject), 8999);
        ck_assert_uint_eq(strspn(subject, (char[]){ (char)('a' + n), '\0' }), 8999);
        counts[n]++;
        json_decref(doc);
    }
    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(counts[i], LINES_EACH);
    }
}
END_TEST

Suite *scep_audit_suite(void);

Suite *scep_audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = testutil_case(s, "line", setup, teardown);

    tcase_add_test(tc, issued_names_the_certificate_the_device_got);
    tcase_add_test(tc, refused_says_fail_info_and_text);
    tcase_add_test(tc, line_never_holds_the_challenge);
    tcase_add_test(tc, certpoll_names_the_subject_polled_for);
    tcase_add_test(tc, reads_and_faults_are_no_decisions);
    tcase_add_test(tc, hostile_text_is_escaped);
    tcase_add_test(tc, password_line_says_who_not_which);
    tcase_add_test(tc, records_row_gives_the_names);
    tc = testutil_case(s, "append", setup, teardown);
    tcase_add_test(tc, processes_append_whole_lines);
    return s;
}
