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

#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include "fuzz.h"
#include "testutil.h"

/* The PEM files of the test PKI; FUZZ_PKI_DIR comes from the Makefile. */
#ifndef FUZZ_PKI_DIR
#error "FUZZ_PKI_DIR must name the directory of the test PKI"
#endif

static apr_pool_t *process_pool;
static scep_pki_t *pki;
static EVP_PKEY *device_key;
static X509 *device_cert;
static scep_template_t *builtin_template;
static int verbose; /* FUZZ_VERBOSE set: each input's outcome on stderr */

void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz: %s\n", what);
    abort();
}

static const char *pki_file(const char *name)
{
    return apr_pstrcat(process_pool, FUZZ_PKI_DIR "/", name, NULL);
}

/* The key files are committed, so git leaves them world-readable:
 * scep_read_private_key() would rightly refuse them. */
static EVP_PKEY *read_key(const char *name)
{
    BIO *bio = BIO_new_file(pki_file(name), "r");
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    if (!key) {
        fuzz_fail(apr_pstrcat(process_pool, "cannot read the key ", pki_file(name), NULL));
    }
    SCEP_OWN(process_pool, key, EVP_PKEY_free);
    return key;
}

static X509 *read_cert(const char *name)
{
    STACK_OF(X509) *certs = NULL;

    if (scep_read_certs(process_pool, pki_file(name), &certs, NULL) != APR_SUCCESS ||
        sk_X509_num(certs) != 1) {
        fuzz_fail(apr_pstrcat(process_pool, "cannot read the certificate ", pki_file(name), NULL));
    }
    return sk_X509_value(certs, 0);
}

static void load_pki(void)
{
    pki = apr_pcalloc(process_pool, sizeof(*pki));
    pki->ca_cert = read_cert("ca.crt");
    pki->ca_key = read_key("ca.key");
    pki->chain = sk_X509_new_null();
    SCEP_OWN(process_pool, pki->chain, OPENSSL_sk_free);
    pki->ra_sign_cert = read_cert("ra-sign.crt");
    pki->ra_sign_key = read_key("ra-sign.key");
    pki->ra_enc_cert = read_cert("ra-enc.crt");
    pki->ra_enc_key = read_key("ra-enc.key");
    pki->separate_ra = 1;
    pki->ca_thumbprint = scep_cert_thumbprint(process_pool, pki->ca_cert);
    device_cert = read_cert("device.crt");
    device_key = read_key("device.key");
}

static void unload_provider(OSSL_PROVIDER *provider)
{
    OSSL_PROVIDER_unload(provider);
}

static void load_provider(const char *name)
{
    OSSL_PROVIDER *provider = OSSL_PROVIDER_load(NULL, name);

    if (!provider) {
        fuzz_fail(apr_pstrcat(process_pool, "cannot load OpenSSL's provider ", name, NULL));
    }
    SCEP_OWN(process_pool, provider, unload_provider);
}

/* Frees what the process pool owns before OpenSSL's own exit handler runs
 * (it was registered earlier, so it runs later): LeakSanitizer checks at
 * exit, and would count a provider still loaded as leaked. */
static void free_process_pool(void)
{
    apr_pool_destroy(process_pool);
}

void fuzz_init(void)
{
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&process_pool, NULL) != APR_SUCCESS) {
        fuzz_fail("cannot initialize APR");
    }
    load_provider("legacy");
    load_provider("default");
    load_pki();
    builtin_template = scep_template_builtin(process_pool);
    atexit(free_process_pool);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
}

const scep_pki_t *fuzz_pki(void)
{
    return pki;
}

EVP_PKEY *fuzz_device_key(void)
{
    return device_key;
}

/* t/unit/testmsg.c, which fuzz_msgdata links for its signing and
 * enveloping, takes the keys of its own PKI and devices from the unit
 * tests' key cache; the targets use the PKI of pki/ instead and never make
 * those, so this stands in with the device key (linked, never called). */
EVP_PKEY *testutil_rsa_key(apr_pool_t *p)
{
    EVP_PKEY_up_ref(device_key);
    SCEP_OWN(p, device_key, EVP_PKEY_free);
    return device_key;
}

X509 *fuzz_device_cert(void)
{
    return device_cert;
}

apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, process_pool) != APR_SUCCESS) {
        fuzz_fail("cannot create a pool");
    }
    return p;
}

void fuzz_pool_done(apr_pool_t *p)
{
    apr_pool_destroy(p);
    ERR_clear_error();
}

/* What operators see of a device's text: nothing a terminal acts on,
 * nothing that is not UTF-8. */
