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
 * The fixture of the test files whose cases need a pool and a PKI in
 * simple mode (the CA key acts as RA), new for each test: included by the
 * test file (once), it gives that file pool, pki, setup() and teardown()
 * for testutil_case(). Static: each file has its own.
 */
#ifndef mod_scep_testpki_h
#define mod_scep_testpki_h

#include <apr_pools.h>

#include "scep.h"
#include "testutil.h"

static apr_pool_t *pool;
static scep_pki_t *pki;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    pki = testutil_pki_load(pool, testutil_pki_create(pool), 0);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

#endif /* mod_scep_testpki_h */
