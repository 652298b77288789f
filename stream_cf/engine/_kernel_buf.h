/* The buffer check shared by the engine's C kernels (_item_kernel.c, _rank_kernel.c,
   _select_kernel.c): each
   argument array is taken as a C-contiguous buffer of the expected item size and type code, or
   the call fails with a TypeError naming it. Include after <Python.h> and <string.h>. */

#ifndef STREAM_CF_KERNEL_BUF_H
#define STREAM_CF_KERNEL_BUF_H

/* (item size, accepted type codes) of the argument arrays' element types, for ``take`` */
#define I64 8, "lq"
#define I32 4, "i"
#define F64 8, "d"

typedef struct {
    Py_buffer view;
    int held;
} Buf;

/* A C-contiguous buffer of items of ``size`` bytes whose format is one of ``formats``. */
static int take(PyObject *obj, Buf *buf, Py_ssize_t size, const char *formats, int writable,
                const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &buf->view, flags) < 0) {
        return -1;
    }
    buf->held = 1;
    const char *format = buf->view.format ? buf->view.format : "B";
    if (format[0] == '<' || format[0] == '=' || format[0] == '@') {
        format++;
    }
    if (buf->view.itemsize != size || format[0] == '\0' || format[1] != '\0' ||
        strchr(formats, format[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: wrong item type '%s' (itemsize %zd)", name,
                     buf->view.format ? buf->view.format : "B", buf->view.itemsize);
        return -1;
    }
    return 0;
}

#endif
