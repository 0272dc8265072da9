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

/* The webhooks' HTTP client (scep_webhook.c) and the challenge method
 * webhook (scep_challenge_webhook.c): the signature, the URL rule, the
 * secret's decoding, the request's JSON, the answer's reading, and posts
 * to a one-shot HTTP server forked on loopback (what arrived, time and
 * size limits, refusals and faults). */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include <apr_strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "scep_challenge_webhook.h"
#include "scep_webhook.h"
#include "testutil.h"

static apr_pool_t *pool;
static const char *last_log; /* the newest line logged */
static pid_t server_pid;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    last_log = NULL;
    server_pid = 0;
}

static void teardown(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    apr_pool_destroy(pool);
}

static void keep_log(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    last_log = apr_pstrdup(pool, msg);
}

/* ---- the signature, the URL rule, the secret ---- */

START_TEST(signature_is_hex_hmac_sha256_of_the_body)
{
    /* RFC 4231, test case 2. */
    const char *sig = scep_webhook_signature(pool, (const unsigned char *)"Jefe", 4,
                                             "what do ya want for nothing?", 28);

    ck_assert_str_eq(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(secret_is_the_decoded_base64)
{
    const unsigned char *key = NULL;
    apr_size_t len = 0;

    ck_assert_int_eq(scep_webhook_secret_decode(pool, "  SmVmZQ==\n", &key, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(memcmp(key, "Jefe", 4), 0);
    ck_assert_int_eq(scep_webhook_secret_decode(pool, "not base64!", &key, &len), APR_EINVAL);
    ck_assert_int_eq(scep_webhook_secret_decode(pool, " \n", &key, &len), APR_EINVAL);
}
END_TEST

START_TEST(url_rule_https_or_loopback_http)
{
    static const char *const good[] = {
        "https://mdm.example.com/scep/check",
        "https://10.0.0.1:8443/",
        "http://127.0.0.1:8080/check",
        "http://127.1.2.3/",
        "http://[::1]:9000/",
        "http://localhost/check",
    };
    static const char *const bad[] = {
        "http://mdm.example.com/check",
        "http://10.0.0.1/",
        "http://127.0.0.1.example.com/",
        "http://[::2]/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "mdm.example.com/check",
        "",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ck_assert_msg(!scep_webhook_check_url(pool, good[i]), "%s refused: %s", good[i],
                      scep_webhook_check_url(pool, good[i]));
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(scep_webhook_check_url(pool, bad[i]) != NULL, "%s accepted", bad[i]);
    }
}
END_TEST

START_TEST(create_refuses_what_cannot_work)
{
    scep_webhook_conf_t conf = { 0 };
    scep_webhook_t *wh = NULL;
    const char *why = NULL, *dir = testutil_tempdir(pool);
    EVP_PKEY *key = testutil_ec_key(pool);
    X509 *cert = testutil_cert(pool, "/CN=client", key, NULL, 0, 0, NULL, NULL);

    conf.url = "http://mdm.example.com/";
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "loopback"));
    conf.url = "https://mdm.example.com/";
    conf.client_cert = "/nonexistent.crt";
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "key"));
    conf.client_key = "/nonexistent.key";
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent.crt"));
    /* a key file that others may read is refused, naming the fix */
    conf.client_cert = testutil_write_cert(pool, dir, "client.crt", cert);
    conf.client_key = testutil_write_key(pool, dir, "client.key", key);
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_SUCCESS);
    ck_assert_int_eq(chmod(conf.client_key, 0644), 0);
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "client.key"));
    ck_assert_ptr_nonnull(strstr(why, "600"));
    conf.client_cert = conf.client_key = NULL;
    conf.timeout = SCEP_WEBHOOK_MAX_TIMEOUT + 1;
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_EINVAL);
    conf.timeout = 0;
    ck_assert_int_eq(scep_webhook_create(pool, &conf, &wh, &why), APR_SUCCESS);
    ck_assert_str_eq(scep_webhook_url(wh), "https://mdm.example.com/");
}
END_TEST

/* ---- the request's JSON ---- */

