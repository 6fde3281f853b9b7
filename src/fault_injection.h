// Fault injection for tests: random yields and short sleeps at labelled
// points inside the library, to widen race windows (srcu-torture, stress).
// Compiled in only with the CMake option SRCU_FAULT_INJECTION (on in the
// tsan and asan presets); active only when the environment sets
// SRCU_FAULT_PROB (a probability per point, e.g. 0.01). Never on the inline
// reader fast path. In a build without the option every point is empty.
#pragma once

namespace srcu::detail {

#if SRCU_FAULT_INJECTION
void inject_fault(const char* point) noexcept;
#define SRCU_INJECT(point) ::srcu::detail::inject_fault(point)
#else
#define SRCU_INJECT(point) ((void)0)
#endif

}  // namespace srcu::detail
