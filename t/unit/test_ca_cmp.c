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
 * The CMP CA backend against OpenSSL's own CMP server in its mock mode
 * (`openssl cmp -port`), started on a free loopback port for each test
 * (fork and exec, no shell) and killed after it. The mock server returns
 * the fixed certificate -rsp_cert, so each test makes the one its case
 * needs.
 */

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <apr_strings.h>

#include <check.h>

#include <openssl/pem.h>

#include "scep_ca_cmp.h"
#include "testutil.h"

/* Makefile.am gives the absolute path; make tidy, which compiles without
 * the Makefile's flags, this one. */
#ifndef HELPERS_DIR
#define HELPERS_DIR "t/unit/helpers"
#endif

#define MAC_REF "scep-ra"
#define MAC_SECRET "a test secret"
#define MAC_SECRET_ARG "pass:a test secret"

static apr_pool_t *pool;
static char log_text[8192];

/* Everything the cases share: a CA, its RA and CMP signer, a device. */
typedef struct cmp_fixture_t {
    testutil_pki_t *pki;
    const char *srv_cert_file, *srv_key_file;
    EVP_PKEY *device_key;
    X509_REQ *csr;
    const char *device_cert_file; /* for the CSR's key, by the CA */
    int port;
    pid_t server;
    pid_t front; /* helpers/tls-forward, when a test runs it */
    /* what the test's issue_csr() and poll_ticket() gave */
    X509 *cert;
    scep_ca_ticket_t ticket;
    scep_problem_t prob;
} cmp_fixture_t;

static cmp_fixture_t fx;

