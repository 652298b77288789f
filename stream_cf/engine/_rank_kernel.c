/* The `vote` list (stream_cf/engine/ranking.py), compiled: its neighbours, the shared anchors'
   costs and the scores, each in one pass.

   The same formula and the same floating-point operations, in the same order, as the numpy
   path of ranking.py (which stays the reference and the fallback). With I_u u's items latest
   first (q = 0, 1, ...), x_q their weights (2^(−q/h), over n_j^b with the rarity b: computed
   by numpy and passed in), n_v the items of v, n_i the raters of i:

       total_v = Σ_{q, v rated I_u[q]} x_q   (from 0.0: q ascending, within an item its rater
                                             row's order: np.bincount's order of addition)
       w_v     = total_v / sqrt(n_v)         (v ≠ u, total_v > 0)
       N(u)    = the K largest w_v, ties by user_since ascending, then by slot ascending

   then, with we_k = w_k^e (numpy's power, passed in) and v_k the k-th neighbour:

       s_i     = Σ_{k ascending, v_k rated i} we_k · g_k(i)    (from 0.0, in that order; the
                                                               product rounded before the sum)
       score_i = s_i / n_i^d                 (n_i^d from a table numpy built; no division if d = 0)

   g = 1 (none: the term is we_k itself), g = table[pos] (latest: 2^(−pos/h_n) by numpy, pos the
   place of i in v's history latest first), or g per cell (shared: numpy's 2^(−cost) of the
   costs :func:`shared_cost` wrote). The list: the n largest scores of the items some neighbour
   rated (u's own left out unless include_seen), ties by the lower item slot.

   shared's cost per cell of each neighbour's history (latest first, p = 0, 1, ...; step_p =
   p / h_n; the anchors: cells of items u has, a = pos_u / h) is
       F_p = min over anchors at or before p of (a − step_anchor)     (inf if none)
       B_p = min over anchors at or after p of (a + step_anchor)      (inf if none)
       cost_p = min(F_p + step_p, B_p − step_p)
   the numpy path's running minima (gather.group_running_min) and reads at the nearest anchor.
   The histories (each neighbour's item slots latest first) are written beside the costs and
   read back by vote_scores: one sort of a row whose cells left the order of their events.

   Built with -ffp-contract=off (no fused multiply-add): every product is rounded before it is
   added, so the bits equal the numpy path's (tests/engine/test_rank_kernel.py). Scratch arrays
   over the user and item slots live here between calls, zero (or -1) on entry and on return. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernel_buf.h"

typedef struct {
    int size;
    const char *formats;
    int writable;
    const char *name;
} Spec;


static int take_all(PyObject **objs, Buf *b, const Spec *spec, int n) {
    for (int t = 0; t < n; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, spec[t].writable, spec[t].name) <
            0) {
            return -1;
        }
    }
    return 0;
}

static void release_all(Buf *b, int n) {
    for (int t = 0; t < n; t++) {
        if (b[t].held) {
            PyBuffer_Release(&b[t].view);
        }
    }
}

#define LEN(t) (b[t].view.len / b[t].view.itemsize)

/* ------------------------------------------------------------------ scratch (kept between calls) */

static double *user_total = NULL; /* per user slot: total_v, 0.0 outside a call */
static Py_ssize_t user_cap = 0;

static double *item_sum = NULL;    /* per item slot: s_i, 0.0 outside a call */
static int64_t *item_pos = NULL;   /* per item slot: pos_u(i), -1 where u lacks i (outside a call) */
static uint8_t *item_seen = NULL;  /* per item slot: a candidate already (0 outside a call) */
static int32_t *item_touched = NULL;
static Py_ssize_t item_cap = 0;

static int ensure_users(Py_ssize_t n) {
    if (n <= user_cap) {
        return 0;
    }
    Py_ssize_t cap = user_cap ? user_cap : 1024;
    while (cap < n) cap *= 2;
    double *total = realloc(user_total, sizeof(double) * (size_t)cap);
    if (!total) return -1;
    user_total = total;
    memset(user_total + user_cap, 0, sizeof(double) * (size_t)(cap - user_cap));
    user_cap = cap;
    return 0;
}

static int ensure_items(Py_ssize_t n) {
    if (n <= item_cap) {
        return 0;
    }
    Py_ssize_t cap = item_cap ? item_cap : 1024;
    while (cap < n) cap *= 2;
    double *sum = realloc(item_sum, sizeof(double) * (size_t)cap);
    if (!sum) return -1;
    item_sum = sum;
    memset(item_sum + item_cap, 0, sizeof(double) * (size_t)(cap - item_cap));
    int64_t *pos = realloc(item_pos, sizeof(int64_t) * (size_t)cap);
    if (!pos) return -1;
    item_pos = pos;
    for (Py_ssize_t t = item_cap; t < cap; t++) item_pos[t] = -1;
    uint8_t *seen = realloc(item_seen, (size_t)cap);
    if (!seen) return -1;
    item_seen = seen;
    memset(item_seen + item_cap, 0, (size_t)(cap - item_cap));
    int32_t *touched = realloc(item_touched, sizeof(int32_t) * (size_t)cap);
    if (!touched) return -1;
    item_touched = touched;
    item_cap = cap;
    return 0;
}

