/* Compiled reads and writes of the engine, each the same operations in the same order as its
   numpy path (kept as the reference and the fallback): the item terms of knn_baseline's
   item-based residual (item_terms, below), the user-neighbour terms of one knn_baseline
   prediction (user_terms: user_kernel.py) and one changed cell's pair update (scatter_cell:
   scatter.py), each described where it is defined.

   The item terms of knn_baseline's item-based residual, in one compiled scan of u's item rows
   for up to 64 wanted items at a time.

   The same formula and the same floating-point operations, in the same order, as the numpy
   path of stream_cf/engine/item_residual.py (which stays the reference and the fallback).
   For user u, a wanted item i and each item j != i of u (I_u: u's cells in its row's order),
   over the raters w of i but u taken in ascending slot order, with r̄_w = Σ_w / n_w:

       x = r_wi − r̄_w,  y = r_wj − r̄_w       (only where w rated j too: the common raters C_ij)
       Sxy += x·y;  Sxx += x·x;  Syy += y·y;  A += |x·y|;  n += 1     (each from 0.0, in order)
       s_ij = clip(Sxy / sqrt(Sxx·Syy), −1, 1) · n / (n + β)        (β > 0; no factor if β = 0)

   s_ij = 0 where sqrt(Sxx·Syy) is 0 or |Sxy| <= 1e-12·A. M(u;i): the K items j with the largest
   s_ij > 0, ties by the lower item slot of j (its first appearance in the stream). In that
   order, with b_uj = (μ + b_u) + b_j and e_uj = r_uj − b_uj:

       num_i = Σ_{j∈M(u;i)} s_ij·e_uj,   den_i = Σ_{j∈M(u;i)} s_ij   (each from 0.0, in order)

   Every product is rounded before it is added (built with -ffp-contract=off: no fused
   multiply-add), as numpy's np.bincount adds its weights, so the bits equal the numpy path's
   (tests/engine/test_item_kernel.py).

   The read, per chunk of up to 64 wanted columns (CHUNK): the raters w but u of the chunk's
   items are ranked by slot over their union (through a bitmap over the user slots where it has
   few words for the raters, else by a sort) and marked with their rank in a dense array over
   the user slots (``mark``: -1 everywhere on entry and on return, errors included); beside each
   rank, the columns it rated (a bit mask, and its entries (c, x = r_wi − r̄_w) in column order).
   Then the rater row of each item j of u (``item_users``, Σ_{j∈I_u} n_j entries, read once
   whatever the number of columns, the next rows prefetched) is scanned branch-free for marked
   raters, each hit's y (from ``item_values``, the values beside the raters) set at its rater's
   rank in a bitmap over the ranks, read back in rank order (ascending slot, with no sort of the
   hits: the item rows are in rating order), each hit feeding the sums of every column c it
   rated (but i = j): so each s_ij still sums its common raters in ascending slot order, as
   one column alone does. Scratch: O(Σ n_i) for the chunk's raters, O(|I_u|·columns) at most
   for the candidates, nothing of size users × columns. No gather from the cell table but u's
   own cells. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RELATIVE_ZERO 1e-12

#include "_kernel_buf.h"

#define I64 8, "lq"
#define I32 4, "i"
#define F64 8, "d"

typedef struct {
    double sim;
    int64_t slot; /* j's item slot: the tie rule */
    int64_t place;
    int64_t col; /* the wanted column (within its chunk) */
} Candidate;

/* The places t in a rater row whose rater is marked, written to ``found`` (one slot past the
   last hit is written too); a rater outside [0, n_users) is read as slot 0 and flagged in *bad.
   Branch-free, the pointers restrict: one pass of loads and one store per entry. */
static Py_ssize_t scan_row(const int32_t *restrict row, int64_t len, const int64_t *restrict mark,
                           uint64_t n_users, int64_t *restrict found, uint64_t *bad) {
    Py_ssize_t n = 0;
    uint64_t out = 0;
    for (int64_t t = 0; t < len; t++) {
        const uint64_t v = (uint64_t)(int64_t)row[t];
        const uint64_t inside = v < n_users;
        out |= inside ^ 1u;
        found[n] = t;
        n += (Py_ssize_t)((uint64_t)mark[v * inside] >> 63 ^ 1u);
    }
    *bad |= out;
    return n;
}

/* Sorts n uint64 keys ascending (merge sort, tmp: room for n; a sorted run costs one compare). */
static void sort_keys(uint64_t *a, uint64_t *tmp, Py_ssize_t n) {
    if (n <= 16) {
        for (Py_ssize_t k = 1; k < n; k++) {
            const uint64_t key = a[k];
            Py_ssize_t b = k;
            while (b > 0 && a[b - 1] > key) {
                a[b] = a[b - 1];
                b--;
            }
            a[b] = key;
        }
        return;
    }
    const Py_ssize_t half = n / 2;
    sort_keys(a, tmp, half);
    sort_keys(a + half, tmp + half, n - half);
    if (a[half - 1] <= a[half]) {
        return;
    }
    memcpy(tmp, a, sizeof(uint64_t) * (size_t)n);
    Py_ssize_t x = 0, y = half, k = 0;
    while (x < half && y < n) {
        a[k++] = tmp[y] < tmp[x] ? tmp[y++] : tmp[x++];
    }
    while (x < half) a[k++] = tmp[x++];
    while (y < n) a[k++] = tmp[y++];
}

/* Asks the memory for item j's rater row and value row (read next; their lines mostly miss the
   caches: the rows of u's items are scattered over the pools). No effect on any value. */
static void prefetch_rows(int64_t j, const int64_t *raters_start, const int64_t *raters_length,
                          const int32_t *raters_pool, const int64_t *values_start,
                          const double *values_pool) {
    const int64_t len = raters_length[j];
    const int32_t *raters = raters_pool + raters_start[j];
    const double *values = values_pool + values_start[j];
    for (int64_t e = 0; e < len; e += 16) {
        __builtin_prefetch(raters + e);
    }
    for (int64_t e = 0; e < len; e += 8) {
        __builtin_prefetch(values + e);
    }
}

/* Whether candidate x goes before y in M(u;i): s descending, then the lower item slot (the
   item's first appearance in the stream: a rule no rate, re-rate or take-back moves; the place
   in u's row never decides, slots being distinct). */
static inline int before(const Candidate *x, const Candidate *y) {
    if (x->sim != y->sim) {
        return x->sim > y->sim;
    }
    if (x->slot != y->slot) {
        return x->slot < y->slot;
    }
    return x->place < y->place;
}

