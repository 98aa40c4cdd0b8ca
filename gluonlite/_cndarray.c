/* gluonlite._cndarray: the C base type of gluonlite.ndarray.ndarray (optional).
 *
 * ``NDArrayBase`` holds an array's ``_data`` (the NumPy/CuPy array) and ``_device`` as C
 * members and implements the hot, not-recording CPU paths in C: indexing with an int, a
 * slice or an integer index array (``mp_subscript``), ``.T``, ``reshape`` and the binary
 * number slots (``+ - * / ** % // & | ^ << >> @``) for two arrays on one device object or
 * an array and a Python int/float/bool. Each of them does exactly what the Python fast path
 * in gluonlite/ndarray.py and gluonlite/np/_dispatch.py does; every other case, and every
 * case that raises, is handed to that Python code (registered by ``register`` and
 * ``set_binary``), which then also produces the error message. So the extension changes
 * speed only: with GLUONLITE_NO_CEXT=1 the pure-Python class runs, and tests/test_cext.py
 * runs the same cases both ways.
 *
 * Only the C API of CPython is used (no NumPy headers): NumPy is reached through the
 * objects ``register`` hands over (numpy.ndarray, numpy.asarray, the float dtypes, the
 * ufuncs), so building needs a C compiler and Python's headers, nothing else.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *data;   /* the raw array (NULL until set) */
    PyObject *device; /* the Device (NULL until set) */
    int is_cpu;       /* device.device_type == "cpu", computed when _device is set */
} NDArrayBase;

/* What register() hands over. */
static PyTypeObject *nd_type;        /* gluonlite.ndarray.ndarray */
static PyObject *recording_var;      /* autograd._recording (a ContextVar) */
static PyTypeObject *np_ndarray;     /* numpy.ndarray */
static PyObject *np_asarray;         /* numpy.asarray */
static PyObject *np_reshape;         /* numpy.ndarray.reshape (unbound: no lookup per call) */
static PyObject *dt_f32, *dt_f64;    /* numpy.dtype('float32'), numpy.dtype('float64') */
static PyObject *py_init;            /* ndarray's Python __init__(self, data, device) */
static PyObject *py_getitem;         /* ndarray's Python __getitem__(self, key) */
static PyObject *py_T;               /* ndarray's Python T property's getter(self) */
static PyObject *py_reshape;         /* ndarray's Python reshape(self, *shape, **kwargs) */

/* Binary slots: the NumPy function of the fast path (NULL: none), whether a Python scalar
 * operand is taken, and the Python function computing op(left, right) otherwise. */
enum { B_ADD, B_SUB, B_MUL, B_TRUEDIV, B_POW, B_MOD, B_FLOORDIV, B_AND, B_OR, B_XOR,
       B_LSHIFT, B_RSHIFT, B_MATMUL, B_COUNT };
static const char *binary_names[B_COUNT] = {
    "add", "sub", "mul", "truediv", "pow", "mod", "floordiv", "and", "or", "xor",
    "lshift", "rshift", "matmul"};
static PyObject *bin_np[B_COUNT];
static int bin_scalars[B_COUNT];
static PyObject *bin_py[B_COUNT];

static PyObject *s_device_type, *s_cpu, *s_dtype, *s_kind, *s_f, *s_T, *s_reshape,
    *s_astype, *s_data, *s_device;

/* ------------------------------------------------------------------ helpers */
/* The last cpu Device seen (a strong reference): arrays made one after another mostly
 * share their device object, and this spares them the attribute read. Devices are frozen,
 * so the answer for an object cannot change. */
static PyObject *last_cpu_device;

static int
set_device(NDArrayBase *self, PyObject *device)
{
    int is_cpu = 0;
    if (device != NULL && device == last_cpu_device) {
        is_cpu = 1;
    }
    else if (device != NULL) {
        PyObject *kind = PyObject_GetAttr(device, s_device_type);
        if (kind == NULL) {
            PyErr_Clear(); /* not a Device: never the fast path */
        }
        else {
            is_cpu = kind == s_cpu ||
                     (PyUnicode_CheckExact(kind) && PyUnicode_Compare(kind, s_cpu) == 0);
            Py_DECREF(kind);
            if (is_cpu) {
                Py_INCREF(device);
                Py_XSETREF(last_cpu_device, device);
            }
        }
    }
    Py_XINCREF(device);
    Py_XSETREF(self->device, device);
    self->is_cpu = is_cpu;
    return 0;
}