/* ------------------------------------------------------------------ selection */

typedef struct {
    double score;
    int64_t key; /* the first tie rule, ascending (user_since; the item slot) */
    int64_t slot; /* the last one, ascending */
} Entry;

/* Whether x goes before y: the larger score, then the lower key, then the lower slot. */
static inline int better(const Entry *x, const Entry *y) {
    if (x->score != y->score) return x->score > y->score;
    if (x->key != y->key) return x->key < y->key;
    return x->slot < y->slot;
}

/* A heap of the best ``cap`` entries so far, the worst on top. */
static void heap_push(Entry *heap, Py_ssize_t *size, Py_ssize_t cap, Entry e) {
    Py_ssize_t at;
    if (*size < cap) {
        at = (*size)++;
        while (at > 0) {
            const Py_ssize_t up = (at - 1) / 2;
            if (!better(&heap[up], &e)) break; /* the parent is worse: e stays below it */
            heap[at] = heap[up];
            at = up;
        }
        heap[at] = e;
        return;
    }
    if (cap == 0 || !better(&e, &heap[0])) return;
    at = 0; /* replace the worst and sift it down */
    for (;;) {
        Py_ssize_t down = 2 * at + 1;
        if (down >= *size) break;
        if (down + 1 < *size && better(&heap[down], &heap[down + 1])) down++; /* the worse child */
        if (!better(&e, &heap[down])) break;
        heap[at] = heap[down];
        at = down;
    }
    heap[at] = e;
}

static int entry_order(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    return better(x, y) ? -1 : (better(y, x) ? 1 : 0);
}

/* ------------------------------------------------------------------ histories */

typedef struct {
    int64_t seq;
    int64_t cell;
} Cell;

static int later_first(const void *a, const void *b) {
    const Cell *x = a, *y = b;
    return x->seq > y->seq ? -1 : (x->seq < y->seq ? 1 : 0);
}

/* Sorts n distinct uint64 keys ascending: a bottom-up merge sort between a and b (room for n
   each), branch-free merges (a select, no jump, per key: the keys of a row come in no order a
   branch predictor could learn), a pair of runs already in order copied. Returns a or b. */
static uint64_t *sort_keys(uint64_t *a, uint64_t *b, Py_ssize_t n) {
    for (Py_ssize_t width = 1; width < n; width *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * width) {
            const Py_ssize_t mid = lo + width < n ? lo + width : n;
            const Py_ssize_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            if (mid == hi || a[mid - 1] < a[mid]) {
                memcpy(b + lo, a + lo, sizeof(uint64_t) * (size_t)(hi - lo));
                continue;
            }
            Py_ssize_t x = lo, y = mid, k = lo;
            while (x < mid && y < hi) {
                const uint64_t vx = a[x], vy = a[y];
                const Py_ssize_t take = vy < vx;
                b[k++] = take ? vy : vx;
                y += take;
                x += 1 - take;
            }
            while (x < mid) b[k++] = a[x++];
            while (y < hi) b[k++] = a[y++];
        }
        uint64_t *swap = a;
        a = b;
        b = swap;
    }
    return a;
}

typedef struct {
    const int64_t *start, *length;
    const int32_t *pool;
    const int32_t *cell_item;
    const int64_t *cell_seq;
    Py_ssize_t n_rows, n_pool, n_cells;
} Users;

#define PLACE_BITS 21 /* a row's places in the low bits of a sort key, its sequence numbers above */

/* v's item slots latest first into out (room for length[v]): the row backwards when its
   sequence numbers ascend, else sorted by them (distinct within a user: one order, however it
   is found), as keys seq << PLACE_BITS | place where they fit, else as (seq, cell) pairs; tmp:
   room for 2 · length[v] Cells. -1 on a bad index. */
