#include <gtest/gtest.h>
TEST(PolicyPlaceholder, ToBeReplaced) {}
