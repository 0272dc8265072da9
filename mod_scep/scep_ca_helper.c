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
 * The certmonger CA helper backend (scep_ca_helper.h): one run of the
 * helper is run_helper(), scep_program_run() (without a shell, bounded in
 * time and output, always reaped) with its faults logged; the rest maps
 * its exit status and checks what it printed.
 */

#include <string.h>

#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "scep_ca_helper.h"
#include "scep_program.h"
#include "scep_x509.h"

#define HELPER_TIME_LIMIT apr_time_from_sec(30)
#define HELPER_OUTPUT_LIMIT ((apr_size_t)1024 * 1024)
#define HELPER_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define HELPER_TEXT_LIMIT 1024 /* bytes of the helper's words in a log line or failInfoText */

/* certmonger's exit statuses (doc/submit.txt) */
enum {
    HELPER_ISSUED = 0,
    HELPER_WAIT = 1,
    HELPER_REJECTED = 2,
    HELPER_UNREACHABLE = 3,
    HELPER_UNDERCONFIGURED = 4,
    HELPER_WAIT_WITH_DELAY = 5,
    HELPER_UNSUPPORTED = 6
};

static void helper_log(const scep_ca_helper_conf_t *conf, const char *file, int line, int level,
                       const char *msg)
{
    if (conf->log) {
        conf->log(conf->log_baton, file, line, level, msg);
    }
}

static const char *helper_name(const scep_ca_helper_conf_t *conf)
{
    return conf->argv[0];
}

/* Runs the helper with env ("NAME=value", NULL-terminated); its output on
 * p. A fault of its own (cannot start, limits) is logged and APR_EGENERAL. */
static apr_status_t run_helper(apr_pool_t *p, const scep_ca_helper_conf_t *conf,
                               const char *const *env, scep_program_run_t *run)
{
    scep_program_t prog = { conf->argv,
                            env,
                            NULL,
                            0,
                            conf->time_limit ? conf->time_limit : HELPER_TIME_LIMIT,
                            conf->output_limit ? conf->output_limit : HELPER_OUTPUT_LIMIT };
    apr_status_t rv = scep_program_run(p, &prog, run);
    char err[128];

    if (rv != APR_SUCCESS) {
        helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
                   apr_psprintf(p, SCEPLOGNO(280) "CA helper %s cannot be started: %s",
                                helper_name(conf), apr_strerror(rv, err, sizeof(err))));
        return APR_EGENERAL;
    }
    if (run->stop) {
        helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
                   apr_psprintf(p,
                                SCEPLOGNO(281) "CA helper %s %s, stopped after %" APR_TIME_T_FMT
                                               " ms: nothing was issued",
                                helper_name(conf), run->stop, apr_time_as_msec(run->elapsed)));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ----------------------------------------------------------------------
 * The environment: built from nothing, so that nothing of Apache's leaks.
 */

static const char *csr_pem(apr_pool_t *p, X509_REQ *csr)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *pem = NULL;
    char *data;
    long n;

    if (bio && PEM_write_bio_X509_REQ(bio, csr)) {
        n = BIO_get_mem_data(bio, &data);
        pem = apr_pstrmemdup(p, data, (apr_size_t)n);
    }
    BIO_free(bio);
    return pem;
}

static const char *subject_text(apr_pool_t *p, X509_REQ *csr)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *text = NULL;
    char *data;
    long n;

    if (bio && X509_NAME_print_ex(bio, X509_REQ_get_subject_name(csr), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(bio, &data);
        text = apr_pstrmemdup(p, data, (apr_size_t)n);
    }
    BIO_free(bio);
    return text;
}

/* The SubjectPublicKeyInfo in hex, as certmonger's CERTMONGER_SPKI. */
static const char *spki_hex(apr_pool_t *p, X509_REQ *csr)
{
    unsigned char *der = NULL;
    const char *hex = NULL;
    int n = i2d_PUBKEY(X509_REQ_get0_pubkey(csr), &der);
    char *s;

    if (n > 0) {
        s = OPENSSL_buf2hexstr(der, n);
        if (s) {
            hex = apr_pstrdup(p, s);
            OPENSSL_free(s);
        }
    }
    OPENSSL_free(der);
    if (hex) {
        /* OPENSSL_buf2hexstr separates bytes with ':' */
        char *out = apr_palloc(p, strlen(hex) + 1), *o = out;
        for (; *hex; hex++) {
            if (*hex != ':') {
                *o++ = *hex;
            }
        }
        *o = '\0';
        return out;
    }
    return NULL;
}

static const char *key_type(X509_REQ *csr)
{
    switch (EVP_PKEY_get_base_id(X509_REQ_get0_pubkey(csr))) {
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_EC:
        return "EC";
    default:
        return NULL;
    }
}

