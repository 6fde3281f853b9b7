#include <srcu/srcu.h>
#include <gtest/gtest.h>
TEST(Readers, Compiles) {
  srcu::domain d;
  auto t = d.read_lock();
  d.read_unlock(t);
  d.synchronize();
  EXPECT_EQ(d.grace_periods_completed(), 1u);
}