static void collect_log(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton, (void)file, (void)line, (void)level;
    apr_cpystrn(log_text + strlen(log_text), msg, sizeof(log_text) - strlen(log_text) - 1);
    apr_cpystrn(log_text + strlen(log_text), "\n", sizeof(log_text) - strlen(log_text));
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int accepts(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* `openssl <args>` (a server on fx.port), its output in the test's
 * directory; returns once it accepts connections. Each server answers
 * every connection, so the probe costs it nothing but a closed socket. */
static void start_openssl(const char *const *args)
{
    const char *argv[40] = { "openssl" };
    const char *out = testutil_path(pool, fx.pki->dir, "server.log");
    int n = 1, tries;

    while (*args) {
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    fx.server = fork();
    ck_assert_int_ge(fx.server, 0);
    if (fx.server == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fd, 1);
        dup2(fd, 2);
        execvp("openssl", (char *const *)argv);
        _exit(127);
    }
    for (tries = 0; tries < 200 && !accepts(fx.port); tries++) {
        usleep(50000);
    }
    ck_assert_msg(tries < 200, "the test server did not start");
}

/* What the server wrote so far (its start included). */
static const char *server_output(void)
{
    static char text[16384];
    FILE *file = fopen(testutil_path(pool, fx.pki->dir, "server.log"), "r");
    size_t n;

    ck_assert_ptr_nonnull(file);
    n = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[n] = '\0';
    return text;
}

static void stop_server(void)
{
    if (fx.server > 0) {
        kill(fx.server, SIGTERM);
        waitpid(fx.server, NULL, 0);
    }
    fx.server = 0;
}

/* The mock CMP server: `openssl cmp -port <port> <args>`. */
static void start_server(const char *const *args)
{
    const char *argv[40] = { "cmp", "-port", apr_itoa(pool, fx.port) };
    int n = 3;

    while (*args) {
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    start_openssl(argv);
}

/* A listener on fx.port that keeps what one client sends (for up to two
 * seconds) in capture.bin and answers nothing. */
static const char *capture_request(void)
{
    const char *out = testutil_path(pool, fx.pki->dir, "capture.bin");
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(fx.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    fx.server = fork();
    ck_assert_int_ge(fx.server, 0);
    if (fx.server == 0) {
        struct timeval wait = { 2, 0 };
        int conn = accept(fd, NULL, NULL), file = open(out, O_WRONLY | O_CREAT, 0600);
        char buf[4096];
        ssize_t n;

        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
        while ((n = read(conn, buf, sizeof(buf))) > 0 && write(file, buf, n) == n) {
        }
        _exit(0);
    }
    close(fd);
    return out;
}

static void setup(void)
{
    EVP_PKEY *srv_key;

    apr_pool_create(&pool, NULL);
    log_text[0] = '\0';
    memset(&fx, 0, sizeof(fx));
    fx.pki = testutil_pki_create(pool);
    srv_key = testutil_ec_key(pool);
    fx.srv_cert_file =
        testutil_write_cert(pool, fx.pki->dir, "cmp-srv.crt",
                            testutil_cert(pool, "/CN=Test CMP server/O=mod_scep tests", srv_key,
                                          NULL, 0, 0, fx.pki->ca_cert, fx.pki->ca_key));
    fx.srv_key_file = testutil_write_key(pool, fx.pki->dir, "cmp-srv.key", srv_key);
    fx.device_key = testutil_ec_key(pool);
    fx.csr = testutil_csr(pool, fx.device_key, "/CN=device.example", NULL, NULL, NULL, NULL);
    fx.device_cert_file =
        testutil_write_cert(pool, fx.pki->dir, "device.crt",
                            testutil_cert(pool, "/CN=device.example", fx.device_key, NULL, 0, 0,
                                          fx.pki->ca_cert, fx.pki->ca_key));
    fx.port = free_port();
    fx.prob.fail_info = SCEP_FAIL_NONE;
}

static void teardown(void)
{
    if (fx.front > 0) {
        kill(fx.front, SIGTERM);
        waitpid(fx.front, NULL, 0);
    }
    stop_server();
    apr_pool_destroy(pool);
}

/* The backend with the RA's signature, trusting the test CA. */
static scep_ca_cmp_conf_t signing_conf(void)
{
    scep_ca_cmp_conf_t conf = { 0 };

    conf.server_url = apr_psprintf(pool, "http://127.0.0.1:%d/pkix/", fx.port);
    conf.ra_cert = fx.pki->ra_sign_cert;
    conf.ra_key = fx.pki->ra_sign_key;
    conf.trust_file = fx.pki->ca_cert_file;
    conf.ca_cert = fx.pki->ca_cert;
    conf.msg_timeout = 5;
    conf.total_timeout = 20;
    conf.log = collect_log;
    return conf;
}

static scep_ca_backend_t *backend(const scep_ca_cmp_conf_t *conf)
{
    const char *err = NULL;
    scep_ca_backend_t *ca = scep_ca_cmp(pool, conf, &err);

    ck_assert_msg(ca != NULL, "%s", err);
    return ca;
}

/* The mock server protecting its answers with the MAC secret, and the
 * backend's configuration with secret (instead of the RA's signature). */
static scep_ca_cmp_conf_t mac_server_and_conf(const char *secret)
{
    const char *const args[] = {
        "-srv_ref", MAC_REF, "-srv_secret", MAC_SECRET_ARG, "-rsp_cert", fx.device_cert_file, NULL
    };
    scep_ca_cmp_conf_t conf = signing_conf();

    start_server(args);
    conf.ra_cert = NULL;
    conf.ra_key = NULL;
    conf.trust_file = NULL;
    conf.mac_ref = MAC_REF;
    conf.mac_secret = secret;
    return conf;
}

/* The certificate file of a CA that is not the test's. */
static const char *other_ca_file(void)
{
    EVP_PKEY *key = testutil_ec_key(pool);

    return testutil_write_cert(pool, fx.pki->dir, "other-ca.crt",
                               testutil_cert(pool, "/CN=Other CA", key, NULL, 0, 0, NULL, NULL));
}

/* ca->issue() of the device's CSR under tmpl, its answer in fx. */
static apr_status_t issue_csr(scep_ca_backend_t *ca, const scep_template_t *tmpl)
{
    return ca->issue(ca, pool, fx.csr, tmpl, &fx.cert, &fx.ticket, &fx.prob);
}

/* ca->poll() of fx.ticket, its answer in fx. */
static apr_status_t poll_ticket(scep_ca_backend_t *ca, const scep_template_t *tmpl)
{
    return ca->poll(ca, pool, fx.csr, tmpl, &fx.ticket, &fx.cert, &fx.prob);
}

static void signing_server(const char *rsp_cert, const char *const *more)
{
    const char *argv[32] = { "-srv_cert",    fx.srv_cert_file,     "-srv_key",  fx.srv_key_file,
                             "-srv_trusted", fx.pki->ca_cert_file, "-rsp_cert", rsp_cert };
    int n = 8;

    while (more && *more) {
        argv[n++] = *more++;
    }
    argv[n] = NULL;
    start_server(argv);
}

/* The mock server answering "waiting" (check after check_after seconds)
 * until the client has polled polls times, then the certificate. */
static void waiting_server(int polls, int check_after)
{
    const char *const more[] = { "-poll_count", apr_itoa(pool, polls), "-check_after",
                                 apr_itoa(pool, check_after), NULL };

    signing_server(fx.device_cert_file, more);
}

static const scep_template_t *a_template(void)
{
    scep_template_t *tmpl = apr_pcalloc(pool, sizeof(*tmpl));

    tmpl->name = "IPSECIntermediateOffline";
    return tmpl;
}

static void expect_issued(apr_status_t rv)
{
    ck_assert_msg(rv == APR_SUCCESS, "%d %s / log: %s", rv, fx.prob.text, log_text);
    ck_assert_ptr_nonnull(fx.cert);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(fx.cert), fx.device_key), 1);
}

static void expect_refused(apr_status_t rv, const char *needle)
{
    ck_assert_msg(rv != APR_SUCCESS && rv != APR_EINCOMPLETE, "%d", rv);
    ck_assert_ptr_null(fx.cert);
    ck_assert_int_eq(fx.prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(fx.prob.event, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_msg(fx.prob.text && strstr(fx.prob.text, needle), "%s / %s", fx.prob.text, log_text);
}

static void expect_fault(apr_status_t rv)
{
    ck_assert_msg(rv != APR_SUCCESS && rv != APR_EINCOMPLETE, "%d", rv);
    ck_assert_ptr_null(fx.cert);
    ck_assert_int_eq(fx.prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_msg(strstr(log_text, "SCEP271: "), "%s", log_text);
}

static void expect_held(apr_status_t rv)
{
    ck_assert_msg(rv == APR_EINCOMPLETE, "%d %s / log: %s", rv, fx.prob.text, log_text);
}

/* cmp:<our pid>.<instance: 16 hex>:<transactionID: 32 hex> */
static void expect_own_ticket(const scep_ca_ticket_t *ticket)
{
    const char *prefix = apr_psprintf(pool, "cmp:%ld.", (long)getpid());
    apr_size_t n = strlen(prefix);

    ck_assert_ptr_nonnull(ticket->text);
    ck_assert_msg(strncmp(ticket->text, prefix, n) == 0 &&
                      strlen(ticket->text) == n + 16 + 1 + 32 && ticket->text[n + 16] == ':' &&
                      strspn(ticket->text + n, "0123456789ABCDEF") == 16 &&
                      strspn(ticket->text + n + 17, "0123456789ABCDEF") == 32,
                  "%s", ticket->text);
}

START_TEST(accepted_request_returns_the_certificate)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;

    signing_server(fx.device_cert_file, NULL);
    ca = backend(&conf);
    expect_issued(issue_csr(ca, a_template()));
}
END_TEST

START_TEST(rejection_is_refused_with_the_ca_text)
{
    const char *const more[] = {
        "-pkistatus", "2", "-failure", "2", "-statusstring", "not in this CA's namespace", NULL
    };
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;

    signing_server(fx.device_cert_file, more);
    ca = backend(&conf);
    expect_refused(issue_csr(ca, NULL), "not in this CA's namespace");
}
END_TEST

START_TEST(waiting_gives_a_ticket_then_poll_returns_the_certificate)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_status_t rv;
    int polls = 0;

    waiting_server(3, 1);
    ca = backend(&conf);
    rv = issue_csr(ca, a_template());
    expect_held(rv);
    ck_assert_ptr_null(fx.cert);
    ck_assert_int_eq(fx.prob.fail_info, SCEP_FAIL_NONE);
    expect_own_ticket(&fx.ticket);
    ck_assert_int_eq(fx.ticket.retry_after, 1);
    do {
        sleep(1);
        rv = poll_ticket(ca, NULL);
    } while (rv == APR_EINCOMPLETE && ++polls < 5);
    expect_issued(rv);
    ck_assert_int_ge(polls, 1); /* a poll was answered "waiting" too */
    /* the transaction is over: the ticket is no longer known */
    expect_refused(poll_ticket(ca, NULL), "not known");
}
END_TEST

START_TEST(ticket_past_the_total_timeout_is_not_known)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_status_t rv;

    waiting_server(5, 1);
    /* OpenSSL keeps 5 seconds of the total for an exchange: 12 leaves room
     * for a first check_after of 1 and a slow first exchange (a sanitized
     * build's once took more than the 2 seconds that 7 left) */
    conf.total_timeout = 12;
    ca = backend(&conf);
    rv = issue_csr(ca, NULL);
    expect_held(rv);
    sleep(13);
    expect_refused(poll_ticket(ca, NULL), "not known");
}
END_TEST

START_TEST(mac_protection_is_accepted)
{
    scep_ca_cmp_conf_t conf = mac_server_and_conf(MAC_SECRET);
    scep_ca_backend_t *ca;
    ca = backend(&conf);
    expect_issued(issue_csr(ca, NULL));
}
END_TEST

START_TEST(wrong_mac_secret_gets_nothing)
{
    scep_ca_cmp_conf_t conf = mac_server_and_conf("another secret");
    scep_ca_backend_t *ca;
    ca = backend(&conf);
    /* the CA's error answer is protected with the secret we do not share */
    expect_fault(issue_csr(ca, NULL));
}
END_TEST

START_TEST(untrusted_server_certificate_is_a_fault)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;

    signing_server(fx.device_cert_file, NULL);
    conf.trust_file = other_ca_file();
    ca = backend(&conf);
    expect_fault(issue_csr(ca, NULL));
    ck_assert_msg(strstr(log_text, "certificate verify failed") || strstr(log_text, "trust"), "%s",
                  log_text);
}
END_TEST

START_TEST(certificate_for_another_key_is_refused)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    EVP_PKEY *other_key = testutil_ec_key(pool);
    scep_ca_backend_t *ca;

    signing_server(testutil_write_cert(pool, fx.pki->dir, "other.crt",
                                       testutil_cert(pool, "/CN=device.example", other_key, NULL, 0,
                                                     0, fx.pki->ca_cert, fx.pki->ca_key)),
                   NULL);
    ca = backend(&conf);
    expect_refused(issue_csr(ca, NULL), "another key");
}
END_TEST

