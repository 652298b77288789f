/* N(i;u) for a few wanted items, compiled: knn.select's choice from the wanted items' rows
   (stream_cf/engine/knn.py, select_kernel.py), the same pairs in the same order.

   select_columns(k, cols, slots, group, position, cells_start, cells_length, cells_pool,
                  cell_user, cell_seq, cell_item, cell_value,
                  out_rows, out_colpos, out_items, out_values) -> written

   N = ``slots`` (u's usable neighbours, best first), ``group`` the run id of equal similarities
   per position (non-decreasing). For each wanted item slot cols[c], in column order: its raters
   found in N (p = their position in N), ordered by p; the first k of them, except that when the
   k-th and the (k+1)-th share a run, the run's raters are chosen by the earlier rating of the
   item (cell_seq, then p) for the places the run has left. The chosen pairs are written grouped
   by column, in p order: (p, c, item slot, the rating). Nothing is summed here: the numpy path
   sums them (np.bincount, in this order).

   ``position`` is a scratch array over the user slots, -1 everywhere on entry; it is set for N
   and left -1 again on every return. No floating-point operation: the outputs are copies. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernel_buf.h"
#include "_kernel_sort.h"

#define N_BUFS 15

typedef struct {
    int64_t seq;
    int64_t at; /* the entry's place in the column's p order */
} Tied;

static inline int tied_before(const Tied *x, const Tied *y) {
    return x->seq != y->seq ? x->seq < y->seq : x->at < y->at;
}

/* Sorts n run members by (seq, at) (merge sort, tmp: room for n). */
static void sort_tied(Tied *a, Tied *tmp, Py_ssize_t n) {
    if (n <= 16) {
        for (Py_ssize_t x = 1; x < n; x++) {
            const Tied key = a[x];
            Py_ssize_t y = x;
            while (y > 0 && tied_before(&key, &a[y - 1])) {
                a[y] = a[y - 1];
                y--;
            }
            a[y] = key;
        }
        return;
    }
    const Py_ssize_t half = n / 2;
    sort_tied(a, tmp, half);
    sort_tied(a + half, tmp + half, n - half);
    memcpy(tmp, a, sizeof(Tied) * (size_t)n);
    Py_ssize_t x = 0, y = half, z = 0;
    while (x < half && y < n) a[z++] = tied_before(&tmp[y], &tmp[x]) ? tmp[y++] : tmp[x++];
    while (x < half) a[z++] = tmp[x++];
    while (y < n) a[z++] = tmp[y++];
}

#define FAIL(message)                                                      \
    do {                                                                   \
        PyErr_SetString(PyExc_ValueError, "select_columns: " message);     \
        goto done;                                                         \
    } while (0)

static PyObject *select_columns(PyObject *self, PyObject *args) {
    (void)self;
    long long k_arg;
    PyObject *objs[N_BUFS];
    if (!PyArg_ParseTuple(args, "LOOOOOOOOOOOOOOO", &k_arg, &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4], &objs[5], &objs[6], &objs[7], &objs[8], &objs[9],
                          &objs[10], &objs[11], &objs[12], &objs[13], &objs[14])) {
        return NULL;
    }
    Buf b[N_BUFS];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    uint64_t *keys = NULL;
    Tied *tied = NULL;
    uint8_t *chosen = NULL;
    int64_t *position = NULL;
    const int64_t *slots = NULL;
    Py_ssize_t n_marked = 0; /* position[slots[0:n_marked]] set: reset before any return */
    static const struct {
        Py_ssize_t size;
        const char *formats;
        int writable;
        const char *name;
    } spec[N_BUFS] = {
        {I64, 0, "cols"},        {I64, 0, "slots"},       {I64, 0, "group"},
        {I64, 1, "position"},    {I64, 0, "cells_start"}, {I64, 0, "cells_length"},
        {I32, 0, "cells_pool"},  {I32, 0, "cell_user"},   {I64, 0, "cell_seq"},
        {I32, 0, "cell_item"},   {F64, 0, "cell_value"},  {I64, 1, "out_rows"},
        {I64, 1, "out_colpos"},  {I64, 1, "out_items"},   {F64, 1, "out_values"},
    };
    for (int t = 0; t < N_BUFS; t++) {
        if (take(objs[t], &b[t], spec[t].size, spec[t].formats, spec[t].writable, spec[t].name) <
            0) {
            goto done;
        }
    }