/* 1 while autograd records, 0 if not, -1 on error. */
static inline int
recording(void)
{
    PyObject *v;
    if (PyContextVar_Get(recording_var, Py_False, &v) < 0)
        return -1;
    int r = v == Py_False ? 0 : (v == Py_True ? 1 : PyObject_IsTrue(v));
    Py_DECREF(v);
    return r;
}

/* A new gluonlite ndarray (the exact class) wrapping ``raw`` (a reference stolen). */
static PyObject *
wrap(PyObject *raw, NDArrayBase *like)
{
    NDArrayBase *out = (NDArrayBase *)nd_type->tp_alloc(nd_type, 0);
    if (out == NULL) {
        Py_DECREF(raw);
        return NULL;
    }
    out->data = raw;
    Py_INCREF(like->device);
    out->device = like->device;
    out->is_cpu = like->is_cpu;
    return (PyObject *)out;
}

/* The fast paths' result rule: a NumPy array (a scalar result as a 0-d array), float64
 * only where an array operand was float64 (``as_f32``: none was). Steals ``y``. */
static PyObject *
as_result(PyObject *y, int check_f64, PyObject *ra, PyObject *rb)
{
    if (Py_TYPE(y) != np_ndarray) {
        PyObject *a = PyObject_CallOneArg(np_asarray, y);
        Py_DECREF(y);
        if (a == NULL)
            return NULL;
        y = a;
    }
    if (!check_f64)
        return y;
    PyObject *dt = PyObject_GetAttr(y, s_dtype);
    if (dt == NULL)
        goto fail;
    Py_DECREF(dt); /* only its identity is compared */
    if (dt != dt_f64)
        return y;
    PyObject *ops[2] = {ra, rb};
    for (int i = 0; i < 2; i++) {
        if (ops[i] == NULL)
            continue;
        PyObject *odt = PyObject_GetAttr(ops[i], s_dtype);
        if (odt == NULL)
            goto fail;
        Py_DECREF(odt);
        if (odt == dt_f64)
            return y;
    }
    PyObject *f32 = PyObject_CallMethodOneArg(y, s_astype, dt_f32);
    Py_DECREF(y);
    return f32;
fail:
    Py_DECREF(y);
    return NULL;
}

static PyObject *
not_registered(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "gluonlite._cndarray: register() has not been called");
    return NULL;
}

/* ------------------------------------------------------------------ type basics */
static int
nd_traverse(NDArrayBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->data);
    Py_VISIT(self->device);
    return 0;
}

static int
nd_clear(NDArrayBase *self)
{
    Py_CLEAR(self->data);
    Py_CLEAR(self->device);
    return 0;
}

static void
nd_dealloc(NDArrayBase *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    nd_clear(self);
    tp->tp_free((PyObject *)self);
}

/* ndarray(data, device); any other call (keywords, a wrong count) goes to the Python
 * __init__, which words the errors. */
static int
nd_init(NDArrayBase *self, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 2 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        if (py_init == NULL) {
            PyErr_SetString(PyExc_TypeError, "ndarray(data, device) takes two arguments");
            return -1;
        }
        PyObject *full = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
        if (full == NULL)
            return -1;
        PyTuple_SET_ITEM(full, 0, Py_NewRef((PyObject *)self));
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)
            PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
        PyObject *r = PyObject_Call(py_init, full, kwds);
        Py_DECREF(full);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    PyObject *data = PyTuple_GET_ITEM(args, 0), *device = PyTuple_GET_ITEM(args, 1);
    Py_INCREF(data);
    Py_XSETREF(self->data, data);
    return set_device(self, device);
}

static PyObject *
get_data(NDArrayBase *self, void *closure)
{
    if (self->data == NULL) {
        PyErr_SetString(PyExc_AttributeError, "'ndarray' object has no attribute '_data'");
        return NULL;
    }
    return Py_NewRef(self->data);
}

static int
set_data(NDArrayBase *self, PyObject *value, void *closure)
{
    Py_XINCREF(value);
    Py_XSETREF(self->data, value);
    return 0;
}