/* Sorts n candidates by :func:`before` (merge sort, tmp: room for n). */
static void sort_candidates(Candidate *a, Candidate *tmp, Py_ssize_t n) {
    if (n <= 16) {
        for (Py_ssize_t k = 1; k < n; k++) {
            const Candidate key = a[k];
            Py_ssize_t b = k;
            while (b > 0 && before(&key, &a[b - 1])) {
                a[b] = a[b - 1];
                b--;
            }
            a[b] = key;
        }
        return;
    }
    const Py_ssize_t half = n / 2;
    sort_candidates(a, tmp, half);
    sort_candidates(a + half, tmp + half, n - half);
    if (!before(&a[half], &a[half - 1])) {
        return;
    }
    memcpy(tmp, a, sizeof(Candidate) * (size_t)n);
    Py_ssize_t x = 0, y = half, k = 0;
    while (x < half && y < n) {
        a[k++] = before(&tmp[y], &tmp[x]) ? tmp[y++] : tmp[x++];
    }
    while (x < half) a[k++] = tmp[x++];
    while (y < n) a[k++] = tmp[y++];
}

#define N_BUFS 20
#define CHUNK 64 /* the wanted columns read in one scan (one bit each in a uint64) */
#define FAIL(message)                                        \
    do {                                                     \
        PyErr_SetString(PyExc_ValueError, "item_terms: " message); \
        goto done;                                           \
    } while (0)

static PyObject *item_terms(PyObject *self, PyObject *args) {
    (void)self;
    long long u_arg, k_arg;
    double shrinkage, base_u;
    PyObject *objs[N_BUFS];
    if (!PyArg_ParseTuple(args, "LLddOOOOOOOOOOOOOOOOOOOO", &u_arg, &k_arg, &shrinkage, &base_u,
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6],
                          &objs[7], &objs[8], &objs[9], &objs[10], &objs[11], &objs[12],
                          &objs[13], &objs[14], &objs[15], &objs[16], &objs[17], &objs[18],
                          &objs[19])) {
        return NULL;
    }
    Buf b[N_BUFS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    int64_t *mine = NULL, *raters = NULL, *found = NULL, *ent_w = NULL, *offsets = NULL;
    int32_t *ent_c = NULL;
    uint64_t *masks = NULL;
    uint64_t *keys = NULL, *bits = NULL, *user_bits = NULL;
    double *r_u = NULL, *xs = NULL;
    Candidate *cand = NULL;
    int64_t *mark = NULL;
    Py_ssize_t n_set = 0; /* the marks set (raters[0:n_set]), cleared before any return */

    static const struct {
        Py_ssize_t size;
        const char *formats;
        int writable;
        const char *name;
    } spec[N_BUFS] = {
        {I64, 0, "cols"},          {I64, 1, "mark"},         {F64, 0, "item_bias"},
        {I64, 0, "user_start"},    {I64, 0, "user_length"},  {I32, 0, "user_pool"},
        {I64, 0, "values_start"},  {F64, 0, "values_pool"},   {I64, 0, "raters_start"},
        {I64, 0, "raters_length"}, {I32, 0, "raters_pool"},  {I32, 0, "cell_item"},
        {F64, 0, "cell_value"},    {F64, 0, "user_sum"},     {I64, 0, "user_count"},
        {I64, 1, "out_cols"},      {I64, 1, "out_items"},    {F64, 1, "out_values"},
        {F64, 1, "num_den"},       {I64, 1, "count"},
    };
    /* the sums of one wanted item alone: no output arrays (None), (num, den, count) returned */
    const int sums_only = objs[15] == Py_None;
    const int n_taken = sums_only ? 15 : N_BUFS;
    for (int t = 0; t < n_taken; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, spec[t].writable, spec[t].name) <
            0) {
            goto done;
        }
    }
