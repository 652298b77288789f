/* Compiled reads and writes of the engine, each the same operations in the same order as its
   numpy path (kept as the reference and the fallback): the item terms of knn_baseline's
   item-based residual (item_terms, below), the user-neighbour terms of knn_baseline's
   predictions of one user (user_terms_many: user_kernel.py) and one changed cell's pair update
   (scatter_cell: scatter.py), each described where it is defined.

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
#include "_kernel_sort.h"


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
   The user-neighbour terms of knn_baseline's predictions of user u for several items at once
   (the numpy path of predict.py: neighbours_of, Baseline.users and the residual sums for one
   item; neighbourhood_of, knn.select and baseline.residual_sums for several), adjusted cosine
   read from the int32 pair sums (the same operations in the same order, so the same bits):

   For each rater v of a wanted item i (its row of ``item_users``, the cells and the values
   beside it in ``by_item`` and ``item_values``), the pair cell {u, v}'s three int64 words
   (n, Σxy | Σu², Σu | Σv², Σv as int32 lanes, the sums of 2·value: units 1, 1/4, 1/4, 1/2,
   1/4, 1/2), with μ_u = S_u/n_u (0 if n_u = 0), μ_v = S_v/n_v:

       N_u = (Σx² − (2μ_u)·Σx) + (n·μ_u)·μ_u,  N_v likewise (0 where <= 1e-12·(Σx² + (n·μ_u)·μ_u))
       w   = clip((((Σxy − μ_v·Σx) − μ_u·Σy) + (n·μ_u)·μ_v) / sqrt(N_u·N_v), −1, 1)  (0 if 0 den)
       w   = 0 if n < max(min_support, 1);  w ·= n / (n + β) if β > 0

   usable: w > min_similarity (min_similarity >= 0), else w != 0 (and w > min_similarity unless
   None); v != u. N(i;u): the k usable raters by w descending, then the earlier rating (cell_seq),
   then their place in i's row (np.lexsort's stability), summed by w descending, then slot.
   b_x = (S_x − n_x·μ) − Σ_{j∈I_x} b_j, divided by λ_u + n_x (0 where λ_u + n_x <= 0 if λ_u <= 0),
   Σ_{j∈I_x} b_j from 0.0 over x's item slots ascending. Then per wanted item i, from 0.0 in
   neighbour order:

       num_i = Σ_{v∈N(i;u)} w_uv·(r_vi − ((μ + b_v) + b_i)),   den_i = Σ_{v∈N(i;u)} |w_uv|

   written to num_den[0][c], num_den[1][c] and count[c] = |N(i;u)| for i = cols[c]; returns
   (b_u, n). The work the columns share is done once a call: w_uv once per distinct rater (a
   table over their slots, open addressing), the usable raters ranked once by (w descending,
   slot) (u's neighbourhood as far as the wanted items reach it), b_u once, b_v once per
   distinct neighbour. A column's N(i;u) is then read without a sort: its raters' ranks set in
   a bitmap and read back ascending up to the k-th, and past it while w ties with the k-th's
   (that run alone is ordered by the earlier rating). Σ b_j is read from x's kept sorted row of
   item slots (Ratings.items_sorted) where sorted_ok[x], else gathered from its cells and
   ordered (a bitmap over the item slots, or a sort), x then listed in unsorted[:n] for the
   caller to keep (each x at most once a call: room for 1 + Σ_c min(k, usable raters of
   cols[c]) slots is required). */

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
        PyErr_SetString(PyExc_ValueError, "user_terms_many: a user row is out of its pool");
        return -1;
    }
    double part = 0.0;
    if (x < br->n_kept_rows && br->sorted_ok[x]) {
        const int64_t k_lo = br->kept_start[x];
        if (br->kept_length[x] != len || k_lo < 0 || k_lo + len > br->n_kept_pool) {
            PyErr_SetString(PyExc_ValueError, "user_terms_many: a kept row is out of its pool");
            return -1;
        }
        const int32_t *row = br->kept_pool + k_lo;
        for (int64_t t = 0; t < len; t++) {
            const int64_t j = row[t];
            if (j < 0 || j >= br->n_items) {
                PyErr_SetString(PyExc_ValueError, "user_terms_many: a kept item is out of range");
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
                PyErr_SetString(PyExc_ValueError,
                                "user_terms_many: an item of a user is out of range");
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
                PyErr_SetString(PyExc_ValueError,
                                "user_terms_many: an item of a user is out of range");
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

/* u's side of the pair reads: the words of {u, v} (PairSums.lanes_at) are words_lo[v] + row(u)
   for v <= u (u the higher slot), words_hi[v] + col(u) for v > u; row(u) = words_hi[u][0],
   col(u) = words_lo[u][0]. */
typedef struct {
    const int64_t *words_lo, *words_hi;
    const int32_t *flat32;
    Py_ssize_t n_flat;
    const double *user_sum;
    const int64_t *user_count;
    int64_t u, row_u, col_u;
    double mu_u, min_n, shrinkage, min_sim;
    int has_min;
} PairRead;

/* w_uv of rater v != u (the formula above) and whether it is usable; -1 with an exception set
   if v's pair cell is out of the sums. */
static int pair_weight(const PairRead *pr, int64_t v, double *w_out, int *usable) {
    const int64_t u = pr->u;
    const int64_t *words = v <= u ? pr->words_lo + 3 * v : pr->words_hi + 3 * v;
    const int64_t add = v <= u ? pr->row_u : pr->col_u;
    const int64_t w0 = words[0] + add, w1 = words[1] + add, w2 = words[2] + add;
    const Py_ssize_t n_flat = pr->n_flat;
    if (w0 < 0 || w0 >= n_flat || w1 < 0 || w1 >= n_flat || w2 < 0 || w2 >= n_flat) {
        PyErr_SetString(PyExc_ValueError, "user_terms_many: a pair cell is out of the pair sums");
        return -1;
    }
    const int32_t *flat32 = pr->flat32;
    const double mu_u = pr->mu_u;
    const double n = (double)flat32[2 * w0];
    const double sxy = (double)flat32[2 * w0 + 1] * 0.25;
    const double sxx = (double)flat32[2 * w1] * 0.25;
    const double sx = (double)flat32[2 * w1 + 1] * 0.5;
    const double syy = (double)flat32[2 * w2] * 0.25;
    const double sy = (double)flat32[2 * w2 + 1] * 0.5;
    const double mu_v = pr->user_sum[v] / (double)pr->user_count[v];
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
    if (n < pr->min_n) w = 0.0;
    if (pr->shrinkage > 0) {
        double factor = n + pr->shrinkage;
        factor = n / factor;
        w *= factor;
    }
    const double min_sim = pr->min_sim;
    *usable = (pr->has_min && min_sim >= 0) ? (w > min_sim)
                                            : (w != 0 && (!pr->has_min || w > min_sim));
    *w_out = w;
    return 0;
}

/* One distinct rater of the call: w_uv (read once), its rank among the usable ones, and b_v
   (once, when first summed). */
typedef struct {
    int64_t slot, rank;
    double w, b;
    int usable, has_b;
} Seen;

/* A usable rater in the neighbour order (w descending, then slot). */
typedef struct {
    double w;
    int64_t slot, seen;
} Ranked;

static inline int ranked_before(const Ranked *x, const Ranked *y) {
    if (x->w != y->w) {
        return x->w > y->w;
    }
    return x->slot < y->slot;
}

/* A stable merge sort of n items of ``type`` by the inline ``less`` (tmp: room for n). */
#define MERGE_SORT(name, type, less)                                      \
    static void name(type *a, type *tmp, Py_ssize_t n) {                  \
        if (n <= 16) {                                                    \
            for (Py_ssize_t k = 1; k < n; k++) {                          \
                const type key = a[k];                                    \
                Py_ssize_t b = k;                                         \
                while (b > 0 && less(&key, &a[b - 1])) {                  \
                    a[b] = a[b - 1];                                      \
                    b--;                                                  \
                }                                                         \
                a[b] = key;                                               \
            }                                                             \
            return;                                                       \
        }                                                                 \
        const Py_ssize_t half = n / 2;                                    \
        name(a, tmp, half);                                               \
        name(a + half, tmp + half, n - half);                             \
        if (!less(&a[half], &a[half - 1])) {                              \
            return;                                                       \
        }                                                                 \
        memcpy(tmp, a, sizeof(type) * (size_t)n);                         \
        Py_ssize_t x = 0, y = half, k = 0;                                \
        while (x < half && y < n) {                                       \
            a[k++] = less(&tmp[y], &tmp[x]) ? tmp[y++] : tmp[x++];        \
        }                                                                 \
        while (x < half) a[k++] = tmp[x++];                               \
        while (y < n) a[k++] = tmp[y++];                                  \
    }

MERGE_SORT(sort_ranked, Ranked, ranked_before)

/* A member of the run of equal w straddling the k-th neighbour: chosen by the earlier rating of
   i (cell_seq), then its place in i's row. */
typedef struct {
    int64_t seq, place, at; /* at: its position in the column's neighbour order */
} Tied;

static inline int tied_before(const Tied *x, const Tied *y) {
    if (x->seq != y->seq) {
        return x->seq < y->seq;
    }
    return x->place < y->place;
}

MERGE_SORT(sort_tied, Tied, tied_before)

#define U_BUFS 26
#define UFAIL(message)                                                    \
    do {                                                                  \
        PyErr_SetString(PyExc_ValueError, "user_terms_many: " message);   \
        goto udone;                                                       \
    } while (0)

static PyObject *user_terms_many(PyObject *self, PyObject *args) {
    (void)self;
    long long u_arg, k_arg, support_arg;
    double shrinkage, min_sim, mu, reg_users;
    int has_min;
    PyObject *objs[U_BUFS];
    if (!PyArg_ParseTuple(args, "LLLdpddd" "OOOOOOOOOOOOOOOOOOOOOOOOOO", &u_arg, &k_arg,
                          &support_arg, &shrinkage, &has_min, &min_sim, &mu, &reg_users,
                          &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6],
                          &objs[7], &objs[8], &objs[9], &objs[10], &objs[11], &objs[12],
                          &objs[13], &objs[14], &objs[15], &objs[16], &objs[17], &objs[18],
                          &objs[19], &objs[20], &objs[21], &objs[22], &objs[23], &objs[24],
                          &objs[25])) {
        return NULL;
    }
    Buf b[U_BUFS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    int64_t *entries = NULL, *rank_place = NULL, *pick = NULL;
    Seen *seen = NULL;
    Ranked *ranked = NULL;
    Tied *tied = NULL;
    int32_t *table = NULL;
    Py_ssize_t *seg = NULL;
    uint64_t *bits = NULL, *rank_bits = NULL, *keys = NULL;
    static const struct {
        Py_ssize_t size;
        const char *formats;
        int writable;
        const char *name;
    } spec[U_BUFS] = {
        {I64, 0, "cols"},          {F64, 1, "num_den"},       {I64, 1, "count"},
        {F64, 0, "item_bias"},     {I64, 0, "user_start"},    {I64, 0, "user_length"},
        {I32, 0, "user_pool"},     {I64, 0, "cells_start"},   {I32, 0, "cells_pool"},
        {I64, 0, "raters_start"},  {I64, 0, "raters_length"}, {I32, 0, "raters_pool"},
        {I64, 0, "values_start"},  {F64, 0, "values_pool"},   {I32, 0, "cell_item"},
        {I64, 0, "cell_seq"},      {F64, 0, "user_sum"},      {I64, 0, "user_count"},
        {I64, 0, "flat"},          {I64, 0, "words_lo"},      {I64, 0, "words_hi"},
        {I64, 0, "kept_start"},    {I64, 0, "kept_length"},   {I32, 0, "kept_pool"},
        {1, "?", 0, "sorted_ok"},  {I64, 1, "unsorted"},
    };
    for (int t = 0; t < U_BUFS; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, spec[t].writable, spec[t].name) <
            0) {
            goto udone;
        }
    }
    const int64_t *cols = b[0].view.buf;
    double *num_den = b[1].view.buf;
    int64_t *count = b[2].view.buf;
    const double *item_bias = b[3].view.buf;
    const int64_t *user_start = b[4].view.buf, *user_length = b[5].view.buf;
    const int32_t *user_pool = b[6].view.buf;
    const int64_t *cells_start = b[7].view.buf;
    const int32_t *cells_pool = b[8].view.buf;
    const int64_t *raters_start = b[9].view.buf, *raters_length = b[10].view.buf;
    const int32_t *raters_pool = b[11].view.buf;
    const int64_t *values_start = b[12].view.buf;
    const double *values_pool = b[13].view.buf;
    const int32_t *cell_item = b[14].view.buf;
    const int64_t *cell_seq = b[15].view.buf;
    const double *user_sum = b[16].view.buf;
    const int64_t *user_count = b[17].view.buf;
    /* per slot v: col(v) + (0, 1, 2) and row(v) + (0, 2, 1) (PairSums.word_tables) */
    const int64_t *words_lo = b[19].view.buf, *words_hi = b[20].view.buf;
    const Py_ssize_t n_cols = LEN(0), n_items = LEN(3);
    Py_ssize_t n_users = LEN(4) < LEN(5) ? LEN(4) : LEN(5);
    if (LEN(16) < n_users) n_users = LEN(16);
    if (LEN(17) < n_users) n_users = LEN(17);
    if (LEN(19) / 3 < n_users) n_users = LEN(19) / 3;
    if (LEN(20) / 3 < n_users) n_users = LEN(20) / 3;
    Py_ssize_t n_item_rows = LEN(7) < LEN(9) ? LEN(7) : LEN(9);
    if (LEN(10) < n_item_rows) n_item_rows = LEN(10);
    if (LEN(12) < n_item_rows) n_item_rows = LEN(12);
    Py_ssize_t n_cells = LEN(14) < LEN(15) ? LEN(14) : LEN(15);
    const Py_ssize_t n_cells_pool = LEN(8), n_raters_pool = LEN(11), n_values_pool = LEN(13);
    const int64_t u = u_arg, k = k_arg;
    if (u < 0 || u >= n_users || k < 0 || LEN(1) < 2 * n_cols || LEN(2) < n_cols) {
        UFAIL("inconsistent sizes");
    }
    /* every wanted row checked, and the raters counted (the room of the call's tables) */
    Py_ssize_t total = 0;
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        const int64_t i = cols[c];
        if (i < 0 || i >= n_item_rows || i >= n_items) {
            UFAIL("a wanted item is out of range");
        }
        const int64_t i_lo = raters_start[i], n_i = raters_length[i], c_lo = cells_start[i];
        const int64_t v_lo = values_start[i];
        if (i_lo < 0 || n_i < 0 || i_lo + n_i > n_raters_pool || c_lo < 0 ||
            c_lo + n_i > n_cells_pool || v_lo < 0 || v_lo + n_i > n_values_pool) {
            UFAIL("i's row is out of its pool");
        }
        total += (Py_ssize_t)n_i;
    }
    if (total >= INT32_MAX / 2) {
        UFAIL("too many raters for one call");
    }
    /* the table of distinct raters: a power of two at least twice their number (-1: free) */
    int table_bits = 4;
    while (((Py_ssize_t)1 << table_bits) < 2 * total + 2) table_bits++;
    const uint64_t table_mask = ((uint64_t)1 << table_bits) - 1;
    entries = malloc(sizeof(int64_t) * (size_t)(2 * total + 2)); /* (seen, place) per rater */
    seen = malloc(sizeof(Seen) * (size_t)(total + 1));
    table = malloc(sizeof(int32_t) * (size_t)(table_mask + 1));
    seg = malloc(sizeof(Py_ssize_t) * (size_t)(n_cols + 1));
    if (!entries || !seen || !table || !seg) {
        PyErr_NoMemory();
        goto udone;
    }
    memset(table, 0xff, sizeof(int32_t) * (size_t)(table_mask + 1));
    /* each column's raters but u, as (their entry in ``seen``, their place in i's row) */
    Py_ssize_t n_seen = 0, n_entries = 0;
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        const int64_t i = cols[c];
        const int32_t *row = raters_pool + raters_start[i];
        const int64_t n_i = raters_length[i];
        seg[c] = n_entries;
        for (int64_t t = 0; t < n_i; t++) {
            const int64_t v = row[t];
            if (v < 0 || v >= n_users) {
                UFAIL("a rater of i is out of range");
            }
            if (v == u) {
                continue;
            }
            uint64_t h = ((uint64_t)v * 0x9E3779B97F4A7C15ull) >> (64 - table_bits);
            while (table[h] >= 0 && seen[table[h]].slot != v) h = (h + 1) & table_mask;
            if (table[h] < 0) {
                seen[n_seen].slot = v;
                table[h] = (int32_t)n_seen++;
            }
            entries[2 * n_entries] = table[h];
            entries[2 * n_entries + 1] = t;
            n_entries++;
        }
    }
    seg[n_cols] = n_entries;
    /* w_uv of each distinct rater (the next ones' pair words asked for ahead), the usable ones
       ranked in the neighbour order */
    const double mu_u = user_count[u] > 0 ? user_sum[u] / (double)user_count[u] : 0.0;
    const int64_t row_u = words_hi[3 * u], col_u = words_lo[3 * u];
    const PairRead pr = {words_lo, words_hi, (const int32_t *)b[18].view.buf, LEN(18), user_sum,
                         user_count, u, row_u, col_u, mu_u,
                         support_arg > 1 ? (double)support_arg : 1.0, shrinkage, min_sim,
                         has_min};
    ranked = malloc(sizeof(Ranked) * (size_t)(2 * n_seen + 2)); /* and the sort's room */
    if (!ranked) {
        PyErr_NoMemory();
        goto udone;
    }
    Py_ssize_t n_ranked = 0;
    int64_t longest = user_length[u];
    for (Py_ssize_t s = 0; s < n_seen; s++) {
        if (s + 8 < n_seen) { /* no effect on any value */
            const int64_t ahead = seen[s + 8].slot;
            const int64_t *words = ahead <= u ? words_lo + 3 * ahead : words_hi + 3 * ahead;
            const int64_t add = ahead <= u ? row_u : col_u;
            for (int w = 0; w < 3; w++) {
                const int64_t word = words[w] + add;
                if (word >= 0 && word < pr.n_flat) __builtin_prefetch(pr.flat32 + 2 * word);
            }
        }
        Seen *v = &seen[s];
        v->has_b = 0;
        v->rank = -1;
        if (pair_weight(&pr, v->slot, &v->w, &v->usable) < 0) {
            goto udone;
        }
        if (v->usable) {
            ranked[n_ranked].w = v->w;
            ranked[n_ranked].slot = v->slot;
            ranked[n_ranked].seen = s;
            n_ranked++;
            if (user_length[v->slot] > longest) longest = user_length[v->slot];
        }
    }
    sort_ranked(ranked, ranked + n_ranked, n_ranked);
    for (Py_ssize_t r = 0; r < n_ranked; r++) {
        seen[ranked[r].seen].rank = r;
    }
    /* room for the b_x read: 1 + Σ_c min(k, usable raters of the column) at most */
    Py_ssize_t room = 1, widest = 0;
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        Py_ssize_t n_usable = 0;
        for (Py_ssize_t e = seg[c]; e < seg[c + 1]; e++) {
            n_usable += seen[entries[2 * e]].usable;
        }
        room += n_usable < k ? n_usable : (Py_ssize_t)k;
        if (n_usable > widest) widest = n_usable;
    }
    Py_ssize_t n_kept_rows = LEN(21) < LEN(22) ? LEN(21) : LEN(22);
    if (LEN(24) < n_kept_rows) n_kept_rows = LEN(24);
    if (LEN(25) < room) {
        UFAIL("the unsorted array is too small");
    }
    BiasRead br = {user_start, user_length, user_count, user_pool, cell_item, user_sum,
                   item_bias, LEN(6), n_cells, n_items, mu, reg_users, NULL, NULL,
                   (n_items + 63) / 64, b[21].view.buf, b[22].view.buf, b[23].view.buf,
                   b[24].view.buf, n_kept_rows, LEN(23), b[25].view.buf, 0};
    const Py_ssize_t rank_words = (n_ranked + 63) / 64;
    bits = calloc((size_t)br.words + 1, sizeof(uint64_t));
    keys = malloc(sizeof(uint64_t) * (size_t)(2 * longest + 2));
    rank_bits = calloc((size_t)rank_words + 1, sizeof(uint64_t)); /* left zero per column */
    rank_place = malloc(sizeof(int64_t) * (size_t)(n_ranked + 1));
    pick = malloc(sizeof(int64_t) * (size_t)(widest + 1));
    tied = malloc(sizeof(Tied) * (size_t)(2 * widest + 2)); /* and the sort's room */
    if (!bits || !keys || !rank_bits || !rank_place || !pick || !tied) {
        PyErr_NoMemory();
        goto udone;
    }
    br.bits = bits;
    br.keys = keys;
    double b_u;
    if (user_bias(&br, u, &b_u) < 0) {
        goto udone;
    }
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        const int64_t i = cols[c];
        /* the column's usable raters in the neighbour order: their ranks through the bitmap,
           up to the k-th and on while w ties with the k-th's */
        for (Py_ssize_t e = seg[c]; e < seg[c + 1]; e++) {
            const Seen *v = &seen[entries[2 * e]];
            if (v->usable) {
                rank_bits[v->rank >> 6] |= (uint64_t)1 << (v->rank & 63);
                rank_place[v->rank] = entries[2 * e + 1];
            }
        }
        Py_ssize_t n_pick = 0;
        int more = k > 0;
        for (Py_ssize_t word = 0; more && word < rank_words; word++) {
            uint64_t set = rank_bits[word];
            while (set) {
                const int64_t r = word * 64 + __builtin_ctzll(set);
                set &= set - 1;
                if (n_pick >= k && ranked[r].w != ranked[pick[k - 1]].w) {
                    more = 0; /* past the k-th and its ties (w descending: no later one ties) */
                    break;
                }
                pick[n_pick++] = r;
            }
        }
        for (Py_ssize_t e = seg[c]; e < seg[c + 1]; e++) { /* the bitmap left zero */
            const Seen *v = &seen[entries[2 * e]];
            if (v->usable) rank_bits[v->rank >> 6] = 0;
        }
        if (n_pick > k) { /* a run of equal w straddles the k-th: its members by earlier rating */
            Py_ssize_t first = k - 1;
            while (first > 0 && ranked[pick[first - 1]].w == ranked[pick[k - 1]].w) first--;
            const Py_ssize_t n_tied = n_pick - first, need = k - first;
            const int64_t c_lo = cells_start[i];
            for (Py_ssize_t q = 0; q < n_tied; q++) {
                const int64_t place = rank_place[pick[first + q]];
                const int64_t cell = cells_pool[c_lo + place];
                if (cell < 0 || cell >= n_cells) {
                    UFAIL("a cell of i is out of range");
                }
                tied[q].seq = cell_seq[cell];
                tied[q].place = place;
                tied[q].at = first + q;
            }
            sort_tied(tied, tied + n_tied, n_tied);
            for (Py_ssize_t q = need; q < n_tied; q++) {
                pick[tied[q].at] = -1; /* not chosen */
            }
            Py_ssize_t kept = first;
            for (Py_ssize_t q = first; q < n_pick; q++) {
                if (pick[q] >= 0) pick[kept++] = pick[q];
            }
            n_pick = kept;
        }
        const double b_i = item_bias[i];
        const double *values = values_pool + values_start[i];
        double num = 0.0, den = 0.0;
        for (Py_ssize_t q = 0; q < n_pick; q++) {
            const Ranked *nb = &ranked[pick[q]];
            Seen *v = &seen[nb->seen];
            if (!v->has_b) {
                if (user_bias(&br, v->slot, &v->b) < 0) {
                    goto udone;
                }
                v->has_b = 1;
            }
            double dev = mu + v->b;
            dev += b_i;
            dev = values[rank_place[pick[q]]] - dev;
            dev *= nb->w;
            num += dev;
            den += fabs(nb->w);
        }
        num_den[c] = num;
        num_den[n_cols + c] = den;
        count[c] = n_pick;
    }
    result = Py_BuildValue("(dn)", b_u, br.n_unsorted);
