/* Private declarations shared by the CPU backend's files. */
#ifndef SOJU_CPU_OPS_H
#define SOJU_CPU_OPS_H

#include "soju/ops.h"

int soju_cpu_backend_create(soju_backend **be, soju_err *err);

#endif
