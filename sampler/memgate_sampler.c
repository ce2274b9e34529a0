/* memgate_sampler: a heap sampler for CPython's Python allocator domains.
 *
 * It wraps the PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ allocators (both called with the
 * GIL held, so the tables below need no lock). Every allocation takes its size off a
 * countdown of bytes; when the countdown passes zero, that allocation is sampled: the
 * Python stack is read (code objects and instruction offsets, without allocating) and
 * interned, and the pointer is remembered with its weight, the bytes it stands for.
 * The countdown is drawn again from an exponential distribution of mean `rate` bytes,
 * so sampling is a Poisson process over the bytes allocated, as tcmalloc's is
 * (docs/sampling.md there), and a sample of `size` bytes stands for
 * size / (1 - exp(-size / rate)) bytes: the estimate of each stack's live bytes is
 * unbiased. Freeing a sampled pointer takes its weight off its stack.
 *
 * No Python object is made, and no Python allocator is called, inside the hooks. The
 * tables are mapped memory of their own (mmap), not malloc's: memgate counts the heap
 * from the allocators' statistics (pymalloc's blocks, malloc's bytes in use), and the
 * sampler's tables, which grow as stacks are first seen, must not read as the service's
 * growth. Reading them (`live()`, `stacks_from()`, `frames_from()`) makes objects, with
 * the hooks told to pass through meanwhile.
 *
 * Frames (a code object and an instruction) are interned once each; a stack is a list
 * of frame ids, innermost first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <errno.h>

#if PY_VERSION_HEX >= 0x030B0000
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#else
#include "frameobject.h"
#endif

#ifdef Py_GIL_DISABLED
#error "memgate-sampler's tables rely on the GIL: a free-threaded build is not supported"
#endif
#if PY_VERSION_HEX >= 0x030E0000 || PY_VERSION_HEX < 0x03090000
#error "memgate-sampler reads the frames of CPython 3.9 to 3.13 only"
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define REQUEST_EXTRA PyUnstable_Eval_RequestCodeExtraIndex
#define GET_EXTRA PyUnstable_Code_GetExtra
#define SET_EXTRA PyUnstable_Code_SetExtra
#else
#define REQUEST_EXTRA _PyEval_RequestCodeExtraIndex
#define GET_EXTRA _PyCode_GetExtra
#define SET_EXTRA _PyCode_SetExtra
#endif

#if PY_VERSION_HEX >= 0x030B0000
#define CODE_NAME(code) ((code)->co_qualname)
#else
#define CODE_NAME(code) ((code)->co_name)
#endif

#define MAX_DEPTH 64

typedef struct {
    PyCodeObject *code; /* borrowed; NULL once the code object died (its names kept) */
    int lasti;          /* the instruction's offset in bytes (a line is told from it) */
    int line;           /* once the code object died: its line */
    uint32_t next;      /* the next frame of the same code object: its id + 1; 0: none */
    uint32_t name_at;   /* once the code object died: its names' offsets in `names` */
    uint32_t file_at;
} frame_t;

typedef struct {
    uint64_t hash;
    uint32_t depth;
    uint32_t first; /* index of its innermost frame id in `chain` */
    int64_t live;   /* estimated live bytes */
    int64_t count;  /* live samples */
} stack_t_;

typedef struct {
    void *ptr; /* NULL: empty */
    uint32_t stack;
    int64_t weight;
} sample_t;

static PyMemAllocatorEx original[2];
static int installed = 0;
/* Read on every allocation: the initial-exec model reads them at a fixed offset from the
 * thread pointer, where a shared object's default (general dynamic) calls __tls_get_addr
 * each time. glibc keeps room for a dlopen'ed object's few bytes of it; musl's loader
 * refuses such an object, so elsewhere the default model stays. */
