/* Thread count control, through OpenMP. */
#include "soju/base.h"

#ifdef _OPENMP
#include <omp.h>
int soju_num_threads(void) { return omp_get_max_threads(); }
void soju_set_num_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}
#else
int soju_num_threads(void) { return 1; }
void soju_set_num_threads(int n) { (void)n; }
#endif