static void check_escaped(apr_pool_t *p, const char *text)
{
    const char *c = text ? scep_escape_text(p, text, SCEP_ESCAPE_BACKSLASH) : "";
    unsigned long code = 0;
    apr_size_t len;

    for (; *c; c += len) {
        len = scep_utf8_char(c, &code);
        if (len == 0 || scep_char_is_control(code)) {
            fuzz_fail("escaped text with a control character or a byte that is not UTF-8");
        }
    }
}

/* What the glue reads of a CSR before and while it checks the policy, and
 * what the records and the operators' views make of it. */
static void read_csr(apr_pool_t *p, X509_REQ *csr)
{
    scep_problem_t prob;

    if (!scep_key_id(p, X509_REQ_get_X509_PUBKEY(csr))) {
        fuzz_fail("a CSR that verified has no key id");
    }
    scep_key_desc(p, X509_REQ_get0_pubkey(csr));
    check_escaped(p, scep_csr_san_text(p, csr));
    scep_csr_key_usage(csr);
    check_escaped(p, scep_name_text(p, X509_REQ_get_subject_name(csr)));
    if (!scep_csr_pem_at_rest(p, csr)) {
        fuzz_fail("a CSR that verified cannot be kept for approval");
    }
    if (scep_policy_check(p, builtin_template, csr, &prob) != APR_SUCCESS &&
        (prob.fail_info != SCEP_FAIL_BAD_REQUEST || !prob.text)) {
        fuzz_fail("a policy refusal without badRequest and a text");
    }
}

static void read_request(apr_pool_t *p, const scep_request_t *req)
{
    if (!req->signer_cert || !req->digest || !req->cipher) {
        fuzz_fail("a parsed request without signer, digest or cipher");
    }
    scep_name_text(p, X509_get_subject_name(req->signer_cert));
    scep_serial_hex(p, X509_get0_serialNumber(req->signer_cert));
    switch (req->message_type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ:
        if (!req->csr) {
            fuzz_fail("a parsed PKCSReq or RenewalReq without a CSR");
        }
        read_csr(p, req->csr);
        break;
    case SCEP_MSG_CERTPOLL:
        if (!req->issuer || !req->subject) {
            fuzz_fail("a parsed CertPoll without issuer and subject");
        }
        scep_name_text(p, req->issuer);
        scep_name_text(p, req->subject);
        break;
    case SCEP_MSG_GETCERT:
    case SCEP_MSG_GETCRL:
        if (!req->issuer || !req->serial) {
            fuzz_fail("a parsed GetCert or GetCRL without issuer and serial number");
        }
        scep_name_text(p, req->issuer);
        scep_serial_hex(p, req->serial);
        break;
    default:
        fuzz_fail("a parsed request of an unknown message type");
    }
}

/* A SUCCESS payload: the CA certificate, as a GetCert of it would answer. */
static STACK_OF(X509) *success_certs(apr_pool_t *p)
{
    STACK_OF(X509) *certs = sk_X509_new_null();

    if (!certs || !sk_X509_push(certs, pki->ca_cert)) {
        fuzz_fail("out of memory");
    }
    SCEP_OWN(p, certs, OPENSSL_sk_free);
    return certs;
}

void fuzz_answer(apr_pool_t *p, apr_status_t rv, const scep_request_t *req,
                 const scep_problem_t *prob)
{
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, NULL, NULL };
    scep_problem_t reply_prob;
    unsigned char *der;
    apr_size_t len;

    if (verbose) {
        fprintf(stderr, "fuzz: message type %d: %s (failInfo %d, event %d)\n",
                req ? req->message_type : -1, rv == APR_SUCCESS ? "parsed" : prob->text,
                prob->fail_info, prob->event);
    }
    if (!req) {
        if (rv == APR_SUCCESS || prob->fail_info != SCEP_FAIL_NONE) {
            fuzz_fail("no request to answer, yet success or a failInfo");
        }
        return;
    }
    if (!req->transaction_id) {
        fuzz_fail("a request to answer without a transactionID");
    }
    if (rv == APR_SUCCESS) {
        read_request(p, req);
        reply.certs = success_certs(p);
    }
    else {
        reply.status = SCEP_STATUS_FAILURE;
        reply.fail_info = prob->fail_info;
        reply.fail_text = prob->text;
    }
    /* The only refusal allowed: a signer certificate whose key cannot be
     * encrypted to (the glue then logs event 13). */
    if (scep_certrep_build(p, pki, req, &reply, &der, &len, &reply_prob) != APR_SUCCESS &&
        !(reply.status == SCEP_STATUS_SUCCESS && reply_prob.event == SCEP_EVENT_FAIL_TO_ENCRYPT)) {
        fuzz_fail(apr_pstrcat(p, "no CertRep for a parsed request: ", reply_prob.text, NULL));
    }
}
