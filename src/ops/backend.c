/* Backend selection by name. Each backend registers one constructor here. */
#include <stdlib.h>
#include <string.h>

#include "soju/ops.h"

int soju_cpu_backend_create(soju_backend **be, soju_err *err);
void soju_cpu_backend_free(soju_backend *be);
#ifdef SOJU_HAVE_CUDA
int soju_cuda_backend_create(soju_backend **be, soju_err *err);
#endif

int soju_backend_create(soju_backend **be, const char *name, soju_err *err) {
    if (!name || !strcmp(name, "cpu")) return soju_cpu_backend_create(be, err);
    if (!strcmp(name, "cuda")) {
#ifdef SOJU_HAVE_CUDA
        return soju_cuda_backend_create(be, err);
#else
        return soju_errf(err, SOJU_EUNSUP, "device 'cuda': this soju was built without CUDA (rebuild with nvcc present)");
#endif
    }
    return soju_errf(err, SOJU_EARG, "unknown device '%s' (expected cpu or cuda)", name);
}

#ifdef SOJU_HAVE_CUDA
void soju_cuda_backend_free(soju_backend *be);
#endif

void soju_backend_free(soju_backend *be) {
    if (!be) return;
#ifdef SOJU_HAVE_CUDA
    if (!strcmp(be->ops->name, "cuda")) {
        soju_cuda_backend_free(be);
        return;
    }
#endif
    soju_cpu_backend_free(be);
}