static scep_challenge_facts_t facts_of(X509_REQ *csr, const char *challenge)
{
    scep_challenge_facts_t facts = { 0 };

    facts.csr = csr;
    facts.challenge = challenge;
    facts.transaction_id = "4C1F00D";
    facts.message_type = "PKCSReq";
    facts.template_name = "IPSECIntermediateOffline";
    facts.client_addr = "192.0.2.7";
    facts.key_usage = -1;
    return facts;
}

static json_t *body_of(const scep_challenge_facts_t *facts)
{
    char *body = scep_challenge_webhook_body(pool, "scep.example.com", facts);
    json_error_t error;
    json_t *doc;

    ck_assert_ptr_nonnull(body);
    doc = json_loads(body, 0, &error);
    ck_assert_msg(json_is_object(doc), "not a JSON object: %s", error.text);
    return doc;
}

static const char *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    ck_assert_msg(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

START_TEST(body_has_step_ca_fields_and_ours)
{
    X509_REQ *csr = testutil_csr(pool, testutil_rsa_key(pool), "/CN=device-1/O=Example/OU=Fleet",
                                 NULL, NULL, "DNS:device-1.example.com,IP:192.0.2.7", "s3cret");
    scep_challenge_facts_t facts = facts_of(csr, "s3cret");
    json_t *doc = body_of(&facts), *req, *subject;
    unsigned char *der = NULL, raw[4096];
    int der_len = i2d_X509_REQ(csr, &der), raw_len;
    const char *b64;

    ck_assert_str_eq(member(doc, "provisionerName"), "scep.example.com");
    ck_assert_str_eq(member(doc, "scepChallenge"), "s3cret");
    ck_assert_str_eq(member(doc, "scepTransactionID"), "4C1F00D");
    ck_assert_str_eq(member(doc, "scepMessageType"), "PKCSReq");
    ck_assert_str_eq(member(doc, "template"), "IPSECIntermediateOffline");
    ck_assert_str_eq(member(doc, "clientAddress"), "192.0.2.7");
    ck_assert_int_eq((int)strlen(member(doc, "timestamp")), 20);

    req = json_object_get(doc, "x509CertificateRequest");
    ck_assert(json_is_object(req));
    /* raw is the CSR's DER, byte for byte. */
    b64 = member(req, "raw");
    raw_len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
    raw_len -= (b64[strlen(b64) - 1] == '=') + (b64[strlen(b64) - 2] == '=');
    ck_assert_int_eq(raw_len, der_len);
    ck_assert_int_eq(memcmp(raw, der, (size_t)der_len), 0);
    OPENSSL_free(der);
    ck_assert_str_eq(member(req, "publicKeyAlgorithm"), "RSA");
    ck_assert_str_eq(member(req, "signatureAlgorithm"), "SHA256-RSA");
    ck_assert(strlen(member(req, "publicKey")) > 300);
    subject = json_object_get(req, "subject");
    ck_assert_str_eq(member(subject, "commonName"), "device-1");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(subject, "organization"), 0)),
                     "Example");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(subject, "organizationalUnit"), 0)),
        "Fleet");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(req, "dnsNames"), 0)),
                     "device-1.example.com");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(req, "ipAddresses"), 0)),
                     "192.0.2.7");
    ck_assert_uint_eq(json_array_size(json_object_get(req, "emailAddresses")), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(req, "uris")), 0);
    json_decref(doc);
}
END_TEST

START_TEST(body_without_challenge_or_san)
{
    X509_REQ *csr =
        testutil_csr(pool, testutil_ec_key(pool), "/CN=device-2", NULL, NULL, NULL, NULL);
    scep_challenge_facts_t facts = facts_of(csr, NULL);
    json_t *doc, *req;

    facts.client_addr = NULL;
    doc = body_of(&facts);
    req = json_object_get(doc, "x509CertificateRequest");
    ck_assert_str_eq(member(doc, "scepChallenge"), "");
    ck_assert(json_is_null(json_object_get(doc, "clientAddress")));
    ck_assert_str_eq(member(req, "publicKeyAlgorithm"), "ECDSA");
    ck_assert_str_eq(member(req, "signatureAlgorithm"), "ECDSA-SHA256");
    ck_assert_uint_eq(json_array_size(json_object_get(req, "dnsNames")), 0);
    json_decref(doc);
}
END_TEST

