/* comm_nccl_stub.c: the comm_nccl.h API in a build without CUDA/NCCL. Only
 * reached if the CUDA backend were selected, which the CUDA stub refuses. */
#include "comm/comm_nccl.h"
#include "common.h"

#include <stdio.h>

int eff_comm_select_device(MPI_Comm comm, int verbose) {
    (void)comm;
    (void)verbose;
    EFF_FATAL("this effnet was built without CUDA/NCCL\nHINT: reconfigure with -DEFFNET_CUDA=ON, or set train.backend = cpu");
}
EffComm *eff_comm_create(MPI_Comm comm, const EffBackend *be, float *grad, size_t n, double bucket_mb, double timeout_s,
                         int sharded) {
    (void)comm; (void)be; (void)grad; (void)n; (void)bucket_mb; (void)timeout_s; (void)sharded;
    EFF_FATAL("this effnet was built without NCCL\nHINT: reconfigure with -DEFFNET_CUDA=ON");
}
void eff_comm_destroy(EffComm *c) { (void)c; }
void eff_comm_begin(EffComm *c, long step) { (void)c; (void)step; }
void eff_comm_restart(EffComm *c) { (void)c; }
void eff_comm_grad_ready(EffComm *c, size_t first) { (void)c; (void)first; }
void eff_comm_finish(EffComm *c) { (void)c; }
void eff_comm_allgather_params(EffComm *c, float *param) { (void)c; (void)param; }
void eff_comm_wait(EffComm *c) { (void)c; }
void eff_comm_allreduce_avg(EffComm *c, float *buf, size_t n) { (void)c; (void)buf; (void)n; }
int eff_comm_buckets(const EffComm *c) { (void)c; return 0; }
void eff_comm_nccl_version(char *buf, size_t n) { snprintf(buf, n, "none"); }