static Py_ssize_t history(const Users *us, int64_t v, int64_t *out, Cell *tmp) {
    if (v < 0 || v >= us->n_rows) return -1;
    const int64_t lo = us->start[v], len = us->length[v];
    if (lo < 0 || len < 0 || lo + len > us->n_pool) return -1;
    const int32_t *row = us->pool + lo;
    int in_order = 1;
    int64_t before = INT64_MIN, top = 0;
    uint64_t *keys = (uint64_t *)tmp;
    for (int64_t t = 0; t < len; t++) {
        const int64_t cell = row[t];
        if (cell < 0 || cell >= us->n_cells) return -1;
        const int64_t seq = us->cell_seq[cell];
        if (t > 0 && !(seq > before)) in_order = 0;
        before = seq;
        if (seq < 0) top = INT64_MAX;
        if (seq > top) top = seq;
        keys[t] = ((uint64_t)seq << PLACE_BITS) | (uint64_t)t;
    }
    if (in_order) {
        for (int64_t p = 0; p < len; p++) out[p] = us->cell_item[row[len - 1 - p]];
    } else if (len < ((int64_t)1 << PLACE_BITS) && top < ((int64_t)1 << (63 - PLACE_BITS))) {
        const uint64_t *sorted = sort_keys(keys, keys + len, len);
        const uint64_t mask = ((uint64_t)1 << PLACE_BITS) - 1;
        for (int64_t p = 0; p < len; p++) out[p] = us->cell_item[row[sorted[len - 1 - p] & mask]];
    } else {
        for (int64_t t = 0; t < len; t++) {
            tmp[t].cell = row[t];
            tmp[t].seq = us->cell_seq[row[t]];
        }
        qsort(tmp, (size_t)len, sizeof(Cell), later_first);
        for (int64_t p = 0; p < len; p++) out[p] = us->cell_item[tmp[p].cell];
    }
    return (Py_ssize_t)len;
}

/* The histories row by row (history()'s sort of each row), where the radix keys do not fit
   64 bits: 0, -1 on a bad index, -2 without memory. */
static int one_by_one(const Users *us, const int64_t *slots, Py_ssize_t n_slots, int64_t *out,
                      const int64_t *at) {
    Py_ssize_t longest = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++)
        if (us->length[slots[k]] > longest) longest = us->length[slots[k]];
    Cell *tmp = malloc(sizeof(Cell) * (size_t)(2 * longest + 2));
    if (!tmp) return -2;
    int status = 0;
    for (Py_ssize_t k = 0; k < n_slots && status == 0; k++) {
        if (history(us, slots[k], out + at[k], tmp) < 0) status = -1;
    }
    free(tmp);
    return status;
}

static int bits_of(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

/* The histories of the users ``slots`` (their item slots latest first), concatenated in the
   order of ``slots`` into out (room for Σ length). A row whose sequence numbers ascend is read
   backwards; the cells of the others are sorted together, by one LSD radix sort (8 bits a pass)
   of the keys (row << s) | (top − seq) where they fit 64 bits (ascending: row by row, latest
   first; the sequence numbers are distinct within a row), else row by row by history().
   0, or -1 on a bad index, -2 without memory. */
static int histories(const Users *us, const int64_t *slots, Py_ssize_t n_slots, int64_t *out) {
    Py_ssize_t total = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++) {
        const int64_t v = slots[k];
        if (v < 0 || v >= us->n_rows) return -1;
        const int64_t lo = us->start[v], len = us->length[v];
        if (lo < 0 || len < 0 || lo + len > us->n_pool) return -1;
        total += len;
    }
    int status = -2;
    uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)(2 * total + 1));
    int64_t *cells = malloc(sizeof(int64_t) * (size_t)(2 * total + 1));
    int64_t *at = malloc(sizeof(int64_t) * (size_t)(n_slots + 1));
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)(total + 1));
    if (!keys || !cells || !at || !rows) goto done;
    status = -1;
    Py_ssize_t c0 = 0, n_keys = 0;
    int64_t seq_lo = INT64_MAX, seq_hi = INT64_MIN;
    for (Py_ssize_t k = 0; k < n_slots; k++) {
        const int64_t v = slots[k], lo = us->start[v], len = us->length[v];
        const int32_t *row = us->pool + lo;
        int in_order = 1;
        int64_t before = INT64_MIN, row_lo = INT64_MAX, row_hi = INT64_MIN;
        for (int64_t t = 0; t < len; t++) { /* read once, kept in case the row is sorted */
            const int64_t cell = row[t];
            if (cell < 0 || cell >= us->n_cells) goto done;
            const int64_t seq = us->cell_seq[cell];
            if (t > 0 && !(seq > before)) in_order = 0;
            before = seq;
            keys[n_keys + t] = (uint64_t)seq;
            cells[n_keys + t] = us->cell_item[cell]; /* read beside its sequence number */
            rows[n_keys + t] = (int32_t)k;
            if (seq < row_lo) row_lo = seq;
            if (seq > row_hi) row_hi = seq;
        }
        at[k] = c0;
        if (in_order) {
            for (int64_t p = 0; p < len; p++) out[c0 + p] = cells[n_keys + len - 1 - p];
        } else {
            n_keys += len;
            if (row_lo < seq_lo) seq_lo = row_lo;
            if (row_hi > seq_hi) seq_hi = row_hi;
        }
        c0 += len;
    }
    if (n_keys) {
        const int s = bits_of((uint64_t)(seq_hi - seq_lo));
        const int width = s + bits_of((uint64_t)n_slots);
        if (seq_hi - seq_lo < 0 || width > 64) {
            status = one_by_one(us, slots, n_slots, out, at);
            goto done;
        } else {
            /* the key: row, age, then the item slot itself (read with the sequence number: no
               gather after the sort), sorted on the bits above the item */
            int64_t top_item = 0;
            for (Py_ssize_t e = 0; e < n_keys; e++) {
                if (cells[e] > top_item) top_item = cells[e];
            }
            const int w_item = bits_of((uint64_t)top_item);
            if (width + w_item <= 64) {
                for (Py_ssize_t e = 0; e < n_keys; e++) {
                    const uint64_t age = (uint64_t)seq_hi - keys[e];
                    keys[e] = ((((uint64_t)rows[e] << s) | age) << w_item) | (uint64_t)cells[e];
                }
                const int passes = (width + 7) / 8;
                const int digit = passes ? (width + passes - 1) / passes : 1;
                const uint64_t mask = ((uint64_t)1 << digit) - 1;
                Py_ssize_t *count = malloc(sizeof(Py_ssize_t) * (((size_t)1 << digit) + 1));
                if (!count) {
                    status = -2;
                    goto done;
                }
                uint64_t *ka = keys, *kb = keys + n_keys;
                for (int shift = w_item; shift < w_item + width; shift += digit) {
                    const Py_ssize_t bins = (Py_ssize_t)1 << digit;
                    memset(count, 0, sizeof(Py_ssize_t) * (size_t)(bins + 1));
                    for (Py_ssize_t e = 0; e < n_keys; e++) count[((ka[e] >> shift) & mask) + 1]++;
                    int one = 0;
                    for (Py_ssize_t d = 1; d <= bins; d++) one |= count[d] == n_keys;
                    if (one) continue; /* every key has this digit: the order stands */
                    for (Py_ssize_t d = 1; d <= bins; d++) count[d] += count[d - 1];
                    for (Py_ssize_t e = 0; e < n_keys; e++) {
                        kb[count[(ka[e] >> shift) & mask]++] = ka[e];
                    }
                    uint64_t *sk = ka;
                    ka = kb;
                    kb = sk;
                }
                free(count);
                /* row by row (ascending), each latest first */
                const uint64_t item_mask = w_item ? (~(uint64_t)0 >> (64 - w_item)) : 0;
                int64_t row = -1, p = 0;
                for (Py_ssize_t e = 0; e < n_keys; e++) {
                    const int64_t k = (int64_t)(ka[e] >> (w_item + s));
                    if (k != row) {
                        row = k;
                        p = 0;
                    }
                    out[at[k] + p++] = (int64_t)(ka[e] & item_mask);
                }
            } else {
                status = one_by_one(us, slots, n_slots, out, at);
                goto done;
            }
        }
    }
    status = 0;