START_TEST(body_of_text_that_is_not_utf8)
{
    X509_REQ *csr =
        testutil_csr(pool, testutil_ec_key(pool), "/CN=device-3", NULL, NULL, NULL, NULL);
    scep_challenge_facts_t facts = facts_of(csr, "bad\xff");
    json_t *doc = body_of(&facts);

    /* Sent, with U+FFFD for the byte that is not UTF-8. */
    ck_assert_str_eq(member(doc, "scepChallenge"), "bad\xef\xbf\xbd");
    json_decref(doc);
}
END_TEST

/* ---- the answer's reading ---- */

static int verdict_of(int status, const char *body)
{
    scep_webhook_answer_t answer = { status, "application/json", body, strlen(body) };
    const char *why = NULL;
    int verdict = scep_challenge_webhook_verdict(pool, &answer, &why);

    ck_assert(verdict >= 0 || why != NULL);
    return verdict;
}

START_TEST(verdict_only_of_2xx_and_boolean_allow)
{
    ck_assert_int_eq(verdict_of(200, "{\"allow\": true}"), 1);
    ck_assert_int_eq(verdict_of(200, "{\"allow\":false,\"data\":{\"x\":1}}"), 0);
    ck_assert_int_eq(verdict_of(201, "{\"data\":{},\"allow\":true}"), 1);
    ck_assert_int_eq(verdict_of(500, "{\"allow\": true}"), -1);
    ck_assert_int_eq(verdict_of(401, "{\"allow\": true}"), -1);
    ck_assert_int_eq(verdict_of(302, "{\"allow\": true}"), -1);
    ck_assert_int_eq(verdict_of(200, "{\"allow\": \"true\"}"), -1);
    ck_assert_int_eq(verdict_of(200, "{\"allow\": 1}"), -1);
    ck_assert_int_eq(verdict_of(200, "{}"), -1);
    ck_assert_int_eq(verdict_of(200, "[true]"), -1);
    ck_assert_int_eq(verdict_of(200, "{\"allow\": true"), -1);
    ck_assert_int_eq(verdict_of(200, ""), -1);
    ck_assert_int_eq(verdict_of(200, "allow"), -1);
}
END_TEST

/* ---- posts to a one-shot server ---- */

/* What the server does with the one request it reads. */
typedef enum {
    ECHO,   /* the request as the answer's body */
    ANSWER, /* the test's answer */
    SILENT, /* no answer */
    REUSE   /* the test's answer to two requests on the one connection it accepts */
} server_mode_t;

/* Reads a request: the headers, then Content-Length bytes of body. */
static apr_size_t read_request(int fd, char *buf, apr_size_t cap)
{
    apr_size_t len = 0;
    char *end = NULL, *cl;
    ssize_t n;

    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0) {
        len += (apr_size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        cl = strcasestr(buf, "Content-Length: ");
        if (end && cl && len >= (apr_size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10)) {
            break;
        }
    }
    return len;
}

/* Answers one request on fd; keep_alive: without closing. */
static void answer_one(int fd, server_mode_t mode, int status, const char *answer)
{
    char req[65536], head[256];
    apr_size_t len = read_request(fd, req, sizeof(req));
    const char *body = mode == ECHO ? req : answer;
    apr_size_t body_len = mode == ECHO ? len : strlen(answer);

    if (mode == SILENT) {
        sleep(30);
    }
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
             status, body_len, mode == REUSE ? "" : "Connection: close\r\n");
    if (write(fd, head, strlen(head)) < 0 || write(fd, body, body_len) < 0) {
        _exit(1);
    }
}

static void serve_one(int lfd, server_mode_t mode, int status, const char *answer)
{
    int fd = accept(lfd, NULL, NULL);

    answer_one(fd, mode, status, answer);
    if (mode == REUSE) {
        /* no second accept: a second connection would get no answer */
        answer_one(fd, mode, status, answer);
    }
    close(fd);
    _exit(0);
}