#define LEN(t) (b[t].view.len / b[t].view.itemsize)
    const int64_t *cols = b[0].view.buf;
    mark = b[1].view.buf;
    const double *item_bias = b[2].view.buf;
    const int64_t *user_start = b[3].view.buf, *user_length = b[4].view.buf;
    const int32_t *user_pool = b[5].view.buf;
    const int64_t *values_start = b[6].view.buf;
    const double *values_pool = b[7].view.buf;
    const int64_t *raters_start = b[8].view.buf, *raters_length = b[9].view.buf;
    const int32_t *raters_pool = b[10].view.buf;
    const int32_t *cell_item = b[11].view.buf;
    const double *cell_value = b[12].view.buf;
    const double *user_sum = b[13].view.buf;
    const int64_t *user_count = b[14].view.buf;
    int64_t *out_cols = b[15].view.buf, *out_items = b[16].view.buf;
    double *out_values = b[17].view.buf, *num_den = b[18].view.buf;
    int64_t *count = b[19].view.buf;
    const Py_ssize_t n_cols = LEN(0), n_mark = LEN(1), n_bias = LEN(2);
    const Py_ssize_t n_user_rows = LEN(3) < LEN(4) ? LEN(3) : LEN(4);
    const Py_ssize_t n_user_pool = LEN(5), n_values_pool = LEN(7), n_raters_pool = LEN(10);
    Py_ssize_t n_item_rows = LEN(6);
    if (LEN(8) < n_item_rows) n_item_rows = LEN(8);
    if (LEN(9) < n_item_rows) n_item_rows = LEN(9);
    Py_ssize_t n_cells = LEN(11);
    if (LEN(12) < n_cells) n_cells = LEN(12);
    Py_ssize_t n_users = LEN(13) < LEN(14) ? LEN(13) : LEN(14);
    if (n_mark < n_users) n_users = n_mark;
    const Py_ssize_t cap = sums_only ? 0 : LEN(15);
    const int64_t u = u_arg, k_max = k_arg;
    if (u < 0 || u >= n_user_rows || k_max < 0 || (sums_only && n_cols != 1) ||
        (!sums_only &&
         (LEN(16) < cap || LEN(17) < 3 * cap || LEN(18) < 2 * n_cols || LEN(19) < n_cols))) {
        FAIL("inconsistent sizes");
    }
    const int64_t u_lo = user_start[u], m = user_length[u];
    if (u_lo < 0 || m < 0 || u_lo + m > n_user_pool) {
        FAIL("u's row is out of its pool");
    }
    /* u's items and ratings, in its row's order; the largest item row among them */
    mine = malloc(sizeof(int64_t) * (size_t)(m + 1));
    r_u = malloc(sizeof(double) * (size_t)(m + 1));
    Py_ssize_t cand_cap = 2 * (m + 1); /* grown as needed (the candidates of a chunk) */
    cand = malloc(sizeof(Candidate) * (size_t)cand_cap);
    if (!mine || !r_u || !cand) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t longest = 0;
    for (int64_t p = 0; p < m; p++) {
        const int64_t cell = user_pool[u_lo + p];
        if (cell < 0 || cell >= n_cells) {
            FAIL("a cell of u is out of range");
        }
        const int64_t j = cell_item[cell];
        if (j < 0 || j >= n_item_rows || j >= n_bias) {
            FAIL("an item of u is out of range");
        }
        const int64_t lo = raters_start[j], len = raters_length[j];
        if (lo < 0 || len < 0 || lo + len > n_raters_pool || values_start[j] < 0 ||
            values_start[j] + len > n_values_pool) {
            FAIL("an item row of u is out of its pool");
        }
        mine[p] = j;
        r_u[p] = cell_value[cell];
        if (len > longest) longest = len;
    }
    found = malloc(sizeof(int64_t) * (size_t)(longest + 1)); /* + 1: the branch-free last write */
    if (!found) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t total = 0, n_entries_cap = 0;
    const Py_ssize_t user_words = (n_users + 63) / 64;
    for (Py_ssize_t c0 = 0; c0 < n_cols; c0 += CHUNK) {
        const Py_ssize_t nc = n_cols - c0 < CHUNK ? n_cols - c0 : CHUNK;
        const int64_t *chunk = cols + c0;
        /* the chunk's wanted items: their rows checked, their raters counted */
        Py_ssize_t n_entries = 0;
        for (Py_ssize_t c = 0; c < nc; c++) {
            const int64_t i = chunk[c];
            if (i < 0 || i >= n_item_rows) {
                FAIL("a wanted item is out of range");
            }
            const int64_t i_lo = raters_start[i], n_i = raters_length[i], i_vals = values_start[i];
            if (i_lo < 0 || n_i < 0 || i_lo + n_i > n_raters_pool || i_vals < 0 ||
                i_vals + n_i > n_values_pool) {
                FAIL("i's row is out of its pool");
            }
            n_entries += n_i;
        }
        if (n_entries > n_entries_cap || !offsets) {
            const size_t n = (size_t)n_entries + 1, words = (n + 63) / 64; /* (never 0) */
            free(raters);
            free(keys);
            free(xs);
            free(bits);
            free(ent_w);
            free(ent_c);
            free(offsets);
            free(masks);
            raters = malloc(sizeof(int64_t) * n);
            keys = malloc(sizeof(uint64_t) * 2 * n);
            xs = malloc(sizeof(double) * 4 * n);
            bits = calloc(words, sizeof(uint64_t)); /* zero, and left zero after each j */
            ent_w = malloc(sizeof(int64_t) * n);
            ent_c = malloc(sizeof(int32_t) * 2 * n);
            offsets = malloc(sizeof(int64_t) * n);
            masks = malloc(sizeof(uint64_t) * n);
            if (!raters || !keys || !xs || !bits || !ent_w || !ent_c || !offsets || !masks) {
                PyErr_NoMemory();
                goto done;
            }
            n_entries_cap = (Py_ssize_t)n;
        }
        /* every (rater w but u, wanted column c) entry, column by column in i's row order, with
           x = r_wi − r̄_w; the distinct raters marked with their first place (raters[0:n_set]) */
        double *x_raw = xs, *x_of = xs + n_entries_cap, *mean_of = xs + 2 * n_entries_cap;
        double *yv = xs + 3 * n_entries_cap;
        int32_t *c_raw = ent_c, *c_of = ent_c + n_entries_cap;
        Py_ssize_t n_ent = 0;
        for (Py_ssize_t c = 0; c < nc; c++) {
            const int64_t i = chunk[c];
            const int64_t i_lo = raters_start[i], n_i = raters_length[i], i_vals = values_start[i];
            for (int64_t t = 0; t < n_i; t++) {
                const int64_t w = raters_pool[i_lo + t];
                if (w == u) {
                    continue;
                }
                if (w < 0 || w >= n_users) {
                    FAIL("a rater of i is out of range");
                }
                const double mean = user_sum[w] / (double)user_count[w];
                x_raw[n_ent] = values_pool[i_vals + t] - mean;
                c_raw[n_ent] = (int32_t)c;
                ent_w[n_ent] = w;
                n_ent++;
                if (mark[w] < 0) {
                    mark[w] = n_set;
                    raters[n_set] = w;
                    n_set++;
                }
            }
        }
        const Py_ssize_t n_marked = n_set;
        /* the distinct raters ranked by slot (rank r: raters[r], mean_of[r] = r̄_w), marked with
           their rank */
        if (user_words <= 4 * n_marked + 64) {
            /* few user slots for the raters: ranked through a bitmap over the user slots
               (O(n_marked + n_users / 64), no sort) */
            if (!user_bits) {
                user_bits = calloc((size_t)user_words, sizeof(uint64_t)); /* left zero */
                if (!user_bits) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
            for (Py_ssize_t k = 0; k < n_marked; k++) {
                const int64_t w = raters[k];
                user_bits[w >> 6] |= (uint64_t)1 << (w & 63);
            }
            Py_ssize_t r = 0;
            for (Py_ssize_t word = 0; word < user_words && r < n_marked; word++) {
                uint64_t set = user_bits[word];
                user_bits[word] = 0;
                while (set) {
                    raters[r++] = word * 64 + __builtin_ctzll(set);
                    set &= set - 1;
                }
            }
        } else {
            for (Py_ssize_t k = 0; k < n_marked; k++) {
                keys[k] = (uint64_t)raters[k];
            }
            sort_keys(keys, keys + n_marked, n_marked);
            for (Py_ssize_t r = 0; r < n_marked; r++) {
                raters[r] = (int64_t)keys[r];
            }
        }
        for (Py_ssize_t r = 0; r < n_marked; r++) {
            const int64_t w = raters[r];
            mark[w] = r;
            mean_of[r] = user_sum[w] / (double)user_count[w];
            offsets[r] = 0;
            masks[r] = 0;
        }
        /* the entries grouped by rank (each rater's columns in chunk order): rank r's entries at
           [offsets[r], offsets[r + 1]) */
        for (Py_ssize_t e = 0; e < n_ent; e++) {
            const int64_t r = mark[ent_w[e]];
            offsets[r]++;
            masks[r] |= (uint64_t)1 << c_raw[e];
        }
        int64_t at = 0;
        for (Py_ssize_t r = 0; r < n_marked; r++) {
            const int64_t n = offsets[r];
            offsets[r] = at;
            at += n;
        }
        offsets[n_marked] = at;
        for (Py_ssize_t e = 0; e < n_ent; e++) {
            const int64_t r = mark[ent_w[e]];
            const int64_t to = offsets[r]++;
            x_of[to] = x_raw[e];
            c_of[to] = c_raw[e];
        }
        for (Py_ssize_t r = n_marked; r > 0; r--) {
            offsets[r] = offsets[r - 1];
        }
        offsets[0] = 0;
        /* s_ij per wanted column c and item j of u: j's raters that rated i too, summed in
           ascending slot order (the hits of j's row read back by rank) */
        double sxy[CHUNK], sxx[CHUNK], syy[CHUNK], mag[CHUNK];
        int64_t hits[CHUNK];
        for (Py_ssize_t c = 0; c < nc; c++) {
            sxy[c] = sxx[c] = syy[c] = mag[c] = 0.0;
            hits[c] = 0;
        }
        Py_ssize_t n_cand = 0;
        if (m > 0 && n_marked > 0) {
            prefetch_rows(mine[0], raters_start, raters_length, raters_pool, values_start,
                          values_pool);
        }
        for (int64_t p = 0; p < m && n_marked > 0; p++) {
            const int64_t j = mine[p];
            if (p + 1 < m) { /* the next rows load while this one is read */
                prefetch_rows(mine[p + 1], raters_start, raters_length, raters_pool,
                              values_start, values_pool);
            }
            int32_t same = -1; /* the column of i = j (s_jj = 0: not summed) */
            for (Py_ssize_t c = 0; c < nc; c++) {
                if (chunk[c] == j) same = (int32_t)c;
            }
            const int64_t lo = raters_start[j], len = raters_length[j], j_vals = values_start[j];
            uint64_t bad = 0;
            const Py_ssize_t n_hits =
                scan_row(raters_pool + lo, len, mark, (uint64_t)n_users, found, &bad);
            if (bad) {
                FAIL("a rater of j is out of range");
            }
            if (n_hits == 0) {
                continue;
            }
            /* each hit's y at its rater's rank, the ranks hit set in a bitmap: read back in
               ascending rank (= ascending slot), with no sort */
            int64_t first_word = n_marked, last_word = -1;
            uint64_t touched = 0;
            for (Py_ssize_t h = 0; h < n_hits; h++) {
                const int64_t t = found[h];
                const int64_t r = mark[raters_pool[lo + t]];
                yv[r] = values_pool[j_vals + t] - mean_of[r];
                bits[r >> 6] |= (uint64_t)1 << (r & 63);
                touched |= masks[r];
                if ((r >> 6) < first_word) first_word = r >> 6;
                if ((r >> 6) > last_word) last_word = r >> 6;
            }
            for (int64_t word = first_word; word <= last_word; word++) {
                uint64_t set = bits[word];
                bits[word] = 0;
                while (set) {
                    const int64_t r = word * 64 + __builtin_ctzll(set);
                    set &= set - 1;
                    const double y = yv[r], yy = y * y;
                    for (int64_t e = offsets[r]; e < offsets[r + 1]; e++) {
                        const int32_t c = c_of[e];
                        if (c == same) {
                            continue;
                        }
                        const double x = x_of[e];
                        const double xy = x * y;
                        sxy[c] += xy;
                        sxx[c] += x * x;
                        syy[c] += yy;
                        mag[c] += fabs(xy);
                        hits[c]++;
                    }
                }
            }
            while (touched) {
                const int32_t c = (int32_t)__builtin_ctzll(touched);
                touched &= touched - 1;
                if (hits[c] == 0) {
                    continue; /* c = same */
                }
                const double norm = sqrt(sxx[c] * syy[c]);
                double s = 0.0;
                if (norm > 0 && fabs(sxy[c]) > RELATIVE_ZERO * mag[c]) {
                    s = sxy[c] / norm;
                }
                if (s < -1.0) s = -1.0;
                if (s > 1.0) s = 1.0;
                if (shrinkage > 0) {
                    const double n = (double)hits[c];
                    s *= n / (n + shrinkage);
                }
                sxy[c] = sxx[c] = syy[c] = mag[c] = 0.0;
                hits[c] = 0;
                if (s > 0) {
                    if (n_cand == cand_cap) {
                        const Py_ssize_t grown_cap = 2 * cand_cap;
                        Candidate *more = realloc(cand, sizeof(Candidate) * (size_t)grown_cap);
                        if (!more) {
                            PyErr_NoMemory();
                            goto done;
                        }
                        cand = more;
                        cand_cap = grown_cap;
                    }
                    cand[n_cand].sim = s;
                    cand[n_cand].slot = j;
                    cand[n_cand].place = p;
                    cand[n_cand].col = c;
                    n_cand++;
                }
            }
        }
        for (Py_ssize_t t = 0; t < n_set; t++) {
            mark[raters[t]] = -1;
        }
        n_set = 0;
        /* the candidates grouped by column (each in the order of u's items), then per column
           M(u;i): the K largest s_ij > 0, ties by the lower item slot; its sums in order */
        if (2 * n_cand > cand_cap) {
            Candidate *more = realloc(cand, sizeof(Candidate) * (size_t)(2 * n_cand));
            if (!more) {
                PyErr_NoMemory();
                goto done;
            }
            cand = more;
            cand_cap = 2 * n_cand;
        }
        Candidate *grouped = cand + n_cand;
        Py_ssize_t start[CHUNK + 1];
        for (Py_ssize_t c = 0; c <= nc; c++) {
            start[c] = 0;
        }
        for (Py_ssize_t q = 0; q < n_cand; q++) {
            start[cand[q].col + 1]++;
        }
        for (Py_ssize_t c = 0; c < nc; c++) {
            start[c + 1] += start[c];
        }
        {
            Py_ssize_t fill[CHUNK];
            memcpy(fill, start, sizeof(Py_ssize_t) * (size_t)nc);
            for (Py_ssize_t q = 0; q < n_cand; q++) {
                grouped[fill[cand[q].col]++] = cand[q];
            }
        }
        for (Py_ssize_t c = 0; c < nc; c++) {
            Candidate *own = grouped + start[c];
            const Py_ssize_t n_own = start[c + 1] - start[c];
            sort_candidates(own, cand, n_own);
            const Py_ssize_t chosen = n_own < k_max ? n_own : (Py_ssize_t)k_max;
            if (!sums_only && total + chosen > cap) {
                FAIL("the output arrays are too small");
            }
            double sum_se = 0.0, sum_s = 0.0;
            for (Py_ssize_t q = 0; q < chosen; q++) {
                const int64_t p = own[q].place;
                const double s = own[q].sim;
                const double b_uj = base_u + item_bias[mine[p]];
                const double e_uj = r_u[p] - b_uj;
                sum_se += s * e_uj;
                sum_s += s;
                if (sums_only) {
                    continue;
                }
                out_cols[total] = c0 + c;
                out_items[total] = mine[p];
                out_values[total] = s;
                out_values[cap + total] = r_u[p];
                out_values[2 * cap + total] = b_uj;
                total++;
            }
            if (sums_only) {
                result = Py_BuildValue("(ddn)", sum_se, sum_s, chosen);
                goto done;
            }
            num_den[c0 + c] = sum_se;
            num_den[n_cols + c0 + c] = sum_s;
            count[c0 + c] = chosen;
        }
    }
    result = PyLong_FromSsize_t(total);
done:
    for (Py_ssize_t t = 0; t < n_set; t++) { /* an error with raters marked */
        mark[raters[t]] = -1;
    }
    free(mine);
    free(r_u);
    free(cand);
    free(found);
    free(raters);
    free(keys);
    free(xs);
    free(bits);
    free(user_bits);
    free(ent_w);
    free(ent_c);
    free(offsets);
    free(masks);
    for (int t = 0; t < N_BUFS; t++) { /* (those not taken are not held) */
        if (b[t].held) {
            PyBuffer_Release(&b[t].view);
        }
    }
    return result;
}