done:
    free(keys);
    free(cells);
    free(at);
    free(rows);
    return status;
}

/* The longest row among ``slots`` (-1 on a bad slot). */
static int64_t longest_row(const Users *us, const int64_t *slots, Py_ssize_t n) {
    int64_t longest = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (slots[k] < 0 || slots[k] >= us->n_rows) return -1;
        if (us->length[slots[k]] > longest) longest = us->length[slots[k]];
    }
    return longest;
}

/* Marks u's items (``mine``, latest first) with their position in item_pos; -1 on a bad slot. */
static int mark_mine(const int64_t *mine, Py_ssize_t m, Py_ssize_t n_items) {
    for (Py_ssize_t q = 0; q < m; q++) {
        if (mine[q] < 0 || mine[q] >= n_items) {
            for (Py_ssize_t t = 0; t < q; t++) item_pos[mine[t]] = -1;
            return -1;
        }
        item_pos[mine[q]] = q;
    }
    return 0;
}

static void unmark_mine(const int64_t *mine, Py_ssize_t m) {
    for (Py_ssize_t q = 0; q < m; q++) item_pos[mine[q]] = -1;
}

#define FAIL(message)                                          \
    do {                                                       \
        PyErr_SetString(PyExc_ValueError, NAME ": " message); \
        goto done;                                             \
    } while (0)

/* ------------------------------------------------------------------ u's history */

#undef NAME
#define NAME "history"
#define N_HI 6

static PyObject *user_history(PyObject *self, PyObject *args) {
    (void)self;
    long long u_arg;
    PyObject *objs[N_HI];
    if (!PyArg_ParseTuple(args, "LOOOOOO", &u_arg, &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5])) {
        return NULL;
    }
    static const Spec spec[N_HI] = {
        {I64, 0, "user_start"}, {I64, 0, "user_length"}, {I32, 0, "user_pool"},
        {I32, 0, "cell_item"},  {I64, 0, "cell_seq"},    {I64, 1, "out_items"},
    };
    Buf b[N_HI];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    if (take_all(objs, b, spec, N_HI) < 0) goto done;
    const Users us = {b[0].view.buf, b[1].view.buf, b[2].view.buf, b[3].view.buf, b[4].view.buf,
                      LEN(0) < LEN(1) ? LEN(0) : LEN(1), LEN(2),
                      LEN(3) < LEN(4) ? LEN(3) : LEN(4)};
    const int64_t u = u_arg;
    if (u < 0 || u >= us.n_rows) FAIL("u is out of range");
    if (LEN(5) < us.length[u]) FAIL("inconsistent sizes");
    const int status = histories(&us, &u, 1, b[5].view.buf);
    if (status == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (status < 0) FAIL("u's row is out of range");
    result = PyLong_FromSsize_t((Py_ssize_t)us.length[u]);
done:
    release_all(b, N_HI);
    return result;
}