/* The environment of operation on csr (NULL: FETCH-ROOTS) under tmpl, with
 * cookie for POLL; NULL when the CSR cannot be written (logged). */
static const char *const *helper_env(apr_pool_t *p, const scep_ca_helper_conf_t *conf,
                                     const char *operation, X509_REQ *csr,
                                     const scep_template_t *tmpl, const char *cookie)
{
    apr_array_header_t *env = apr_array_make(p, 10, sizeof(const char *));

    APR_ARRAY_PUSH(env, const char *) = HELPER_PATH;
    scep_program_env_add(env, "CERTMONGER_OPERATION", operation);
    if (csr) {
        const char *pem = csr_pem(p, csr);

        if (!pem) {
            scep_log_openssl(conf->log, conf->log_baton, SCEP_LOG_MARK, SCEP_LOG_ERR);
            return NULL;
        }
        scep_program_env_add(env, "CERTMONGER_CSR", pem);
        scep_program_env_add(env, "CERTMONGER_REQ_SUBJECT", subject_text(p, csr));
        scep_program_env_add(env, "CERTMONGER_SPKI", spki_hex(p, csr));
        scep_program_env_add(env, "CERTMONGER_KEY_TYPE", key_type(csr));
    }
    scep_program_env_add(env, "CERTMONGER_CA_PROFILE", tmpl ? tmpl->name : NULL);
    scep_program_env_add(env, "CERTMONGER_CA_COOKIE", cookie);
    APR_ARRAY_PUSH(env, const char *) = NULL;
    return (const char *const *)env->elts;
}

/* ----------------------------------------------------------------------
 * What the helper printed.
 */

static void free_certs(STACK_OF(X509) *certs)
{
    sk_X509_pop_free(certs, X509_free);
}

static void push_owned(STACK_OF(X509) *certs, X509 *cert)
{
    if (!sk_X509_push(certs, cert)) {
        X509_free(cert);
    }
}

static void push_pkcs7(STACK_OF(X509) *certs, PKCS7 *p7)
{
    STACK_OF(X509) *in = p7 && PKCS7_type_is_signed(p7) && p7->d.sign ? p7->d.sign->cert : NULL;
    int i;

    for (i = 0; i < sk_X509_num(in); i++) {
        X509 *cert = sk_X509_value(in, i);

        if (X509_up_ref(cert)) {
            push_owned(certs, cert);
        }
    }
    PKCS7_free(p7);
}

/* Every certificate of PEM text (certificates and PKCS#7 items). */
static void read_pem(STACK_OF(X509) *certs, const char *data, apr_size_t len)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long n;

    while (bio && PEM_read_bio(bio, &name, &header, &der, &n)) {
        const unsigned char *q = der;

        if (!strcmp(name, PEM_STRING_X509) || !strcmp(name, PEM_STRING_X509_OLD)) {
            X509 *cert = d2i_X509(NULL, &q, n);
            if (cert) {
                push_owned(certs, cert);
            }
        }
        else if (!strcmp(name, PEM_STRING_PKCS7)) {
            push_pkcs7(certs, d2i_PKCS7(NULL, &q, n));
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
    }
    ERR_clear_error(); /* the end of the text */
    BIO_free(bio);
}

/* The certificates of the helper's output: PEM, or one DER certificate or
 * PKCS#7, owned by p; empty when none. */
static STACK_OF(X509) *read_certs(apr_pool_t *p, const char *data, apr_size_t len)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    const unsigned char *q = (const unsigned char *)data;

    if (!certs) {
        return NULL;
    }
    SCEP_OWN(p, certs, free_certs);
    if (strstr(data, "-----BEGIN ")) {
        read_pem(certs, data, len);
    }
    else {
        X509 *cert = d2i_X509(NULL, &q, (long)len);

        if (cert) {
            push_owned(certs, cert);
        }
        else {
            q = (const unsigned char *)data;
            push_pkcs7(certs, d2i_PKCS7(NULL, &q, (long)len));
        }
        ERR_clear_error();
    }
    return certs;
}

/* The helper's text as one line for a log or failInfoText: its first
 * HELPER_TEXT_LIMIT bytes, without the trailing newlines, escaped. */
static const char *one_line(apr_pool_t *p, const char *text)
{
    apr_size_t n = strnlen(text, HELPER_TEXT_LIMIT);

    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
        n--;
    }
    return scep_escape_text(p, apr_pstrmemdup(p, text, n), 0);
}

/* What a failing helper said, for the log: its standard error, else its
 * output. */
