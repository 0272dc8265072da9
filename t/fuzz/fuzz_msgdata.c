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
 * The messageData of a pkiMessage behind a valid signature and envelope:
 * the PKCS#10 request of PKCSReq and RenewalReq, the IssuerAndSubject of
 * CertPoll (GetCertInitial), the IssuerAndSerialNumber of GetCert and
 * GetCRL (scep_msg.c). A device can sign and encrypt anything, so the
 * signature protects nothing here; fuzz_pkimsg rarely gets past it.
 *
 * Input: one byte for the message type, one for how the message is sent,
 * then the messageData. A CSR can be signed again with the device key on
 * the way (the sending byte says so), so that what a device may put into a
 * request it signs itself (challengePassword of any type, extensions) gets
 * past X509_REQ_verify() to the code behind it. The target wraps the messageData the way
 * t/unit/testmsg.c builds requests (signed by the test device key,
 * enveloped to the test RA encryption certificate), parses it with
 * scep_request_parse() and answers as the glue does (fuzz_answer).
 */

#include <limits.h>
#include <string.h>

#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "testmsg.h"

static const int message_types[] = {
    SCEP_MSG_PKCSREQ, SCEP_MSG_RENEWALREQ, SCEP_MSG_CERTPOLL, SCEP_MSG_GETCERT, SCEP_MSG_GETCRL,
};

/* How byte 1 says the message is sent: bits 0-2 the content cipher, bit 3
 * RSAES-OAEP key transport, bit 4 BER with indefinite lengths, bit 5 the
 * messageData is a CSR to sign again with the device key. */
#define SENT_CIPHER_MASK 0x07
#define SENT_OAEP 0x08
#define SENT_BER 0x10
#define SENT_RESIGN 0x20

static const EVP_CIPHER *cipher_of(unsigned int sent)
{
    switch ((sent & SENT_CIPHER_MASK) % 5) {
    case 0:
        return EVP_aes_128_cbc();
    case 1:
        return EVP_aes_192_cbc();
    case 2:
        return EVP_aes_256_cbc();
    case 3:
        return EVP_des_ede3_cbc();
    default:
        return EVP_des_cbc();
    }
}

/* The CSR der[len] with the device key and a fresh signature, re-encoded;
 * NULL when it is no CSR or cannot be signed. */
static const unsigned char *resigned_csr(apr_pool_t *p, const unsigned char *der, size_t len,
                                         apr_size_t *out_len)
{
    const unsigned char *cursor = der;
    X509_REQ *csr = len <= LONG_MAX ? d2i_X509_REQ(NULL, &cursor, (long)len) : NULL;
    unsigned char *buf = NULL;
    const unsigned char *out = NULL;
    int n;

    if (csr && X509_REQ_set_pubkey(csr, fuzz_device_key()) &&
        X509_REQ_sign(csr, fuzz_device_key(), EVP_sha256()) > 0 &&
        (n = i2d_X509_REQ(csr, &buf)) > 0) {
        out = apr_pmemdup(p, buf, (apr_size_t)n);
        *out_len = (apr_size_t)n;
    }
    OPENSSL_free(buf);
    X509_REQ_free(csr);
    return out;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char nonce[16] = "fuzz-nonce-0123";
    testmsg_device_t dev = { fuzz_device_key(), fuzz_device_cert() };
    scep_parse_opts_t parse_opts = { 1, 0 };
    scep_request_t *req = NULL;
    testmsg_opts_t opts;
    scep_problem_t prob;
    unsigned char *der;
    apr_size_t len;
    apr_pool_t *p;
    apr_status_t rv;

    if (size < 2) {
        return 0;
    }
    p = fuzz_pool();
    memset(&opts, 0, sizeof(opts));
    opts.message_type = message_types[data[0] % (sizeof(message_types) / sizeof(int))];
    opts.transaction_id = "fuzz-transaction";
    opts.nonce = nonce;
    opts.nonce_len = sizeof(nonce);
    opts.cipher = cipher_of(data[1]);
    opts.md = EVP_sha256();
    opts.oaep = (data[1] & SENT_OAEP) != 0;
    opts.ber = (data[1] & SENT_BER) != 0;
    opts.recipient = fuzz_pki()->ra_enc_cert;
    opts.content = data + 2;
    opts.content_len = size - 2;
    if ((data[1] & SENT_RESIGN) &&
        !(opts.content = resigned_csr(p, data + 2, size - 2, &opts.content_len))) {
        fuzz_pool_done(p);
        return 0;
    }

    der = testmsg_build(p, &dev, &opts, &len);
    rv = scep_request_parse(p, fuzz_pki(), der, len, &parse_opts, &req, &prob);
    if (!req) {
        fuzz_fail("a well-formed, signed and enveloped message could not be answered");
    }
    fuzz_answer(p, rv, req, &prob);
    fuzz_pool_done(p);
    return 0;
}