START_TEST(certificate_of_another_ca_is_refused)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    EVP_PKEY *other_ca_key = testutil_ec_key(pool);
    X509 *other_ca = testutil_cert(pool, "/CN=Other CA", other_ca_key, NULL, 0, 0, NULL, NULL);
    scep_ca_backend_t *ca;

    signing_server(testutil_write_cert(pool, fx.pki->dir, "elsewhere.crt",
                                       testutil_cert(pool, "/CN=device.example", fx.device_key,
                                                     NULL, 0, 0, other_ca, other_ca_key)),
                   NULL);
    ca = backend(&conf);
    expect_refused(issue_csr(ca, NULL), "does not chain");
}
END_TEST

START_TEST(server_down_is_a_fault_within_the_timeout)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_time_t start = apr_time_now();

    conf.msg_timeout = 2;
    conf.total_timeout = 3;
    ca = backend(&conf);
    expect_fault(issue_csr(ca, NULL));
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(10));
}
END_TEST

START_TEST(configuration_without_protection_is_refused)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    const char *err = NULL;

    conf.ra_key = NULL;
    ck_assert_ptr_null(scep_ca_cmp(pool, &conf, &err));
    ck_assert_ptr_nonnull(err);
}
END_TEST

START_TEST(template_name_is_sent_as_the_certificate_profile)
{
    /* generalInfo InfoTypeAndValue: id-it-certProfile, SEQUENCE OF UTF8String */
    static const char itav[] = "\x06\x08\x2b\x06\x01\x05\x05\x07\x04\x15"
                               "\x30\x1a\x0c\x18"
                               "IPSECIntermediateOffline";
    scep_ca_cmp_conf_t conf = signing_conf();
    const char *capture = capture_request();
    scep_ca_backend_t *ca;
    static char sent[65536];
    size_t len, at;
    FILE *file;

    conf.msg_timeout = 3;
    conf.total_timeout = 3;
    ca = backend(&conf);
    expect_fault(issue_csr(ca, a_template()));
    waitpid(fx.server, NULL, 0);
    fx.server = 0;
    file = fopen(capture, "rb");
    ck_assert_ptr_nonnull(file);
    len = fread(sent, 1, sizeof(sent), file);
    fclose(file);
    for (at = 0; at + sizeof(itav) - 1 <= len; at++) {
        if (memcmp(sent + at, itav, sizeof(itav) - 1) == 0) {
            break;
        }
    }
    ck_assert_msg(at + sizeof(itav) - 1 <= len, "no certProfile in %zu bytes sent", len);
}
END_TEST

