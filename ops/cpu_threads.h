// Thread count of the CPU operators. MXNet's engine pins its worker threads to one OpenMP
// thread, so an operator must ask for its threads explicitly: OMP_NUM_THREADS if set,
// otherwise every core.
#ifndef SSD_OPS_CPU_THREADS_H_
#define SSD_OPS_CPU_THREADS_H_

#include <omp.h>
#include <stdlib.h>

namespace ssd {

inline int cpu_threads() {
  static const int count = [] {
    const char* env = getenv("OMP_NUM_THREADS");
    const int wanted = env ? atoi(env) : 0;
    return wanted > 0 ? wanted : omp_get_num_procs();
  }();
  return count;
}

}  // namespace ssd

#endif  // SSD_OPS_CPU_THREADS_H_