/* A server for one request on 127.0.0.1, forked; its URL. */
static const char *server(server_mode_t mode, int status, const char *answer)
{
    struct sockaddr_in addr = { 0 };
    socklen_t len = sizeof(addr);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        serve_one(lfd, mode, status, answer);
    }
    close(lfd);
    return apr_psprintf(pool, "http://127.0.0.1:%d/check", ntohs(addr.sin_port));
}

/* A port nothing listens on (bound, never listened, closed). */
static const char *closed_url(void)
{
    struct sockaddr_in addr = { 0 };
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return apr_psprintf(pool, "http://127.0.0.1:%d/check", ntohs(addr.sin_port));
}

static scep_webhook_t *webhook_of(const char *url, int timeout, apr_size_t limit)
{
    scep_webhook_conf_t conf = { 0 };
    scep_webhook_t *wh = NULL;
    const char *why = NULL;

    conf.url = url;
    conf.what = "test webhook";
    conf.id = "webhook-id-1";
    conf.secret = (const unsigned char *)"Jefe";
    conf.secret_len = 4;
    conf.timeout = timeout;
    conf.answer_limit = limit;
    conf.log = keep_log;
    ck_assert_msg(scep_webhook_create(pool, &conf, &wh, &why) == APR_SUCCESS, "%s", why);
    return wh;
}

START_TEST(post_sends_signed_json)
{
    scep_webhook_t *wh = webhook_of(server(ECHO, 200, NULL), 10, 0);
    scep_webhook_answer_t answer;
    const char *body = "{\"hello\":\"world\"}";
    const char *sig =
        scep_webhook_signature(pool, (const unsigned char *)"Jefe", 4, body, strlen(body));

    ck_assert_int_eq(scep_webhook_post(wh, pool, body, strlen(body), &answer), APR_SUCCESS);
    ck_assert_int_eq(answer.status, 200);
    ck_assert_str_eq(answer.content_type, "application/json");
    ck_assert_ptr_nonnull(strstr(answer.body, "POST /check HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strcasestr(answer.body, "\r\nContent-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strcasestr(answer.body, "\r\nX-Smallstep-Webhook-ID: webhook-id-1\r\n"));
    ck_assert_ptr_nonnull(strcasestr(
        answer.body, apr_pstrcat(pool, "\r\nX-Smallstep-Signature: ", sig, "\r\n", NULL)));
    ck_assert_ptr_null(strcasestr(answer.body, "Expect:"));
    ck_assert_str_eq(answer.body + answer.len - strlen(body), body);
    ck_assert_ptr_null(last_log);
    scep_webhook_process_exit(wh);
}
END_TEST

START_TEST(post_reuses_the_connection)
{
    scep_webhook_t *wh = webhook_of(server(REUSE, 200, "{\"allow\":true}"), 2, 0);
    scep_webhook_answer_t answer;

    ck_assert_int_eq(scep_webhook_post(wh, pool, "{}", 2, &answer), APR_SUCCESS);
    ck_assert_int_eq(answer.status, 200);
    ck_assert_int_eq(scep_webhook_post(wh, pool, "{}", 2, &answer), APR_SUCCESS);
    ck_assert_str_eq(answer.body, "{\"allow\":true}");
    ck_assert_ptr_null(last_log);
}
END_TEST

START_TEST(post_refuses_a_long_answer)
{
    scep_webhook_t *wh = webhook_of(server(ECHO, 200, NULL), 10, 64);
    scep_webhook_answer_t answer;

    ck_assert_int_eq(scep_webhook_post(wh, pool, "{}", 2, &answer), APR_ENOSPC);
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP651: test webhook http://127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(last_log, "longer than 64 bytes"));
}
END_TEST

START_TEST(post_gives_up_at_the_time_limit)
{
    scep_webhook_t *wh = webhook_of(server(SILENT, 200, "{}"), 1, 0);
    scep_webhook_answer_t answer;
    apr_time_t start = apr_time_now();

    ck_assert_int_eq(scep_webhook_post(wh, pool, "{}", 2, &answer), APR_TIMEUP);
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(3));
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP652: test webhook http://127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(last_log, "no answer within 1 s"));
}
END_TEST

START_TEST(post_to_nobody_is_a_fault)
{
    scep_webhook_t *wh = webhook_of(closed_url(), 5, 0);
    scep_webhook_answer_t answer;

    ck_assert_int_eq(scep_webhook_post(wh, pool, "{}", 2, &answer), APR_ECONNREFUSED);
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP653: test webhook http://127.0.0.1:"));
}
END_TEST