static PyObject *
get_device(NDArrayBase *self, void *closure)
{
    if (self->device == NULL) {
        PyErr_SetString(PyExc_AttributeError, "'ndarray' object has no attribute '_device'");
        return NULL;
    }
    return Py_NewRef(self->device);
}

static int
set_device_attr(NDArrayBase *self, PyObject *value, void *closure)
{
    return set_device(self, value);
}

/* ``.T``: outside recording a view, wrapped (on every device, as the Python property). */
static PyObject *
get_T(NDArrayBase *self, void *closure)
{
    if (nd_type == NULL)
        return not_registered();
    int rec = recording();
    if (rec < 0)
        return NULL;
    if (rec || self->data == NULL || self->device == NULL)
        return PyObject_CallOneArg(py_T, (PyObject *)self);
    PyObject *raw = PyObject_GetAttr(self->data, s_T);
    if (raw == NULL)
        return NULL;
    return wrap(raw, self);
}

/* ``x[key]`` on cpu outside recording, key an int, a slice or an integer index array on
 * this very device object: NumPy's indexing, wrapped. Anything else, and any error (the
 * Python path words it), goes to ndarray._getitem_py. */
static PyObject *
nd_subscript(NDArrayBase *self, PyObject *key)
{
    if (nd_type == NULL)
        return not_registered();
    PyObject *raw_key = NULL;
    PyTypeObject *tk = Py_TYPE(key);
    if (!self->is_cpu || self->data == NULL)
        goto fallback;
    if (tk == &PyLong_Type || tk == &PySlice_Type) {
        raw_key = key;
    }
    else if (tk == nd_type) {
        NDArrayBase *k = (NDArrayBase *)key;
        if (k->device != self->device || k->data == NULL)
            goto fallback;
        PyObject *dt = PyObject_GetAttr(k->data, s_dtype);
        if (dt == NULL)
            goto error_fallback;
        PyObject *kind = PyObject_GetAttr(dt, s_kind);
        Py_DECREF(dt);
        if (kind == NULL)
            goto error_fallback;
        int is_f = PyUnicode_Check(kind) && PyUnicode_Compare(kind, s_f) == 0;
        Py_DECREF(kind);
        if (is_f)
            goto fallback;
        raw_key = k->data;
    }
    else {
        goto fallback;
    }
    int rec = recording();
    if (rec < 0)
        return NULL;
    if (rec)
        goto fallback;
    PyObject *raw = PyObject_GetItem(self->data, raw_key);
    if (raw == NULL)
        goto error_fallback;
    raw = as_result(raw, 0, NULL, NULL); /* x[i] of a 1-d array: a 0-d array */
    if (raw == NULL)
        goto error_fallback;
    return wrap(raw, self);
error_fallback:
    PyErr_Clear();
fallback:
    return PyObject_CallFunctionObjArgs(py_getitem, (PyObject *)self, key, NULL);
}

/* ``x.reshape(*shape)`` on cpu outside recording, without keywords: NumPy's reshape. */
static PyObject *
nd_reshape(NDArrayBase *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    if (nd_type == NULL)
        return not_registered();
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (self->is_cpu && nargs > 0 && kwnames == NULL && self->data != NULL) {
        int rec = recording();
        if (rec < 0)
            return NULL;
        if (!rec) {
            PyObject *stack[8];
            if (nargs < 8) {
                stack[0] = self->data;
                for (Py_ssize_t i = 0; i < nargs; i++)
                    stack[i + 1] = args[i];
                PyObject *raw =
                    Py_TYPE(self->data) == np_ndarray && np_reshape != NULL
                        ? PyObject_Vectorcall(np_reshape, stack, nargs + 1, NULL)
                        : PyObject_VectorcallMethod(s_reshape, stack, nargs + 1, NULL);
                if (raw != NULL)
                    return wrap(raw, self);
                PyErr_Clear();
            }
        }
    }
    /* py_reshape(self, *args, **kwargs) */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject **stack = PyMem_Malloc((nargs + nkw + 1) * sizeof(PyObject *));
    if (stack == NULL)
        return PyErr_NoMemory();
    stack[0] = (PyObject *)self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[i + 1] = args[i];
    PyObject *res = PyObject_Vectorcall(py_reshape, stack, nargs + 1, kwnames);
    PyMem_Free(stack);
    return res;
}