/* ---------------------------------------------------------------------------------------
   The user-neighbour terms of one knn_baseline prediction (the numpy path of predict.py's
   baseline_predict: neighbours_of, Baseline.users, the residual sums), adjusted cosine read
   from the int32 pair sums (the same operations in the same order, so the same bits):

   For each rater v of i (its row of ``item_users``, cell ids beside it in ``item_cells``), the
   pair cell {u, v}'s three int64 words (n, Σxy | Σu², Σu | Σv², Σv as int32 lanes, the sums of
   2·value: units 1, 1/4, 1/4, 1/2, 1/4, 1/2), with μ_u = S_u/n_u (0 if n_u = 0), μ_v = S_v/n_v:

       N_u = (Σx² − (2μ_u)·Σx) + (n·μ_u)·μ_u,  N_v likewise (0 where <= 1e-12·(Σx² + (n·μ_u)·μ_u))
       w   = clip((((Σxy − μ_v·Σx) − μ_u·Σy) + (n·μ_u)·μ_v) / sqrt(N_u·N_v), −1, 1)  (0 if 0 den)
       w   = 0 if n < max(min_support, 1);  w ·= n / (n + β) if β > 0

   usable: w > min_similarity (min_similarity >= 0), else w != 0 (and w > min_similarity unless
   None); v != u. N(i;u): the k usable raters by w descending, then the earlier rating (cell_seq),
   then their place in i's row (np.lexsort's stability), summed by w descending, then slot.
   b_x = (S_x − n_x·μ) − Σ_{j∈I_x} b_j, divided by λ_u + n_x (0 where λ_u + n_x <= 0 if λ_u <= 0),
   Σ_{j∈I_x} b_j from 0.0 over x's item slots ascending. Then, from 0.0 in neighbour order:

       num = Σ w·(r_vi − ((μ + b_v) + b_i)),   den = Σ |w|

   Returns (num, den, |N(i;u)|, b_u, n): Σ b_j is read from x's kept sorted row of item slots
   (Ratings.items_sorted) where sorted_ok[x], else gathered from its cells and ordered (a bitmap
   over the item slots, or a sort), x then listed in unsorted[:n] for the caller to keep. */