#define A_TXID "00112233445566778899AABBCCDDEEFF"

/* A ticket of pid with the instance given. */
static scep_ca_ticket_t ticket_of(long pid, const char *instance)
{
    scep_ca_ticket_t ticket = { apr_psprintf(pool, "cmp:%ld.%s:" A_TXID, pid, instance), 60 };

    return ticket;
}

/* The pid of a process that ended. */
static pid_t ended_process(void)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return pid;
}

static void expect_resubmitted(void)
{
    ck_assert_msg(strstr(log_text, "SCEP273: ") && strstr(log_text, A_TXID), "%s", log_text);
}

START_TEST(ticket_of_another_live_process_waits_without_asking)
{
    scep_ca_cmp_conf_t conf = signing_conf(); /* nothing listens: asking would be a fault */
    scep_ca_backend_t *ca = backend(&conf);
    const char *before;
    apr_status_t rv;

    fx.ticket = ticket_of(getppid(), "0123456789ABCDEF");
    before = fx.ticket.text;
    rv = poll_ticket(ca, NULL);
    ck_assert_msg(rv == APR_EAGAIN, "%d %s / log: %s", rv, fx.prob.text, log_text);
    ck_assert_ptr_null(fx.cert);
    ck_assert_int_eq(fx.prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_str_eq(fx.ticket.text, before);
    ck_assert_str_eq(log_text, "");
}
END_TEST

START_TEST(ticket_of_an_ended_process_is_submitted_again)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;

    fx.ticket = ticket_of(ended_process(), "0123456789ABCDEF");
    signing_server(fx.device_cert_file, NULL);
    ca = backend(&conf);
    expect_issued(poll_ticket(ca, a_template()));
    expect_resubmitted();
}
END_TEST