/* ------------------------------------------------------------------ binary slots */
/* fn(a, b) for two arrays on one cpu device object, or (``scalars``) an array and a Python
 * int/float/bool, outside recording; NULL (no error set) where the Python path must run,
 * because the case is another one or because it raised (the Python path words the error). */
static PyObject *
binary_fast(PyObject *fn, int scalars, PyObject *a, PyObject *b)
{
    PyTypeObject *ta = Py_TYPE(a), *tb = Py_TYPE(b);
    NDArrayBase *arr;
    PyObject *ra, *rb, *fa = NULL, *fb = NULL; /* fa/fb: the array operands' raw arrays */
    if (ta == nd_type) {
        arr = (NDArrayBase *)a;
        ra = fa = arr->data;
        if (tb == nd_type) {
            if (((NDArrayBase *)b)->device != arr->device)
                goto fallback; /* equal devices, or the mismatch error: Python's */
            rb = fb = ((NDArrayBase *)b)->data;
        }
        else if (scalars &&
                 (tb == &PyLong_Type || tb == &PyFloat_Type || tb == &PyBool_Type)) {
            rb = b;
        }
        else {
            goto fallback;
        }
    }
    else if (tb == nd_type && scalars &&
             (ta == &PyLong_Type || ta == &PyFloat_Type || ta == &PyBool_Type)) {
        arr = (NDArrayBase *)b;
        ra = a;
        rb = fb = arr->data;
    }
    else {
        goto fallback;
    }
    if (!arr->is_cpu || ra == NULL || rb == NULL)
        goto fallback;
    int rec = recording();
    if (rec)
        goto error_fallback;
    PyObject *args[2] = {ra, rb};
    PyObject *y = PyObject_Vectorcall(fn, args, 2, NULL);
    if (y == NULL)
        goto error_fallback;
    y = as_result(y, 1, fa, fb);
    if (y == NULL)
        goto error_fallback;
    return wrap(y, arr);
error_fallback:
    PyErr_Clear();
fallback:
    return NULL;
}

static PyObject *
binary(int op, PyObject *a, PyObject *b)
{
    if (nd_type == NULL)
        return not_registered();
    if (bin_np[op] != NULL) {
        PyObject *res = binary_fast(bin_np[op], bin_scalars[op], a, b);
        if (res != NULL)
            return res;
    }
    if (bin_py[op] == NULL)
        Py_RETURN_NOTIMPLEMENTED;
    return PyObject_CallFunctionObjArgs(bin_py[op], a, b, NULL);
}

#define BINARY_SLOT(NAME, OP)                                 \
    static PyObject *NAME(PyObject *a, PyObject *b)           \
    {                                                         \
        return binary(OP, a, b);                              \
    }
BINARY_SLOT(nd_add, B_ADD)
BINARY_SLOT(nd_sub, B_SUB)
BINARY_SLOT(nd_mul, B_MUL)
BINARY_SLOT(nd_truediv, B_TRUEDIV)
BINARY_SLOT(nd_mod, B_MOD)
BINARY_SLOT(nd_floordiv, B_FLOORDIV)
BINARY_SLOT(nd_and, B_AND)
BINARY_SLOT(nd_or, B_OR)
BINARY_SLOT(nd_xor, B_XOR)
BINARY_SLOT(nd_lshift, B_LSHIFT)
BINARY_SLOT(nd_rshift, B_RSHIFT)
BINARY_SLOT(nd_matmul, B_MATMUL)

static PyObject *
nd_pow(PyObject *a, PyObject *b, PyObject *mod)
{
    if (mod != Py_None) { /* pow(a, b, m): the Python operator's answer (an error) */
        if (bin_py[B_POW] == NULL)
            Py_RETURN_NOTIMPLEMENTED;
        return PyObject_CallFunctionObjArgs(bin_py[B_POW], a, b, mod, NULL);
    }
    return binary(B_POW, a, b);
}

/* ------------------------------------------------------------------ pickling */
/* The state: the instance dict plus _data and _device (what the pure-Python class
 * pickles as its dict), so pickles load in either build. */