typedef struct {
    double w;
    int64_t seq;
    int64_t place; /* in i's row */
    int64_t slot;
    double r;
} Rater;

/* Whether x goes before y in the choice of the k: w descending, cell_seq, place in i's row. */
static inline int chosen_before(const Rater *x, const Rater *y) {
    if (x->w != y->w) {
        return x->w > y->w;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq;
    }
    return x->place < y->place;
}

/* Whether x goes before y in the sums: w descending, then slot. */
static inline int summed_before(const Rater *x, const Rater *y) {
    if (x->w != y->w) {
        return x->w > y->w;
    }
    return x->slot < y->slot;
}

/* Sorts n raters by ``less`` (merge sort, stable, tmp: room for n). */
static void sort_raters(Rater *a, Rater *tmp, Py_ssize_t n,
                        int (*less)(const Rater *, const Rater *)) {
    if (n <= 16) {
        for (Py_ssize_t k = 1; k < n; k++) {
            const Rater key = a[k];
            Py_ssize_t b = k;
            while (b > 0 && less(&key, &a[b - 1])) {
                a[b] = a[b - 1];
                b--;
            }
            a[b] = key;
        }
        return;
    }
    const Py_ssize_t half = n / 2;
    sort_raters(a, tmp, half, less);
    sort_raters(a + half, tmp + half, n - half, less);
    if (!less(&a[half], &a[half - 1])) {
        return;
    }
    memcpy(tmp, a, sizeof(Rater) * (size_t)n);
    Py_ssize_t x = 0, y = half, k = 0;
    while (x < half && y < n) {
        a[k++] = less(&tmp[y], &tmp[x]) ? tmp[y++] : tmp[x++];
    }
    while (x < half) a[k++] = tmp[x++];
    while (y < n) a[k++] = tmp[y++];
}

typedef struct {
    const int64_t *user_start, *user_length, *user_count;
    const int32_t *user_pool, *cell_item;
    const double *user_sum, *item_bias;
    Py_ssize_t n_user_pool, n_cells, n_items;
    double mu, reg_users;
    uint64_t *bits;  /* n_items bits, zero on entry and on return */
    uint64_t *keys;  /* room for the longest user row (the sorted read) */
    Py_ssize_t words;
    /* the kept rows of item slots ascending (Ratings.sorted_segments), where sorted_ok */
    const int64_t *kept_start, *kept_length;
    const int32_t *kept_pool;
    const uint8_t *sorted_ok;
    Py_ssize_t n_kept_rows, n_kept_pool;
    int64_t *unsorted; /* the slots read without a kept row (room for k + 1) */
    Py_ssize_t n_unsorted;
} BiasRead;

/* b_x of user slot x (see above), or -1 with an exception set. Σ b_j in ascending item slot:
   x's kept sorted row where there is one, else through the bitmap over the item slots where it
   has few words for the row, else a sort (x is then listed in ``unsorted``). */