/* ------------------------------------------------------------------ neighbours */

/* v (total_v > 0) offered to the heap of the K best w_v = total_v / sqrt(n_v), u left out;
   w_v <= total_v (n_v >= 1): below the heap's worst, v cannot enter it. */
static inline void select_user(Entry *heap, Py_ssize_t *size, Py_ssize_t cap, int64_t u, int64_t v,
                               double total, const int64_t *user_count,
                               const int64_t *user_since) {
    if (v == u || cap == 0 || (*size == cap && total < heap[0].score)) return;
    const Entry e = {total / sqrt((double)user_count[v]), user_since[v], v};
    heap_push(heap, size, cap, e);
}

#undef NAME
#define NAME "neighbours"
#define N_NB 9

static PyObject *neighbours(PyObject *self, PyObject *args) {
    (void)self;
    long long u_arg, k_arg;
    PyObject *objs[N_NB];
    if (!PyArg_ParseTuple(args, "LLOOOOOOOOO", &u_arg, &k_arg, &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4], &objs[5], &objs[6], &objs[7], &objs[8])) {
        return NULL;
    }
    static const Spec spec[N_NB] = {
        {I64, 0, "items"},         {F64, 0, "x"},          {I64, 0, "raters_start"},
        {I64, 0, "raters_length"}, {I32, 0, "raters_pool"}, {I64, 0, "user_count"},
        {I64, 0, "user_since"},    {I64, 1, "out_slots"},   {F64, 1, "out_w"},
    };
    Buf b[N_NB];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    Entry *heap = NULL;
    int summed = 0;
    Py_ssize_t m = 0;
    const int64_t *items = NULL, *r_start = NULL, *r_length = NULL;
    const int32_t *r_pool = NULL;
    if (take_all(objs, b, spec, N_NB) < 0) goto done;
    items = b[0].view.buf;
    const double *x = b[1].view.buf;
    r_start = b[2].view.buf;
    r_length = b[3].view.buf;
    r_pool = b[4].view.buf;
    const int64_t *user_count = b[5].view.buf, *user_since = b[6].view.buf;
    int64_t *out_slots = b[7].view.buf;
    double *out_w = b[8].view.buf;
    m = LEN(0);
    const Py_ssize_t n_pool = LEN(4);
    const Py_ssize_t n_item_rows = LEN(2) < LEN(3) ? LEN(2) : LEN(3);
    const Py_ssize_t n_users = LEN(5) < LEN(6) ? LEN(5) : LEN(6);
    const int64_t u = u_arg, k = k_arg;
    if (LEN(1) != m || k < 0 || LEN(7) < k || LEN(8) < k) FAIL("inconsistent sizes");
    if (ensure_users(n_users) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    /* the rows checked first: the passes below read them without a check */
    for (Py_ssize_t q = 0; q < m; q++) {
        const int64_t j = items[q];
        if (j < 0 || j >= n_item_rows) FAIL("an item of u is out of range");
        const int64_t lo = r_start[j], len = r_length[j];
        if (lo < 0 || len < 0 || lo + len > n_pool) FAIL("an item row is out of its pool");
        uint64_t bad = 0;
        for (int64_t t = 0; t < len; t++) bad |= (uint64_t)(int64_t)r_pool[lo + t] >= (uint64_t)n_users;
        if (bad) FAIL("a rater is out of range");
    }
    const Py_ssize_t cap = k < n_users ? (Py_ssize_t)k : n_users;
    heap = malloc(sizeof(Entry) * (size_t)(cap + 1));
    if (!heap) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t size = 0;
    /* total_v over I_u latest first, each item's raters in its row's order */
    summed = 1;
    Py_ssize_t entries = 0;
    for (Py_ssize_t q = 0; q < m; q++) {
        const int64_t j = items[q];
        const double xq = x[q];
        const int32_t *row = r_pool + r_start[j];
        const int64_t len = r_length[j];
        entries += len;
        for (int64_t t = 0; t < len; t++) user_total[row[t]] += xq;
    }
    /* the K best w_v of the users with total_v > 0, each total set back to 0 as it is read:
       by a scan of the totals where the entries are many next to the user slots (sequential
       reads), else along the entries (each user at its first entry); a user whose total is
       below the heap's worst is not divided (w_v <= total_v) */
    if (entries * 8 >= n_users) {
        for (Py_ssize_t v = 0; v < n_users; v++) {
            const double total = user_total[v];
            if (total == 0.0) continue;
            user_total[v] = 0.0;
            if (total > 0.0) select_user(heap, &size, cap, u, v, total, user_count, user_since);
        }
    } else {
        for (Py_ssize_t q = 0; q < m; q++) {
            const int64_t j = items[q];
            const int32_t *row = r_pool + r_start[j];
            const int64_t len = r_length[j];
            for (int64_t t = 0; t < len; t++) {
                const int64_t v = row[t];
                const double total = user_total[v];
                if (total == 0.0) continue;
                user_total[v] = 0.0;
                if (total > 0.0) select_user(heap, &size, cap, u, v, total, user_count, user_since);
            }
        }
    }
    summed = 0;
    qsort(heap, (size_t)size, sizeof(Entry), entry_order);
    for (Py_ssize_t t = 0; t < size; t++) {
        out_slots[t] = heap[t].slot;
        out_w[t] = heap[t].score;
    }
    result = PyLong_FromSsize_t(size);
done:
    if (summed) { /* (an error while summing) the totals set back to 0 */
        for (Py_ssize_t q = 0; q < m; q++) {
            const int32_t *row = r_pool + r_start[items[q]];
            for (int64_t t = 0; t < r_length[items[q]]; t++) user_total[row[t]] = 0.0;
        }
    }
    free(heap);
    release_all(b, N_NB);
    return result;
}