#ifdef __GLIBC__
#define THREAD_LOCAL static __thread __attribute__((tls_model("initial-exec")))
#else
#define THREAD_LOCAL static __thread
#endif
THREAD_LOCAL int busy = 0;  /* the sampler's own work: allocations pass through */
THREAD_LOCAL int quiet = 0; /* a thread whose allocations are not sampled (the agent's) */
static Py_ssize_t extra_index = -1; /* the code objects' extra slot: their first frame + 1 */
static char *names = NULL; /* dead code objects' names, each NUL-ended; offset 0 is "" */
static size_t names_len = 0, names_cap = 0;
static double rate = 4096.0;
static int64_t countdown = 0;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static frame_t *frames = NULL; /* interned frames, by id */
static size_t frames_len = 0, frames_cap = 0;
static uint32_t *frame_index = NULL; /* open addressing: frame id + 1, 0 empty */
static size_t frame_index_cap = 0;
static uint32_t *chain = NULL; /* the stacks' frame ids, one stack after another */
static size_t chain_len = 0, chain_cap = 0;
static stack_t_ *stacks = NULL;
static size_t stacks_len = 0, stacks_cap = 0;
static uint32_t *stack_index = NULL; /* open addressing: stack id + 1, 0 empty */
static size_t stack_index_cap = 0;
static sample_t *samples = NULL; /* open addressing by pointer */
static size_t samples_cap = 0, samples_len = 0;
static uint64_t sampled_total = 0;
#define FILTER_BITS 18
static uint8_t *filter = NULL; /* see filter_at */

/* Mapped memory for the tables: `grow` maps `cap` bytes (zeroed) and copies `used`
 * bytes of `old` (of `old_cap` bytes) into it. NULL if the mapping failed. */
static void *grow(void *old, size_t old_cap, size_t used, size_t cap) {
    void *bigger = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bigger == MAP_FAILED) {
        return NULL;
    }
    if (old != NULL) {
        memcpy(bigger, old, used);
        munmap(old, old_cap);
    }
    return bigger;
}

static size_t mapped_bytes(void) {
    return frames_cap * sizeof(frame_t) + frame_index_cap * sizeof(uint32_t) +
           chain_cap * sizeof(uint32_t) + stacks_cap * sizeof(stack_t_) +
           stack_index_cap * sizeof(uint32_t) + samples_cap * sizeof(sample_t) +
           (filter != NULL ? (size_t)1 << FILTER_BITS : 0);
}