#define LEN(t) (b[t].view.len / b[t].view.itemsize)
    const int64_t *cols = b[0].view.buf;
    slots = b[1].view.buf;
    const int64_t *group = b[2].view.buf;
    position = b[3].view.buf;
    const int64_t *cells_start = b[4].view.buf, *cells_length = b[5].view.buf;
    const int32_t *cells_pool = b[6].view.buf, *cell_user = b[7].view.buf;
    const int64_t *cell_seq = b[8].view.buf;
    const int32_t *cell_item = b[9].view.buf;
    const double *cell_value = b[10].view.buf;
    int64_t *out_rows = b[11].view.buf, *out_colpos = b[12].view.buf;
    int64_t *out_items = b[13].view.buf;
    double *out_values = b[14].view.buf;
    const Py_ssize_t n_cols = LEN(0), n_nb = LEN(1), n_users = LEN(3), n_pool = LEN(6);
    Py_ssize_t n_item_rows = LEN(4) < LEN(5) ? LEN(4) : LEN(5);
    Py_ssize_t n_cells = LEN(7);
    if (LEN(8) < n_cells) n_cells = LEN(8);
    if (LEN(9) < n_cells) n_cells = LEN(9);
    if (LEN(10) < n_cells) n_cells = LEN(10);
    Py_ssize_t cap = LEN(11);
    if (LEN(12) < cap) cap = LEN(12);
    if (LEN(13) < cap) cap = LEN(13);
    if (LEN(14) < cap) cap = LEN(14);
    const int64_t k = k_arg;
    if (k < 1 || LEN(2) != n_nb || n_nb >= ((Py_ssize_t)1 << 31)) {
        FAIL("inconsistent sizes");
    }
    for (Py_ssize_t q = 0; q < n_nb; q++) {
        const int64_t v = slots[q];
        if (v < 0 || v >= n_users || position[v] != -1) {
            FAIL("a neighbour slot is out of range, repeated, or the scratch is not clean");
        }
        position[v] = q;
        n_marked = q + 1;
    }
    int64_t longest = 0;
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        const int64_t i = cols[c];
        if (i < 0 || i >= n_item_rows) {
            FAIL("a wanted item is out of range");
        }
        const int64_t lo = cells_start[i], len = cells_length[i];
        if (lo < 0 || len < 0 || lo + len > n_pool) {
            FAIL("a wanted item's row is out of its pool");
        }
        if (len > longest) longest = len;
    }
    keys = malloc(sizeof(uint64_t) * (size_t)(2 * longest + 2));
    tied = malloc(sizeof(Tied) * (size_t)(2 * longest + 2));
    chosen = malloc((size_t)longest + 1);
    if (!keys || !tied || !chosen) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t written = 0;
    for (Py_ssize_t c = 0; c < n_cols; c++) {
        const int64_t lo = cells_start[cols[c]], len = cells_length[cols[c]];
        /* the raters in N, as (p << 32 | their place in the row), ordered by p */
        Py_ssize_t m = 0;
        for (int64_t t = 0; t < len; t++) {
            const int64_t cell = cells_pool[lo + t];
            if (cell < 0 || cell >= n_cells) {
                FAIL("a cell of a wanted item is out of range");
            }
            const int64_t v = cell_user[cell];
            if (v < 0 || v >= n_users) {
                FAIL("a rater is out of range");
            }
            const int64_t p = position[v];
            if (p >= 0) {
                keys[m++] = ((uint64_t)p << 32) | (uint64_t)t;
            }
        }
        sort_keys(keys, keys + m, m);
        memset(chosen, 1, (size_t)m);
        if (m > k) {
            memset(chosen + k, 0, (size_t)(m - k));
            const int64_t run = group[keys[k - 1] >> 32];
            if (group[keys[k] >> 32] == run) {
                /* the run straddles the k-th place: its members by (seq, p) take what is left */
                Py_ssize_t first = k - 1;
                while (first > 0 && group[keys[first - 1] >> 32] == run) first--;
                Py_ssize_t end = k + 1;
                while (end < m && group[keys[end] >> 32] == run) end++;
                const Py_ssize_t need = k - first, n_run = end - first;
                for (Py_ssize_t r = 0; r < n_run; r++) {
                    const int64_t t = (int64_t)(keys[first + r] & 0xffffffffu);
                    tied[r].seq = cell_seq[cells_pool[lo + t]];
                    tied[r].at = first + r;
                    chosen[first + r] = 0;
                }
                sort_tied(tied, tied + n_run, n_run);
                for (Py_ssize_t r = 0; r < need; r++) chosen[tied[r].at] = 1;
            }
        }
        for (Py_ssize_t e = 0; e < m; e++) {
            if (!chosen[e]) {
                continue;
            }
            if (written >= cap) {
                FAIL("the output arrays are too small");
            }
            const int64_t t = (int64_t)(keys[e] & 0xffffffffu);
            const int64_t cell = cells_pool[lo + t];
            out_rows[written] = (int64_t)(keys[e] >> 32);
            out_colpos[written] = c;
            out_items[written] = cell_item[cell];
            out_values[written] = cell_value[cell];
            written++;
        }
    }
    result = PyLong_FromSsize_t(written);
done:
    for (Py_ssize_t q = 0; q < n_marked; q++) position[slots[q]] = -1;
    free(keys);
    free(tied);
    free(chosen);
    for (int t = 0; t < N_BUFS; t++) {
        if (b[t].held) {
            PyBuffer_Release(&b[t].view);
        }
    }
    return result;
}

static PyMethodDef methods[] = {
    {"select_columns", select_columns, METH_VARARGS,
     "N(i;u) of a few wanted items from their rows (see the file's comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_select_kernel",
    "knn.select for a few wanted items, compiled (stream_cf/engine/select_kernel.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__select_kernel(void) { return PyModule_Create(&module); }