/* ------------------------------------------------------------------ shared's costs */

#undef NAME
#define NAME "shared_cost"
#define N_SC 11

static PyObject *shared_cost(PyObject *self, PyObject *args) {
    (void)self;
    double h, h_n;
    int skip;
    PyObject *objs[N_SC];
    if (!PyArg_ParseTuple(args, "ddiOOOOOOOOOOO", &h, &h_n, &skip, &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4], &objs[5], &objs[6], &objs[7], &objs[8], &objs[9],
                          &objs[10])) {
        return NULL;
    }
    static const Spec spec[N_SC] = {
        {I64, 0, "slots"},     {I64, 0, "mine"},     {I64, 0, "user_start"},
        {I64, 0, "user_length"}, {I32, 0, "user_pool"}, {I32, 0, "cell_item"},
        {I64, 0, "cell_seq"},  {F64, 1, "out_cost"},   {I64, 1, "out_items"},
        {I64, 0, "item_count"}, {I64, 1, "out_counts"},
    };
    Buf b[N_SC];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    int marked = 0;
    Py_ssize_t m = 0;
    const int64_t *mine = NULL;
    if (take_all(objs, b, spec, N_SC) < 0) goto done;
    const int64_t *slots = b[0].view.buf;
    mine = b[1].view.buf;
    const Users us = {b[2].view.buf, b[3].view.buf, b[4].view.buf, b[5].view.buf, b[6].view.buf,
                      LEN(2) < LEN(3) ? LEN(2) : LEN(3), LEN(4),
                      LEN(5) < LEN(6) ? LEN(5) : LEN(6)};
    double *out_cost = b[7].view.buf;
    int64_t *out_items = b[8].view.buf;
    const Py_ssize_t n_slots = LEN(0), cap = LEN(7) < LEN(8) ? LEN(7) : LEN(8);
    m = LEN(1);
    Py_ssize_t needed = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++) {
        if (slots[k] < 0 || slots[k] >= us.n_rows) FAIL("a neighbour is out of range");
        needed += us.length[slots[k]];
    }
    if (needed > cap) {
        result = PyLong_FromSsize_t(-needed); /* the caller grows the outputs and calls again */
        goto done;
    }
    const Py_ssize_t n_items = LEN(9); /* the item slots (item_count's) */
    if (ensure_items(n_items) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    const int status = histories(&us, slots, n_slots, out_items);
    if (status == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (status < 0) FAIL("a neighbour's row is out of range");
    if (mark_mine(mine, m, n_items) < 0) FAIL("an item of u is out of range");
    marked = 1;
    int64_t *out_counts = b[10].view.buf;
    if (LEN(10) < n_slots) FAIL("inconsistent sizes");
    Py_ssize_t c0 = 0, written = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++) {
        int64_t *hist = out_items + c0;
        const Py_ssize_t len = (Py_ssize_t)us.length[slots[k]];
        double *cost = out_cost + c0;
        /* forward: the running minimum of a − step over the anchors at or before p */
        double run = INFINITY;
        int any = 0;
        for (Py_ssize_t p = 0; p < len; p++) {
            const int64_t i = hist[p];
            const double step = (double)p / h_n;
            if (i >= 0 && i < item_cap && item_pos[i] >= 0) {
                const double value = (double)item_pos[i] / h - step;
                run = any ? (value < run ? value : run) : value;
                any = 1;
            }
            cost[p] = any ? run : INFINITY; /* F_p, for now */
        }
        /* backward: a + step over the anchors at or after p; cost = min(F + step, B − step) */
        run = INFINITY;
        any = 0;
        for (Py_ssize_t p = len - 1; p >= 0; p--) {
            const int64_t i = hist[p];
            const double step = (double)p / h_n;
            if (i >= 0 && i < item_cap && item_pos[i] >= 0) {
                const double value = (double)item_pos[i] / h + step;
                run = any ? (value < run ? value : run) : value;
                any = 1;
            }
            const double forward = cost[p] + step;
            const double backward = (any ? run : INFINITY) - step;
            cost[p] = forward <= backward ? forward : backward;
        }
        /* the cells kept, moved down in place (written <= c0 + p: rows already done) */
        const Py_ssize_t first = written;
        for (Py_ssize_t p = 0; p < len; p++) {
            const int64_t i = hist[p];
            if (skip && i >= 0 && i < item_cap && item_pos[i] >= 0) continue;
            out_cost[written] = cost[p];
            out_items[written] = i;
            written++;
        }
        out_counts[k] = written - first;
        c0 += len;
    }
    result = PyLong_FromSsize_t(written);
done:
    if (marked) unmark_mine(mine, m);
    release_all(b, N_SC);
    return result;
}