static uint64_t next_random(void) {
    /* xorshift64*: enough for drawing intervals */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t draw_interval(void) {
    double u = ((next_random() >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
    double bytes = -log(u) * rate;
    return bytes < 1.0 ? 1 : (int64_t)bytes;
}

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h;
}

/* A 64-bit finalizer (murmur3's): every bit of `h` moves every bit of the result. The
 * tables are indexed by its low bits: without it, a code object's frames (near lasti)
 * and the pointers' aligned low bits fall in runs of neighbouring slots, and linear
 * probing walks them (a third of a Django worker's time went to probing). */
static inline uint64_t spread(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static size_t pointer_slot(void *ptr, size_t cap) {
    return (size_t)spread((uint64_t)(uintptr_t)ptr) & (cap - 1);
}

static int samples_grow(void) {
    size_t cap = samples_cap ? samples_cap * 2 : 4096;
    sample_t *bigger = grow(NULL, 0, 0, cap * sizeof(sample_t));
    if (bigger == NULL) {
        return -1;
    }
    for (size_t i = 0; i < samples_cap; i++) {
        if (samples[i].ptr != NULL) {
            size_t j = pointer_slot(samples[i].ptr, cap);
            while (bigger[j].ptr != NULL) {
                j = (j + 1) & (cap - 1);
            }
            bigger[j] = samples[i];
        }
    }
    if (samples != NULL) {
        munmap(samples, samples_cap * sizeof(sample_t));
    }
    samples = bigger;
    samples_cap = cap;
    return 0;
}

/* A counting filter of the sampled pointers, by bits 4 to 21 of their address (blocks
 * are 16-byte aligned): a free whose count is 0 was surely not sampled, and does not
 * probe the samples' table (a cache miss on nearly every free of a large heap). Indexed
 * by address, not by a hash: the frees of neighbouring blocks (a pool's, a container's
 * items) read the same cache line. Indexed by a hash, the wait for the filter's byte
 * was two thirds of the free hook's time: the hook took 1.0% of the CPU's samples
 * (perf) under the demo's load, 0.6% indexed by address. A count that reached 255 stays. */

static inline uint8_t *filter_at(const void *ptr) {
    return &filter[((uintptr_t)ptr >> 4) & (((uintptr_t)1 << FILTER_BITS) - 1)];
}

static int64_t forget(void *ptr, uint64_t h) {
    /* The weight of a sampled pointer freed (its stack's live bytes less it); 0 if it
     * was not sampled. `h`: spread(ptr). Linear probing, with backward-shift deletion
     * (no tombstones). */
    size_t mask = samples_cap - 1;
    size_t i = (size_t)h & mask;
    while (samples[i].ptr != NULL) {
        if (samples[i].ptr == ptr) {
            stack_t_ *s = &stacks[samples[i].stack];
            int64_t weight = samples[i].weight;
            s->live -= weight;
            s->count -= 1;
            samples_len--;
            if (filter != NULL && *filter_at(ptr) != 255) {
                *filter_at(ptr) -= 1;
            }
            size_t hole = i;
            size_t j = (i + 1) & mask;
            while (samples[j].ptr != NULL) {
                size_t home = pointer_slot(samples[j].ptr, samples_cap);
                /* move j into the hole unless its home lies in (hole, j] */
                int between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
                if (!between) {
                    samples[hole] = samples[j];
                    hole = j;
                }
                j = (j + 1) & mask;
            }
            samples[hole].ptr = NULL;
            return weight;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

static int chain_reserve(size_t more) {
    if (chain_len + more <= chain_cap) {
        return 0;
    }
    size_t cap = chain_cap ? chain_cap * 2 : 65536;
    while (cap < chain_len + more) {
        cap *= 2;
    }
    uint32_t *bigger = grow(chain, chain_cap * sizeof(uint32_t), chain_len * sizeof(uint32_t),
                            cap * sizeof(uint32_t));
    if (bigger == NULL) {
        return -1;
    }
    chain = bigger;
    chain_cap = cap;
    return 0;
}

static uint64_t frame_hash(const frame_t *f) {
    return spread((uint64_t)(uintptr_t)f->code + (uint64_t)f->lasti * 0x9E3779B97F4A7C15ULL);
}

static int frame_index_grow(void) {
    size_t cap = frame_index_cap ? frame_index_cap * 2 : 8192;
    uint32_t *bigger = grow(NULL, 0, 0, cap * sizeof(uint32_t));
    if (bigger == NULL) {
        return -1;
    }
    for (size_t i = 0; i < frames_len; i++) {
        size_t j = (size_t)frame_hash(&frames[i]) & (cap - 1);
        while (bigger[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        bigger[j] = (uint32_t)i + 1;
    }
    if (frame_index != NULL) {
        munmap(frame_index, frame_index_cap * sizeof(uint32_t));
    }
    frame_index = bigger;
    frame_index_cap = cap;
    return 0;
}

/* `value`'s UTF-8 appended to `names`, NUL-ended: its offset (0, "", if it failed). */
static uint32_t keep_string(PyObject *value) {
    Py_ssize_t n = 0;
    const char *utf8 = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &n) : NULL;
    if (utf8 == NULL) {
        PyErr_Clear();
        return 0;
    }
    size_t need = names_len + (size_t)n + 1 + (names_len == 0);
    if (need > names_cap) {
        size_t cap = names_cap ? names_cap * 2 : 1 << 16;
        while (cap < need) {
            cap *= 2;
        }
        char *bigger = grow(names, names_cap, names_len, cap);
        if (bigger == NULL) {
            return 0;
        }
        names = bigger;
        names_cap = cap;
    }
    if (names_len == 0) {
        names[names_len++] = '\0'; /* offset 0: "" */
    }
    uint32_t at = (uint32_t)names_len;
    memcpy(names + names_len, utf8, (size_t)n);
    names_len += (size_t)n;
    names[names_len++] = '\0';
    return at;
}

/* Frame `i`'s names and line kept, and its code object let go of. */
static void keep_names(size_t i) {
    PyCodeObject *code = frames[i].code;
    if (code == NULL) {
        return;
    }
    int line = PyCode_Addr2Line(code, frames[i].lasti);
    uint32_t name_at = keep_string(CODE_NAME(code));
    uint32_t file_at = keep_string(code->co_filename);
    frames[i].line = line;
    frames[i].name_at = name_at;
    frames[i].file_at = file_at;
    frames[i].code = NULL;
}

/* A code object with frames dies (the extra slot's free function): keep their names. */
static void code_died(void *head) {
    int was = busy;
    busy = 1;
    for (uint32_t id = (uint32_t)(uintptr_t)head; id != 0 && id <= frames_len;) {
        keep_names(id - 1);
        id = frames[id - 1].next;
    }
    busy = was;
}

/* The id of frame `f` (interned on first sight); -1 if memory ran out. */
static long intern_frame(const frame_t *f) {
    if (frame_index_cap == 0 || (frames_len + 1) * 2 > frame_index_cap) {
        if (frame_index_grow() < 0) {
            return -1;
        }
    }
    size_t j = (size_t)frame_hash(f) & (frame_index_cap - 1);
    while (frame_index[j] != 0) {
        frame_t *seen = &frames[frame_index[j] - 1];
        if (seen->code == f->code && seen->lasti == f->lasti) {
            return (long)(frame_index[j] - 1);
        }
        j = (j + 1) & (frame_index_cap - 1);
    }
    if (frames_len == frames_cap) {
        size_t cap = frames_cap ? frames_cap * 2 : 8192;
        frame_t *bigger = grow(frames, frames_cap * sizeof(frame_t), frames_len * sizeof(frame_t),
                               cap * sizeof(frame_t));
        if (bigger == NULL) {
            return -1;
        }
        frames = bigger;
        frames_cap = cap;
    }
    /* No reference is held (a service that makes code objects as it runs would keep
     * them all): the code object's extra slot links its frames, and when it dies its
     * names are kept (code_died). */
    frames[frames_len] = *f;
    frames[frames_len].next = 0;
    /* The slot holds the code object's first frame for good (setting it again would call
     * its free function on the value it held); a later frame is linked after it. */
    void *head = NULL;
    int linked = 0;
    if (extra_index >= 0 && GET_EXTRA((PyObject *)f->code, extra_index, &head) == 0) {
        uint32_t first = (uint32_t)(uintptr_t)head;
        if (first != 0 && first <= frames_len) {
            frames[frames_len].next = frames[first - 1].next;
            frames[first - 1].next = (uint32_t)frames_len + 1;
            linked = 1;
        } else if (first == 0) {
            void *mine = (void *)(uintptr_t)(frames_len + 1);
            linked = SET_EXTRA((PyObject *)f->code, extra_index, mine) == 0;
        }
    }
    if (!linked) {
        PyErr_Clear();
        keep_names(frames_len); /* no slot: its names now, before the code object dies */
    }
    frame_index[j] = (uint32_t)frames_len + 1;
    return (long)frames_len++;
}

static int stack_index_grow(void) {
    size_t cap = stack_index_cap ? stack_index_cap * 2 : 4096;
    uint32_t *bigger = grow(NULL, 0, 0, cap * sizeof(uint32_t));
    if (bigger == NULL) {
        return -1;
    }
    for (size_t i = 0; i < stacks_len; i++) {
        size_t j = (size_t)spread(stacks[i].hash) & (cap - 1);
        while (bigger[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        bigger[j] = (uint32_t)i + 1;
    }
    if (stack_index != NULL) {
        munmap(stack_index, stack_index_cap * sizeof(uint32_t));
    }
    stack_index = bigger;
    stack_index_cap = cap;
    return 0;
}

/* The current thread's Python stack, innermost first, into `out`: its depth. */
static int read_stack(frame_t *out) {
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *tstate = PyThreadState_GetUnchecked();
#else
    PyThreadState *tstate = _PyThreadState_UncheckedGet();
#endif
    int depth = 0;
    if (tstate == NULL) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *f = tstate->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *f = tstate->cframe->current_frame;
#endif
#if PY_VERSION_HEX >= 0x030B0000
    while (f != NULL && depth < MAX_DEPTH) {
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *executable = f->f_executable;
        if (f->owner == FRAME_OWNED_BY_CSTACK || !PyCode_Check(executable)) {
            f = f->previous;
            continue;
        }
        PyCodeObject *code = (PyCodeObject *)executable;
#elif PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK) {
            f = f->previous;
            continue;
        }
        PyCodeObject *code = f->f_code;
#else
        PyCodeObject *code = f->f_code;
#endif
        if (_PyFrame_IsIncomplete(f)) {
            f = f->previous;
            continue;
        }
        out[depth].code = code;
        out[depth].lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
        depth++;
        f = f->previous;
    }
#else
    PyFrameObject *f = tstate->frame; /* 3.9, 3.10: frames are objects, read in place */
    while (f != NULL && depth < MAX_DEPTH) {
        out[depth].code = f->f_code;
        out[depth].lasti = f->f_lasti * (PY_VERSION_HEX >= 0x030A0000 ? 2 : 1);
        depth++;
        f = f->f_back;
    }
#endif
    return depth;
}

/* The id of the stack `got` (interned on first sight, its frames too); -1 if memory
 * ran out. */
static long intern_stack(frame_t *got, int depth) {
    uint32_t ids[MAX_DEPTH];
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        long id = intern_frame(&got[i]);
        if (id < 0) {
            return -1;
        }
        ids[i] = (uint32_t)id;
        h = mix(h, (uint64_t)id);
    }
    if (stack_index_cap == 0 || (stacks_len + 1) * 2 > stack_index_cap) {
        if (stack_index_grow() < 0) {
            return -1;
        }
    }
    size_t j = (size_t)spread(h) & (stack_index_cap - 1);
    while (stack_index[j] != 0) {
        stack_t_ *s = &stacks[stack_index[j] - 1];
        if (s->hash == h && s->depth == (uint32_t)depth &&
            memcmp(&chain[s->first], ids, (size_t)depth * sizeof(uint32_t)) == 0) {
            return (long)(stack_index[j] - 1);
        }
        j = (j + 1) & (stack_index_cap - 1);
    }
    if (stacks_len == stacks_cap) {
        size_t cap = stacks_cap ? stacks_cap * 2 : 4096;
        stack_t_ *bigger = grow(stacks, stacks_cap * sizeof(stack_t_),
                                stacks_len * sizeof(stack_t_), cap * sizeof(stack_t_));
        if (bigger == NULL) {
            return -1;
        }
        stacks = bigger;
        stacks_cap = cap;
    }
    if (chain_reserve((size_t)depth) < 0) {
        return -1;
    }
    stack_t_ *s = &stacks[stacks_len];
    s->hash = h;
    s->depth = (uint32_t)depth;
    s->first = (uint32_t)chain_len;
    s->live = 0;
    s->count = 0;
    memcpy(&chain[chain_len], ids, (size_t)depth * sizeof(uint32_t));
    chain_len += (size_t)depth;
    stack_index[j] = (uint32_t)stacks_len + 1;
    return (long)stacks_len++;
}

static void sample(void *ptr, size_t size) {
    frame_t got[MAX_DEPTH];
    busy = 1;
    /* The countdown passed zero: draw the next interval, counting what overshot. */
    while (countdown < 0) {
        countdown += draw_interval();
    }
    int depth = read_stack(got);
    long id = intern_stack(got, depth);
    if (id >= 0 && ((samples_len + 1) * 2 <= samples_cap || samples_grow() == 0)) {
        double s = (double)size;
        int64_t weight = (int64_t)(s / (1.0 - exp(-s / rate)) + 0.5);
        uint64_t h = spread((uint64_t)(uintptr_t)ptr);
        size_t i = (size_t)h & (samples_cap - 1);
        while (samples[i].ptr != NULL) {
            i = (i + 1) & (samples_cap - 1);
        }
        if (filter != NULL && *filter_at(ptr) != 255) {
            *filter_at(ptr) += 1;
        }
        samples[i].ptr = ptr;
        samples[i].stack = (uint32_t)id;
        samples[i].weight = weight;
        samples_len++;
        stacks[id].live += weight;
        stacks[id].count += 1;
        sampled_total++;
    }
    busy = 0;
}

static inline void allocated(void *ptr, size_t size) {
    if (ptr != NULL && !busy && !quiet) {
        countdown -= (int64_t)size;
        if (countdown < 0) {
            sample(ptr, size);
        }
    }
}

static inline void freed(void *ptr) {
    if (ptr != NULL && samples_len != 0 && (filter == NULL || *filter_at(ptr) != 0)) {
        forget(ptr, spread((uint64_t)(uintptr_t)ptr));
    }
}

static void *s_malloc(void *ctx, size_t size) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    void *ptr = a->malloc(a->ctx, size);
    allocated(ptr, size);
    return ptr;
}

static void *s_calloc(void *ctx, size_t nelem, size_t elsize) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    void *ptr = a->calloc(a->ctx, nelem, elsize);
    allocated(ptr, nelem * elsize);
    return ptr;
}

static void *s_realloc(void *ctx, void *old, size_t size) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    void *ptr = a->realloc(a->ctx, old, size);
    if (ptr != NULL) {
        freed(old); /* moved or resized: the old block is no longer what was sampled */
        allocated(ptr, size);
    }
    return ptr;
}

static void s_free(void *ctx, void *ptr) {
    PyMemAllocatorEx *a = (PyMemAllocatorEx *)ctx;
    freed(ptr);
    a->free(a->ctx, ptr);
}

/* pymalloc's statistics (`sys._debugmallocstats()`'s text) into `out`, as CPython's
 * `_PyObject_DebugMallocStats` writes them: it writes nothing while another allocator
 * than pymalloc's own is set for objects, as the sampler's hook is, so the hook is taken
 * off meanwhile. Called with the GIL held (ctypes' PyDLL), so nothing is allocated
 * meanwhile. For memgate's agent, which counts the heap from these statistics. */
extern int _PyObject_DebugMallocStats(FILE *out); /* CPython's, behind Py_BUILD_CORE */

__attribute__((visibility("default"))) int memgate_sampler_malloc_stats(FILE *out) {
    if (!installed) {
        return _PyObject_DebugMallocStats(out);
    }
    PyMemAllocatorEx hooked;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &hooked);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &original[1]);
    int written = _PyObject_DebugMallocStats(out);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &hooked);
    return written;
}

static PyObject *start(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"rate", "seed", NULL};
    double wanted = 4096.0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|dK", names, &wanted, &seed)) {
        return NULL;
    }
    if (!(wanted >= 1.0)) {
        PyErr_SetString(PyExc_ValueError, "rate: at least 1 byte");
        return NULL;
    }
    if (installed) {
        PyErr_SetString(PyExc_RuntimeError, "the sampler is already started");
        return NULL;
    }
    rate = wanted;
    if (seed != 0) {
        rng = seed;
    }
    filter = grow(NULL, 0, 0, (size_t)1 << FILTER_BITS); /* NULL: every free probes */
    extra_index = REQUEST_EXTRA(code_died);
    countdown = draw_interval();
    PyMemAllocatorDomain domains[2] = {PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    for (int i = 0; i < 2; i++) {
        PyMem_GetAllocator(domains[i], &original[i]);
        PyMemAllocatorEx hook = {&original[i], s_malloc, s_calloc, s_realloc, s_free};
        PyMem_SetAllocator(domains[i], &hook);
    }
    installed = 1;
    Py_RETURN_NONE;
}