static PyObject *
nd_getstate(NDArrayBase *self, PyObject *unused)
{
    PyObject *state = PyDict_New();
    if (state == NULL)
        return NULL;
    PyObject *dict = PyObject_GetAttrString((PyObject *)self, "__dict__");
    if (dict == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            goto fail;
        PyErr_Clear();
    }
    else {
        int r = PyDict_Check(dict) ? PyDict_Update(state, dict) : 0;
        Py_DECREF(dict);
        if (r < 0)
            goto fail;
    }
    if (self->data != NULL && PyDict_SetItem(state, s_data, self->data) < 0)
        goto fail;
    if (self->device != NULL && PyDict_SetItem(state, s_device, self->device) < 0)
        goto fail;
    return state;
fail:
    Py_DECREF(state);
    return NULL;
}

static PyObject *
nd_setstate(NDArrayBase *self, PyObject *state)
{
    if (!PyDict_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "ndarray.__setstate__: expected a dict");
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(state, &pos, &key, &value)) {
        if (PyObject_SetAttr((PyObject *)self, key, value) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ FastOp */
/* An mx.np function (a row of the op table) whose plain cpu, not-recording call runs in C:
 * ``fast(kind, numpy_fn, reduce, fallback)`` wraps the Python function ``fallback`` (made by
 * np/_dispatch.py, which stays the definition: every other call goes to it unchanged).
 * Kinds, each the C form of the Python fast path of the same name in np/_dispatch.py:
 *   unary  f(x):                    numpy_fn(x)
 *   binary f(a, b), a Python scalar allowed on either side: numpy_fn(a, b)
 *   pair   f(a, b), two arrays:     numpy_fn(a, b)
 *   method f(a[, axis]):            reduce(a, axis) if reduce else numpy_fn(a, axis)
 *   seq    f([a, b, ...]):          numpy_fn([raw arrays])
 * It has a __dict__ (the Python function's attributes are copied there: __name__, __doc__,
 * row, dunder, ...; __wrapped__ names the Python function for inspect.signature) and binds
 * as a method like a function does (ndarray.sum is one). */
enum { K_UNARY, K_BINARY, K_PAIR, K_METHOD, K_SEQ };

typedef struct {
    PyObject_HEAD
    int kind;
    PyObject *np_fn;    /* NULL: never the fast path */
    PyObject *reduce;   /* method kind: a ufunc's reduce, or NULL */
    PyObject *fallback; /* the Python function */
    PyObject *dict;
    vectorcallfunc vectorcall;
} FastOp;

static PyObject *s_axis;

static PyObject *
unary_fast(FastOp *op, PyObject *x)
{
    if (Py_TYPE(x) != nd_type)
        return NULL;
    NDArrayBase *arr = (NDArrayBase *)x;
    if (!arr->is_cpu || arr->data == NULL)
        return NULL;
    if (recording())
        goto error;
    PyObject *y = PyObject_CallOneArg(op->np_fn, arr->data);
    if (y == NULL)
        goto error;
    y = as_result(y, 1, arr->data, NULL);
    if (y == NULL)
        goto error;
    return wrap(y, arr);
error:
    PyErr_Clear();
    return NULL;
}

static PyObject *
method_fast(FastOp *op, PyObject *x, PyObject *axis)
{
    if (Py_TYPE(x) != nd_type)
        return NULL;
    NDArrayBase *arr = (NDArrayBase *)x;
    if (!arr->is_cpu || arr->data == NULL)
        return NULL;
    if (recording())
        goto error;
    PyObject *args[2] = {arr->data, axis};
    PyObject *y = PyObject_Vectorcall(op->reduce != NULL ? op->reduce : op->np_fn, args, 2, NULL);
    if (y == NULL)
        goto error;
    y = as_result(y, 1, arr->data, NULL);
    if (y == NULL)
        goto error;
    return wrap(y, arr);
error:
    PyErr_Clear();
    return NULL;
}

static PyObject *
seq_fast(FastOp *op, PyObject *seq)
{
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq))
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0)
        return NULL;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    if (Py_TYPE(items[0]) != nd_type)
        return NULL;
    NDArrayBase *first = (NDArrayBase *)items[0];
    if (!first->is_cpu)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (Py_TYPE(items[i]) != nd_type || ((NDArrayBase *)items[i])->device != first->device ||
            ((NDArrayBase *)items[i])->data == NULL)
            return NULL;
    }
    if (recording())
        goto error;
    PyObject *raws = PyList_New(n);
    if (raws == NULL)
        goto error;
    int any_f64 = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = ((NDArrayBase *)items[i])->data;
        PyList_SET_ITEM(raws, i, Py_NewRef(r));
    }
    Py_INCREF(first); /* the sequence's own reference may go while NumPy runs */
    PyObject *y = PyObject_CallOneArg(op->np_fn, raws);
    if (y == NULL) {
        Py_DECREF(raws);
        Py_DECREF(first);
        goto error;
    }
    if (Py_TYPE(y) != np_ndarray) { /* the Python path would not take this one */
        Py_DECREF(y);
        Py_DECREF(raws);
        Py_DECREF(first);
        goto error;
    }
    PyObject *dt = PyObject_GetAttr(y, s_dtype);
    if (dt == NULL)
        goto fail;
    Py_DECREF(dt);
    if (dt == dt_f64) {
        for (Py_ssize_t i = 0; i < n && !any_f64; i++) {
            PyObject *odt = PyObject_GetAttr(PyList_GET_ITEM(raws, i), s_dtype);
            if (odt == NULL)
                goto fail;
            Py_DECREF(odt);
            any_f64 = odt == dt_f64;
        }
        if (!any_f64) {
            PyObject *f32 = PyObject_CallMethodOneArg(y, s_astype, dt_f32);
            Py_SETREF(y, f32);
            if (y == NULL) {
                Py_DECREF(raws);
                Py_DECREF(first);
                goto error;
            }
        }
    }
    Py_DECREF(raws);
    PyObject *res = wrap(y, first);
    Py_DECREF(first);
    return res;
