/*
 * Optional C twins of two pure-Python hot loops of the client (see speedups.py):
 *
 *   decode_items(buf, pos, count, n)  == protocol.decode_items_py
 *   fill_values(values, seqs, texts)  == collection.fill_values_py
 *
 * Same arguments, same results, same refusals: tests/test_speedups.py checks each pair
 * on Hypothesis-generated inputs. Every length read from the network is checked
 * against the bytes present before it is used; nothing here allocates more than the
 * answers it returns.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEAD_SIZE 12 /* PROTO 2, BININT + 4 bytes, BINUNICODE + 4 bytes */
#define TAIL_SIZE 2  /* TUPLE2, STOP */

static uint32_t
read_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* decode_items(buf, pos, count, n) -> (seqs, texts, end)
 *
 * Up to `count` item answers of our tracker's own shape read from buf[pos:]:
 * "\x80\x02J" SEQNUM(4, little-endian, read unsigned) "X" LENGTH(4) VALUE "\x86.".
 * Stops at the first answer that is incomplete, of another shape, or whose SEQNUM is
 * not below n; `end` is where it stopped. */
static PyObject *
decode_items(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, count, n;
    if (!PyArg_ParseTuple(args, "y*nnn:decode_items", &view, &pos, &count, &n))
        return NULL;
    if (pos < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos must not be negative");
        return NULL;
    }
    PyObject *seqs = PyList_New(0);
    PyObject *texts = PyList_New(0);
    if (seqs == NULL || texts == NULL)
        goto error;
    const unsigned char *buf = (const unsigned char *)view.buf;
    const Py_ssize_t end = view.len;
    while (count > 0 && pos <= end && end - pos >= HEAD_SIZE) {
        const unsigned char *p = buf + pos;
        if (p[0] != 0x80 || p[1] != 0x02 || p[2] != 'J' || p[7] != 'X')
            break;
        uint32_t seq = read_u32le(p + 3);
        uint32_t size = read_u32le(p + 8);
        if (n < 0 || (uint64_t)seq >= (uint64_t)n)
            break;
        Py_ssize_t body = pos + HEAD_SIZE;
        if ((uint64_t)size + TAIL_SIZE > (uint64_t)(end - body))
            break; /* not all here yet */
        Py_ssize_t stop = body + (Py_ssize_t)size;
        if (buf[stop] != 0x86 || buf[stop + 1] != '.')
            break;
        PyObject *s = PyLong_FromUnsignedLong((unsigned long)seq);
        if (s == NULL)
            goto error;
        int failed = PyList_Append(seqs, s);
        Py_DECREF(s);
        if (failed)
            goto error;
        PyObject *t = PyBytes_FromStringAndSize((const char *)buf + body, (Py_ssize_t)size);
        if (t == NULL)
            goto error;
        failed = PyList_Append(texts, t);
        Py_DECREF(t);
        if (failed)
            goto error;
        pos = stop + TAIL_SIZE;
        count--;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(NNn)", seqs, texts, pos);
error:
    PyBuffer_Release(&view);
    Py_XDECREF(seqs);
    Py_XDECREF(texts);
    return NULL;
}

/* fill_values(values, seqs, texts) -> (filled, conflict)
 *
 * For each k: if values[seqs[k]] is None it becomes texts[k] (counted in `filled`);
 * if it holds other bytes, stop and return k as `conflict` (else -1). seqs must be
 * ints in range(len(values)) and texts bytes, of the same length. */
static PyObject *
fill_values(PyObject *module, PyObject *args)
{
    PyObject *values, *seqs, *texts;
    if (!PyArg_ParseTuple(args, "O!O!O!:fill_values", &PyList_Type, &values, &PyList_Type,
                          &seqs, &PyList_Type, &texts))
        return NULL;
    Py_ssize_t m = PyList_GET_SIZE(seqs);
    if (PyList_GET_SIZE(texts) != m) {
        PyErr_SetString(PyExc_ValueError, "seqs and texts differ in length");
        return NULL;
    }
    Py_ssize_t filled = 0, conflict = -1;
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *so = PyList_GET_ITEM(seqs, k);
        Py_ssize_t seq = PyLong_AsSsize_t(so);
        if (seq == -1 && PyErr_Occurred())
            return NULL;
        if (seq < 0 || seq >= PyList_GET_SIZE(values)) {
            PyErr_Format(PyExc_IndexError, "SEQNUM %zd out of range", seq);
            return NULL;
        }
        PyObject *raw = PyList_GET_ITEM(texts, k);
        if (!PyBytes_Check(raw)) {
            PyErr_SetString(PyExc_TypeError, "texts must be bytes");
            return NULL;
        }
        PyObject *have = PyList_GET_ITEM(values, seq);
        if (have == Py_None) {
            Py_INCREF(raw);
            PyList_SET_ITEM(values, seq, raw);
            Py_DECREF(have);
            filled++;
            continue;
        }
        if (have == raw)
            continue;
        if (!PyBytes_Check(have) || PyBytes_GET_SIZE(have) != PyBytes_GET_SIZE(raw) ||
            memcmp(PyBytes_AS_STRING(have), PyBytes_AS_STRING(raw),
                   (size_t)PyBytes_GET_SIZE(raw)) != 0) {
            conflict = k;
            break;
        }
    }
    return Py_BuildValue("(nn)", filled, conflict);
}

static PyMethodDef methods[] = {
    {"decode_items", decode_items, METH_VARARGS,
     "decode_items(buf, pos, count, n) -> (seqs, texts, end): C twin of "
     "protocol.decode_items_py."},
    {"fill_values", fill_values, METH_VARARGS,
     "fill_values(values, seqs, texts) -> (filled, conflict): C twin of "
     "collection.fill_values_py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cs457p2p.core._speedups",
    "C twins of the client's two hot loops (optional; see speedups.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
