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
 * apr_palloc() for the fuzz targets: every pool allocation its own
 * malloc() block, freed by a cleanup of its pool. APR carves allocations
 * out of large blocks, so AddressSanitizer would not see a write past the
 * end of one pool buffer into the next; with a block of its own each
 * overflow hits a red zone, and a use after the pool is gone is a use
 * after free. Debian's APR calls apr_palloc() through the PLT, so this
 * definition also serves apr_pstrdup(), apr_array_make() and friends.
 *
 * The blocks are also kept on a list rooted in a global: Debian's APR
 * takes pool memory from mmap(), which LeakSanitizer does not scan, so a
 * block referenced only from pool memory would look leaked, and so would
 * every OpenSSL object a pool owns (scep_pool_own()).
 *
 * Linked into the fuzz targets only, never into the module or scepctl.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdlib.h>

#include <apr_pools.h>

typedef void *(*palloc_fn)(apr_pool_t *p, apr_size_t size);

typedef struct block_t {
    struct block_t *prev, *next;
    void *mem;
} block_t;

static block_t live = { &live, &live, NULL };

/* Set while the bookkeeping of one allocation allocates from the pool
 * itself (the cleanup record): that goes to APR's own apr_palloc(). */
static __thread int in_bookkeeping;

static palloc_fn apr_own_palloc(void)
{
    static palloc_fn real;

    if (!real) {
        real = (palloc_fn)dlsym(RTLD_NEXT, "apr_palloc");
        if (!real) {
            abort();
        }
    }
    return real;
}

static apr_status_t free_block(void *data)
{
    block_t *block = data;

    block->prev->next = block->next;
    block->next->prev = block->prev;
    free(block->mem);
    free(block);
    return APR_SUCCESS;
}

void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    block_t *block;

    if (in_bookkeeping) {
        return apr_own_palloc()(p, size);
    }
    block = malloc(sizeof(*block));
    if (!block) {
        abort();
    }
    block->mem = malloc(size);
    if (!block->mem && size) {
        abort();
    }
    block->next = live.next;
    block->prev = &live;
    live.next->prev = block;
    live.next = block;
    in_bookkeeping = 1;
    apr_pool_cleanup_register(p, block, free_block, apr_pool_cleanup_null);
    in_bookkeeping = 0;
    return block->mem;
}