fail:
    Py_DECREF(y);
    Py_DECREF(raws);
    Py_DECREF(first);
error:
    PyErr_Clear();
    return NULL;
}

static PyObject *
fastop_vectorcall(FastOp *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *res = NULL;
    if (op->np_fn != NULL && nd_type != NULL) {
        Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        switch (op->kind) {
        case K_UNARY:
            if (nargs == 1 && nkw == 0)
                res = unary_fast(op, args[0]);
            break;
        case K_BINARY:
        case K_PAIR:
            if (nargs == 2 && nkw == 0)
                res = binary_fast(op->np_fn, op->kind == K_BINARY, args[0], args[1]);
            break;
        case K_METHOD:
            if (nargs == 1 && nkw == 0)
                res = method_fast(op, args[0], Py_None);
            else if (nargs == 2 && nkw == 0)
                res = method_fast(op, args[0], args[1]);
            else if (nargs == 1 && nkw == 1 &&
                     PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), s_axis) == 0)
                res = method_fast(op, args[0], args[1]);
            break;
        case K_SEQ:
            if (nargs == 1 && nkw == 0)
                res = seq_fast(op, args[0]);
            break;
        }
        if (res != NULL)
            return res;
    }
    return PyObject_Vectorcall(op->fallback, args, nargsf, kwnames);
}

static int
fastop_traverse(FastOp *op, visitproc visit, void *arg)
{
    Py_VISIT(op->np_fn);
    Py_VISIT(op->reduce);
    Py_VISIT(op->fallback);
    Py_VISIT(op->dict);
    return 0;
}

static int
fastop_clear(FastOp *op)
{
    Py_CLEAR(op->np_fn);
    Py_CLEAR(op->reduce);
    Py_CLEAR(op->fallback);
    Py_CLEAR(op->dict);
    return 0;
}

static void
fastop_dealloc(FastOp *op)
{
    PyObject_GC_UnTrack(op);
    fastop_clear(op);
    Py_TYPE(op)->tp_free((PyObject *)op);
}

static PyObject *
fastop_descr_get(PyObject *op, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(op);
    return PyMethod_New(op, obj);
}

static PyObject *
fastop_repr(FastOp *op)
{
    return PyObject_Repr(op->fallback);
}

