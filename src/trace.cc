// The USDT probes' semaphores (see trace.h). A tracer that attaches to a
// probe increments its semaphore in this process's memory.
#include "trace.h"

#if SRCU_HAVE_USDT
extern "C" {
__attribute__((section(".probes"))) volatile unsigned short srcu_gp_start_semaphore = 0;
__attribute__((section(".probes"))) volatile unsigned short srcu_gp_end_semaphore = 0;
__attribute__((section(".probes"))) volatile unsigned short srcu_stall_semaphore = 0;
__attribute__((section(".probes"))) volatile unsigned short srcu_call_semaphore = 0;
__attribute__((section(".probes"))) volatile unsigned short srcu_callback_invoke_semaphore = 0;
}
#endif
