#include <oneapi/dnnl/dnnl.h>

// oneDNN's Debian build runs on OpenMP (libgomp). omp.h lives in GCC's private include folder,
// which Swift's clang does not search, so the one call the CPU backend needs is declared here.
void omp_set_num_threads(int num_threads);