START_TEST(ticket_of_our_pid_with_another_instance_is_submitted_again)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_status_t rv;

    /* a pid used again: the instance of the process that had it before */
    fx.ticket = ticket_of(getpid(), "0000000000000000");
    waiting_server(2, 1);
    ca = backend(&conf);
    rv = poll_ticket(ca, NULL);
    expect_held(rv);
    expect_resubmitted();
    expect_own_ticket(&fx.ticket); /* the new transaction's */
    ck_assert_ptr_null(strstr(fx.ticket.text, "0000000000000000"));
    sleep(1);
    expect_issued(poll_ticket(ca, NULL));
}
END_TEST

/* The CA checks the p10cr's proof of possession, the CSR's signature: the
 * CSR a held request keeps at rest (no signature) is refused when it is
 * submitted again, the device's, sealed and opened as the engine does
 * (scep_enroll_held_csr()), is issued. */
START_TEST(submitted_again_with_the_devices_signed_csr)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    const char *pem = scep_csr_pem_at_rest(pool, fx.csr);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *at_rest = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    X509_REQ *opened;
    scep_ca_backend_t *ca;

    BIO_free(bio);
    ck_assert_ptr_nonnull(at_rest);
    SCEP_OWN(pool, at_rest, X509_REQ_free);
    signing_server(fx.device_cert_file, NULL);
    ca = backend(&conf);
    fx.ticket = ticket_of(ended_process(), "0123456789ABCDEF");
    expect_refused(ca->poll(ca, pool, at_rest, a_template(), &fx.ticket, &fx.cert, &fx.prob),
                   "badPOP");
    opened =
        scep_csr_unseal(pool, scep_csr_seal(pool, fx.csr, fx.pki->ra_enc_cert), fx.pki->ra_enc_key);
    ck_assert_ptr_nonnull(opened);
    fx.ticket = ticket_of(ended_process(), "0123456789ABCDEF");
    fx.prob = (scep_problem_t){ SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    expect_issued(ca->poll(ca, pool, opened, a_template(), &fx.ticket, &fx.cert, &fx.prob));
}
END_TEST

START_TEST(poll_before_the_check_after_waits_without_asking)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_status_t rv;

    waiting_server(2, 3);
    ca = backend(&conf);
    rv = issue_csr(ca, NULL);
    expect_held(rv);
    stop_server(); /* asking now would be a fault */
    rv = poll_ticket(ca, NULL);
    expect_held(rv);
    ck_assert_msg(fx.ticket.retry_after >= 1 && fx.ticket.retry_after <= 3, "%d",
                  fx.ticket.retry_after);
    ck_assert_str_eq(log_text, "");
}
END_TEST

/* issue() in a child process that ends with it: its ticket, through a pipe. */
static const char *ticket_of_a_child(const scep_ca_cmp_conf_t *conf)
{
    static char text[256];
    int fds[2], status;
    ssize_t n;
    pid_t child;

    ck_assert_int_eq(pipe(fds), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        const char *err = NULL;
        scep_ca_backend_t *ca = scep_ca_cmp(pool, conf, &err);

        if (ca && issue_csr(ca, NULL) == APR_EINCOMPLETE) {
            (void)!write(fds[1], fx.ticket.text, strlen(fx.ticket.text));
        }
        _exit(0);
    }
    close(fds[1]);
    n = read(fds[0], text, sizeof(text) - 1);
    close(fds[0]);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(n > 0, "the child got no ticket");
    text[n] = '\0';
    ck_assert_msg(strncmp(text, apr_psprintf(pool, "cmp:%ld.", (long)child), 4) == 0, "%s", text);
    return apr_pstrdup(pool, text);
}

START_TEST(transaction_lost_with_its_process_is_submitted_again)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    const char *lost_txid;
    scep_ca_backend_t *ca;

    waiting_server(5, 1);
    fx.ticket.text = ticket_of_a_child(&conf);
    lost_txid = strrchr(fx.ticket.text, ':') + 1;
    /* the CA forgets too (a mock server polled by nobody would refuse a
     * new request): a new one that issues at once */
    stop_server();
    signing_server(fx.device_cert_file, NULL);
    ca = backend(&conf);
    expect_issued(poll_ticket(ca, NULL));
    ck_assert_msg(strstr(log_text, "SCEP273: ") && strstr(log_text, lost_txid), "%s", log_text);
}
END_TEST

/* In a child forked after issue(): the parent's ticket is the parent's
 * (waiting, no exchange), and neither the child's end (process_exit) nor
 * the backend's cleanup frees anything of it. */
