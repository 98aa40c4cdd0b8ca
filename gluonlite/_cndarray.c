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
                PyObject *raw = PyObject_VectorcallMethod(
                    s_reshape, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
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
static PyObject *
binary(int op, PyObject *a, PyObject *b)
{
    if (nd_type == NULL)
        return not_registered();
    PyObject *fn = bin_np[op];
    if (fn == NULL)
        goto fallback;
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
        else if (bin_scalars[op] &&
                 (tb == &PyLong_Type || tb == &PyFloat_Type || tb == &PyBool_Type)) {
            rb = b;
        }
        else {
            goto fallback;
        }
    }
    else if (tb == nd_type && bin_scalars[op] &&
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
    if (rec < 0)
        return NULL;
    if (rec)
        goto fallback;
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
    if (PyType_Ready(&NDArrayBase_Type) < 0)
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
