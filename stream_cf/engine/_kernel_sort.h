/* The merge sort of uint64 keys shared by the engine's C kernels (_item_kernel.c,
   _select_kernel.c). Include after <Python.h> and <string.h>. */

#ifndef STREAM_CF_KERNEL_SORT_H
#define STREAM_CF_KERNEL_SORT_H

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

#endif
