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
 * A whole pkiMessage as a device POSTs it (scep_msg.c): CMS SignedData
 * read as BER or DER, SCEP attributes, signature verification with the
 * certificate it carries, the envelope decrypted with the test RA
 * encryption key, the messageData decoded; then what the glue does with
 * the result, down to the signed CertRep (fuzz_answer). Legacy algorithms
 * are allowed, so that single DES envelopes (micromdm's scepclient) are
 * opened too.
 *
 * Inputs whose signature does not verify stop early: the messageData
 * parsers are reached with valid signatures by fuzz_msgdata.
 */

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    scep_parse_opts_t opts = { 1, 0 };
    scep_request_t *req = NULL;
    scep_problem_t prob;
    apr_status_t rv;

    rv = scep_request_parse(p, fuzz_pki(), data, size, &opts, &req, &prob);
    fuzz_answer(p, rv, req, &prob);
    fuzz_pool_done(p);
    return 0;
}