static int user_bias(BiasRead *br, int64_t x, double *out) {
    const int64_t lo = br->user_start[x], len = br->user_length[x];
    if (lo < 0 || len < 0 || lo + len > br->n_user_pool) {
        PyErr_SetString(PyExc_ValueError, "user_terms: a user row is out of its pool");
        return -1;
    }
    double part = 0.0;
    if (x < br->n_kept_rows && br->sorted_ok[x]) {
        const int64_t k_lo = br->kept_start[x];
        if (br->kept_length[x] != len || k_lo < 0 || k_lo + len > br->n_kept_pool) {
            PyErr_SetString(PyExc_ValueError, "user_terms: a kept row is out of its pool");
            return -1;
        }
        const int32_t *row = br->kept_pool + k_lo;
        for (int64_t t = 0; t < len; t++) {
            const int64_t j = row[t];
            if (j < 0 || j >= br->n_items) {
                PyErr_SetString(PyExc_ValueError, "user_terms: a kept item is out of range");
                return -1;
            }
            part += br->item_bias[j];
        }
    } else if (br->words <= 4 * len + 64) {
        br->unsorted[br->n_unsorted++] = x;
        int64_t first = br->words, last = -1;
        for (int64_t t = 0; t < len; t++) {
            const int64_t cell = br->user_pool[lo + t];
            const int64_t j = (cell >= 0 && cell < br->n_cells) ? br->cell_item[cell] : -1;
            if (j < 0 || j >= br->n_items) {
                for (int64_t w = first; w <= last; w++) br->bits[w] = 0;
                PyErr_SetString(PyExc_ValueError, "user_terms: an item of a user is out of range");
                return -1;
            }
            br->bits[j >> 6] |= (uint64_t)1 << (j & 63);
            if ((j >> 6) < first) first = j >> 6;
            if ((j >> 6) > last) last = j >> 6;
        }
        for (int64_t w = first; w <= last; w++) {
            uint64_t set = br->bits[w];
            br->bits[w] = 0;
            while (set) {
                const int64_t j = w * 64 + __builtin_ctzll(set);
                set &= set - 1;
                part += br->item_bias[j];
            }
        }
    } else {
        br->unsorted[br->n_unsorted++] = x;
        for (int64_t t = 0; t < len; t++) {
            const int64_t cell = br->user_pool[lo + t];
            const int64_t j = (cell >= 0 && cell < br->n_cells) ? br->cell_item[cell] : -1;
            if (j < 0 || j >= br->n_items) {
                PyErr_SetString(PyExc_ValueError, "user_terms: an item of a user is out of range");
                return -1;
            }
            br->keys[t] = (uint64_t)j;
        }
        sort_keys(br->keys, br->keys + len, len);
        for (int64_t t = 0; t < len; t++) {
            part += br->item_bias[br->keys[t]];
        }
    }
    const double n = (double)br->user_count[x];
    double b = br->user_sum[x] - n * br->mu;
    b -= part;
    const double den = br->reg_users + n;
    if (br->reg_users > 0) {
        b /= den;
    } else {
        b = den > 0 ? b / den : 0.0;
    }
    *out = b;
    return 0;
}

#define U_BUFS 22
#define UFAIL(message)                                               \
    do {                                                             \
        PyErr_SetString(PyExc_ValueError, "user_terms: " message);   \
        goto udone;                                                  \
    } while (0)