static int child_leaves_it_alone(apr_pool_t *sub, scep_ca_backend_t *ca, const char *text)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_ca_ticket_t ticket = { text, 0 };
    X509 *cert = NULL;
    apr_status_t rv = ca->poll(ca, sub, fx.csr, NULL, &ticket, &cert, &prob);

    ca->process_exit(ca);
    apr_pool_destroy(sub);
    return rv == APR_EAGAIN && log_text[0] == '\0' ? 0 : 1;
}

START_TEST(forked_child_leaves_the_parent_transaction_alone)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;
    apr_pool_t *sub;
    apr_status_t rv;
    pid_t child;
    int status;

    waiting_server(2, 1);
    apr_pool_create(&sub, pool);
    ca = scep_ca_cmp(sub, &conf, &(const char *){ NULL });
    ck_assert_ptr_nonnull(ca);
    rv = issue_csr(ca, NULL);
    expect_held(rv);
    sleep(1); /* the CA's checkAfter: a poll of the child would ask */
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        _exit(child_leaves_it_alone(sub, ca, fx.ticket.text));
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    /* the one pollReq of this transaction is the parent's */
    expect_issued(poll_ticket(ca, NULL));
    apr_pool_destroy(sub);
}
END_TEST

/* A process's end frees the transactions it waits in (valgrind sees them
 * freed): after it, the ticket's transaction is not known any more, and
 * the request goes to the CA again. */
START_TEST(process_exit_frees_the_waiting_transactions)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    scep_ca_backend_t *ca;

    waiting_server(5, 1);
    ca = backend(&conf);
    expect_held(issue_csr(ca, NULL));
    ck_assert_ptr_nonnull(ca->process_exit);
    ca->process_exit(ca);
    stop_server();
    signing_server(fx.device_cert_file, NULL);
    expect_issued(poll_ticket(ca, NULL));
    ck_assert_msg(strstr(log_text, "SCEP273: "), "%s", log_text);
}
END_TEST

/* A TLS certificate and key from issuer for the names in san, in the
 * test's directory as name.crt and name.key. */
static const char *const *tls_files(const char *name, const char *san, X509 *issuer,
                                    EVP_PKEY *issuer_key)
{
    scep_x509_exts_t exts = { NULL, NULL, NULL, san };
    EVP_PKEY *key = testutil_ec_key(pool);
    const char **files = apr_pcalloc(pool, 2 * sizeof(*files));

    files[0] = testutil_write_cert(
        pool, fx.pki->dir, apr_pstrcat(pool, name, ".crt", NULL),
        testutil_cert(pool, "/CN=tls.example", key, &exts, 0, 0, issuer, issuer_key));
    files[1] = testutil_write_key(pool, fx.pki->dir, apr_pstrcat(pool, name, ".key", NULL), key);
    return files;
}

/* `openssl s_server -www` on fx.port with a certificate for the names in
 * san from issuer, and more arguments: a TLS peer that is no CMP server
 * (it says in server.log which name the client sent). */
static void tls_server(const char *san, X509 *issuer, EVP_PKEY *issuer_key, const char *const *more)
{
    const char *const *files = tls_files("tls", san, issuer, issuer_key);
    const char *args[20] = { "s_server", "-accept", apr_psprintf(pool, "127.0.0.1:%d", fx.port),
                             "-cert",    files[0],  "-key",
                             files[1],   "-www" };
    int n = 8;

    while (more && *more) {
        args[n++] = *more++;
    }
    args[n] = NULL;
    start_openssl(args);
}

static scep_ca_cmp_conf_t https_conf(void)
{
    scep_ca_cmp_conf_t conf = signing_conf();

    conf.server_url = apr_psprintf(pool, "https://127.0.0.1:%d/pkix/", fx.port);
    conf.tls_ca_file = fx.pki->ca_cert_file;
    conf.msg_timeout = 3;
    conf.total_timeout = 3;
    return conf;
}

START_TEST(https_server_of_another_ca_is_a_fault)
{
    scep_ca_cmp_conf_t conf = https_conf();
    EVP_PKEY *other_key = testutil_ec_key(pool);
    X509 *other_ca = testutil_cert(pool, "/CN=Other CA", other_key, NULL, 0, 0, NULL, NULL);
    scep_ca_backend_t *ca;

    tls_server("IP:127.0.0.1", other_ca, other_key, NULL);
    ca = backend(&conf);
    expect_fault(issue_csr(ca, NULL));
    ck_assert_msg(strstr(log_text, "certificate verify failed"), "%s", log_text);
}
END_TEST

START_TEST(https_server_of_another_name_is_a_fault)
{
    scep_ca_cmp_conf_t conf = https_conf();
    scep_ca_backend_t *ca;

    /* the configured CA's, for another name than the URL's */
    tls_server("DNS:cmp.example,IP:127.0.0.2", fx.pki->ca_cert, fx.pki->ca_key, NULL);
    ca = backend(&conf);
    expect_fault(issue_csr(ca, NULL));
    ck_assert_msg(strstr(log_text, "certificate verify failed"), "%s", log_text);
}
END_TEST