/* ------------------------------------------------------------------ scores and the list */

#undef NAME
#define NAME "vote_scores"
#define N_VS 15

enum { NONE = 0, LATEST = 1, SHARED = 2 };

static PyObject *vote_scores(PyObject *self, PyObject *args) {
    (void)self;
    long long n_arg;
    int mode, include_seen, damped;
    PyObject *objs[N_VS];
    if (!PyArg_ParseTuple(args, "Liii" "OOOOOOOOOOOOOOO", &n_arg, &mode, &include_seen, &damped,
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6],
                          &objs[7], &objs[8], &objs[9], &objs[10], &objs[11], &objs[12],
                          &objs[13], &objs[14])) {
        return NULL;
    }
    static const Spec spec[N_VS] = {
        {I64, 0, "slots"},      {F64, 0, "we"},          {F64, 0, "g"},
        {F64, 0, "damp"},       {I64, 0, "mine"},        {I64, 0, "user_start"},
        {I64, 0, "user_length"}, {I32, 0, "user_pool"},  {I32, 0, "cell_item"},
        {I64, 0, "cell_seq"},   {I64, 0, "item_count"},  {I64, 1, "out_items"},
        {F64, 1, "out_scores"}, {I64, 0, "cell_items"},  {I64, 0, "cell_counts"},
    };
    Buf b[N_VS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    int64_t *hist = NULL;
    Entry *heap = NULL;
    int marked = 0;
    Py_ssize_t m = 0, n_touched = 0;
    const int64_t *mine = NULL;
    if (take_all(objs, b, spec, N_VS) < 0) goto done;
    const int64_t *slots = b[0].view.buf;
    const double *we = b[1].view.buf, *g = b[2].view.buf, *damp = b[3].view.buf;
    mine = b[4].view.buf;
    const Users us = {b[5].view.buf, b[6].view.buf, b[7].view.buf, b[8].view.buf, b[9].view.buf,
                      LEN(5) < LEN(6) ? LEN(5) : LEN(6), LEN(7),
                      LEN(8) < LEN(9) ? LEN(8) : LEN(9)};
    const int64_t *item_count = b[10].view.buf;
    int64_t *out_items = b[11].view.buf;
    double *out_scores = b[12].view.buf;
    const int64_t *cell_items = b[13].view.buf, *cell_counts = b[14].view.buf;
    const Py_ssize_t n_slots = LEN(0), n_g = LEN(2), n_damp = LEN(3), n_items = LEN(10);
    const int64_t n = n_arg;
    m = LEN(4);
    if (LEN(1) != n_slots || n < 0 || LEN(11) < n || LEN(12) < n ||
        (mode == SHARED && (LEN(13) != n_g || LEN(14) < n_slots)) ||
        (mode != NONE && mode != LATEST && mode != SHARED)) {
        FAIL("inconsistent sizes");
    }
    const int64_t longest = longest_row(&us, slots, n_slots);
    if (longest < 0) FAIL("a neighbour is out of range");
    if (mode == LATEST && longest > n_g) { /* the caller grows the table and calls again */
        result = Py_BuildValue("(nLn)", (Py_ssize_t)0, (long long)longest, (Py_ssize_t)0);
        goto done;
    }
    if (ensure_items(n_items) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_cells = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++) n_cells += us.length[slots[k]];
    /* the rows as stored (none: each item once per neighbour, any order), or latest first */
    hist = malloc(sizeof(int64_t) * (size_t)((mode == LATEST ? n_cells : longest) + 1));
    if (!hist) {
        PyErr_NoMemory();
        goto done;
    }
    if (mode == LATEST) {
        const int status = histories(&us, slots, n_slots, hist);
        if (status == -2) {
            PyErr_NoMemory();
            goto done;
        }
        if (status < 0) FAIL("a neighbour's row is out of range");
    }
    if (mark_mine(mine, m, n_items) < 0) FAIL("an item of u is out of range");
    marked = 1;
    /* s_i over the neighbours best first (within one, each item once: its order is free) */
    Py_ssize_t c = 0;
    for (Py_ssize_t k = 0; k < n_slots; k++) {
        const double wk = we[k];
        Py_ssize_t len;
        if (mode == NONE) { /* the row as it is stored */
            const int64_t v = slots[k], lo = us.start[v];
            len = (Py_ssize_t)us.length[v];
            if (lo < 0 || len < 0 || lo + len > us.n_pool) FAIL("a neighbour's row is out of range");
            for (Py_ssize_t p = 0; p < len; p++) {
                const int64_t cell = us.pool[lo + p];
                if (cell < 0 || cell >= us.n_cells) FAIL("a neighbour's row is out of range");
                hist[p] = us.cell_item[cell];
            }
        } else { /* latest: the histories above; shared: shared_cost's, beside the costs */
            len = (Py_ssize_t)(mode == SHARED ? cell_counts[k] : us.length[slots[k]]);
            if (mode == SHARED && (len < 0 || c + len > n_g)) FAIL("g is shorter than the cells");
        }
        const int64_t *items = mode == SHARED ? cell_items + c : (mode == LATEST ? hist + c : hist);
        for (Py_ssize_t p = 0; p < len; p++) {
            const int64_t i = items[p];
            if (i < 0 || i >= n_items) FAIL("an item of a neighbour is out of range");
            const double term = mode == NONE ? wk : wk * (mode == LATEST ? g[p] : g[c + p]);
            if (!item_seen[i]) {
                item_seen[i] = 1;
                item_touched[n_touched++] = (int32_t)i;
            }
            item_sum[i] += term;
        }
        c += len;
    }
    if (mode == SHARED && c != n_g) FAIL("g is longer than the cells");
    /* the candidates (u's own items out unless include_seen), damped, the n best */
    const Py_ssize_t cap = n_touched < n ? n_touched : (Py_ssize_t)n;
    heap = malloc(sizeof(Entry) * (size_t)(cap + 1));
    if (!heap) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t size = 0, n_cand = 0;
    int64_t need_damp = 0;
    for (Py_ssize_t t = 0; t < n_touched; t++) {
        const int64_t i = item_touched[t];
        if (!include_seen && item_pos[i] >= 0) continue;
        n_cand++;
        double score = item_sum[i];
        if (damped) {
            const int64_t count = item_count[i];
            if (count < 0 || count >= n_damp) {
                if (count + 1 > need_damp) need_damp = count + 1;
                continue;
            }
            score = score / damp[count];
        }
        const Entry e = {score, i, i};
        heap_push(heap, &size, cap, e);
    }
    if (need_damp) {
        result = Py_BuildValue("(nnL)", (Py_ssize_t)0, (Py_ssize_t)0, (long long)need_damp);
        goto done;
    }
    qsort(heap, (size_t)size, sizeof(Entry), entry_order);
    for (Py_ssize_t t = 0; t < size; t++) {
        out_items[t] = heap[t].slot;
        out_scores[t] = heap[t].score;
    }
    result = Py_BuildValue("(nnn)", n_cand, (Py_ssize_t)0, (Py_ssize_t)0);
done:
    for (Py_ssize_t t = 0; t < n_touched; t++) {
        item_sum[item_touched[t]] = 0.0;
        item_seen[item_touched[t]] = 0;
    }
    if (marked) unmark_mine(mine, m);
    free(hist);
    free(heap);
    release_all(b, N_VS);
    return result;
}

