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
 * What the libFuzzer targets of t/fuzz share: process setup, the test PKI
 * of t/fuzz/pki (TEST ONLY: its private keys are public), a pool per
 * input, and what the glue does with a parsed request and its CertRep,
 * so that the fuzzed values travel the same way they do in the server.
 */
#ifndef mod_scep_fuzz_h
#define mod_scep_fuzz_h

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>

#include "scep.h"

/* The entry points libFuzzer calls. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* APR, OpenSSL's default and legacy providers (single DES, as the module
 * loads them), and the test PKI; aborts when something is missing. */
void fuzz_init(void);

/* The test PKI: CA, RA signing and RA encryption certificates and keys. */
const scep_pki_t *fuzz_pki(void);

/* The test device's EC key and self-signed certificate (t/fuzz/pki). */
EVP_PKEY *fuzz_device_key(void);
X509 *fuzz_device_cert(void);

/* A pool for one input; fuzz_pool_done() destroys it and clears OpenSSL's
 * error queue, so that nothing of one input is left for the next. */
apr_pool_t *fuzz_pool(void);
void fuzz_pool_done(apr_pool_t *p);

/* Stops the fuzzer with a message: a broken promise of the core. */
void fuzz_fail(const char *what);

/* What mod_scep_pkiop.c does with the outcome of scep_request_parse():
 * checks the promises of scep.h (a successful parse fills what its message
 * type needs), reads the request as the glue does (names, serials, key
 * ids, keyUsage, the policy check of a CSR with the built-in template),
 * and signs the CertRep: FAILURE with the parser's failInfo, else SUCCESS
 * with the CA certificate enveloped to the request's signer.
 * With FUZZ_VERBOSE in the environment it says on stderr what the parser
 * made of the input (to check that a new seed gets through). */
void fuzz_answer(apr_pool_t *p, apr_status_t rv, const scep_request_t *req,
                 const scep_problem_t *prob);

#endif /* mod_scep_fuzz_h */