static const char *failure_text(apr_pool_t *p, const scep_program_run_t *run)
{
    return one_line(p, *run->out[1] ? run->out[1] : run->out[0]);
}

/* Its exit status for the log; -1 when a signal ended it. */
static int exit_status(const scep_program_run_t *run)
{
    return run->exited ? run->exit_code : -1;
}

/* A refusal with event 31: the CA's answer cannot be delivered. */
static apr_status_t refuse(scep_problem_t *prob, const char *text)
{
    return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT, text);
}

static apr_status_t fault(scep_problem_t *prob)
{
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
}

/* Exit 0: the certificate for csr's key, chained to the configured CA. */
static apr_status_t take_cert(apr_pool_t *p, const scep_ca_helper_conf_t *conf, X509_REQ *csr,
                              const scep_program_run_t *run, X509 **cert, scep_problem_t *prob)
{
    STACK_OF(X509) *certs = read_certs(p, run->out[0], run->len[0]);
    const char *reason = NULL;
    int i, error;

    if (sk_X509_num(certs) <= 0) {
        helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
                   apr_psprintf(p,
                                SCEPLOGNO(282) "CA helper %s said issued but printed no "
                                               "certificate: nothing was issued",
                                helper_name(conf)));
        return fault(prob);
    }
    for (i = 0; i < sk_X509_num(certs) && !*cert; i++) {
        if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, i)), X509_REQ_get0_pubkey(csr)) ==
            1) {
            *cert = sk_X509_value(certs, i);
        }
    }
    ERR_clear_error();
    if (!*cert) {
        return refuse(prob, "the CA returned a certificate for another key");
    }
    if (scep_x509_verify(*cert, conf->ca_chain, certs, 1, &error, &reason) != APR_SUCCESS) {
        *cert = NULL;
        return refuse(prob, apr_pstrcat(p,
                                        "the CA's certificate does not chain to the "
                                        "configured CA: ",
                                        reason, NULL));
    }
    if (!X509_up_ref(*cert)) {
        *cert = NULL;
        return fault(prob);
    }
    SCEP_OWN(p, *cert, X509_free);
    return APR_SUCCESS;
}

/* Exit 1 (cookie) and 5 (delay, newline, cookie). */
static apr_status_t take_ticket(apr_pool_t *p, const scep_ca_helper_conf_t *conf,
                                const scep_program_run_t *run, scep_ca_ticket_t *ticket,
                                scep_problem_t *prob)
{
    const char *cookie = run->out[0];
    char *delay;

    ticket->retry_after = 0;
    if (run->exit_code == HELPER_WAIT_WITH_DELAY) {
        const char *nl = strchr(cookie, '\n');

        delay = apr_pstrmemdup(p, cookie, nl ? (apr_size_t)(nl - cookie) : strlen(cookie));
        if (!scep_parse_int(delay, 0, 7 * 24 * 3600, &ticket->retry_after)) {
            cookie = NULL;
        }
        else {
            cookie = nl ? nl + 1 : "";
        }
    }
    if (cookie) {
        apr_size_t n = strlen(cookie);

        while (n && (cookie[n - 1] == '\n' || cookie[n - 1] == '\r')) {
            n--;
        }
        ticket->text = apr_pstrmemdup(p, cookie, n);
    }
    if (!cookie || !*ticket->text) {
        helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
                   apr_psprintf(p,
                                SCEPLOGNO(283) "CA helper %s said wait (%d) without a "
                                               "cookie to ask again: \"%s\"",
                                helper_name(conf), run->exit_code, one_line(p, run->out[0])));
        return fault(prob);
    }
    return APR_EINCOMPLETE;
}

/* The meaning of one run of SUBMIT or POLL. */
static apr_status_t submit_result(apr_pool_t *p, const scep_ca_helper_conf_t *conf, X509_REQ *csr,
                                  const scep_program_run_t *run, X509 **cert,
                                  scep_ca_ticket_t *ticket, scep_problem_t *prob)
{
    const char *why;

    if (!run->exited) {
        why = "was killed by a signal";
    }
    else if (run->exit_code == HELPER_ISSUED) {
        return take_cert(p, conf, csr, run, cert, prob);
    }
    else if (run->exit_code == HELPER_WAIT || run->exit_code == HELPER_WAIT_WITH_DELAY) {
        return take_ticket(p, conf, run, ticket, prob);
    }
    else if (run->exit_code == HELPER_REJECTED) {
        return refuse(
            prob, apr_pstrcat(p, "the CA rejected the request: ", one_line(p, run->out[0]), NULL));
    }
    else if (run->exit_code == HELPER_UNREACHABLE) {
        why = "cannot reach the CA (3)";
    }
    else if (run->exit_code == HELPER_UNDERCONFIGURED) {
        why = "is not configured enough (4)";
    }
    else {
        why = apr_psprintf(p, "exited with status %d", run->exit_code);
    }
    helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
               apr_psprintf(p, SCEPLOGNO(284) "CA helper %s %s: nothing was issued: \"%s\"",
                            helper_name(conf), why, failure_text(p, run)));
    return fault(prob);
}