static PyMethodDef methods[] = {
    {"history", user_history, METH_VARARGS,
     "history(u, user_start, user_length, user_pool, cell_item, cell_seq, out_items) -> n_u: "
     "u's item slots latest first written out"},
    {"neighbours", neighbours, METH_VARARGS,
     "neighbours(u, k, items, x, raters_start, raters_length, raters_pool, user_count, "
     "user_since, out_slots, out_w) -> |N(u)|: N(u) best first and w_uv written out"},
    {"shared_cost", shared_cost, METH_VARARGS,
     "shared_cost(h, h_n, skip, slots, mine, user_start, user_length, user_pool, cell_item, cell_seq, "
     "out_cost, out_items, item_count, out_counts) -> the number of cells written (-needed when the "
     "outputs are too short): each cell's cost and item slot, N(u)'s histories latest first, "
     "the cells of u's own items left out if skip; the cells kept per neighbour in out_counts"},
    {"vote_scores", vote_scores, METH_VARARGS,
     "vote_scores(n, mode, include_seen, damped, slots, we, g, damp, mine, user_start, "
     "user_length, user_pool, cell_item, cell_seq, item_count, out_items, out_scores, cell_items, "
     "cell_counts) "
     "-> "
     "(candidates, g length needed or 0, damp length needed or 0)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rank_kernel",
    "The vote list, compiled (see stream_cf/engine/rank_kernel.py).", -1, methods, NULL, NULL,
    NULL, NULL,
};

PyMODINIT_FUNC PyInit__rank_kernel(void) { return PyModule_Create(&module); }
