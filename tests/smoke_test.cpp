#include <gtest/gtest.h>
#include "scoreflow/error.h"
TEST(Error, JoinListsChoices) { EXPECT_EQ(scoreflow::join({"a", "b"}), "a, b"); }