/* Append `item` (a new reference, or NULL after an error) to `*out`; on failure, clear
 * `*out` and return -1. */
static int append(PyObject **out, PyObject *item) {
    if (item == NULL || PyList_Append(*out, item) < 0) {
        Py_XDECREF(item);
        Py_CLEAR(*out);
        return -1;
    }
    Py_DECREF(item);
    return 0;
}

static PyObject *live(PyObject *self, PyObject *unused) {
    /* [(stack id, estimated live bytes, live samples)] for every stack with samples */
    busy = 1;
    PyObject *out = PyList_New(0);
    for (size_t i = 0; out != NULL && i < stacks_len; i++) {
        if (stacks[i].count <= 0) {
            continue;
        }
        PyObject *item = Py_BuildValue("(nLL)", (Py_ssize_t)i, (long long)stacks[i].live,
                                       (long long)stacks[i].count);
        if (append(&out, item) < 0) {
            break;
        }
    }
    busy = 0;
    return out;
}

static PyObject *stacks_from(PyObject *self, PyObject *arg) {
    /* The stacks interned from id `arg` on: [(id, (frame id, ...))], innermost first. */
    Py_ssize_t first = PyLong_AsSsize_t(arg);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    busy = 1;
    PyObject *out = PyList_New(0);
    for (size_t i = first < 0 ? 0 : (size_t)first; out != NULL && i < stacks_len; i++) {
        /* Indexed afresh at each step: an allocation may have grown (moved) the tables. */
        PyObject *ids = PyTuple_New(stacks[i].depth);
        for (uint32_t k = 0; ids != NULL && k < stacks[i].depth; k++) {
            PyObject *id = PyLong_FromUnsignedLong(chain[stacks[i].first + k]);
            if (id == NULL) {
                Py_CLEAR(ids);
                break;
            }
            PyTuple_SET_ITEM(ids, k, id);
        }
        PyObject *item = ids ? Py_BuildValue("(nN)", (Py_ssize_t)i, ids) : NULL;
        if (append(&out, item) < 0) {
            break;
        }
    }
    busy = 0;
    return out;
}

