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
 * The policy check of a CSR (scep_policy.c, with scep_names.c) against
 * the built-in IPSECIntermediateOffline template, a restrictive one and one
 * that copies usages and allows wildcards, with what the
 * glue reads of the CSR before (keyUsage, key id). The input is a DER
 * PKCS#10 request; its signature is not checked: a device signs whatever
 * it asks for, so it limits nothing the policy sees.
 */

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "fuzz.h"

static scep_template_t *builtin;
static scep_template_t *restrictive;
static scep_template_t *trusting;

/* What an administrator who trusts devices little writes: RSA of 3072 bits
 * and more, CN/O/OU only, DNS names only, fixed usages (EKU clientAuth, the
 * default), manual issuance. */
static scep_template_t *restrictive_template(apr_pool_t *p)
{
    static const int nids[] = { NID_commonName, NID_organizationName, NID_organizationalUnitName };
    scep_template_t *tmpl = scep_template_new(p, "FuzzRestrictive");
    size_t i;

    tmpl->key_usage = X509v3_KU_DIGITAL_SIGNATURE;
    tmpl->subject_nids = apr_array_make(p, 3, sizeof(int));
    for (i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
        APR_ARRAY_PUSH(tmpl->subject_nids, int) = nids[i];
    }
    tmpl->san_types = SCEP_SAN_DNS;
    tmpl->min_rsa_bits = 3072;
    tmpl->key_types = SCEP_KEYTYPE_RSA;
    tmpl->issuance = SCEP_ISSUANCE_MANUAL;
    return tmpl;
}

/* KeyUsage and ExtendedKeyUsage FromRequest, wildcards allowed: the
 * request's usages and names are decoded in full. */
static scep_template_t *trusting_template(apr_pool_t *p)
{
    scep_template_t *tmpl = scep_template_new(p, "FuzzTrusting");

    tmpl->key_usage = SCEP_KU_FROM_REQUEST;
    tmpl->ext_key_usage = NULL;
    tmpl->wildcard_dns = 1;
    return tmpl;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_pool_t *templates_pool;

    fuzz_init();
    templates_pool = fuzz_pool(); /* for the process: never done */
    builtin = scep_template_builtin(templates_pool);
    restrictive = restrictive_template(templates_pool);
    trusting = trusting_template(templates_pool);
    return 0;
}

static void check(apr_pool_t *p, const scep_template_t *tmpl, X509_REQ *csr)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    if (scep_policy_check(p, tmpl, csr, &prob) != APR_SUCCESS) {
        if (prob.fail_info != SCEP_FAIL_BAD_REQUEST || !prob.text) {
            fuzz_fail("a policy refusal without badRequest and a text");
        }
    }
    else if (prob.fail_info != SCEP_FAIL_NONE) {
        fuzz_fail("a policy pass with a failInfo");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *cursor = data;
    apr_pool_t *p = fuzz_pool();
    X509_REQ *csr = d2i_X509_REQ(NULL, &cursor, (long)size);
    EVP_PKEY *key;

    if (csr) {
        SCEP_OWN(p, csr, X509_REQ_free);
        scep_csr_key_usage(csr);
        key = X509_REQ_get0_pubkey(csr);
        if (key && !scep_key_id(p, X509_REQ_get_X509_PUBKEY(csr))) {
            fuzz_fail("a decoded key without a key id");
        }
        if (key) {
            scep_key_desc(p, key);
        }
        scep_csr_san_text(p, csr);
        scep_name_text(p, X509_REQ_get_subject_name(csr));
        check(p, builtin, csr);
        check(p, restrictive, csr);
        check(p, trusting, csr);
    }
    fuzz_pool_done(p);
    return 0;
}