static PyGetSetDef fastop_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyTypeObject FastOp_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gluonlite._cndarray.FastOp",
    .tp_doc = NULL,
    .tp_basicsize = sizeof(FastOp),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_dealloc = (destructor)fastop_dealloc,
    .tp_traverse = (traverseproc)fastop_traverse,
    .tp_clear = (inquiry)fastop_clear,
    .tp_vectorcall_offset = offsetof(FastOp, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = fastop_descr_get,
    .tp_repr = (reprfunc)fastop_repr,
    .tp_dictoffset = offsetof(FastOp, dict),
    .tp_getset = fastop_getset,
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

static PyObject *
mod_fast(PyObject *module, PyObject *args)
{
    const char *kind;
    PyObject *np_fn, *reduce, *fallback;
    if (!PyArg_ParseTuple(args, "sOOO:fast", &kind, &np_fn, &reduce, &fallback))
        return NULL;
    static const char *kinds[] = {"unary", "binary", "pair", "method", "seq"};
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(kind, kinds[i]) == 0)
            k = i;
    if (k < 0) {
        PyErr_Format(PyExc_ValueError, "fast: unknown kind %R", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fast: the fallback must be callable");
        return NULL;
    }
    FastOp *op = PyObject_GC_New(FastOp, &FastOp_Type);
    if (op == NULL)
        return NULL;
    op->kind = k;
    op->np_fn = np_fn == Py_None ? NULL : Py_NewRef(np_fn);
    op->reduce = reduce == Py_None ? NULL : Py_NewRef(reduce);
    op->fallback = Py_NewRef(fallback);
    op->dict = NULL;
    op->vectorcall = (vectorcallfunc)fastop_vectorcall;
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

/* ------------------------------------------------------------------ module */
static PyGetSetDef nd_getset[] = {
    {"_data", (getter)get_data, (setter)set_data, "the raw NumPy/CuPy array", NULL},
    {"_device", (getter)get_device, (setter)set_device_attr, "the array's Device", NULL},
    {"T", (getter)get_T, NULL, "The transposed array (a view; differentiable).", NULL},
    {NULL},
};

static PyMethodDef nd_methods[] = {
    {"reshape", (PyCFunction)(void (*)(void))nd_reshape, METH_FASTCALL | METH_KEYWORDS,
     "reshape(*shape, order='C')\n--\n\n``x.reshape((2, -1))`` or MXNet's "
     "``x.reshape(2, -1)``; differentiable."},
    {"__getstate__", (PyCFunction)nd_getstate, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)nd_setstate, METH_O, NULL},
    {NULL},
};

static PyNumberMethods nd_as_number = {
    .nb_add = nd_add,
    .nb_subtract = nd_sub,
    .nb_multiply = nd_mul,
    .nb_remainder = nd_mod,
    .nb_power = nd_pow,
    .nb_and = nd_and,
    .nb_xor = nd_xor,
    .nb_or = nd_or,
    .nb_lshift = nd_lshift,
    .nb_rshift = nd_rshift,
    .nb_floor_divide = nd_floordiv,
    .nb_true_divide = nd_truediv,
    .nb_matrix_multiply = nd_matmul,
};

static PyMappingMethods nd_as_mapping = {
    .mp_subscript = (binaryfunc)nd_subscript,
};

static PyTypeObject NDArrayBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gluonlite._cndarray.NDArrayBase",
    .tp_doc = "C base of gluonlite.ndarray.ndarray: _data, _device and the hot paths.",
    .tp_basicsize = sizeof(NDArrayBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)nd_init,
    .tp_dealloc = (destructor)nd_dealloc,
    .tp_traverse = (traverseproc)nd_traverse,
    .tp_clear = (inquiry)nd_clear,
    .tp_getset = nd_getset,
    .tp_methods = nd_methods,
    .tp_as_number = &nd_as_number,
    .tp_as_mapping = &nd_as_mapping,
};

static void
keep(PyObject **slot, PyObject *value)
{
    Py_XINCREF(value);
    Py_XSETREF(*slot, value);
}