static PyObject *user_terms(PyObject *self, PyObject *args) {
    (void)self;
    long long u_arg, i_arg, k_arg, support_arg;
    double shrinkage, min_sim, mu, reg_users;
    int has_min;
    PyObject *objs[U_BUFS];
    if (!PyArg_ParseTuple(args, "LLLLdpddd" "OOOOOOOOOOOOOOOOOOOOOO", &u_arg, &i_arg, &k_arg,
                          &support_arg, &shrinkage, &has_min, &min_sim, &mu, &reg_users,
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6],
                          &objs[7], &objs[8], &objs[9], &objs[10], &objs[11], &objs[12],
                          &objs[13], &objs[14], &objs[15], &objs[16], &objs[17], &objs[18],
                          &objs[19], &objs[20], &objs[21])) {
        return NULL;
    }
    Buf b[U_BUFS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    Rater *cand = NULL;
    uint64_t *bits = NULL, *keys = NULL;
    static const struct {
        Py_ssize_t size;
        const char *formats;
        const char *name;
    } spec[U_BUFS] = {
        {F64, "item_bias"},    {I64, "user_start"},  {I64, "user_length"}, {I32, "user_pool"},
        {I64, "cells_start"},  {I32, "cells_pool"},  {I64, "raters_start"},
        {I64, "raters_length"}, {I32, "raters_pool"}, {I32, "cell_item"},  {F64, "cell_value"},
        {I64, "cell_seq"},     {F64, "user_sum"},    {I64, "user_count"},  {I64, "flat"},
        {I64, "words_lo"},
        {I64, "words_hi"},     {I64, "kept_start"},  {I64, "kept_length"}, {I32, "kept_pool"},
        {1, "?", "sorted_ok"}, {I64, "unsorted"},
    };
    for (int t = 0; t < U_BUFS; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, t == U_BUFS - 1, spec[t].name) <
            0) {
            goto udone;
        }
    }
    const double *item_bias = b[0].view.buf;
    const int64_t *user_start = b[1].view.buf, *user_length = b[2].view.buf;
    const int32_t *user_pool = b[3].view.buf;
    const int64_t *cells_start = b[4].view.buf;
    const int32_t *cells_pool = b[5].view.buf;
    const int64_t *raters_start = b[6].view.buf, *raters_length = b[7].view.buf;
    const int32_t *raters_pool = b[8].view.buf;
    const int32_t *cell_item = b[9].view.buf;
    const double *cell_value = b[10].view.buf;
    const int64_t *cell_seq = b[11].view.buf;
    const double *user_sum = b[12].view.buf;
    const int64_t *user_count = b[13].view.buf;
    const int64_t *flat = b[14].view.buf;
    /* per slot v: col(v) + (0, 1, 2) and row(v) + (0, 2, 1) (PairSums.word_tables) */
    const int64_t *words_lo = b[15].view.buf, *words_hi = b[16].view.buf;
    const Py_ssize_t n_items = LEN(0);
    Py_ssize_t n_users = LEN(1) < LEN(2) ? LEN(1) : LEN(2);
    if (LEN(12) < n_users) n_users = LEN(12);
    if (LEN(13) < n_users) n_users = LEN(13);
    if (LEN(15) / 3 < n_users) n_users = LEN(15) / 3;
    if (LEN(16) / 3 < n_users) n_users = LEN(16) / 3;
    Py_ssize_t n_item_rows = LEN(4) < LEN(6) ? LEN(4) : LEN(6);
    if (LEN(7) < n_item_rows) n_item_rows = LEN(7);
    Py_ssize_t n_cells = LEN(9);
    if (LEN(10) < n_cells) n_cells = LEN(10);
    if (LEN(11) < n_cells) n_cells = LEN(11);
    const Py_ssize_t n_flat = LEN(14), n_cells_pool = LEN(5), n_raters_pool = LEN(8);
    const int64_t u = u_arg, i = i_arg, k = k_arg;
    const double min_n = support_arg > 1 ? (double)support_arg : 1.0;
    if (u < 0 || u >= n_users || i < 0 || i >= n_item_rows || k < 0) {
        UFAIL("inconsistent sizes");
    }
    const int64_t i_lo = raters_start[i], n_i = raters_length[i], c_lo = cells_start[i];
    if (i_lo < 0 || n_i < 0 || i_lo + n_i > n_raters_pool || c_lo < 0 ||
        c_lo + n_i > n_cells_pool) {
        UFAIL("i's row is out of its pool");
    }
    /* the words of {u, v} (PairSums.lanes_at): words_lo[v] + row(u) for v <= u (u the higher
       slot), words_hi[v] + col(u) for v > u; row(u) = words_hi[u][0], col(u) = words_lo[u][0] */
    const int64_t row_u = words_hi[3 * u], col_u = words_lo[3 * u];
    const double mu_u = user_count[u] > 0 ? user_sum[u] / (double)user_count[u] : 0.0;
    cand = malloc(sizeof(Rater) * (size_t)(2 * n_i + 2));
    if (!cand) {
        PyErr_NoMemory();
        goto udone;
    }
    const int32_t *flat32 = (const int32_t *)flat;
    Py_ssize_t n_cand = 0;
    for (int64_t t = 0; t < n_i; t++) {
        const int64_t v = raters_pool[i_lo + t];
        if (v < 0 || v >= n_users) {
            UFAIL("a rater of i is out of range");
        }
        if (v == u) {
            continue;
        }
        const int64_t *words = v <= u ? words_lo + 3 * v : words_hi + 3 * v;
        const int64_t add = v <= u ? row_u : col_u;
        const int64_t w0 = words[0] + add, w1 = words[1] + add, w2 = words[2] + add;
        if (w0 < 0 || w0 >= n_flat || w1 < 0 || w1 >= n_flat || w2 < 0 || w2 >= n_flat) {
            UFAIL("a pair cell is out of the pair sums");
        }
        const double n = (double)flat32[2 * w0];
        const double sxy = (double)flat32[2 * w0 + 1] * 0.25;
        const double sxx = (double)flat32[2 * w1] * 0.25;
        const double sx = (double)flat32[2 * w1 + 1] * 0.5;
        const double syy = (double)flat32[2 * w2] * 0.25;
        const double sy = (double)flat32[2 * w2 + 1] * 0.5;
        const double mu_v = user_sum[v] / (double)user_count[v];
        const double n_mu_u = n * mu_u, n_mu_v = n * mu_v;
        const double n_mu2_u = n_mu_u * mu_u, n_mu2_v = n_mu_v * mu_v;
        double norm_u = 2.0 * mu_u;
        norm_u *= sx;
        norm_u = sxx - norm_u;
        norm_u += n_mu2_u;
        double norm_v = 2.0 * mu_v;
        norm_v *= sy;
        norm_v = syy - norm_v;
        norm_v += n_mu2_v;
        double floor_u = sxx + n_mu2_u, floor_v = syy + n_mu2_v;
        floor_u *= RELATIVE_ZERO;
        floor_v *= RELATIVE_ZERO;
        if (norm_u <= floor_u) norm_u = 0.0;
        if (norm_v <= floor_v) norm_v = 0.0;
        double num = sxy - mu_v * sx;
        num -= mu_u * sy;
        num += n_mu_u * mu_v;
        const double den = sqrt(norm_u * norm_v);
        double w = den != 0 ? num / den : 0.0;
        if (w < -1.0) w = -1.0; /* np.maximum, np.minimum (NaN kept) */
        if (w > 1.0) w = 1.0;
        if (n < min_n) w = 0.0;
        if (shrinkage > 0) {
            double factor = n + shrinkage;
            factor = n / factor;
            w *= factor;
        }
        const int usable = (has_min && min_sim >= 0) ? (w > min_sim)
                                                     : (w != 0 && (!has_min || w > min_sim));
        if (!usable) {
            continue;
        }
        const int64_t cell = cells_pool[c_lo + t];
        if (cell < 0 || cell >= n_cells) {
            UFAIL("a cell of i is out of range");
        }
        cand[n_cand].w = w;
        cand[n_cand].seq = cell_seq[cell];
        cand[n_cand].place = t;
        cand[n_cand].slot = v;
        cand[n_cand].r = cell_value[cell];
        n_cand++;
    }
    if (n_cand > k) {
        sort_raters(cand, cand + n_cand, n_cand, chosen_before);
        n_cand = (Py_ssize_t)k;
    }
    sort_raters(cand, cand + n_cand, n_cand, summed_before);
    /* b_u, then b_v of each neighbour, and the sums in neighbour order */
    int64_t longest = user_length[u];
    for (Py_ssize_t q = 0; q < n_cand; q++) {
        if (user_length[cand[q].slot] > longest) longest = user_length[cand[q].slot];
    }
    Py_ssize_t n_kept_rows = LEN(17) < LEN(18) ? LEN(17) : LEN(18);
    if (LEN(20) < n_kept_rows) n_kept_rows = LEN(20);
    if (LEN(21) < n_cand + 1) {
        UFAIL("the unsorted array is too small");
    }
    BiasRead br = {user_start, user_length, user_count, user_pool, cell_item, user_sum,
                   item_bias, LEN(3), n_cells, n_items, mu, reg_users, NULL, NULL,
                   (n_items + 63) / 64, b[17].view.buf, b[18].view.buf, b[19].view.buf,
                   b[20].view.buf, n_kept_rows, LEN(19), b[21].view.buf, 0};
    bits = calloc((size_t)br.words + 1, sizeof(uint64_t));
    keys = malloc(sizeof(uint64_t) * (size_t)(2 * longest + 2));
    if (!bits || !keys) {
        PyErr_NoMemory();
        goto udone;
    }
    br.bits = bits;
    br.keys = keys;
    if (i >= n_items) {
        UFAIL("i is out of the item biases");
    }
    const double b_i = item_bias[i];
    double b_u;
    if (user_bias(&br, u, &b_u) < 0) {
        goto udone;
    }
    double num = 0.0, den = 0.0;
    for (Py_ssize_t q = 0; q < n_cand; q++) {
        double b_v;
        if (user_bias(&br, cand[q].slot, &b_v) < 0) {
            goto udone;
        }
        double dev = mu + b_v;
        dev += b_i;
        dev = cand[q].r - dev;
        dev *= cand[q].w;
        num += dev;
        den += fabs(cand[q].w);
    }
    result = Py_BuildValue("(ddndn)", num, den, n_cand, b_u, br.n_unsorted);