START_TEST(https_sends_and_checks_the_host_name)
{
    const char *const *good =
        tls_files("localhost", "DNS:localhost", fx.pki->ca_cert, fx.pki->ca_key);
    /* the certificate for the name the client sends (SNI), else one for
     * another name */
    const char *const more[] = { "-servername", "localhost", "-cert2", good[0], "-key2", good[1],
                                 /* the start's probe and the client: then its output is whole */
                                 "-naccept", "2", NULL };
    scep_ca_cmp_conf_t conf = https_conf();
    scep_ca_backend_t *ca;

    tls_server("DNS:other.example", fx.pki->ca_cert, fx.pki->ca_key, more);
    conf.server_url = apr_psprintf(pool, "https://localhost:%d/pkix/", fx.port);
    ca = backend(&conf);
    /* past TLS, no CMP answer comes */
    expect_fault(issue_csr(ca, NULL));
    ck_assert_msg(!strstr(log_text, "certificate verify failed") && strstr(log_text, "timeout"),
                  "%s", log_text);
    ck_assert_int_eq(waitpid(fx.server, NULL, 0), fx.server);
    fx.server = 0;
    ck_assert_msg(strstr(server_output(), "Hostname in TLS extension: \"localhost\""), "%s",
                  server_output());
}
END_TEST

/* The mock CMP server behind helpers/tls-forward (TLS with a certificate
 * of the test CA for localhost), as behind a reverse proxy: the backend
 * with its https URL. fx.server is the mock server, fx.front the front. */
static scep_ca_backend_t *behind_tls(void)
{
    const char *const *files = tls_files("front", "DNS:localhost", fx.pki->ca_cert, fx.pki->ca_key);
    const char *mock_port = apr_itoa(pool, fx.port);
    scep_ca_cmp_conf_t conf;
    int tries;

    signing_server(fx.device_cert_file, NULL);
    fx.port = free_port();
    fx.front = fork();
    ck_assert_int_ge(fx.front, 0);
    if (fx.front == 0) {
        execl(HELPERS_DIR "/tls-forward", "tls-forward", apr_itoa(pool, fx.port), mock_port,
              files[0], files[1], (char *)NULL);
        _exit(127);
    }
    for (tries = 0; tries < 200 && !accepts(fx.port); tries++) {
        usleep(50000);
    }
    ck_assert_msg(tries < 200, "tls-forward did not start");
    conf = https_conf();
    conf.server_url = apr_psprintf(pool, "https://localhost:%d/pkix/", fx.port);
    conf.msg_timeout = 10;
    conf.total_timeout = 20;
    return backend(&conf);
}

START_TEST(https_request_through_a_tls_front_returns_the_certificate)
{
    scep_ca_backend_t *ca = behind_tls();

    expect_issued(issue_csr(ca, a_template()));
}
END_TEST

START_TEST(https_check_through_a_tls_front_is_answered)
{
    const char *text = NULL;
    scep_ca_backend_t *ca = behind_tls();
    apr_status_t rv = scep_ca_cmp_check(ca, pool, &text);

    ck_assert_msg(rv == APR_SUCCESS, "%d %s / log: %s", rv, text, log_text);
    ck_assert_msg(strstr(text, "https://localhost:") && strstr(text, "answered a general message"),
                  "%s", text);
}
END_TEST

START_TEST(https_and_its_ca_file_go_together)
{
    scep_ca_cmp_conf_t conf = https_conf();
    const char *err = NULL;

    conf.tls_ca_file = NULL;
    ck_assert_ptr_null(scep_ca_cmp(pool, &conf, &err));
    ck_assert_msg(err && strstr(err, "https") && strstr(err, "TLS CA file"), "%s", err);
    conf = signing_conf();
    conf.tls_ca_file = fx.pki->ca_cert_file;
    ck_assert_ptr_null(scep_ca_cmp(pool, &conf, &err));
    ck_assert_msg(err && strstr(err, "not https"), "%s", err);
    conf = https_conf();
    conf.tls_ca_file = testutil_path(pool, fx.pki->dir, "no-such-file.pem");
    ck_assert_ptr_null(scep_ca_cmp(pool, &conf, &err));
    ck_assert_msg(err && strstr(err, "TLS CA file"), "%s", err);
    conf = https_conf();
    ck_assert_ptr_nonnull(scep_ca_cmp(pool, &conf, &err));
}
END_TEST

static void expect_check_fails(scep_ca_backend_t *ca, const char *needle)
{
    const char *text = NULL;
    apr_status_t rv = scep_ca_cmp_check(ca, pool, &text);

    ck_assert_msg(rv != APR_SUCCESS && rv != APR_ENOTIMPL, "%d %s", rv, text);
    ck_assert_msg(text && strstr(text, needle), "%s", text);
    ck_assert_msg(strstr(log_text, "SCEP274: ") && strstr(log_text, text), "%s", log_text);
}