static PyObject *frames_from(PyObject *self, PyObject *arg) {
    /* The frames interned from id `arg` on: [(id, function, file, line)]. */
    Py_ssize_t first = PyLong_AsSsize_t(arg);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    busy = 1;
    PyObject *out = PyList_New(0);
    for (size_t i = first < 0 ? 0 : (size_t)first; out != NULL && i < frames_len; i++) {
        PyObject *item;
        if (frames[i].code != NULL) {
            PyCodeObject *code = frames[i].code;
            int line = PyCode_Addr2Line(code, frames[i].lasti);
            item = Py_BuildValue("(nOOi)", (Py_ssize_t)i, CODE_NAME(code), code->co_filename, line);
        } else {
            item = Py_BuildValue("(nssi)", (Py_ssize_t)i, names + frames[i].name_at,
                                 names + frames[i].file_at, frames[i].line);
        }
        if (append(&out, item) < 0) {
            break;
        }
    }
    busy = 0;
    return out;
}

/* Writing what the sampler holds, as JSON lines, with no allocation of the C library's
 * or Python's (the text is made in a mapped buffer): a thread that allocated through
 * malloc keeps freed chunks in its own cache (glibc's tcache), which malloc's
 * statistics count as in use, and memgate counts the heap from them. */
static char *text = NULL;
static size_t text_len = 0, text_cap = 0;
static size_t written_frames = 0, written_stacks = 0;
static int line_broken = 0; /* the last write failed part-way */