udone:
    free(entries);
    free(rank_place);
    free(pick);
    free(seen);
    free(ranked);
    free(tied);
    free(table);
    free(seg);
    free(bits);
    free(rank_bits);
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
    {"user_terms_many", user_terms_many, METH_VARARGS,
     "user_terms_many(u, k, min_support, shrinkage, has_min, min_similarity, mu, reg_users, "
     "cols, num_den, count, item_bias, user_start, user_length, user_pool, cells_start, "
     "cells_pool, raters_start, raters_length, raters_pool, values_start, values_pool, "
     "cell_item, cell_seq, user_sum, user_count, flat, words_lo, words_hi, kept_start, "
     "kept_length, kept_pool, sorted_ok, unsorted) -> (b_u, n_unsorted): knn_baseline's "
     "user-neighbour sums of each wanted item (adjusted cosine) in num_den[0], num_den[1], "
     "count; the users read without a kept sorted row in unsorted[:n_unsorted]"},
    {"scatter_cell", scatter_cell, METH_VARARGS,
     "scatter_cell(x, d0, d1, d2, row_x, col_x, diag, flat, words_lo, words_hi, others, "
     "other_twice) -> None: one changed cell's additions into the int32 pair sums' words"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_item_kernel",
    "Compiled reads and writes of the engine: item_terms (item_kernel.py), user_terms_many "
    "(user_kernel.py), scatter_cell (scatter.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__item_kernel(void) { return PyModule_Create(&module); }