udone:
    free(cand);
    free(bits);
    free(keys);
    for (int t = 0; t < U_BUFS; t++) {
        if (b[t].held) {
            PyBuffer_Release(&b[t].view);
        }
    }
    return result;
}

/* ---------------------------------------------------------------------------------------
   One changed cell (x, t) of the int32 pair sums (scatter.py's scatter_cell, the same int64
   additions, wrapping as numpy's): with (d0, d1, d2) the change and, for each other rater y of
   t (distinct, x not among them) with scaled value Y, the words of cell {x, y} at
   words_lo[y] + row(x) for y < x, else words_hi[y] + col(x) (W0, Wx, Wy):

       W0 += Y·(d1·2³²) + d0,   Wx += d2 + d1·2³²,   Wy += ((Y + 2³²)·Y)·d0

   then the diagonal {x, x} (its three words from ``diag``): d0 + d2·2³², d2 + d1·2³² twice.
   Integer additions mod 2⁶⁴: their order changes no bit. */

#define S_BUFS 5

static PyObject *scatter_cell(PyObject *self, PyObject *args) {
    (void)self;
    long long x, d0, d1, d2, row_x, col_x, diag;
    PyObject *objs[S_BUFS];
    if (!PyArg_ParseTuple(args, "LLLLLLLOOOOO", &x, &d0, &d1, &d2, &row_x, &col_x, &diag,
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4])) {
        return NULL;
    }
    Buf b[S_BUFS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    static const struct {
        Py_ssize_t size;
        const char *formats;
        int writable;
        const char *name;
    } spec[S_BUFS] = {
        {I64, 1, "flat"}, {I64, 0, "words_lo"}, {I64, 0, "words_hi"},
        {I64, 0, "others"}, {I64, 0, "other_twice"},
    };
    for (int t = 0; t < S_BUFS; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, spec[t].writable, spec[t].name) <
            0) {
            goto sdone;
        }
    }
    uint64_t *flat = b[0].view.buf;
    const int64_t *words_lo = b[1].view.buf, *words_hi = b[2].view.buf;
    const int64_t *others = b[3].view.buf, *twice = b[4].view.buf;
    const Py_ssize_t n_flat = LEN(0), n_slots = LEN(1) < LEN(2) ? LEN(1) / 3 : LEN(2) / 3;
    const Py_ssize_t m = LEN(3);
    if (LEN(4) != m || diag < 0 || diag + 3 > n_flat) {
        PyErr_SetString(PyExc_ValueError, "scatter_cell: inconsistent sizes");
        goto sdone;
    }
    /* every index checked before any word is written: an error leaves the sums as they were */
    for (Py_ssize_t k = 0; k < m; k++) {
        const int64_t y = others[k];
        if (y < 0 || y >= n_slots || y == x) {
            PyErr_SetString(PyExc_ValueError, "scatter_cell: a rater is out of range");
            goto sdone;
        }
        const int64_t *words = y < x ? words_lo + 3 * y : words_hi + 3 * y;
        const int64_t add = y < x ? row_x : col_x;
        for (int w = 0; w < 3; w++) {
            if (words[w] + add < 0 || words[w] + add >= n_flat) {
                PyErr_SetString(PyExc_ValueError, "scatter_cell: a cell is out of the sums");
                goto sdone;
            }
        }
    }
    const uint64_t u0 = (uint64_t)d0, u1 = (uint64_t)d1, u2 = (uint64_t)d2;
    const uint64_t d1_hi = u1 << 32, high = (uint64_t)1 << 32;
    const uint64_t wx = u2 + d1_hi;
    for (Py_ssize_t k = 0; k < m; k++) {
        const int64_t y = others[k];
        const int64_t *words = y < x ? words_lo + 3 * y : words_hi + 3 * y;
        const int64_t add = y < x ? row_x : col_x;
        const uint64_t yv = (uint64_t)twice[k];
        flat[words[0] + add] += yv * d1_hi + u0;
        flat[words[1] + add] += wx;
        flat[words[2] + add] += ((yv + high) * yv) * u0;
    }
    flat[diag] += u0 + (u2 << 32);
    flat[diag + 1] += wx;
    flat[diag + 2] += wx;
    Py_INCREF(Py_None);
    result = Py_None;
sdone:
    for (int t = 0; t < S_BUFS; t++) {
        if (b[t].held) {
            PyBuffer_Release(&b[t].view);
        }
    }
    return result;
}

static PyMethodDef methods[] = {
    {"item_terms", item_terms, METH_VARARGS,
     "item_terms(u, k, shrinkage, base_u, cols, mark, item_bias, user_start, user_length, "
     "user_pool, cells_start, cells_pool, raters_start, raters_length, raters_pool, cell_item, "
     "cell_value, user_sum, user_count, out_cols, out_items, out_values, num_den, "
     "count) -> the number of selected pairs; with out_cols None (and the four after it), "
     "one wanted item and no output arrays: -> (num, den, count)"},
    {"user_terms", user_terms, METH_VARARGS,
     "user_terms(u, i, k, min_support, shrinkage, has_min, min_similarity, mu, reg_users, "
     "item_bias, user_start, user_length, user_pool, cells_start, cells_pool, raters_start, "
     "raters_length, raters_pool, cell_item, cell_value, cell_seq, user_sum, user_count, flat, "
     "words_lo, words_hi, kept_start, kept_length, kept_pool, sorted_ok, unsorted) -> (num, "
     "den, count, b_u, n_unsorted) of knn_baseline's user neighbours (adjusted cosine); the "
     "users read without a kept sorted row in unsorted[:n_unsorted]"},
    {"scatter_cell", scatter_cell, METH_VARARGS,
     "scatter_cell(x, d0, d1, d2, row_x, col_x, diag, flat, words_lo, words_hi, others, "
     "other_twice) -> None: one changed cell's additions into the int32 pair sums' words"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_item_kernel",
    "Compiled reads and writes of the engine: item_terms (item_kernel.py), user_terms "
    "(user_kernel.py), scatter_cell (scatter.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__item_kernel(void) { return PyModule_Create(&module); }