static int text_reserve(size_t more) {
    if (text_len + more <= text_cap) {
        return 0;
    }
    size_t cap = text_cap ? text_cap * 2 : 1 << 20;
    while (cap < text_len + more) {
        cap *= 2;
    }
    char *bigger = grow(text, text_cap, text_len, cap);
    if (bigger == NULL) {
        return -1;
    }
    text = bigger;
    text_cap = cap;
    return 0;
}

static int put(const char *chars, size_t n) {
    if (text_reserve(n) < 0) {
        return -1;
    }
    memcpy(text + text_len, chars, n);
    text_len += n;
    return 0;
}

static int put_number(long long value) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", value);
    return put(digits, (size_t)n);
}

/* A JSON string of `n` bytes of UTF-8. */
static int put_utf8(const char *utf8, Py_ssize_t n) {
    if (text_reserve((size_t)n * 6 + 2) < 0) {
        return -1;
    }
    text[text_len++] = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c == '"' || c == '\\') {
            text[text_len++] = '\\';
            text[text_len++] = (char)c;
        } else if (c < 0x20) {
            text_len += (size_t)snprintf(text + text_len, 7, "\\u%04x", c);
        } else {
            text[text_len++] = (char)c;
        }
    }
    text[text_len++] = '"';
    return 0;
}