static PyObject *
mod_register(PyObject *module, PyObject *args)
{
    PyObject *cls, *var, *npnd, *asarray, *f32, *f64, *init, *getitem, *T, *reshape;
    if (!PyArg_ParseTuple(args, "O!OO!OOOOOOO:register", &PyType_Type, &cls, &var,
                          &PyType_Type, &npnd, &asarray, &f32, &f64, &init, &getitem, &T,
                          &reshape))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &NDArrayBase_Type)) {
        PyErr_SetString(PyExc_TypeError, "register: the class must derive from NDArrayBase");
        return NULL;
    }
    if (!PyContextVar_CheckExact(var)) {
        PyErr_SetString(PyExc_TypeError, "register: the recording flag must be a ContextVar");
        return NULL;
    }
    keep(&recording_var, var);
    keep((PyObject **)&np_ndarray, npnd);
    keep(&np_asarray, asarray);
    PyObject *reshape_descr = PyObject_GetAttr(npnd, s_reshape);
    if (reshape_descr == NULL)
        return NULL;
    Py_XSETREF(np_reshape, reshape_descr);
    keep(&dt_f32, f32);
    keep(&dt_f64, f64);
    keep(&py_init, init);
    keep(&py_getitem, getitem);
    keep(&py_T, T);
    keep(&py_reshape, reshape);
    keep((PyObject **)&nd_type, cls); /* last: it switches the fast paths on */
    Py_RETURN_NONE;
}

static PyObject *
mod_set_binary(PyObject *module, PyObject *args)
{
    const char *name;
    PyObject *np_fn, *py_fn;
    int scalars;
    if (!PyArg_ParseTuple(args, "sOpO:set_binary", &name, &np_fn, &scalars, &py_fn))
        return NULL;
    for (int i = 0; i < B_COUNT; i++) {
        if (strcmp(name, binary_names[i]) == 0) {
            keep(&bin_py[i], py_fn);
            keep(&bin_np[i], np_fn == Py_None ? NULL : np_fn);
            bin_scalars[i] = scalars;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "set_binary: unknown operator %R", PyTuple_GET_ITEM(args, 0));
    return NULL;
}

/* new(cls): an empty instance of ``cls`` (a subclass of NDArrayBase), as
 * ``object.__new__(cls)`` is for the pure-Python class: the fast paths written in Python
 * make their results with it and set ``_data`` and ``_device``. */
static PyObject *
mod_new(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &NDArrayBase_Type)) {
        PyErr_SetString(PyExc_TypeError, "new: expected a subclass of NDArrayBase");
        return NULL;
    }
    return ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
}

static PyMethodDef module_methods[] = {
    {"fast", mod_fast, METH_VARARGS,
     "fast(kind, numpy_fn, reduce, fallback): an mx.np function whose plain cpu call runs in"
     " C (kinds: unary, binary, pair, method, seq), every other call going to fallback."},
    {"new", mod_new, METH_O, "new(cls): an empty instance of cls (object.__new__'s part)."},
    {"register", mod_register, METH_VARARGS,
     "register(cls, recording_var, numpy_ndarray, asarray, float32, float64, init, getitem, T, "
     "reshape): switch the fast paths on for ``cls`` with these Python fallbacks."},
    {"set_binary", mod_set_binary, METH_VARARGS,
     "set_binary(name, numpy_fn_or_None, scalars, fallback): the binary operator ``name``"
     " ('add', ..., 'matmul') computes numpy_fn(a, b) on its fast path, else fallback(a, b)."},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "gluonlite._cndarray",
    "C base type of gluonlite's ndarray (optional; see gluonlite/_cndarray.c).", -1,
    module_methods,
};

#define INTERN(var, text)                                 \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;

PyMODINIT_FUNC
PyInit__cndarray(void)
{
    INTERN(s_device_type, "device_type");
    INTERN(s_cpu, "cpu");
    INTERN(s_dtype, "dtype");
    INTERN(s_kind, "kind");
    INTERN(s_f, "f");
    INTERN(s_T, "T");
    INTERN(s_reshape, "reshape");
    INTERN(s_astype, "astype");
    INTERN(s_data, "_data");
    INTERN(s_device, "_device");
    INTERN(s_axis, "axis");
    if (PyType_Ready(&NDArrayBase_Type) < 0 || PyType_Ready(&FastOp_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    Py_INCREF(&NDArrayBase_Type);
    if (PyModule_AddObject(m, "NDArrayBase", (PyObject *)&NDArrayBase_Type) < 0) {
        Py_DECREF(&NDArrayBase_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