/* ---- the method ---- */

static scep_problem_t problem;

static apr_status_t check_with(const char *url)
{
    scep_challenge_check_t *cc =
        scep_challenge_webhook(pool, webhook_of(url, 5, 0), "scep.example.com", keep_log, NULL);
    X509_REQ *csr =
        testutil_csr(pool, testutil_ec_key(pool), "/CN=device-4", NULL, NULL, NULL, "pw");
    scep_challenge_facts_t facts = facts_of(csr, "pw");

    ck_assert_str_eq(cc->name, "webhook");
    memset(&problem, 0, sizeof(problem));
    return cc->check(cc, pool, &facts, &problem);
}

START_TEST(check_allowed)
{
    ck_assert_int_eq(check_with(server(ANSWER, 200, "{\"allow\":true}")), APR_SUCCESS);
    ck_assert_ptr_null(last_log);
}
END_TEST

START_TEST(check_refused)
{
    ck_assert_int_ne(check_with(server(ANSWER, 200, "{\"allow\":false}")), APR_SUCCESS);
    ck_assert_int_eq(problem.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(problem.event, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_str_eq(problem.text, "the challenge webhook refused the challenge");
    ck_assert_ptr_null(last_log);
}
END_TEST

START_TEST(check_fails_closed_on_500)
{
    ck_assert_int_ne(check_with(server(ANSWER, 500, "{\"allow\":true}")), APR_SUCCESS);
    ck_assert_int_eq(problem.fail_info, SCEP_FAIL_NONE);
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP031: challenge webhook http://127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(last_log, "transaction 4C1F00D: answered HTTP 500"));
    /* Never the challenge. */
    ck_assert_ptr_null(strstr(last_log, "pw"));
}
END_TEST

START_TEST(check_fails_closed_on_malformed_answer)
{
    ck_assert_int_ne(check_with(server(ANSWER, 200, "{\"allow\":\"yes\"}")), APR_SUCCESS);
    ck_assert_int_eq(problem.fail_info, SCEP_FAIL_NONE);
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP031: "));
    ck_assert_ptr_nonnull(strstr(last_log, "boolean \"allow\""));
}
END_TEST

START_TEST(check_fails_closed_when_unreachable)
{
    ck_assert_int_ne(check_with(closed_url()), APR_SUCCESS);
    ck_assert_int_eq(problem.fail_info, SCEP_FAIL_NONE);
    ck_assert_ptr_nonnull(strstr(last_log, "SCEP653: "));
}
END_TEST

Suite *scep_webhook_suite(void);
Suite *scep_webhook_suite(void)
{
    Suite *s = suite_create("webhook");
    TCase *tc = testutil_case(s, "client", setup, teardown);

    tcase_add_test(tc, signature_is_hex_hmac_sha256_of_the_body);
    tcase_add_test(tc, secret_is_the_decoded_base64);
    tcase_add_test(tc, url_rule_https_or_loopback_http);
    tcase_add_test(tc, create_refuses_what_cannot_work);
    tcase_add_test(tc, post_sends_signed_json);
    tcase_add_test(tc, post_reuses_the_connection);
    tcase_add_test(tc, post_refuses_a_long_answer);
    tcase_add_test(tc, post_gives_up_at_the_time_limit);
    tcase_add_test(tc, post_to_nobody_is_a_fault);
    tc = testutil_case(s, "challenge", setup, teardown);
    tcase_add_test(tc, body_has_step_ca_fields_and_ours);
    tcase_add_test(tc, body_without_challenge_or_san);
    tcase_add_test(tc, body_of_text_that_is_not_utf8);
    tcase_add_test(tc, verdict_only_of_2xx_and_boolean_allow);
    tcase_add_test(tc, check_allowed);
    tcase_add_test(tc, check_refused);
    tcase_add_test(tc, check_fails_closed_on_500);
    tcase_add_test(tc, check_fails_closed_on_malformed_answer);
    tcase_add_test(tc, check_fails_closed_when_unreachable);
    return s;
}