/* A JSON string of `value`'s UTF-8 (a str; anything else as ""). */
static int put_string(PyObject *value) {
    Py_ssize_t n = 0;
    const char *utf8 = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &n) : NULL;
    if (utf8 == NULL) {
        PyErr_Clear();
        return put("\"\"", 2);
    }
    return put_utf8(utf8, n);
}

static int flush_text(int fd) {
    size_t done = 0;
    while (done < text_len) {
        ssize_t n = write(fd, text + done, text_len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        done += (size_t)n;
    }
    text_len = 0;
    return 0;
}

static PyObject *write_lines(PyObject *self, PyObject *args) {
    /* write(fd, t): the frames and stacks interned since the last write, then what is
     * live, as lines of JSON (see memgate's gate/agent/samples.py). */
    int fd;
    double t;
    if (!PyArg_ParseTuple(args, "id", &fd, &t)) {
        return NULL;
    }
    if (!isfinite(t) || fabs(t) > 1e15) {
        PyErr_SetString(PyExc_ValueError, "t: a time in seconds");
        return NULL;
    }
    busy = 1; /* PyUnicode_AsUTF8AndSize caches a name's UTF-8 once: not sampled */
    int failed = 0;
    text_len = 0;
    if (line_broken) { /* what a failed write left of a line ends here, and is skipped */
        failed |= put("\n", 1);
    }
    size_t stacks_now = stacks_len, frames_now = frames_len;
    if (written_frames < frames_now) {
        failed |= put("{\"frames\": {", 12);
        for (size_t i = written_frames; i < frames_now && !failed; i++) {
            frame_t *f = &frames[i];
            failed |= put(i == written_frames ? "\"" : ", \"", i == written_frames ? 1 : 3);
            failed |= put_number((long long)i);
            failed |= put("\": [", 4);
            if (f->code != NULL) {
                failed |= put_string(CODE_NAME(f->code));
                failed |= put(", ", 2);
                failed |= put_string(f->code->co_filename);
                failed |= put(", ", 2);
                failed |= put_number(PyCode_Addr2Line(f->code, f->lasti));
            } else { /* the code object died: the names kept then */
                const char *name = names + f->name_at, *file = names + f->file_at;
                failed |= put_utf8(name, (Py_ssize_t)strlen(name));
                failed |= put(", ", 2);
                failed |= put_utf8(file, (Py_ssize_t)strlen(file));
                failed |= put(", ", 2);
                failed |= put_number(f->line);
            }
            failed |= put("]", 1);
        }
        failed |= put("}}\n", 3);
    }
    if (written_stacks < stacks_now) {
        failed |= put("{\"stacks\": {", 12);
        for (size_t i = written_stacks; i < stacks_now && !failed; i++) {
            stack_t_ *st = &stacks[i];
            failed |= put(i == written_stacks ? "\"" : ", \"", i == written_stacks ? 1 : 3);
            failed |= put_number((long long)i);
            failed |= put("\": [", 4);
            for (uint32_t k = 0; k < st->depth && !failed; k++) {
                if (k) {
                    failed |= put(", ", 2);
                }
                failed |= put_number((long long)chain[st->first + k]);
            }
            failed |= put("]", 1);
        }
        failed |= put("}}\n", 3);
    }
    char stamp[64];
    int n = snprintf(stamp, sizeof stamp, "{\"t\": %.6f, \"live\": [", t);
    failed |= n < 0 || (size_t)n >= sizeof stamp || put(stamp, (size_t)n);
    int first = 1;
    for (size_t i = 0; i < stacks_now && !failed; i++) {
        if (stacks[i].count <= 0) {
            continue;
        }
        failed |= put(first ? "[" : ", [", first ? 1 : 3);
        failed |= put_number((long long)i);
        failed |= put(", ", 2);
        failed |= put_number((long long)stacks[i].live);
        failed |= put("]", 1);
        first = 0;
    }
    failed |= put("]}\n", 3);
    busy = 0;
    if (failed) {
        text_len = 0;
        return PyErr_NoMemory();
    }
    if (flush_text(fd) < 0) {
        text_len = 0;
        line_broken = 1;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    line_broken = 0;
    written_frames = frames_now;
    written_stacks = stacks_now;
    Py_RETURN_NONE;
}

static PyObject *rewrite(PyObject *self, PyObject *unused) {
    /* The next write() writes every frame and stack again (a forked process's new file);
     * and a forked process draws its own samples. */
    written_frames = written_stacks = 0;
    line_broken = 0;
    rng ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
    if (rng == 0) {
        rng = 0x9E3779B97F4A7C15ULL;
    }
    Py_RETURN_NONE;
}

static PyObject *set_quiet(PyObject *self, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) {
        return NULL;
    }
    quiet = on;
    Py_RETURN_NONE;
}

static PyObject *stats(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:d,s:K,s:n,s:n,s:n,s:n}", "rate", rate, "sampled",
                         (unsigned long long)sampled_total, "live_samples",
                         (Py_ssize_t)samples_len, "stacks", (Py_ssize_t)stacks_len, "frames",
                         (Py_ssize_t)frames_len, "mapped_bytes", (Py_ssize_t)mapped_bytes());
}