/* SUBMIT or POLL (with ticket->text as the cookie). */
static apr_status_t submit(scep_ca_backend_t *ca, apr_pool_t *p, const char *operation,
                           X509_REQ *csr, const scep_template_t *tmpl, X509 **cert,
                           scep_ca_ticket_t *ticket, scep_problem_t *prob)
{
    const scep_ca_helper_conf_t *conf = ca->baton;
    const char *const *env = helper_env(p, conf, operation, csr, tmpl, ticket->text);
    scep_program_run_t run;

    *cert = NULL;
    if (!env || run_helper(p, conf, env, &run) != APR_SUCCESS) {
        return fault(prob);
    }
    return submit_result(p, conf, csr, &run, cert, ticket, prob);
}

static apr_status_t helper_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                 const scep_template_t *tmpl, X509 **cert, scep_ca_ticket_t *ticket,
                                 scep_problem_t *prob)
{
    ticket->text = NULL;
    return submit(ca, p, "SUBMIT", csr, tmpl, cert, ticket, prob);
}

static apr_status_t helper_poll(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                const scep_template_t *tmpl, scep_ca_ticket_t *ticket, X509 **cert,
                                scep_problem_t *prob)
{
    return submit(ca, p, "POLL", csr, tmpl, cert, ticket, prob);
}

static apr_status_t helper_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *store,
                               X509_CRL **crl, scep_problem_t *prob)
{
    (void)ca;
    (void)p;
    (void)store;
    *crl = NULL;
    return scep_problem(prob, APR_ENOTIMPL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                        "this server's CA gives no CRL here");
}

/* An operation about the CA itself (no request, no cookie). */
static apr_status_t run_operation(apr_pool_t *p, const scep_ca_helper_conf_t *conf,
                                  const char *operation, scep_program_run_t *run)
{
    return run_helper(p, conf, helper_env(p, conf, operation, NULL, NULL, NULL), run);
}

apr_status_t scep_ca_helper_fetch_roots(scep_ca_backend_t *ca, apr_pool_t *p,
                                        STACK_OF(X509) **roots)
{
    const scep_ca_helper_conf_t *conf = ca->baton;
    scep_program_run_t run;

    *roots = NULL;
    if (run_operation(p, conf, "FETCH-ROOTS", &run) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (run.exited && run.exit_code == HELPER_ISSUED) {
        /* nicknames and blank lines between the PEM items are skipped */
        *roots = read_certs(p, run.out[0], run.len[0]);
    }
    if (sk_X509_num(*roots) <= 0) {
        helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
                   apr_psprintf(p,
                                SCEPLOGNO(285) "CA helper %s gave no CA certificate "
                                               "(FETCH-ROOTS, status %d): \"%s\"",
                                helper_name(conf), exit_status(&run), failure_text(p, &run)));
        *roots = NULL;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t scep_ca_helper_identify(scep_ca_backend_t *ca, apr_pool_t *p, const char **text)
{
    const scep_ca_helper_conf_t *conf = ca->baton;
    scep_program_run_t run;

    *text = NULL;
    if (run_operation(p, conf, "IDENTIFY", &run) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (run.exited && run.exit_code == HELPER_UNSUPPORTED) {
        return APR_ENOTIMPL;
    }
    if (run.exited && run.exit_code == HELPER_ISSUED && *one_line(p, run.out[0])) {
        *text = one_line(p, run.out[0]);
        return APR_SUCCESS;
    }
    helper_log(conf, SCEP_LOG_MARK, SCEP_LOG_ERR,
               apr_psprintf(p,
                            SCEPLOGNO(286) "CA helper %s did not identify itself (IDENTIFY, "
                                           "status %d): \"%s\"",
                            helper_name(conf), exit_status(&run), failure_text(p, &run)));
    return APR_EGENERAL;
}

scep_ca_backend_t *scep_ca_helper(apr_pool_t *p, const scep_ca_helper_conf_t *conf)
{
    scep_ca_backend_t *ca = apr_pcalloc(p, sizeof(*ca));

    ca->baton = apr_pmemdup(p, conf, sizeof(*conf));
    ca->issue = helper_issue;
    ca->poll = helper_poll;
    ca->crl = helper_crl;
    return ca;
}