START_TEST(check_gets_the_general_message_answered)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    const char *text = NULL;
    scep_ca_backend_t *ca;
    apr_status_t rv;

    signing_server(fx.device_cert_file, NULL);
    ca = backend(&conf);
    rv = scep_ca_cmp_check(ca, pool, &text);
    ck_assert_msg(rv == APR_SUCCESS, "%d %s / log: %s", rv, text, log_text);
    ck_assert_msg(strstr(text, "answered a general message with 0 InfoTypeAndValue"), "%s", text);
}
END_TEST

START_TEST(check_refuses_an_untrusted_server)
{
    scep_ca_cmp_conf_t conf = signing_conf();

    signing_server(fx.device_cert_file, NULL);
    conf.trust_file = other_ca_file();
    expect_check_fails(backend(&conf), "no usable answer");
}
END_TEST

START_TEST(check_refuses_a_server_of_another_mac_secret)
{
    scep_ca_cmp_conf_t conf = mac_server_and_conf("another secret");
    expect_check_fails(backend(&conf), "no usable answer");
}
END_TEST

START_TEST(check_of_nothing_listening_fails_within_the_timeout)
{
    scep_ca_cmp_conf_t conf = signing_conf();
    apr_time_t start = apr_time_now();

    conf.msg_timeout = 2;
    conf.total_timeout = 3;
    expect_check_fails(backend(&conf), "no usable answer");
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(10));
}
END_TEST

START_TEST(check_reports_a_rejection)
{
    const char *const more[] = { "-send_error", NULL };
    scep_ca_cmp_conf_t conf = signing_conf();

    signing_server(fx.device_cert_file, more);
    expect_check_fails(backend(&conf), "rejected the general message");
}
END_TEST

Suite *scep_ca_cmp_suite(void);

Suite *scep_ca_cmp_suite(void)
{
    Suite *s = suite_create("ca_cmp");
    TCase *tc = testutil_case(s, "mock_server", setup, teardown);

    tcase_add_test(tc, accepted_request_returns_the_certificate);
    tcase_add_test(tc, template_name_is_sent_as_the_certificate_profile);
    tcase_add_test(tc, rejection_is_refused_with_the_ca_text);
    tcase_add_test(tc, waiting_gives_a_ticket_then_poll_returns_the_certificate);
    tcase_add_test(tc, ticket_past_the_total_timeout_is_not_known);
    tcase_add_test(tc, mac_protection_is_accepted);
    tcase_add_test(tc, wrong_mac_secret_gets_nothing);
    tcase_add_test(tc, untrusted_server_certificate_is_a_fault);
    tcase_add_test(tc, certificate_for_another_key_is_refused);
    tcase_add_test(tc, certificate_of_another_ca_is_refused);
    tcase_add_test(tc, server_down_is_a_fault_within_the_timeout);
    tcase_add_test(tc, configuration_without_protection_is_refused);
    tc = testutil_case(s, "ownership", setup, teardown);
    tcase_add_test(tc, ticket_of_another_live_process_waits_without_asking);
    tcase_add_test(tc, ticket_of_an_ended_process_is_submitted_again);
    tcase_add_test(tc, ticket_of_our_pid_with_another_instance_is_submitted_again);
    tcase_add_test(tc, submitted_again_with_the_devices_signed_csr);
    tcase_add_test(tc, poll_before_the_check_after_waits_without_asking);
    tcase_add_test(tc, transaction_lost_with_its_process_is_submitted_again);
    tcase_add_test(tc, forked_child_leaves_the_parent_transaction_alone);
    tcase_add_test(tc, process_exit_frees_the_waiting_transactions);
    tc = testutil_case(s, "https", setup, teardown);
    tcase_add_test(tc, https_server_of_another_ca_is_a_fault);
    tcase_add_test(tc, https_server_of_another_name_is_a_fault);
    tcase_add_test(tc, https_sends_and_checks_the_host_name);
    tcase_add_test(tc, https_and_its_ca_file_go_together);
    tcase_add_test(tc, https_request_through_a_tls_front_returns_the_certificate);
    tcase_add_test(tc, https_check_through_a_tls_front_is_answered);
    tc = testutil_case(s, "check", setup, teardown);
    tcase_add_test(tc, check_gets_the_general_message_answered);
    tcase_add_test(tc, check_refuses_an_untrusted_server);
    tcase_add_test(tc, check_refuses_a_server_of_another_mac_secret);
    tcase_add_test(tc, check_of_nothing_listening_fails_within_the_timeout);
    tcase_add_test(tc, check_reports_a_rejection);
    return s;
}