static PyMethodDef methods[] = {
    {"start", (PyCFunction)(void (*)(void))start, METH_VARARGS | METH_KEYWORDS,
     "start(rate=4096, seed=0): sample the Python allocators, one sample every `rate`"
     " bytes on average; once per process (a fork keeps it)."},
    {"live", live, METH_NOARGS,
     "live() -> [(stack id, estimated live bytes, live samples)]"},
    {"stacks_from", stacks_from, METH_O,
     "stacks_from(id) -> [(id, (frame id, ...))] for the stacks interned from `id` on,"
     " innermost frame first"},
    {"frames_from", frames_from, METH_O,
     "frames_from(id) -> [(id, function, file, line)] for the frames interned from `id` on"},
    {"write", write_lines, METH_VARARGS,
     "write(fd, t): the frames and stacks new since the last write, then what is live at"
     " time t, as lines of JSON to file descriptor fd; nothing allocated"},
    {"rewrite", rewrite, METH_NOARGS, "rewrite(): the next write() writes every frame and stack"},
    {"quiet", set_quiet, METH_O,
     "quiet(on): sample no allocation of this thread while on (its frees still count)"},
    {"stats", stats, METH_NOARGS,
     "stats() -> {rate, sampled, live_samples, stacks, frames, mapped_bytes}"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "memgate_sampler",
    "A heap sampler for CPython's Python allocators (memgate's capture = \"sampled\").", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_memgate_sampler(void) { return PyModule_Create(&module); }
